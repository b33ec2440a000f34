/// How a network's test performance falls as it is pruned: for each target sparsity s, the
/// network is pruned by one criterion's scores (global unstructured pruning of the weights,
/// `PruningMask.unstructured`), optionally fine-tuned for a few epochs with the mask kept, and its
/// predictions p = softmax(f(x; θ ⊙ m)) on test data scored by accuracy, mean NLL and ECE (15
/// bins). This is the SpaM paper's evaluation: a criterion is better when its curve stays up
/// at high sparsity. The network itself is not changed.
public enum SparsityCurve {
  /// The sparsities of the SpaM paper's curves.
  public static let paperSparsities: [Double] = [0.2, 0.4, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99]

  public struct Point: Sendable, Equatable {
    public let sparsity: Double
    public let accuracy: Double
    public let meanNegativeLogLikelihood: Double
    public let expectedCalibrationError: Double

    public init(sparsity: Double, accuracy: Double, meanNegativeLogLikelihood: Double, expectedCalibrationError: Double) {
      self.sparsity = sparsity
      self.accuracy = accuracy
      self.meanNegativeLogLikelihood = meanNegativeLogLikelihood
      self.expectedCalibrationError = expectedCalibrationError
    }
  }

  /// Fine-tuning after pruning: `options` (their `mask` is replaced by the pruning mask) on the
  /// training data.
  public struct FineTuning: Sendable {
    public var inputs: Tensor
    public var targets: Targets
    public var options: TrainingOptions
    public init(inputs: Tensor, targets: Targets, options: TrainingOptions) {
      self.inputs = inputs
      self.targets = targets
      self.options = options
    }
  }

  /// The curve of `model` pruned by `scores` (one per parameter; any criterion) at `sparsities`,
  /// on (testInputs, testLabels) of a classifier.
  /// - Throws: what `PruningMask.unstructured` throws (sparsity outside [0, 1), scores of the
  ///   wrong length), `.shapeMismatch`/`.invalidArgument` for test data that do not fit, and
  ///   what fine-tuning throws.
  public static func evaluate(
    model: Sequential, scores: [Double], sparsities: [Double] = paperSparsities, testInputs: Tensor,
    testLabels: [Int], fineTuning: FineTuning? = nil
  ) throws(BDLError) -> [Point] {
    try model.validateInput(testInputs)
    guard testLabels.count == testInputs.count else {
      throw .shapeMismatch("\(testLabels.count) test labels for \(testInputs.count) test inputs")
    }
    try CategoricalLikelihood().validate(.classes(testLabels), outputs: Tensor(shape: [testInputs.count, model.outputCount]))
    // All masks first: a bad sparsity fails before any work.
    let masks = try sparsities.map { (s) throws(BDLError) in
      try PruningMask.unstructured(scores: scores, sparsity: s, model: model)
    }
    var points: [Point] = []
    for (s, mask) in zip(sparsities, masks) {
      var pruned = model
      try pruned.applyMask(mask)
      if var tuning = fineTuning {
        tuning.options.mask = mask.values
        try pruned.train(
          inputs: tuning.inputs, targets: tuning.targets, likelihood: CategoricalLikelihood(), options: tuning.options)
      }
      let f = try pruned.forward(testInputs)
      let p = CategoricalLikelihood().probabilities(f)
      let probabilities = try Matrix(rows: testInputs.count, columns: model.outputCount, elements: p.elements)
      // The NLL from the logits (log-sum-exp), finite even where a probability underflows.
      let nll = try CategoricalLikelihood().negativeLogLikelihood(f, .classes(testLabels)) / Double(testInputs.count)
      points.append(Point(
        sparsity: s, accuracy: try CalibrationMetrics.accuracy(probabilities, labels: testLabels),
        meanNegativeLogLikelihood: nll,
        expectedCalibrationError: try CalibrationMetrics.expectedCalibrationError(probabilities, labels: testLabels)))
    }
    return points
  }
}
