import BDLCore

/// What part 6 of the demo found, for the HTML report.
struct ModelSelectionReport {
  /// The hand-picked prior of the MAP baseline.
  var mapPriorPrecision: Double
  var epochs: Int
  /// Learned δ per parameter tensor, by name.
  var learned: [(name: String, precision: Double)]
  var logEvidence: Double
  var rows: [CalibrationReport.Method]
  var equivariance: [EquivarianceSelection.Outcome]

  func html() -> String {
    var out = "<h2>Model selection by the evidence</h2>\n"
    out += "<p>The same network and optimiser (\(epochs) epochs) trained twice: by MAP with a hand-picked prior precision "
    out += "δ = \(number(mapPriorPrecision)), and by the evidence (one δ per parameter tensor, solved for every 5 epochs "
    out += "from a K-FAC Laplace; no validation set). Log evidence at the kept parameters: \(fmt(logEvidence)).</p>\n"
    out += CalibrationReport.methodTable(rows, bins: Demo.calibrationBins)
    out += "<table>\n<tr><th>parameter tensor</th><th>learned δ</th></tr>\n"
    for (name, precision) in learned { out += "<tr><td>\(escapeHTML(name))</td><td>\(number(precision))</td></tr>\n" }
    out += "</table>\n"
    out += "<h3>Layer-wise equivariance selection</h3>\n"
    out += "<p>A layer averaging a 3×3 convolution and a fully-connected map of the same 10×10 image, then ReLU, global "
    out += "average pooling and a linear head, trained by the evidence on two synthetic tasks: the label is the shape of a "
    out += "randomly placed pattern (translation-invariant), or the quadrant it sits in (positional). A large δ switches a "
    out += "path off.</p>\n<table>\n<tr><th>task</th><th>δ conv weight</th><th>δ FC weight</th><th>train accuracy</th><th>test accuracy</th></tr>\n"
    for o in equivariance {
      out += "<tr><td>\(o.task.rawValue)</td><td>\(number(o.convolutionWeight))</td><td>\(number(o.fullyConnectedWeight))</td>"
      out += "<td>\(fmt(100 * o.trainAccuracy))%</td><td>\(fmt(100 * o.testAccuracy))%</td></tr>\n"
    }
    return out + "</table>\n"
  }
}

extension Demo {
  /// 6. The digits network trained by the evidence against the hand-picked MAP baseline, and
  /// layer-wise equivariance selection on two synthetic tasks.
  static func modelSelection(_ map: Sequential, _ data: DigitsClassification) throws(BDLError) -> ModelSelectionReport {
    print("\n6. Model selection by the evidence")
    let recipe = DigitsClassification.options()
    var options = MarginalLikelihoodTraining.Options()
    options.training = recipe
    options.training.priorPrecision = [1]
    options.frequency = 5
    options.burnin = 5
    var model = try DigitsClassification.network()
    let clock = MonotonicClock()
    let result = try MarginalLikelihoodTraining.train(
      &model, inputs: data.trainInputs, targets: .classes(data.trainLabels), likelihood: .classification, options: options)
    let seconds = clock.seconds
    print("training by the evidence: the demo's recipe (\(recipe.epochs) epochs), a K-FAC Laplace refit and a solved")
    print("  per-tensor prior every 5 epochs; kept epoch \(result.bestEpoch), log evidence \(fmt(result.logMarginalLikelihood)), \(fmt(seconds)) s")
    let names = tensorNames(model, sizes: result.laplace.tensorSizes)
    let learned = Array(zip(names, result.laplace.hyperparameters.priorPrecision))
    for (name, precision) in learned { print("    \(pad(name, 12))  δ = \(number(precision))") }
    let probit = try matrix(result.laplace.predictProbabilities(model: model, inputs: data.testInputs, link: .probit))
    let rows = [
      try evaluate("MAP, δ = \(number(recipe.priorPrecision[0])) (hand-picked)", softmax(map, data.testInputs), data.testLabels),
      try evaluate("evidence-trained (MAP predictions)", softmax(model, data.testInputs), data.testLabels),
      try evaluate("evidence-trained, Laplace probit", probit, data.testLabels),
    ]
    print("  test set                                    accuracy   mean NLL   ECE")
    for r in rows {
      print("  \(pad(r.name, 42))  \(pad(fmt(100 * r.accuracy) + "%", 9))  \(pad(fmt(r.negativeLogLikelihood), 9))  \(fmt(r.expectedCalibrationError))")
    }

    print("layer-wise equivariance selection (conv/FC mixture, δ per tensor learned by the evidence):")
    print("  task       δ conv weight   δ FC weight   train acc   test acc")
    var outcomes: [EquivarianceSelection.Outcome] = []
    for task in EquivarianceSelection.Task.allCases {
      let o = try EquivarianceSelection.run(task)
      outcomes.append(o)
      print("  \(pad(task.rawValue, 9))  \(pad(number(o.convolutionWeight), 14))  \(pad(number(o.fullyConnectedWeight), 12))  \(pad(fmt(100 * o.trainAccuracy) + "%", 10))  \(fmt(100 * o.testAccuracy))%")
    }
    return ModelSelectionReport(
      mapPriorPrecision: recipe.priorPrecision[0], epochs: recipe.epochs, learned: learned,
      logEvidence: result.logMarginalLikelihood, rows: rows, equivariance: outcomes)
  }

  /// softmax(f(x)) of a network, as a matrix.
  static func softmax(_ model: Sequential, _ x: Tensor) throws(BDLError) -> Matrix {
    try matrix(CategoricalLikelihood().probabilities(model.forward(x)))
  }
}
