/// The hyperparameters of a Laplace posterior (DESIGN.md §4, "Laplace"): the prior
/// N(μ0, P0⁻¹) with diagonal precision P0, the observation noise σ (regression) and the
/// temperature T. The likelihood enters the posterior precision P = h·G + P0 through
/// h = 1/(σ²·T) for regression and h = 1/T for classification.
public struct LaplaceHyperparameters: Sendable, Equatable {
  /// The prior precision, in one of three shapes told apart by its length:
  /// one value (scalar), one per parameter tensor in parameter-vector order (W₀, b₀, W₁, b₁, …:
  /// laplace-torch's "layerwise"), or one per parameter ("diag").
  public var priorPrecision: [Double]
  /// The prior mean μ0: one value for every parameter, or one per parameter.
  public var priorMean: [Double]
  /// σ > 0 (used by regression; classification ignores it).
  public var sigma: Double
  /// T > 0; T < 1 sharpens, T > 1 flattens the likelihood. 1 is the Bayesian posterior.
  public var temperature: Double

  /// Defaults: δ = 1 (a unit Gaussian prior, laplace-torch's default), μ0 = 0, σ = 1, T = 1.
  public init(priorPrecision: [Double] = [1], priorMean: [Double] = [0], sigma: Double = 1, temperature: Double = 1) {
    self.priorPrecision = priorPrecision
    self.priorMean = priorMean
    self.sigma = sigma
    self.temperature = temperature
  }
}

/// How a prior-precision vector is laid out over the parameters it covers.
public enum PriorStructure: Int, Sendable, CaseIterable {
  /// One δ for every parameter.
  case scalar = 0
  /// One δ per parameter tensor (a weight and its bias get separate entries).
  case layerwise = 1
  /// One δ per parameter.
  case diagonal = 2

  /// The number of prior-precision values this structure has for `groups` (parameter tensors).
  func count(groups: [Range<Int>]) -> Int {
    switch self {
    case .scalar: 1
    case .layerwise: groups.count
    case .diagonal: groups.last?.upperBound ?? 0
    }
  }
}

/// The parameter tensors a posterior covers, as ranges of its own parameter vector, and the map
/// from a prior-precision vector (of any `PriorStructure`) to one δ per parameter.
struct ParameterGroups: Sendable, Equatable {
  let ranges: [Range<Int>]
  var parameterCount: Int { ranges.last?.upperBound ?? 0 }

  /// The structure a prior-precision vector of `count` values has here.
  /// - Throws: `.shapeMismatch` for any other length.
  func structure(ofPriorCount count: Int) throws(BDLError) -> PriorStructure {
    if count == 1 { return .scalar }
    if count == ranges.count { return .layerwise }
    if count == parameterCount { return .diagonal }
    throw .shapeMismatch(
      "prior precision has \(count) values; it needs 1 (scalar), \(ranges.count) (one per parameter tensor) or \(parameterCount) (one per parameter)")
  }

  /// Checks δ (> 0, finite, a valid length) and spreads it to one value per parameter.
  func perParameter(priorPrecision δ: [Double]) throws(BDLError) -> [Double] {
    for (i, value) in δ.enumerated() where !(value.isFinite && value > 0) {
      throw value.isNaN || value.isInfinite
        ? .nonFiniteInput("prior precision \(i) is \(value); it must be finite")
        : .invalidArgument("prior precision \(i) is \(value); it must be > 0")
    }
    switch try structure(ofPriorCount: δ.count) {
    case .scalar: return [Double](repeating: δ[0], count: parameterCount)
    case .diagonal: return δ
    case .layerwise:
      var result = [Double](repeating: 0, count: parameterCount)
      for (group, range) in ranges.enumerated() {
        for p in range { result[p] = δ[group] }
      }
      return result
    }
  }

  /// Sums per-parameter values over the entries of a prior of `structure` (the chain rule from
  /// per-parameter to grouped hyperparameters).
  func reduce(_ values: [Double], to structure: PriorStructure) -> [Double] {
    switch structure {
    case .scalar: return [values.reduce(0, +)]
    case .diagonal: return values
    case .layerwise: return ranges.map { values[$0].reduce(0, +) }
    }
  }

  /// Checks μ0 (finite; 1 or P values) and spreads it to one value per parameter.
  func perParameter(priorMean μ: [Double]) throws(BDLError) -> [Double] {
    try Validation.requireFinite(μ, "prior mean")
    if μ.count == 1 { return [Double](repeating: μ[0], count: parameterCount) }
    guard μ.count == parameterCount else {
      throw .shapeMismatch("prior mean has \(μ.count) values; it needs 1 or \(parameterCount)")
    }
    return μ
  }
}
