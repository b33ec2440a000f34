#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How the linearised (GLM) predictive turns f ~ N(f*, Σ_f) into class probabilities.
public enum PredictiveLink: Sendable, Equatable {
  /// κ_c = 1/√(1 + π/8·Σ_f,cc), p = softmax(κ ⊙ f*): laplace-torch's `link_approx='probit'`.
  case probit
  /// The Laplace bridge (Hobbhahn et al. 2022), laplace-torch's `'bridge'`: after the zero-mean
  /// correction f ← f − Σ_f1·(1ᵀf)/(1ᵀΣ_f1), Σ_f ← Σ_f − Σ_f11ᵀΣ_f/(1ᵀΣ_f1), a Dirichlet with
  /// α_c = (1 − 2/C + e^{f_c}/C²·Σ_k e^{−f_k})/Σ_f,cc, whose mean α/Σα is returned (uniform where
  /// that is undefined, e.g. a zero variance).
  case bridge
  /// The mean of softmax(f) over `samples` draws f ~ N(f*, Σ_f), seeded.
  case monteCarlo(samples: Int, seed: UInt64)
}

extension Laplace {
  /// Entries of one batch of Jacobian rows: bounds the (batch·C) × P working memory to 32 MB.
  static let jacobianBatchEntries = 1 << 22

  /// The network's outputs f(x; θ*) (N, C) and the GLM functional covariance
  /// Σ_f(x_n) = J(x_n)·P⁻¹·J(x_n)ᵀ (N, C, C), J the Jacobian of the covered parameters at θ*.
  /// For diag and kron, Σ_f comes from the layer statistics of a backward of the C unit vectors,
  /// block by block in each block's eigenbasis (`addBlockwiseVariance`): neither J nor P is
  /// formed. For full (and a K-FAC whose blocks do not match the network's layers) it is
  /// J·(P⁻¹Jᵀ) with J in batches of at most 2²² entries. Equals laplace-torch's
  /// `f_var` from `la(x, pred_type='glm')` (it excludes σ²).
  public func functionalVariance(model: Sequential, inputs x: Tensor) throws(BDLError) -> (mean: Tensor, variance: Tensor) {
    let network = try network(model)
    try model.validateInput(x)
    let precision = try evaluate(hyperparameters).precision
    let features = try network.features(x, batchSize: 256)
    let c = outputCount, p = parameterCount
    let blocks = try precision.varianceBlocks(head: network.head)
    // Memory per batch: the Jacobian (C·P per example), or the statistics of C unit vectors.
    let perExample = blocks == nil ? c * p : c * max(1, network.head.activationCount)
    let batch = max(1, Self.jacobianBatchEntries / max(1, perExample))
    var mean = Tensor(shape: [x.count, c])
    var variance = Tensor(shape: [x.count, c, c])
    let size = features.exampleSize
    for start in stride(from: 0, to: x.count, by: batch) {
      let end = min(start + batch, x.count)
      let xb = try Tensor(shape: [end - start] + Array(features.shape.dropFirst()), elements: Array(features.elements[(start * size)..<(end * size)]))
      mean.elements.replaceSubrange((start * c)..<(end * c), with: try network.head.forward(xb).elements)
      if let blocks {
        try Self.addBlockwiseVariance(head: network.head, inputs: xb, blocks: blocks, into: &variance, at: start)
        continue
      }
      let j = try network.head.jacobian(xb)
      let solved = try precision.applyPower(-1, toRows: j)
      // Σ_f(x_n) = J_n·(P⁻¹·J_nᵀ): one (C × P)·(P × C) gemm per example.
      try j.elements.withUnsafeBufferPointer { jp throws(BDLError) in
        try solved.elements.withUnsafeBufferPointer { sp throws(BDLError) in
          try variance.elements.withUnsafeMutableBufferPointer { vp throws(BDLError) in
            for example in 0..<(end - start) {
              try BLAS.gemm(
                transposeA: false, transposeB: true, m: c, n: c, k: p, alpha: 1,
                a: jp.baseAddress! + example * c * p, lda: p, b: sp.baseAddress! + example * c * p, ldb: p,
                beta: 0, c: vp.baseAddress! + (start + example) * c * c, ldc: c)
            }
          }
        }
      }
    }
    return (mean, variance)
  }

  /// Class probabilities (N, C) of the linearised predictive with `link`.
  public func predictProbabilities(model: Sequential, inputs x: Tensor, link: PredictiveLink = .probit) throws(BDLError) -> Tensor {
    guard likelihood == .classification else { throw .wrongState("class probabilities need a classification posterior; use predictRegression") }
    if case .monteCarlo(let samples, _) = link, samples < 1 {
      throw .invalidArgument("n_samples = \(samples); it must be ≥ 1")
    }
    let (f, variance) = try functionalVariance(model: model, inputs: x)
    let c = outputCount
    var result = Tensor(shape: [x.count, c])
    var random = RandomSource(seed: 0)
    if case .monteCarlo(_, let seed) = link { random = RandomSource(seed: seed) }
    for n in 0..<x.count {
      let fn = Array(f.elements[(n * c)..<((n + 1) * c)])
      let sn = Array(variance.elements[(n * c * c)..<((n + 1) * c * c)])
      let pn: [Double]
      switch link {
      case .probit:
        pn = softmax((0..<c).map { fn[$0] / (1 + Double.pi / 8 * sn[$0 * c + $0]).squareRoot() })
      case .bridge:
        // Zero-mean correction first (softmax is shift-invariant): f ← f − Σ1·(1ᵀf)/(1ᵀΣ1),
        // Σ ← Σ − Σ1·1ᵀΣ/(1ᵀΣ1), as laplace-torch does.
        var fn = fn
        var sn = sn
        let rowSums = (0..<c).map { a in (0..<c).reduce(0.0) { $0 + sn[a * c + $1] } }
        let covarianceSum = rowSums.reduce(0, +), meanSum = fn.reduce(0, +)
        if covarianceSum > 0 {
          for a in 0..<c {
            fn[a] -= rowSums[a] * meanSum / covarianceSum
            for b in 0..<c { sn[a * c + b] -= rowSums[a] * rowSums[b] / covarianceSum }
          }
        }
        let sumExpNegative = fn.reduce(0) { $0 + exp(-$1) }
        var α = (0..<c).map { (1 - 2 / Double(c) + exp(fn[$0]) / Double(c * c) * sumExpNegative) / sn[$0 * c + $0] }
        let total = α.reduce(0, +)
        α = total.isFinite && total > 0 ? α.map { $0 / total } : [Double](repeating: 1 / Double(c), count: c)
        pn = α
      case .monteCarlo(let samples, _):
        let factor = try covarianceSquareRoot(sn, order: c)
        var average = [Double](repeating: 0, count: c)
        for _ in 0..<samples {
          let z = (0..<c).map { _ in random.normal() }
          let draw = (0..<c).map { a in fn[a] + (0..<c).reduce(0.0) { $0 + factor[a * c + $1] * z[$1] } }
          for (a, value) in softmax(draw).enumerated() { average[a] += value / Double(samples) }
        }
        pn = average
      }
      result.elements.replaceSubrange((n * c)..<((n + 1) * c), with: pn)
    }
    return result
  }

  /// The regression predictive: the mean f(x; θ*) (N, C) and the covariance (N, C, C), which is
  /// Σ_f + σ²·I, or Σ_f alone with `includeNoise = false`.
  public func predictRegression(model: Sequential, inputs x: Tensor, includeNoise: Bool = true) throws(BDLError) -> (mean: Tensor, variance: Tensor) {
    guard likelihood == .regression else { throw .wrongState("a regression predictive needs a regression posterior; use predictProbabilities") }
    var (f, variance) = try functionalVariance(model: model, inputs: x)
    if includeNoise {
      let c = outputCount, noise = hyperparameters.sigma * hyperparameters.sigma
      for n in 0..<x.count {
        for a in 0..<c { variance.elements[(n * c + a) * c + a] += noise }
      }
    }
    return (f, variance)
  }

  /// `count` draws θ ~ N(θ*, P⁻¹) of the covered parameters (rows), from `seed`.
  public func sample(count: Int, seed: UInt64) throws(BDLError) -> Matrix {
    guard count >= 0 else { throw .invalidArgument("n_samples = \(count); it must be ≥ 0") }
    try Validation.requireAllocatable(try Validation.product(count, parameterCount, "samples"), "samples")
    let precision = try evaluate(hyperparameters).precision
    var random = RandomSource(seed: seed)
    var z = Matrix(rows: count, columns: parameterCount)
    for i in z.elements.indices { z.elements[i] = random.normal() }
    var draws = try precision.covarianceFactor(rows: z)
    for r in 0..<count {
      for p in 0..<parameterCount { draws.elements[r * parameterCount + p] += mean[p] }
    }
    return draws
  }

  /// log N(θ; θ*, P⁻¹) = −½ (θ − θ*)ᵀ P (θ − θ*) + ½ log det P − (P/2)·log 2π, for θ over the
  /// covered parameters.
  public func logProbability(_ theta: [Double]) throws(BDLError) -> Double {
    guard theta.count == parameterCount else { throw .shapeMismatch("theta has \(theta.count) entries, the posterior covers \(parameterCount)") }
    try Validation.requireFinite(theta, "theta")
    let precision = try evaluate(hyperparameters).precision
    let r = try Matrix(rows: 1, columns: parameterCount, elements: zip(theta, mean).map { $0 - $1 })
    let pr = try precision.applyPower(1, toRows: r)
    return -0.5 * (try dot(r.elements, pr.elements)) + 0.5 * precision.logDeterminant
      - 0.5 * Double(parameterCount) * log(2 * Double.pi)
  }

  /// The sampling ("nn") predictive: the network evaluated at `samples` draws θ ~ N(θ*, P⁻¹)
  /// (only the covered parameters move). Classification: the mean of softmax(f) (N, C).
  /// Regression: the mean of f (N, C) and its covariance over draws (N, C, C), plus σ²·I with
  /// `includeNoise`.
  public func samplingPredictive(
    model: Sequential, inputs x: Tensor, samples: Int, seed: UInt64, includeNoise: Bool = true
  ) throws(BDLError) -> (mean: Tensor, variance: Tensor?) {
    guard samples >= 1 else { throw .invalidArgument("n_samples = \(samples); it must be ≥ 1") }
    let network = try network(model)
    try model.validateInput(x)
    let features = try network.features(x, batchSize: 256)
    let draws = try sample(count: samples, seed: seed)
    let c = outputCount
    var mean = Tensor(shape: [x.count, c])
    var second = Tensor(shape: [x.count, c, c])
    var head = network.head
    for s in 0..<samples {
      try head.setParameters(Array(draws.elements[(s * parameterCount)..<((s + 1) * parameterCount)]))
      var f = try head.forward(features)
      if likelihood == .classification { f = CategoricalLikelihood().probabilities(f) }
      for n in 0..<x.count {
        for a in 0..<c {
          let fa = f.elements[n * c + a]
          mean.elements[n * c + a] += fa / Double(samples)
          if likelihood == .regression {
            for b in 0..<c { second.elements[(n * c + a) * c + b] += fa * f.elements[n * c + b] / Double(samples) }
          }
        }
      }
    }
    guard likelihood == .regression else { return (mean, nil) }
    let noise = includeNoise ? hyperparameters.sigma * hyperparameters.sigma : 0
    for n in 0..<x.count {
      for a in 0..<c {
        for b in 0..<c {
          second.elements[(n * c + a) * c + b] -= mean.elements[n * c + a] * mean.elements[n * c + b]
        }
        second.elements[(n * c + a) * c + a] += noise
      }
    }
    return (mean, second)
  }
}

/// softmax(v), shifted by max(v) for stability.
func softmax(_ v: [Double]) -> [Double] {
  let largest = v.max() ?? 0
  let e = v.map { exp($0 - largest) }
  let total = e.reduce(0, +)
  return e.map { $0 / total }
}

/// A square root F of a C × C covariance Σ (F·Fᵀ = Σ) through its eigendecomposition, with
/// eigenvalues within rounding of zero (or slightly negative from rounding) treated as zero.
func covarianceSquareRoot(_ sigma: [Double], order c: Int) throws(BDLError) -> [Double] {
  let eigen = try SymmetricEigendecomposition.positiveSemidefinite(try Matrix(rows: c, columns: c, elements: sigma), name: "functional covariance")
  let q = try eigen.eigenvectors
  var factor = [Double](repeating: 0, count: c * c)
  for a in 0..<c {
    for k in 0..<c { factor[a * c + k] = q[a, k] * max(eigen.eigenvalues[k], 0).squareRoot() }
  }
  return factor
}
