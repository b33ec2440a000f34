import BDLCore

/// The digits part of the main job: a 64-128-10 ReLU MLP trained by Adam on the UCI optical digits
/// (pixels scaled from 0..16 to [0, 1]), evaluated on the fixed test split.
struct DigitsClassification {
  static let classes = 10

  let trainInputs: Tensor
  let trainLabels: [Int]
  let testInputs: Tensor
  let testLabels: [Int]

  init(table: NumericTable) throws(BDLError) {
    let split = try DatasetSplit(table)
    func scaled(_ x: Matrix) -> Tensor {
      var t = Tensor(x)
      for i in t.elements.indices { t.elements[i] /= 16 }
      return t
    }
    trainInputs = scaled(split.trainInputs)
    testInputs = scaled(split.testInputs)
    trainLabels = try DatasetSplit.labels(split.trainTargets, classes: Self.classes)
    testLabels = try DatasetSplit.labels(split.testTargets, classes: Self.classes)
  }

  /// The network and training options of the demo. Adam at 1e-3 (PyTorch's default) with a
  /// cosine decay to 0 and a weak prior δ = 1e-4 per parameter: a MAP estimate to build a
  /// Laplace posterior around.
  static func network(seed: UInt64 = 0) throws(BDLError) -> Sequential {
    try Sequential([Linear(64, 128), Activation.relu, Linear(128, classes)], inputShape: [64], seed: seed)
  }

  static func options(seed: UInt64 = 0) -> TrainingOptions {
    var options = TrainingOptions()
    options.learningRate = 3e-3
    options.epochs = 30
    options.batchSize = 32
    options.schedule = .cosine
    options.priorPrecision = [1e-4]
    options.seed = seed
    return options
  }

  struct Evaluation {
    let accuracy: Double
    let meanNegativeLogLikelihood: Double
  }

  func evaluate(_ model: Sequential) throws(BDLError) -> Evaluation {
    let outputs = try model.forward(testInputs)
    let nll = try CategoricalLikelihood().negativeLogLikelihood(outputs, .classes(testLabels))
    var correct = 0
    for (i, label) in testLabels.enumerated() {
      let row = outputs.elements[(i * Self.classes)..<((i + 1) * Self.classes)]
      if row.firstIndex(of: row.max()!)! - i * Self.classes == label { correct += 1 }
    }
    return Evaluation(accuracy: Double(correct) / Double(testLabels.count), meanNegativeLogLikelihood: nll / Double(testLabels.count))
  }

  /// Trains the demo network; `progress` sees each epoch.
  func train(seed: UInt64 = 0, progress: ((TrainingProgress) -> Bool)? = nil) throws(BDLError) -> Sequential {
    var model = try Self.network(seed: seed)
    try model.train(
      inputs: trainInputs, targets: .classes(trainLabels), likelihood: CategoricalLikelihood(),
      options: Self.options(seed: seed), progress: progress)
    return model
  }
}
