import BDLCore

/// Layer-wise equivariance selection by the evidence (van der Ouderaa et al. 2023), on two seeded
/// synthetic image tasks that differ only in what the label depends on.
///
/// Each image is 10×10 noise (σ = 0.1) with one of four 3×3 binary patterns (plus, cross, two
/// bars, two columns) stamped at a uniformly random position. The *shape* task labels the pattern:
/// translation-invariant, so a convolution with global pooling solves it and a position-specific
/// fully-connected map only adds parameters. The *position* task labels the quadrant the pattern
/// sits in: a convolution followed by global pooling cannot see where anything is, so only the
/// fully-connected path can solve it.
///
/// The network is ConvFCMixture(1 → 6, 3×3, padding 1) → ReLU → GlobalAvgPool2d → Linear(6, 4),
/// trained by the evidence with one prior precision per parameter tensor. The evidence should
/// switch off the path the task does not need: on the shape task the FC weight's δ ends far
/// above the conv weight's; on the position task the reverse.
struct EquivarianceSelection {
  enum Task: String, CaseIterable { case shape, position }

  static let size = 10, classes = 4
  static let patterns: [[Double]] = [
    [0, 1, 0, 1, 1, 1, 0, 1, 0],  // plus
    [1, 0, 1, 0, 1, 0, 1, 0, 1],  // cross
    [1, 1, 1, 0, 0, 0, 1, 1, 1],  // two bars
    [1, 0, 1, 1, 0, 1, 1, 0, 1],  // two columns
  ]

  /// n images (N, 1, 10, 10) with the labels of `task`.
  static func data(_ task: Task, count n: Int, seed: UInt64) throws(BDLError) -> (Tensor, [Int]) {
    var random = RandomSource(seed: seed)
    var x = Tensor(shape: [n, 1, size, size])
    var labels: [Int] = []
    let last = size - 3, half = last / 2 + 1  // pattern corners 0...last; quadrant split at half
    for example in 0..<n {
      let kind = Int(random.next() % 4)
      let (row, column) = (Int(random.next() % UInt64(last + 1)), Int(random.next() % UInt64(last + 1)))
      let base = example * size * size
      for i in 0..<(size * size) { x.elements[base + i] = 0.1 * random.normal() }
      for i in 0..<3 {
        for j in 0..<3 { x.elements[base + (row + i) * size + column + j] += patterns[kind][i * 3 + j] }
      }
      labels.append(task == .shape ? kind : (row >= half ? 2 : 0) + (column >= half ? 1 : 0))
    }
    return (x, labels)
  }

  struct Outcome {
    let task: Task
    /// δ of the conv weight, conv bias, FC weight, FC bias, head weight, head bias.
    let priorPrecision: [Double]
    let trainAccuracy: Double
    let testAccuracy: Double
    let logMarginalLikelihood: Double
    var convolutionWeight: Double { priorPrecision[0] }
    var fullyConnectedWeight: Double { priorPrecision[2] }
  }

  static func network(seed: UInt64 = 0) throws(BDLError) -> Sequential {
    try Sequential(
      try ConvolutionFullyConnectedMixture.layers(1, 6, kernelSize: 3, padding: 1, inputShape: [1, size, size])
        + [Activation.relu, GlobalAvgPool2d(), Linear(6, classes)],
      inputShape: [1, size, size], seed: seed)
  }

  /// Marginal-likelihood training: Adam 1e-2, batches of 50, a hyperparameter step every 5
  /// epochs after 5 epochs of burn-in, K-FAC posterior, layerwise prior.
  static func options(epochs: Int) -> MarginalLikelihoodTraining.Options {
    var options = MarginalLikelihoodTraining.Options()
    options.training.epochs = epochs
    options.training.learningRate = 1e-2
    options.training.batchSize = 50
    options.frequency = 5
    options.burnin = 5
    return options
  }

  static func run(_ task: Task, trainCount: Int = 1000, testCount: Int = 1000, epochs: Int = 30) throws(BDLError) -> Outcome {
    let (x, y) = try data(task, count: trainCount, seed: 1)
    let (xt, yt) = try data(task, count: testCount, seed: 2)
    var model = try network()
    let result = try MarginalLikelihoodTraining.train(
      &model, inputs: x, targets: .classes(y), likelihood: .classification, options: options(epochs: epochs))
    func accuracy(_ inputs: Tensor, _ labels: [Int]) throws(BDLError) -> Double {
      try CalibrationMetrics.accuracy(Demo.softmax(model, inputs), labels: labels)
    }
    return Outcome(
      task: task, priorPrecision: result.laplace.hyperparameters.priorPrecision,
      trainAccuracy: try accuracy(x, y), testAccuracy: try accuracy(xt, yt),
      logMarginalLikelihood: result.logMarginalLikelihood)
  }
}
