/// How `train` fits a network: the MAP objective, the optimiser and its schedule.
///
/// The objective is the negative log joint  Σ_n NLL_n + ½·θᵀ·diag(δ)·θ  (DESIGN.md §4), divided by
/// N so that learning rates mean what they mean with PyTorch's mean-reduced losses: each minibatch
/// B steps along  (1/|B|)·Σ_{n∈B} ∇NLL_n + δ∘θ/N. The minimiser is the MAP estimate θ* that the
/// Laplace approximation is built around.
public struct TrainingOptions: Sendable {
  public enum Optimizer: Sendable, Equatable {
    /// PyTorch's SGD: b ← μ·b + g (b = g at the first step), θ ← θ − η·b.
    case sgd(momentum: Double)
    /// PyTorch's Adam: bias-corrected first and second moments, θ ← θ − η·m̂/(√v̂ + ε).
    case adam(beta1: Double, beta2: Double, epsilon: Double)

    /// Adam with PyTorch's defaults (0.9, 0.999, 1e-8).
    public static let adam = Optimizer.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8)
  }

  public enum Schedule: Sendable, Equatable {
    case constant
    /// η_t = η·½·(1 + cos(π·t/T)) over the T steps of the run, per step: it ends at 0, which
    /// removes the minibatch noise from the final θ (what a Laplace fit around θ* wants).
    case cosine
  }

  public var optimizer: Optimizer = .adam
  /// η; default 1e-3, PyTorch's Adam default.
  public var learningRate: Double = 1e-3
  public var schedule: Schedule = .constant
  public var epochs: Int = 10
  /// Examples per step; the last batch of an epoch may be smaller.
  public var batchSize: Int = 32
  /// δ: one value for all parameters, or one per parameter tensor in parameter-vector order
  /// (W₀, b₀, W₁, b₁, …), or one per parameter. Default 0: maximum likelihood.
  public var priorPrecision: [Double] = [0]
  /// A pruning mask, one value per parameter: 1 trains, 0 holds the parameter at exactly 0 for
  /// the whole run (it is zeroed before the first step and its gradient is dropped). nil: no mask.
  public var mask: [Double]? = nil
  /// Seeds the shuffling; a run is bit-for-bit reproducible for a seed.
  public var seed: UInt64 = 0

  public init() {}
}

/// What `train` reports after each epoch (and returns, one per epoch).
public struct TrainingProgress: Sendable, Equatable {
  /// 1-based epoch just finished.
  public let epoch: Int
  public let epochs: Int
  /// Mean over the epoch's steps of the minibatch objective (mean NLL + ½θᵀδθ/N).
  public let objective: Double
  /// Mean NLL per example over the epoch's minibatches.
  public let meanNegativeLogLikelihood: Double
}
