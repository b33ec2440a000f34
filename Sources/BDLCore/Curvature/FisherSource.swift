/// Which output vectors v_{n,k} a curvature is accumulated from (DESIGN.md §4), so that
/// Σ_k v vᵀ estimates the output Hessian Λ_n of the negative log-likelihood:
public enum FisherSource: Sendable, Equatable {
  /// The K = C columns of the output-Hessian square root S_n (S Sᵀ = Λ exactly): the GGN
  /// ("type-2 Fisher" in curvlinops' terms).
  case exact
  /// K labels sampled from the model's predictive, each gradient scaled by 1/√K, so that
  /// Σ_k v vᵀ is an unbiased estimate of Λ (the Monte-Carlo Fisher). Seeded.
  case monteCarlo(samples: Int, seed: UInt64)
  /// K = 1, the loss gradient at the observed label: the empirical Fisher.
  case empirical

  /// The output vectors (N, K, C) for outputs f and targets.
  public func outputVectors(
    _ outputs: Tensor, _ targets: Targets, likelihood: some Likelihood
  ) throws(BDLError) -> Tensor {
    switch self {
    case .exact:
      return likelihood.hessianSquareRoot(outputs)
    case .monteCarlo(let samples, let seed):
      guard samples >= 1 else { throw .invalidArgument("mc_samples = \(samples); it must be ≥ 1") }
      var random = RandomSource(seed: seed)
      return likelihood.sampledOutputGradients(outputs, samples: samples, using: &random)
    case .empirical:
      return try likelihood.outputGradient(outputs, targets)
    }
  }

  /// The vectors the engine backpropagates: `outputVectors`, except that `.exact` uses the root
  /// of Λ_n with the fewest columns (`Likelihood.reducedHessianSquareRoot`: C − 1 for the
  /// categorical). Every curvature built from them sums v·vᵀ, or squares of linear functions of
  /// v, over k, which is the same for any root of Λ_n; statistics keep recording K =
  /// `vectorCount(outputs:)`.
  func accumulatedVectors(
    _ outputs: Tensor, _ targets: Targets, likelihood: some Likelihood
  ) throws(BDLError) -> Tensor {
    if case .exact = self { return likelihood.reducedHessianSquareRoot(outputs) }
    return try outputVectors(outputs, targets, likelihood: likelihood)
  }

  /// K, the output vectors per example this source stands for: C (exact), the sample count
  /// (Monte-Carlo) or 1 (empirical).
  func vectorCount(outputs c: Int) -> Int {
    switch self {
    case .exact: return c
    case .monteCarlo(let samples, _): return samples
    case .empirical: return 1
    }
  }
}
