#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The likelihood a Laplace posterior was fitted with.
public enum LaplaceLikelihood: Int, Sendable {
  /// Categorical: p = softmax(f); the loss is the summed cross-entropy.
  case classification = 0
  /// Gaussian N(y; f, σ²I); the loss is ½ Σ ‖y − f‖² (σ = 1).
  case regression = 1
}

/// A Laplace approximation q(θ) = N(θ*, P⁻¹) of a network's posterior around θ*, with
/// P = h·G + P0 (DESIGN.md §4): G a curvature accumulated once at σ = 1, T = 1 (`Curvature`),
/// and the hyperparameters (prior precision and mean, σ, T) free to change afterwards — the
/// evidence, its gradients and the predictive are exact functions of them for the structure.
///
/// Log marginal likelihood (laplace-torch's `log_marginal_likelihood`):
///   log p(D) ≈ log p(D|θ*) − ½ [log det P − log det P0] − ½ (θ* − μ0)ᵀ P0 (θ* − μ0),
///   log p(D|θ*) = −h·L − N·C·log(σ√(2π))  (regression, L = ½ Σ‖y − f‖², h = 1/(σ²T)),
///   log p(D|θ*) = −L/T                     (classification, L = Σ cross-entropy, h = 1/T).
public struct Laplace: Sendable {
  /// The curvature G of the parameters the posterior covers.
  public enum Curvature: Sendable {
    /// The dense GGN (P × P).
    case full(Matrix)
    /// The exact GGN diagonal.
    case diagonal([Double])
    /// K-FAC (or EK-FAC) blocks covering every parameter.
    case kron(KFAC)
  }

  public enum Structure: Int, Sendable { case full = 0, diagonal = 1, kron = 2 }
  public enum Subset: Int, Sendable {
    /// Every parameter of the network.
    case all = 0
    /// Only the last linear-map layer's weight and bias (the rest stays at θ*).
    case lastLayer = 1
  }

  public let curvature: Curvature
  public let likelihood: LaplaceLikelihood
  public let subset: Subset
  /// θ*: the posterior mean over the covered parameters.
  public let mean: [Double]
  /// Where the covered parameters sit in the network's parameter vector.
  public let parameterRange: Range<Int>
  /// The size of the network's parameter vector at fit time (a changed network is refused).
  public let networkParameterCount: Int
  /// L: ½ Σ‖y − f(x; θ*)‖² (regression) or Σ cross-entropy (classification), at σ = 1, T = 1.
  public let loss: Double
  /// N, the number of training examples.
  public let dataCount: Int
  /// C, the number of network outputs.
  public let outputCount: Int
  /// For `kron`: use the damped form (√h·B + √δ·I) ⊗ (√h·A + √δ·I) on weight blocks instead of
  /// the exact h·B ⊗ A + δ·I (see `KroneckerPosteriorPrecision`).
  public let dampedKronecker: Bool
  /// The parameter tensors covered (weight, bias, … in order): what a "layerwise" prior counts.
  let groups: ParameterGroups
  /// The current hyperparameters (checked: the posterior precision is positive definite).
  public internal(set) var hyperparameters: LaplaceHyperparameters

  public var structure: Structure {
    switch curvature {
    case .full: .full
    case .diagonal: .diagonal
    case .kron: .kron
    }
  }

  /// The number of parameters covered.
  public var parameterCount: Int { mean.count }
  /// The parameter tensors' sizes, in order.
  public var tensorSizes: [Int] { groups.ranges.map(\.count) }

  /// A posterior from curvature a caller computed (e.g. from statistics captured in PyTorch):
  /// `mean` θ* of the covered parameters, `tensorSizes` their parameter tensors in order
  /// (nil: the K-FAC blocks for `kron`, one tensor otherwise), `loss` L and N, C as above.
  /// - Throws: `.shapeMismatch` for inconsistent sizes, `.nonFiniteInput`, `.invalidArgument`
  ///   for N < 1, C < 1, a negative loss (regression) or bad hyperparameters,
  ///   `.notPositiveDefinite` if P is singular at `hyperparameters`.
  public init(
    curvature: Curvature, mean: [Double], tensorSizes: [Int]? = nil, loss: Double, dataCount: Int,
    outputCount: Int, likelihood: LaplaceLikelihood, hyperparameters: LaplaceHyperparameters = .init(),
    dampedKronecker: Bool = false, subset: Subset = .all, parameterRange: Range<Int>? = nil,
    networkParameterCount: Int? = nil
  ) throws(BDLError) {
    let p = mean.count
    guard p >= 1 else { throw .invalidArgument("a posterior needs at least one parameter") }
    try Validation.requireFinite(mean, "theta")
    switch curvature {
    case .full(let g):
      guard g.rows == p, g.columns == p else { throw .shapeMismatch("curvature is \(g.rows) × \(g.columns), theta has \(p) entries") }
      try Validation.requireFinite(g.elements, "curvature")
    case .diagonal(let g):
      guard g.count == p else { throw .shapeMismatch("curvature diagonal has \(g.count) entries, theta has \(p)") }
      try Validation.requireFinite(g, "curvature")
      guard g.allSatisfy({ $0 >= 0 }) else { throw .notPositiveDefinite("a GGN diagonal must be ≥ 0") }
    case .kron(let k):
      guard k.parameterCount == p else { throw .shapeMismatch("K-FAC covers \(k.parameterCount) parameters, theta has \(p)") }
    }
    guard loss.isFinite else { throw .nonFiniteInput("loss = \(loss); it must be finite") }
    guard likelihood == .classification || loss >= 0 else { throw .invalidArgument("loss = \(loss); ½Σ‖y − f‖² is ≥ 0") }
    guard dataCount >= 1, outputCount >= 1 else {
      throw .invalidArgument("N = \(dataCount) and C = \(outputCount) must be ≥ 1")
    }
    var sizes = tensorSizes ?? [p]
    if tensorSizes == nil, case .kron(let k) = curvature { sizes = k.blocks.map(\.parameters.count) }
    guard sizes.allSatisfy({ $0 >= 1 }), sizes.reduce(0, +) == p else {
      throw .shapeMismatch("tensor sizes \(sizes) do not add up to the \(p) parameters")
    }
    var ranges: [Range<Int>] = []
    for size in sizes { ranges.append((ranges.last?.upperBound ?? 0)..<((ranges.last?.upperBound ?? 0) + size)) }
    let range = parameterRange ?? 0..<p
    guard range.count == p else { throw .shapeMismatch("parameter range \(range) does not hold \(p) parameters") }
    self.curvature = curvature
    self.likelihood = likelihood
    self.subset = subset
    self.mean = mean
    self.parameterRange = range
    self.networkParameterCount = networkParameterCount ?? range.upperBound
    self.loss = loss
    self.dataCount = dataCount
    self.outputCount = outputCount
    self.dampedKronecker = dampedKronecker
    self.groups = ParameterGroups(ranges: ranges)
    self.hyperparameters = hyperparameters
    _ = try evaluate(hyperparameters)
  }

  /// Replaces the hyperparameters after checking them (and that P stays positive definite);
  /// on error nothing changes.
  public mutating func setHyperparameters(_ new: LaplaceHyperparameters) throws(BDLError) {
    _ = try evaluate(new)
    hyperparameters = new
  }

  /// h: 1/(σ²T) for regression, 1/T for classification.
  public static func likelihoodScale(_ hp: LaplaceHyperparameters, _ likelihood: LaplaceLikelihood) -> Double {
    likelihood == .regression ? 1 / (hp.sigma * hp.sigma * hp.temperature) : 1 / hp.temperature
  }

  /// Everything one set of hyperparameters determines: h, δ and μ0 per parameter, and P factored.
  struct Evaluation {
    let hyperparameters: LaplaceHyperparameters
    let scale: Double
    let prior: [Double]
    let priorMean: [Double]
    let precision: any PosteriorPrecision
  }

  func evaluate(_ hp: LaplaceHyperparameters) throws(BDLError) -> Evaluation {
    guard hp.sigma.isFinite, hp.sigma > 0 else {
      throw hp.sigma.isFinite ? .invalidArgument("sigma_noise = \(hp.sigma); it must be > 0") : .nonFiniteInput("sigma_noise = \(hp.sigma); it must be finite")
    }
    guard hp.temperature.isFinite, hp.temperature > 0 else {
      throw hp.temperature.isFinite ? .invalidArgument("temperature = \(hp.temperature); it must be > 0") : .nonFiniteInput("temperature = \(hp.temperature); it must be finite")
    }
    let δ = try groups.perParameter(priorPrecision: hp.priorPrecision)
    let μ = try groups.perParameter(priorMean: hp.priorMean)
    let h = Self.likelihoodScale(hp, likelihood)
    return Evaluation(
      hyperparameters: hp, scale: h, prior: δ, priorMean: μ,
      precision: try curvature.precision(scale: h, prior: δ, dampedKronecker: dampedKronecker))
  }

  /// log p(D|θ*) at the hyperparameters.
  func logLikelihood(_ hp: LaplaceHyperparameters) -> Double {
    switch likelihood {
    case .classification: return -loss / hp.temperature
    case .regression:
      let h = Self.likelihoodScale(hp, likelihood)
      return -h * loss - Double(dataCount * outputCount) * log(hp.sigma * (2 * Double.pi).squareRoot())
    }
  }

  /// The log marginal likelihood at `hyperparameters` (nil: the current ones).
  public func logMarginalLikelihood(_ hyperparameters: LaplaceHyperparameters? = nil) throws(BDLError) -> Double {
    logMarginalLikelihood(try evaluate(hyperparameters ?? self.hyperparameters))
  }

  func logMarginalLikelihood(_ e: Evaluation) -> Double {
    let logDetPrior = e.prior.withUnsafeBufferPointer { sumOfLogarithms($0).sum }
    var quadratic = 0.0
    for p in e.prior.indices {
      let r = mean[p] - e.priorMean[p]
      quadratic += e.prior[p] * r * r
    }
    return logLikelihood(e.hyperparameters) - 0.5 * (e.precision.logDeterminant - logDetPrior) - 0.5 * quadratic
  }

  /// The evidence and its gradient with respect to the log hyperparameters.
  public struct EvidenceGradient: Sendable, Equatable {
    public let logMarginalLikelihood: Double
    /// ∂/∂ log δ_k for each entry of the prior-precision vector (its length and structure).
    public let logPriorPrecision: [Double]
    /// ∂/∂ log σ (0 for classification).
    public let logSigma: Double
  }

  /// The evidence E and its analytic gradient at `hyperparameters` (nil: the current ones):
  ///   ∂E/∂δ_p = −½ ∂log det P/∂δ_p + ½/δ_p − ½ (θ_p − μ_p)²,  ∂E/∂log δ_k = Σ_{p∈k} δ_p ∂E/∂δ_p,
  ///   ∂E/∂log σ = 2h·L − N·C + h·∂log det P/∂h  (regression; h = 1/(σ²T) so ∂h/∂log σ = −2h),
  /// with ∂log det P/∂δ_p = [P⁻¹]_pp and ∂log det P/∂h = tr(P⁻¹G) for the exact forms.
  public func logMarginalLikelihoodGradient(_ hyperparameters: LaplaceHyperparameters? = nil) throws(BDLError) -> EvidenceGradient {
    let e = try evaluate(hyperparameters ?? self.hyperparameters)
    return try gradient(e)
  }

  func gradient(_ e: Evaluation) throws(BDLError) -> EvidenceGradient {
    let structure = try groups.structure(ofPriorCount: e.hyperparameters.priorPrecision.count)
    var logPrior: [Double]
    if structure == .diagonal {
      let sensitivity = try e.precision.priorSensitivity()
      logPrior = (0..<parameterCount).map { p in
        let δ = e.prior[p], r = mean[p] - e.priorMean[p]
        return 0.5 * (1 - δ * sensitivity[p] - δ * r * r)
      }
    } else {
      // δ_k is shared by a group: ½(n_k − δ_k Σ_{p∈k} s_p − δ_k Σ_{p∈k} r_p²).
      let ranges = structure == .scalar ? [0..<parameterCount] : groups.ranges
      let sums = try e.precision.priorSensitivity(summedOver: ranges)
      logPrior = zip(ranges, sums).enumerated().map { k, pair in
        let δ = e.hyperparameters.priorPrecision[k]
        let squares = CompensatedSum.of(pair.0.lazy.map { (mean[$0] - e.priorMean[$0]) * (mean[$0] - e.priorMean[$0]) })
        return 0.5 * (Double(pair.0.count) - δ * pair.1 - δ * squares)
      }
    }
    var logSigma = 0.0
    if likelihood == .regression {
      logSigma = 2 * e.scale * loss - Double(dataCount * outputCount) + e.scale * (try e.precision.scaleSensitivity())
    }
    return EvidenceGradient(
      logMarginalLikelihood: logMarginalLikelihood(e), logPriorPrecision: logPrior,
      logSigma: logSigma)
  }
}
