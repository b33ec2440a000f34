/// How a parameter's importance is scored for pruning: one number per parameter, and the
/// parameters with the smallest scores are removed first (`PruningMask`). With θ the posterior
/// mean (the trained network's parameters), P = h·G + P0 the posterior precision of a Laplace
/// approximation (h = 1/(σ²T) for regression, 1/T for classification) and G its curvature:
public enum PruningCriterion: Int, Sendable, CaseIterable {
  /// Optimal posterior damage (Dhahri et al. 2024, "SpaM"): s_i = P_ii·θ_i², the posterior's own
  /// diagonal precision — so the prior P0 the evidence chose is part of the score.
  case opd = 0
  /// Optimal brain damage (LeCun, Denker & Solla 1990): s_i = ½·h·G_ii·θ_i², the curvature's
  /// diagonal without the prior (so OPD = 2·OBD + δ_i·θ_i² for a diagonal posterior).
  case obd = 1
  /// |θ_i|: no curvature at all.
  case magnitude = 2
  /// Uniform on [0, 1), seeded: the baseline every criterion must beat.
  case random = 3
  /// The optimal-brain-surgeon saliency (Hassibi & Stork 1993) with the posterior's marginal
  /// variances: s_i = θ_i²/[P⁻¹]_ii — Kronecker-factored for a K-FAC posterior ("K-FAC-OBS").
  /// Hassibi & Stork's ½ is dropped: it does not change the ranking, and without it the score
  /// equals OPD for a diagonal posterior, where [P⁻¹]_ii = 1/P_ii.
  case kfacOBS = 4

  /// Whether the score needs a Laplace posterior (OPD, OBD, K-FAC-OBS) or only θ.
  public var needsPosterior: Bool {
    switch self {
    case .opd, .obd, .kfacOBS: true
    case .magnitude, .random: false
    }
  }

  /// The name used in messages and by the bindings ("opd", "obd", "magnitude", "random", "kfac_obs").
  public var name: String {
    switch self {
    case .opd: "opd"
    case .obd: "obd"
    case .magnitude: "magnitude"
    case .random: "random"
    case .kfacOBS: "kfac_obs"
    }
  }
}
