import BDLCore

extension Demo {
  /// Confidence bins of the ECE and the reliability diagram: Guo et al. (2017).
  static let calibrationBins = 15

  /// 4. A K-FAC Laplace posterior of the trained network: the log evidence at the default prior
  /// and at the evidence-optimal prior (one δ per parameter tensor), then MAP against the
  /// linearised probit predictive on the test split, returned as the HTML report's data.
  static func laplace(_ model: Sequential, _ data: DigitsClassification) throws(BDLError) -> CalibrationReport {
    print("\n4. Laplace posterior of the digits network")
    let options = Laplace.FitOptions()
    var clock = MonotonicClock()
    var posterior = try Laplace.fit(
      model: model, inputs: data.trainInputs, targets: .classes(data.trainLabels), likelihood: .classification,
      options: options)
    let fitSeconds = clock.seconds
    let structure = "\(describe(options.structure)) (\(describe(options.fisher)) Fisher, \(options.approximation.rawValue))"
    print("posterior: \(structure) over all \(posterior.parameterCount) parameters, fitted on \(data.trainLabels.count) training images in \(fmt(fitSeconds)) s")

    let defaultPrior = posterior.hyperparameters.priorPrecision
    let defaultEvidence = try posterior.logMarginalLikelihood()
    clock = MonotonicClock()
    let optimum = try posterior.optimizePriorPrecision(structure: .layerwise)
    let optimizeSeconds = clock.seconds
    let names = tensorNames(model, sizes: posterior.tensorSizes)
    let priors = zip(names, zip(posterior.tensorSizes, optimum.hyperparameters.priorPrecision)).map {
      CalibrationReport.PriorTensor(name: $0.0, size: $0.1.0, precision: $0.1.1)
    }
    print("                                               log evidence")
    print("  prior δ = \(pad(number(defaultPrior[0]) + " for every parameter", 34)) \(fmt(defaultEvidence))")
    print("  evidence-optimal δ per parameter tensor      \(fmt(optimum.logMarginalLikelihood))")
    let status = optimum.converged ? "" : ", not converged"
    print("  (\(optimum.iterations) Newton iterations in \(fmt(optimizeSeconds)) s; ‖∇ log evidence‖ = \(sci(optimum.gradientNorm))\(status))")
    let width = names.map(\.count).max() ?? 0
    for prior in priors { print("    \(pad(prior.name, width))  δ = \(number(prior.precision))") }

    clock = MonotonicClock()
    let map = try softmax(model, data.testInputs)
    let probit = try matrix(posterior.predictProbabilities(model: model, inputs: data.testInputs, link: .probit))
    let predictSeconds = clock.seconds
    let methods = [
      try evaluate("MAP (softmax)", map, data.testLabels),
      try evaluate("Laplace (probit)", probit, data.testLabels),
    ]
    let header = ["accuracy", "mean confidence", "mean NLL", "Brier", "ECE (\(calibrationBins) bins)"]
    print(pad("test set (\(data.testLabels.count) images)", 24) + zip(header, [9, 16, 9, 7, 0]).map { pad($0, $1) }.joined(separator: "  "))
    for method in methods {
      let columns = [
        pad(method.name, 20), pad(fmt(100 * method.accuracy) + "%", 9), pad(fmt(100 * method.meanConfidence) + "%", 16),
        pad(fmt(method.negativeLogLikelihood), 9), pad(fmt(method.brierScore), 7), fmt(method.expectedCalibrationError),
      ]
      print("  " + columns.joined(separator: "  "))
    }
    print("  (both predictives in \(fmt(predictSeconds)) s)")

    return CalibrationReport(
      title: "bdlcore demo: Laplace posterior of the digits network",
      context: [
        "Data: UCI optical digits, \(data.trainLabels.count) training and \(data.testLabels.count) test images (8×8), 10 classes.",
        "Network: \(model.layers.map(\.description).joined(separator: " → ")), \(model.parameterCount) parameters, trained by Adam (MAP).",
        "Posterior: \(structure) Laplace over all parameters; the probit predictive uses the evidence-optimal prior.",
      ],
      defaultPriorPrecision: defaultPrior[0], defaultLogEvidence: defaultEvidence,
      optimizedLogEvidence: optimum.logMarginalLikelihood, priors: priors, iterations: optimum.iterations,
      gradientNorm: optimum.gradientNorm, converged: optimum.converged, testCount: data.testLabels.count,
      methods: methods)
  }

  /// The metrics of one predictive's probabilities.
  static func evaluate(_ name: String, _ p: Matrix, _ labels: [Int]) throws(BDLError) -> CalibrationReport.Method {
    CalibrationReport.Method(
      name: name, accuracy: try CalibrationMetrics.accuracy(p, labels: labels),
      negativeLogLikelihood: try CalibrationMetrics.negativeLogLikelihood(p, labels: labels),
      brierScore: try CalibrationMetrics.brierScore(p, labels: labels),
      expectedCalibrationError: try CalibrationMetrics.expectedCalibrationError(p, labels: labels, bins: calibrationBins),
      bins: try CalibrationMetrics.reliability(p, labels: labels, bins: calibrationBins))
  }

  /// A (N, C) tensor as an N × C matrix.
  static func matrix(_ t: Tensor) throws(BDLError) -> Matrix {
    try Matrix(rows: t.count, columns: t.exampleSize, elements: t.elements)
  }

  /// Names of the network's parameter tensors in parameter-vector order ("layer 0 weight
  /// (128 × 64)"), or plain numbers if they do not match the posterior's tensor sizes.
  static func tensorNames(_ model: Sequential, sizes: [Int]) -> [String] {
    var names: [String] = [], found: [Int] = []
    for (index, layer) in model.layers.enumerated() {
      for (k, shape) in layer.parameterShapes.enumerated() {
        let kind = layer.parameterShapes.count == 2 ? (k == 0 ? "weight" : "bias") : "tensor \(k)"
        names.append("layer \(index) \(kind) (\(shape.map(String.init).joined(separator: " × ")))")
        found.append(shape.reduce(1, *))
      }
    }
    return found == sizes ? names : sizes.indices.map { "tensor \($0) (\(sizes[$0]))" }
  }

  private static func describe(_ structure: Laplace.Structure) -> String {
    switch structure {
    case .full: "full GGN"
    case .diagonal: "diagonal GGN"
    case .kron: "K-FAC"
    }
  }

  static func describe(_ fisher: FisherSource) -> String {
    switch fisher {
    case .exact: "exact"
    case .monteCarlo(let samples, _): "Monte Carlo (\(samples) samples)"
    case .empirical: "empirical"
    }
  }
}
