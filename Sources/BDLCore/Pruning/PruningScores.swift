/// Pruning scores (`PruningCriterion`): one number per parameter, small = prune first.
///
/// The posterior criteria read the Laplace approximation at its current hyperparameters, with
/// θ = its mean θ* (the network's parameters when it was fitted) and the precision of its own
/// structure, never formed densely where the structure avoids it:
/// - diagonal: P_ii = h·G_ii + δ_i;
/// - K-FAC, per block in the eigenbasis Q_B ⊗ Q_A with P's eigenvalues d_pq = h·β_p·α_q + δ
///   (the prior is inside d, once; a per-parameter prior enters as its eigenbasis projection, a
///   damped block as its damped product — whatever the posterior itself uses):
///     P_(m,n) = Σ_pq Q_B[m,p]²·Q_A[n,q]²·d_pq,  [P⁻¹]_(m,n) = Σ_pq Q_B[m,p]²·Q_A[n,q]²/d_pq;
/// - full: the dense diagonal of P, and of P⁻¹ through its Cholesky factor.
public enum PruningScores {
  /// OPD: s_i = P_ii·θ_i² over the parameters `laplace` covers.
  public static func optimalPosteriorDamage(_ laplace: Laplace) throws(BDLError) -> [Double] {
    let p = try precisionDiagonal(laplace, inverse: false)
    return zip(p, laplace.mean).map { $0 * $1 * $1 }
  }

  /// OBD: s_i = ½·h·G_ii·θ_i², G_ii the diagonal of the posterior's curvature — the exact GGN
  /// diagonal for a diagonal or full posterior; for K-FAC, K-FAC's own diagonal B_mm·A_nn (its
  /// refit eigenvalues for EK-FAC), the curvature that posterior has.
  public static func optimalBrainDamage(_ laplace: Laplace) throws(BDLError) -> [Double] {
    let h = Laplace.likelihoodScale(laplace.hyperparameters, laplace.likelihood)
    let g = try laplace.curvature.diagonal()
    return zip(g, laplace.mean).map { 0.5 * h * $0 * $1 * $1 }
  }

  /// K-FAC-OBS: s_i = θ_i²/[P⁻¹]_ii (see `PruningCriterion.kfacOBS`).
  public static func optimalBrainSurgeon(_ laplace: Laplace) throws(BDLError) -> [Double] {
    let variance = try precisionDiagonal(laplace, inverse: true)
    return zip(variance, laplace.mean).map { $1 * $1 / $0 }
  }

  /// |θ_i|.
  public static func magnitude(_ parameters: [Double]) -> [Double] {
    parameters.map { abs($0) }
  }

  /// `count` draws uniform on [0, 1) from `RandomSource(seed:)`: the same seed gives the same
  /// scores on every platform.
  public static func random(count: Int, seed: UInt64) -> [Double] {
    var source = RandomSource(seed: seed)
    return (0..<count).map { _ in source.uniform() }
  }

  /// The scores of `criterion`, one per parameter the posterior covers (posterior criteria; θ =
  /// the posterior mean) or one per network parameter (magnitude and random from `model` alone;
  /// with a posterior they use its mean, so every criterion scores the same θ).
  ///
  /// With `structured`, the sums over the units of `model` instead (`PruningGroups`): one per
  /// output neuron of every Linear and output filter of every Conv2d except the output layer, in
  /// layer order; this needs `model`, and a posterior over all its parameters.
  ///
  /// When both are given, `model` must be the network the posterior was fitted to (its size and
  /// layout); its parameter values are not read when there is a posterior.
  /// - Throws: `.invalidArgument` (neither given; a posterior criterion without a posterior;
  ///   structured scores without a model or from a last-layer posterior), `.shapeMismatch`
  ///   (a model the posterior was not fitted to), and what the posterior's factorisation throws.
  public static func compute(
    _ criterion: PruningCriterion, laplace: Laplace? = nil, model: Sequential? = nil, structured: Bool = false,
    seed: UInt64 = 0
  ) throws(BDLError) -> [Double] {
    guard laplace != nil || model != nil else {
      throw .invalidArgument("pruning scores need a Laplace posterior or a model")
    }
    if let laplace, let model { _ = try laplace.network(model) }
    let theta = laplace?.mean ?? model!.parameters
    let scores: [Double]
    switch criterion {
    case .magnitude: scores = magnitude(theta)
    case .random: scores = random(count: theta.count, seed: seed)
    case .opd, .obd, .kfacOBS:
      guard let laplace else {
        throw .invalidArgument("criterion \(criterion.name) needs a Laplace posterior (it scores with the posterior precision)")
      }
      switch criterion {
      case .opd: scores = try optimalPosteriorDamage(laplace)
      case .obd: scores = try optimalBrainDamage(laplace)
      default: scores = try optimalBrainSurgeon(laplace)
      }
    }
    guard structured else { return scores }
    guard let model else {
      throw .invalidArgument("structured scores need the model: its layers define the units")
    }
    if let laplace, laplace.parameterRange != 0..<model.parameterCount {
      throw .invalidArgument(
        "structured scores need a posterior over every parameter; this one covers parameters \(laplace.parameterRange) of \(model.parameterCount) (the output layer is never pruned structurally)")
    }
    return try PruningGroups(model: model).sums(scores)
  }

  /// diag(P) or diag(P⁻¹) of the posterior at its current hyperparameters, by structure.
  static func precisionDiagonal(_ laplace: Laplace, inverse: Bool) throws(BDLError) -> [Double] {
    let precision = try laplace.evaluate(laplace.hyperparameters).precision
    if let p = precision as? DiagonalPosteriorPrecision {
      return inverse ? p.values.map { 1 / $0 } : p.values
    }
    if let p = precision as? FullPosteriorPrecision {
      return inverse ? try p.cholesky.inverse().diagonalEntries : p.precision.diagonalEntries
    }
    if let p = precision as? KroneckerPosteriorPrecision {
      var result = [Double](repeating: 0, count: p.parameterCount)
      for block in p.blocks {
        var spectrum = block.values
        if inverse {
          for i in spectrum.elements.indices { spectrum.elements[i] = 1 / spectrum.elements[i] }
        }
        result.replaceSubrange(block.parameters, with: try block.factors.diagonal(ofSpectrum: spectrum).elements)
      }
      return result
    }
    throw .internal("pruning scores: unknown posterior precision \(type(of: precision))")
  }
}
