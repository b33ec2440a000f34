import BDLCore

/// The SpaM paper's claim on the digits (Dhahri et al. 2024): training by the evidence with a
/// per-parameter prior and pruning by OPD keeps more test accuracy at high sparsity than MAP
/// training with a hand-picked prior and magnitude pruning. Both networks are trained with the
/// same recipe (Adam 3e−3 with cosine decay, 60 epochs of 32 examples); MAP with δ = 1e−4, SpaM
/// by marginal-likelihood training (one δ per parameter, K-FAC Laplace, a solved hyperparameter
/// step every 5 epochs after 5 of burn-in). Each trained network is then pruned without
/// fine-tuning by OPD, OBD (from its K-FAC posterior: the one training left for SpaM, one at
/// δ = 1e−4 for MAP), magnitude and random scores, at the paper's sparsities; curves are means
/// over the seeds.
struct SpaMExperiment {
  enum Architecture: String, CaseIterable {
    case mlp = "MLP 64-128-10"
    case cnn = "CNN conv3×3(16)-pool-linear"
  }
  static let criteria: [PruningCriterion] = [.opd, .obd, .magnitude, .random]
  static let mapPriorPrecision = 1e-4
  static let epochs = 60

  struct Curve {
    let architecture: Architecture
    /// "MAP" or "SpaM".
    let training: String
    let criterion: PruningCriterion
    /// Means over seeds at each sparsity.
    let points: [SparsityCurve.Point]
    var label: String { "\(training) + \(criterion.name)" }
  }

  static func network(_ architecture: Architecture, seed: UInt64) throws(BDLError) -> Sequential {
    switch architecture {
    case .mlp: return try DigitsClassification.network(seed: seed)
    case .cnn:
      return try Sequential(
        [Conv2d(1, 16, kernelSize: 3, padding: 1), Activation.relu, AvgPool2d(2), Flatten(), Linear(16 * 4 * 4, DigitsClassification.classes)],
        inputShape: [1, 8, 8], seed: seed)
    }
  }

  /// The digits as the architecture takes them: vectors, or 1×8×8 images.
  static func inputs(_ architecture: Architecture, _ x: Tensor) throws(BDLError) -> Tensor {
    architecture == .mlp ? x : try Tensor(shape: [x.count, 1, 8, 8], elements: x.elements)
  }

  static func run(_ architecture: Architecture, data: DigitsClassification, seeds: [UInt64] = [0, 1, 2]) throws(BDLError) -> [Curve] {
    let x = try inputs(architecture, data.trainInputs), xt = try inputs(architecture, data.testInputs)
    let y = Targets.classes(data.trainLabels)
    var recipe = DigitsClassification.options()
    recipe.epochs = epochs
    var perSeed: [String: [[SparsityCurve.Point]]] = [:]
    for seed in seeds {
      recipe.seed = seed
      // MAP with the hand-picked prior, and its posterior at that prior for OPD and OBD.
      var map = try network(architecture, seed: seed)
      var options = recipe
      options.priorPrecision = [mapPriorPrecision]
      try map.train(inputs: x, targets: y, likelihood: CategoricalLikelihood(), options: options)
      let mapPosterior = try Laplace.fit(
        model: map, inputs: x, targets: y, likelihood: .classification,
        hyperparameters: LaplaceHyperparameters(priorPrecision: [mapPriorPrecision]))
      // SpaM: the evidence chooses one δ per parameter.
      var spam = try network(architecture, seed: seed)
      var marglik = MarginalLikelihoodTraining.Options()
      marglik.training = recipe
      marglik.training.priorPrecision = [1]
      marglik.prior = .diagonal
      marglik.frequency = 5
      marglik.burnin = 5
      let trained = try MarginalLikelihoodTraining.train(&spam, inputs: x, targets: y, likelihood: .classification, options: marglik)
      for (training, model, posterior) in [("MAP", map, mapPosterior), ("SpaM", spam, trained.laplace)] {
        for criterion in criteria {
          let scores = try PruningScores.compute(criterion, laplace: posterior, model: model, seed: seed)
          let curve = try SparsityCurve.evaluate(model: model, scores: scores, testInputs: xt, testLabels: data.testLabels)
          perSeed["\(training) \(criterion.rawValue)", default: []].append(curve)
        }
      }
    }
    var curves: [Curve] = []
    for training in ["MAP", "SpaM"] {
      for criterion in criteria {
        let runs = perSeed["\(training) \(criterion.rawValue)"] ?? []
        let count = Double(runs.count)
        let points = SparsityCurve.paperSparsities.indices.map { i in
          SparsityCurve.Point(
            sparsity: SparsityCurve.paperSparsities[i],
            accuracy: runs.reduce(0) { $0 + $1[i].accuracy } / count,
            meanNegativeLogLikelihood: runs.reduce(0) { $0 + $1[i].meanNegativeLogLikelihood } / count,
            expectedCalibrationError: runs.reduce(0) { $0 + $1[i].expectedCalibrationError } / count)
        }
        curves.append(Curve(architecture: architecture, training: training, criterion: criterion, points: points))
      }
    }
    return curves
  }
}
