#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension NTKEvidenceBound {
  /// The outcome of `maximize`.
  public struct Maximization: Sendable, Equatable {
    public let hyperparameters: LaplaceHyperparameters
    /// E_B at `hyperparameters`.
    public let value: Double
    /// ‖∇E_B‖ over log δ (and log σ), entries held at a bound excluded.
    public let gradientNorm: Double
    public let iterations: Int
    public let converged: Bool
  }

  /// Maximises the partitioned bound E_B over log δ — scalar or one per tensor, as
  /// `start.priorPrecision` has — and, for regression with `optimizeSigma`, over log σ, at this
  /// bound's fixed θ and partition. The batches' kernels are computed once; each iteration then
  /// costs the batches' Cholesky factorisations only. Newton's method with the Hessian by central
  /// differences of the analytic gradient (a handful of hyperparameters), steps of at most 2 in
  /// each log value, backtracking on E_B; log δ stays in [log 1e−10, log 1e10] like the Laplace's.
  public func maximize(
    from start: LaplaceHyperparameters, optimizeSigma: Bool = false, tolerance: Double = 1e-6, maxIterations: Int = 100
  ) throws(BDLError) -> Maximization {
    guard tolerance.isFinite, tolerance > 0 else { throw .invalidArgument("tolerance = \(tolerance); it must be > 0") }
    guard maxIterations >= 1 else { throw .invalidArgument("max_iterations = \(maxIterations); it must be ≥ 1") }
    guard !optimizeSigma || likelihood == .regression else {
      throw .invalidArgument("optimize_sigma applies to regression; a classification bound has no σ")
    }
    let cache = try kernels()
    let count = start.priorPrecision.count
    let bounds = Laplace.logPriorBounds
    var t = start.priorPrecision.map { min(max(log($0), bounds.lowerBound), bounds.upperBound) }
    if optimizeSigma { t.append(log(start.sigma)) }

    func point(_ t: [Double]) -> LaplaceHyperparameters {
      var hp = start
      hp.priorPrecision = t[0..<count].map { exp($0) }
      if optimizeSigma { hp.sigma = exp(t[count]) }
      return hp
    }
    func objective(_ t: [Double]) throws(BDLError) -> (Double, [Double]) {
      let r = try evaluate(point(t), kernels: cache)
      return (r.value, r.logPriorPrecision + (optimizeSigma ? [r.logSigma] : []))
    }
    /// The gradient without components pushing against an active bound.
    func free(_ g: [Double], _ t: [Double]) -> [Double] {
      g.indices.map { k in
        guard k < count else { return g[k] }
        if (t[k] <= bounds.lowerBound && g[k] < 0) || (t[k] >= bounds.upperBound && g[k] > 0) { return 0 }
        return g[k]
      }
    }
    func norm(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    var (value, g) = try objective(t)
    var iterations = 0
    while norm(free(g, t)) >= tolerance && iterations < maxIterations {
      iterations += 1
      let hessian = try centralDifferenceHessian(at: t) { (u) throws(BDLError) in try objective(u).1 }
      var direction = try newtonAscentDirection(hessian: hessian, gradient: free(g, t))
      let largest = direction.reduce(0) { max($0, abs($1)) }
      if largest > 2 { direction = direction.map { $0 * 2 / largest } }
      var accepted = false, step = 1.0
      for _ in 0..<40 {
        var candidate = t
        for k in t.indices { candidate[k] += step * direction[k] }
        for k in 0..<count { candidate[k] = min(max(candidate[k], bounds.lowerBound), bounds.upperBound) }
        if let (v2, g2) = try? objective(candidate) {
          // As in the Laplace's maximisation: within rounding, a smaller gradient is progress too.
          if v2 > value || (v2 >= value - 1e-10 * max(1, abs(value)) && norm(free(g2, candidate)) < norm(free(g, t))) {
            (t, value, g) = (candidate, v2, g2)
            accepted = true
            break
          }
        }
        step /= 2
      }
      if !accepted { break }
    }
    let gradientNorm = norm(free(g, t))
    return Maximization(
      hyperparameters: point(t), value: value, gradientNorm: gradientNorm, iterations: iterations,
      converged: gradientNorm < tolerance)
  }
}
