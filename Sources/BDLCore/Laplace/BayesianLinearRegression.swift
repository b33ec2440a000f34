#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bayesian linear regression y = X·θ + ε, ε ~ N(0, σ²·I), prior θ ~ N(0, δ⁻¹·I): the one model
/// whose Laplace evidence is exact, and so the closed-form anchor for bdlcore's evidence formula.
///
/// With G = XᵀX = V·diag(s)·Vᵀ (the GGN of ½·SSE, accumulated at σ = 1 as DESIGN.md §4 says),
/// the posterior precision is P = G/σ² + δ·I, its mean θ* = P⁻¹·Xᵀy/σ², and the log marginal
/// likelihood in the Laplace form used throughout bdlcore is
///   log p(D) = log p(y|θ*) − ½·[log det P − log det P0] − ½·δ·‖θ*‖²,
///   log p(y|θ*) = −½·‖y − X·θ*‖²/σ² − N·log(σ·√(2π)),
/// which for this model equals log N(y; 0, σ²·I + δ⁻¹·X·Xᵀ) exactly.
///
/// Gradients in log-space, at θ* (the envelope theorem removes ∂θ*/∂·), with
/// γ = Σ_i (s_i/σ²)/(s_i/σ² + δ) the effective number of parameters:
///   ∂ log p / ∂ log δ = ½·(γ − δ·‖θ*‖²),
///   ∂ log p / ∂ log σ = ‖y − X·θ*‖²/σ² − N + γ.
/// Setting both to zero gives MacKay's fixed point δ = γ/‖θ*‖², σ² = RSS/(N − γ).
public struct BayesianLinearRegression: Sendable {
  /// The design matrix X (N × D).
  public let inputs: Matrix
  /// The targets y (N).
  public let targets: [Double]
  /// Eigendecomposition of XᵀX, computed once for all hyperparameters.
  let gram: SymmetricEigendecomposition
  /// Vᵀ·Xᵀ·y.
  let projectedTargets: [Double]

  /// Prepares the model; O(N·D² + D³) once.
  /// - Throws: `.shapeMismatch` (rows of X ≠ length of y, or no data), `.nonFiniteInput`.
  public init(inputs: Matrix, targets: [Double]) throws(BDLError) {
    guard inputs.rows == targets.count else {
      throw .shapeMismatch("X has \(inputs.rows) rows but y has \(targets.count) entries")
    }
    guard inputs.rows > 0, inputs.columns > 0 else {
      throw .shapeMismatch("X is \(inputs.rows) × \(inputs.columns); need at least one example and one feature")
    }
    try Validation.requireFinite(inputs.elements, "X")
    try Validation.requireFinite(targets, "y")
    self.inputs = inputs
    self.targets = targets
    self.gram = try .positiveSemidefinite(inputs.gram(), name: "XᵀX")
    let xty = try inputs.multiplied(by: targets, transposingSelf: true)
    self.projectedTargets = try (try gram.eigenvectors).multiplied(by: xty, transposingSelf: true)
  }

  /// Number of examples N.
  public var count: Int { inputs.rows }
  /// Number of parameters D.
  public var parameterCount: Int { inputs.columns }

  /// The posterior at prior precision δ > 0 and noise σ > 0 (both finite).
  public func posterior(priorPrecision δ: Double, sigma σ: Double) throws(BDLError) -> Posterior {
    guard δ.isFinite, δ > 0 else { throw .invalidArgument("prior_precision = \(δ); it must be finite and > 0") }
    guard σ.isFinite, σ > 0 else { throw .invalidArgument("sigma = \(σ); it must be finite and > 0") }
    let h = 1 / (σ * σ)
    let d = parameterCount, n = count
    // Posterior precision eigenvalues and the mean in the eigenbasis: t_i = h·b_i/(h·s_i + δ).
    let precisionEigenvalues = gram.eigenvalues.map { h * $0 + δ }
    var meanInEigenbasis = [Double](repeating: 0, count: d)
    var gamma = 0.0, logDetP = 0.0
    for i in 0..<d {
      meanInEigenbasis[i] = h * projectedTargets[i] / precisionEigenvalues[i]
      gamma += h * gram.eigenvalues[i] / precisionEigenvalues[i]
      logDetP += log(precisionEigenvalues[i])
    }
    let mean = try (try gram.eigenvectors).multiplied(by: meanInEigenbasis)
    let fitted = try inputs.multiplied(by: mean)
    var rss = 0.0
    for i in 0..<n { rss += (targets[i] - fitted[i]) * (targets[i] - fitted[i]) }
    let meanNormSquared = meanInEigenbasis.reduce(0) { $0 + $1 * $1 }
    let logLikelihood = -0.5 * rss * h - Double(n) * log(σ * (2 * Double.pi).squareRoot())
    let logDetPrior = Double(d) * log(δ)
    let evidence = logLikelihood - 0.5 * (logDetP - logDetPrior) - 0.5 * δ * meanNormSquared
    return Posterior(
      priorPrecision: δ, sigma: σ, mean: mean, residualSumOfSquares: rss,
      effectiveParameterCount: gamma, logMarginalLikelihood: evidence,
      gradientLogPriorPrecision: 0.5 * (gamma - δ * meanNormSquared),
      gradientLogSigma: rss * h - Double(n) + gamma,
      precisionEigenvalues: precisionEigenvalues, eigenvectors: try gram.eigenvectors)
  }

  /// Maximises the evidence over δ and σ by MacKay's fixed-point iteration
  /// δ ← γ/‖θ*‖², σ² ← RSS/(N − γ), until ‖∇ log p‖ (in log δ, log σ) < `tolerance`.
  ///
  /// Why a fixed point and not gradient steps: each update is the exact stationarity condition
  /// of one hyperparameter given the current posterior, so it needs no step size and typically
  /// converges in tens of iterations; each costs O(N·D + D²) on the cached eigendecomposition.
  /// Defaults: start at δ = 1, σ = 1 (laplace-torch's defaults); tolerance 1e-8 (a stationary
  /// point to well below the evidence's rounding error for N in the thousands).
  /// - Throws: `.notConverged` if `maxIterations` pass first, or if the data are fitted exactly
  ///   (RSS = 0 or ‖θ*‖ = 0), where the evidence has no finite maximiser.
  public func optimizeHyperparameters(
    initialPriorPrecision δ0: Double = 1, initialSigma σ0: Double = 1,
    tolerance: Double = 1e-8, maxIterations: Int = 10_000
  ) throws(BDLError) -> (posterior: Posterior, iterations: Int) {
    var current = try posterior(priorPrecision: δ0, sigma: σ0)
    for iteration in 0...maxIterations {
      if current.gradientNorm < tolerance { return (current, iteration) }
      let meanNormSquared = current.mean.reduce(0) { $0 + $1 * $1 }
      let residualDegrees = Double(count) - current.effectiveParameterCount
      guard meanNormSquared > 0, current.residualSumOfSquares > 0, residualDegrees > 0 else {
        throw .notConverged("the evidence has no finite maximiser: the data are fitted exactly or θ* = 0")
      }
      current = try posterior(
        priorPrecision: current.effectiveParameterCount / meanNormSquared,
        sigma: (current.residualSumOfSquares / residualDegrees).squareRoot())
    }
    throw .notConverged(
      "evidence maximisation: gradient norm \(current.gradientNorm) after \(maxIterations) iterations (tolerance \(tolerance))")
  }

  /// A fitted posterior N(θ*, P⁻¹) with its evidence and hyperparameter gradients.
  public struct Posterior: Sendable {
    public let priorPrecision: Double
    public let sigma: Double
    /// θ* = P⁻¹·Xᵀy/σ².
    public let mean: [Double]
    /// ‖y − X·θ*‖².
    public let residualSumOfSquares: Double
    /// γ = Σ_i (s_i/σ²)/(s_i/σ² + δ): how many parameters the data determine.
    public let effectiveParameterCount: Double
    /// log p(D | δ, σ).
    public let logMarginalLikelihood: Double
    /// ∂ log p(D) / ∂ log δ.
    public let gradientLogPriorPrecision: Double
    /// ∂ log p(D) / ∂ log σ.
    public let gradientLogSigma: Double
    /// Eigenvalues of P (in the eigenbasis of XᵀX).
    let precisionEigenvalues: [Double]
    let eigenvectors: Matrix

    /// Euclidean norm of the gradient in (log δ, log σ).
    public var gradientNorm: Double {
      (gradientLogPriorPrecision * gradientLogPriorPrecision + gradientLogSigma * gradientLogSigma).squareRoot()
    }

    /// For test inputs X* (M × D): the predictive mean X*·θ*, the functional variance
    /// diag(X*·P⁻¹·X*ᵀ) (laplace-torch's `f_var`), and the predictive variance f_var + σ².
    public func predict(_ x: Matrix) throws(BDLError) -> (mean: [Double], functionalVariance: [Double], predictiveVariance: [Double]) {
      guard x.columns == mean.count else {
        throw .shapeMismatch("X* has \(x.columns) columns, the model has \(mean.count) parameters")
      }
      try Validation.requireFinite(x.elements, "X*")
      let predictiveMean = try x.multiplied(by: mean)
      // Rows of X*·V scaled by 1/√p_i: their squared norms are diag(X* P⁻¹ X*ᵀ).
      var whitened = try x.multiplied(by: eigenvectors)
      for i in 0..<whitened.rows {
        for j in 0..<whitened.columns { whitened[i, j] /= precisionEigenvalues[j].squareRoot() }
      }
      let functional = (0..<x.rows).map { i in
        (0..<whitened.columns).reduce(0.0) { $0 + whitened[i, $1] * whitened[i, $1] }
      }
      return (predictiveMean, functional, functional.map { $0 + sigma * sigma })
    }
  }
}
