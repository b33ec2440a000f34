#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Evidence-optimal hyperparameters: maximise the log marginal likelihood over t = log δ (each
/// prior-precision entry) and optionally log σ, to a gradient norm below a tolerance.
extension Laplace {
  public struct EvidenceMaximization: Sendable, Equatable {
    /// The hyperparameters reached (also set on the posterior).
    public let hyperparameters: LaplaceHyperparameters
    public let logMarginalLikelihood: Double
    /// ‖∂E/∂t‖₂ at the result, over the coordinates not held at a bound.
    public let gradientNorm: Double
    public let iterations: Int
    public let converged: Bool
  }

  /// Log prior precisions are kept in [log 1e−10, log 1e10]: a parameter the data leave exactly at
  /// its prior mean has an evidence increasing without bound in δ_p.
  static let logPriorBounds = log(1e-10)...log(1e10)
  /// Up to this many hyperparameters, Newton's method with the Hessian by central differences
  /// of the analytic gradient (2m gradient evaluations per step; the evidence is smooth and
  /// concave in each log δ, so Newton converges in a handful of steps). Beyond it (a per-
  /// parameter prior), Newton with the separable diagonal Hessian of the diagonal structure,
  /// ∂²E/∂t_p² ≈ −½ δ_p s_p (1 − δ_p s_p) − ½ δ_p (θ_p − μ_p)² with s_p = ∂log det P/∂δ_p,
  /// exact for `diag` and a preconditioner for the others.
  static let denseNewtonLimit = 64

  /// Maximises the evidence over the prior precision with `structure` (starting from the current
  /// prior, averaged geometrically where the structure changes) and, for regression with
  /// `optimizeSigma`, over σ. laplace-torch takes 100 Adam steps on the same objective; here the
  /// analytic gradient lets Newton's method reach ‖∇‖ < `tolerance` (default 1e−8, stationarity
  /// to near rounding) in typically under 20 steps. The result is stored as the posterior's
  /// hyperparameters even if not converged (`converged` says which).
  public mutating func optimizePriorPrecision(
    structure: PriorStructure = .layerwise, optimizeSigma: Bool = false, tolerance: Double = 1e-8,
    maxIterations: Int = 200
  ) throws(BDLError) -> EvidenceMaximization {
    try maximizeEvidence(
      over: PriorParametrization(structure, groups: groups), optimizeSigma: optimizeSigma, tolerance: tolerance,
      maxIterations: maxIterations)
  }

  /// As `optimizePriorPrecision(structure:…)` over a unit-wise prior (δ_ij = a_i·b_j per weight,
  /// see `UnitwisePrior`; its shapes must be the covered tensors'). The result is stored as one δ
  /// per parameter, so for `kron` it enters through the eigenbasis-projected diagonal like any
  /// per-parameter prior. Its out + in factors per layer are coupled through every weight, so
  /// the iteration is L-BFGS (started from the diagonal Newton step) unless there are at most
  /// `denseNewtonLimit` of them.
  public mutating func optimizePriorPrecision(
    unitwise: UnitwisePrior, optimizeSigma: Bool = false, tolerance: Double = 1e-8, maxIterations: Int = 200
  ) throws(BDLError) -> EvidenceMaximization {
    try maximizeEvidence(
      over: PriorParametrization(unitwise, groups: groups), optimizeSigma: optimizeSigma, tolerance: tolerance,
      maxIterations: maxIterations)
  }

  private mutating func maximizeEvidence(
    over parametrization: PriorParametrization, optimizeSigma: Bool, tolerance: Double, maxIterations: Int
  ) throws(BDLError) -> EvidenceMaximization {
    guard tolerance.isFinite, tolerance > 0 else { throw .invalidArgument("tolerance = \(tolerance); it must be > 0") }
    guard maxIterations >= 1 else { throw .invalidArgument("max_iterations = \(maxIterations); it must be ≥ 1") }
    guard !optimizeSigma || likelihood == .regression else {
      throw .invalidArgument("optimize_sigma applies to regression; a classification posterior has no σ")
    }
    let withSigma = optimizeSigma
    let start = try groups.perParameter(priorPrecision: hyperparameters.priorPrecision)
    let count = parametrization.count
    var t = parametrization.initial(fromPerParameter: start, groups: groups).map {
      min(max($0, Self.logPriorBounds.lowerBound), Self.logPriorBounds.upperBound)
    }
    if withSigma { t.append(log(hyperparameters.sigma)) }

    func candidate(_ t: [Double]) -> LaplaceHyperparameters {
      var hp = self.hyperparameters
      hp.priorPrecision = parametrization.priorPrecision(t[0..<count])
      if withSigma { hp.sigma = exp(t[count]) }
      return hp
    }
    /// Value and gradient in t.
    func objective(_ t: [Double]) throws(BDLError) -> (Double, [Double], Evaluation) {
      let e = try evaluate(candidate(t))
      let g = try gradient(e)
      return (g.logMarginalLikelihood, parametrization.pullBack(g.logPriorPrecision) + (withSigma ? [g.logSigma] : []), e)
    }
    /// The gradient without the components pushing against an active bound.
    func projected(_ g: [Double], _ t: [Double]) -> [Double] {
      g.indices.map { k in
        guard k < count else { return g[k] }
        if t[k] <= Self.logPriorBounds.lowerBound && g[k] < 0 { return 0 }
        if t[k] >= Self.logPriorBounds.upperBound && g[k] > 0 { return 0 }
        return g[k]
      }
    }
    func norm(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    var (value, g, e) = try objective(t)
    var iterations = 0
    // A per-parameter prior on a non-diagonal curvature couples every δ_p: quasi-Newton (L-BFGS),
    // started from the separable diagonal Newton step; its memory learns the coupling.
    var separable = self.structure == Laplace.Structure.diagonal
    if case .unitwise = parametrization.kind { separable = false }
    let quasiNewton = t.count > Self.denseNewtonLimit && !separable
    var memory: [(s: [Double], y: [Double])] = []
    while norm(projected(g, t)) >= tolerance && iterations < maxIterations {
      iterations += 1
      var direction = try newtonDirection(
        t: t, gradient: g, evaluation: e, parametrization: parametrization, objective: objective, memory: quasiNewton ? memory : nil)
      for k in 0..<count where (t[k] <= Self.logPriorBounds.lowerBound && direction[k] < 0) || (t[k] >= Self.logPriorBounds.upperBound && direction[k] > 0) {
        direction[k] = 0
      }
      let (previousT, previousG) = (t, g)
      var accepted = false
      var step = 1.0
      for _ in 0..<40 {
        var candidate = t
        for k in t.indices { candidate[k] += step * direction[k] }
        for k in 0..<count { candidate[k] = min(max(candidate[k], Self.logPriorBounds.lowerBound), Self.logPriorBounds.upperBound) }
        if let (v2, g2, e2) = try? objective(candidate) {
          // Near the optimum the evidence changes by less than its rounding (a log-determinant
          // over 10⁵–10⁶ eigenvalues carries ~√P·ε·Σ|log d|, up to ~1e−10 relative); then a step
          // that shrinks the gradient is progress too.
          let slack = 1e-10 * max(1, abs(value))
          if v2 > value || (v2 >= value - slack && norm(projected(g2, candidate)) < norm(projected(g, t))) {
            (t, value, g, e) = (candidate, v2, g2, e2)
            accepted = true
            break
          }
        }
        step /= 2
      }
      if !accepted { break }
      if quasiNewton {
        // (s, y) of f = −E: s = Δt, y = Δ∇f = −Δg; kept when the curvature sᵀy is positive.
        let step = zip(t, previousT).map { $0 - $1 }, change = zip(previousG, g).map { $0 - $1 }
        let curvature = zip(step, change).reduce(0) { $0 + $1.0 * $1.1 }
        if curvature > 1e-12 * norm(step) * norm(change) {
          memory.append((step, change))
          if memory.count > Self.quasiNewtonMemory { memory.removeFirst() }
        }
      }
    }
    let final = candidate(t)
    self.hyperparameters = final
    let gradientNorm = norm(projected(g, t))
    return EvidenceMaximization(
      hyperparameters: final, logMarginalLikelihood: value, gradientNorm: gradientNorm, iterations: iterations,
      converged: gradientNorm < tolerance)
  }

  /// The Hessian of the evidence in t = (log δ_k, [log σ]) in closed form, when every δ_k is
  /// constant on its group and P's eigenvalues are d = h·λ + δ_k (K-FAC or diagonal, exact form):
  ///   ∂²E/∂t_k² = −½δ_k Σ1/d + ½δ_k² Σ1/d² − ½δ_k Q_k   (Q_k = Σ_{p∈k} (θ_p − μ_p)²),
  ///   ∂²E/∂t_k∂t_l = 0 (k ≠ l: separate blocks),
  ///   ∂²E/∂log σ² = −4h·L − 2h Σ_k δ_k Σ_{p∈k} λ/d²,  ∂²E/∂log σ ∂t_k = −h δ_k Σ_{p∈k} λ/d²
  /// (h = 1/(σ²T), ∂h/∂log σ = −2h). nil otherwise (then central differences are used).
  func exactHessian(_ e: Evaluation, parametrization: PriorParametrization, withSigma: Bool) throws(BDLError) -> Matrix? {
    guard case .plain(let structure) = parametrization.kind, structure != .diagonal else { return nil }
    let count = parametrization.count
    let ranges = structure == .scalar ? [0..<parameterCount] : groups.ranges
    guard let sums = e.precision.spectralSums(over: ranges) else { return nil }
    let m = count + (withSigma ? 1 : 0)
    var hessian = Matrix(rows: m, columns: m)
    var sigmaSigma = -4 * e.scale * loss
    for (k, range) in ranges.enumerated() {
      let δ = e.hyperparameters.priorPrecision[k]
      let q = CompensatedSum.of(range.lazy.map { (self.mean[$0] - e.priorMean[$0]) * (self.mean[$0] - e.priorMean[$0]) })
      hessian[k, k] = -0.5 * δ * sums[k].inverse.value + 0.5 * δ * δ * sums[k].inverseSquare.value - 0.5 * δ * q
      if withSigma {
        let mixed = -e.scale * δ * sums[k].curvatureOverSquare.value
        hessian[k, count] = mixed
        hessian[count, k] = mixed
        sigmaSigma += 2 * mixed
      }
    }
    if withSigma { hessian[count, count] = sigmaSigma }
    return hessian
  }

  /// Pairs kept by the quasi-Newton iteration (the usual L-BFGS choice of 5–20).
  static let quasiNewtonMemory = 10

  /// The Newton direction −H⁻¹g (an ascent direction: H is made negative definite by shifting
  /// its spectrum when needed), shortened to move no log hyperparameter by more than 2.
  /// With `memory` (L-BFGS), the two-loop recursion over the stored pairs.
  private func newtonDirection(
    t: [Double], gradient g: [Double], evaluation e: Evaluation, parametrization: PriorParametrization,
    objective: ([Double]) throws(BDLError) -> (Double, [Double], Evaluation), memory: [(s: [Double], y: [Double])]?
  ) throws(BDLError) -> [Double] {
    let m = t.count, count = parametrization.count
    var direction: [Double]
    if m <= Self.denseNewtonLimit {
      var h: Matrix
      if let exact = try exactHessian(e, parametrization: parametrization, withSigma: m > count) {
        h = exact
      } else {
        h = try centralDifferenceHessian(at: t) { (u) throws(BDLError) in try objective(u).1 }
      }
      direction = try newtonAscentDirection(hessian: h, gradient: g)
    } else {
      let s = try e.precision.priorSensitivity()
      let perParameter = (0..<parameterCount).map { p -> Double in
        let δ = e.prior[p], r = mean[p] - e.priorMean[p], ds = δ * s[p]
        return 0.5 * ds * (1 - ds) + 0.5 * δ * r * r
      }
      // Summed over the parameters each t_k touches: exact for a separable (diagonal) evidence.
      let diagonal = parametrization.pullBack(groups.reduce(perParameter, to: parametrization.storedStructure))
      var scaling = (0..<count).map { k in 1 / max(diagonal[k], 1e-12) }
      if m > count {
        // log σ: its own curvature by a central difference of its gradient component.
        let ε = 1e-5
        var up = t, down = t
        up[count] += ε
        down[count] -= ε
        let curvature = -((try objective(up)).1[count] - (try objective(down)).1[count]) / (2 * ε)
        scaling.append(1 / max(curvature, 1e-12))
      }
      if let memory {
        // Two-loop recursion: r = H·g with H the L-BFGS inverse Hessian of −E, H0 = diag(scaling).
        var q = g
        var alphas: [Double] = []
        for (s, y) in memory.reversed() {
          let rho = 1 / zip(y, s).reduce(0) { $0 + $1.0 * $1.1 }
          let alpha = rho * zip(s, q).reduce(0) { $0 + $1.0 * $1.1 }
          for k in q.indices { q[k] -= alpha * y[k] }
          alphas.append(alpha)
        }
        // H0: the diagonal Newton scaling until a pair exists, then γ·I with γ = sᵀy/yᵀy of the
        // newest pair (Nocedal & Wright, eq. 7.20) — the coupling makes the diagonal a poor H0.
        var r = zip(scaling, q).map { $0 * $1 }
        if let (s, y) = memory.last {
          let gamma = zip(s, y).reduce(0) { $0 + $1.0 * $1.1 } / y.reduce(0) { $0 + $1 * $1 }
          r = q.map { gamma * $0 }
        }
        for (i, (s, y)) in memory.enumerated() {
          let rho = 1 / zip(y, s).reduce(0) { $0 + $1.0 * $1.1 }
          let beta = rho * zip(y, r).reduce(0) { $0 + $1.0 * $1.1 }
          let alpha = alphas[memory.count - 1 - i]
          for k in r.indices { r[k] += s[k] * (alpha - beta) }
        }
        direction = r
      } else {
        direction = zip(scaling, g).map { $0 * $1 }
      }
    }
    // Shrunk as a whole (keeping its direction) so that no log hyperparameter moves by more than 2;
    // an L-BFGS direction that is no ascent direction (rounding) falls back to the diagonal one.
    if memory != nil, zip(direction, g).reduce(0, { $0 + $1.0 * $1.1 }) <= 0 {
      return try newtonDirection(t: t, gradient: g, evaluation: e, parametrization: parametrization, objective: objective, memory: [])
    }
    let largest = direction.reduce(0) { max($0, abs($1)) }
    return largest > 2 ? direction.map { $0 * 2 / largest } : direction
  }
}

/// The Hessian of a function at t by central differences (step 1e−5) of its analytic gradient:
/// column k is (∇(t + εe_k) − ∇(t − εe_k))/2ε; 2m gradient evaluations.
func centralDifferenceHessian(at t: [Double], gradient: ([Double]) throws(BDLError) -> [Double]) throws(BDLError) -> Matrix {
  let ε = 1e-5, m = t.count
  var h = Matrix(rows: m, columns: m)
  for k in 0..<m {
    var up = t, down = t
    up[k] += ε
    down[k] -= ε
    let (gu, gd) = (try gradient(up), try gradient(down))
    for j in 0..<m { h[j, k] = (gu[j] - gd[j]) / (2 * ε) }
  }
  return h
}

/// The Newton step −H⁻¹g of a maximisation, made an ascent direction: H is symmetrised and its
/// negative's eigenvalues are floored at 1e−8 of the largest magnitude, so directions of
/// non-negative curvature get a bounded step along the gradient instead of a step uphill in −E.
func newtonAscentDirection(hessian h: Matrix, gradient g: [Double]) throws(BDLError) -> [Double] {
  let m = g.count
  var negative = Matrix(rows: m, columns: m)
  for j in 0..<m { for k in 0..<m { negative[j, k] = -(h[j, k] + h[k, j]) / 2 } }
  let eigen = try SymmetricEigendecomposition(negative, name: "negative evidence Hessian")
  let largest = max(eigen.eigenvalues.map(abs).max() ?? 1, 1e-300)
  let floor = 1e-8 * largest
  let q = try eigen.eigenvectors
  let rotated = try q.multiplied(by: g, transposingSelf: true)
  let scaled = rotated.enumerated().map { $0.element / max(eigen.eigenvalues[$0.offset], floor) }
  return try q.multiplied(by: scaled)
}
