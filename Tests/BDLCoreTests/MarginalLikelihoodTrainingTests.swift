@testable import BDLCore
@testable import bdl
import Foundation
import Testing

@Suite("MAP trainer: resumable steps and masks")
struct MAPTrainerTests {
  @Test("epochs run one at a time take exactly the steps of one long run")
  func resumable() throws {
    let problem = try LaplaceProblem.classification()
    var options = TrainingOptions()
    options.epochs = 3
    options.batchSize = 5
    options.schedule = .cosine
    options.priorPrecision = [0.5]
    var whole = problem.model
    try whole.train(inputs: problem.x, targets: problem.targets, likelihood: CategoricalLikelihood(), options: options)
    var stepwise = problem.model
    var trainer = try MAPTrainer(model: stepwise, inputs: problem.x, targets: problem.targets, likelihood: CategoricalLikelihood(), options: options)
    for _ in 0..<3 { _ = try trainer.runEpoch(&stepwise, inputs: problem.x, targets: problem.targets, likelihood: CategoricalLikelihood()) }
    #expect(whole.parameters == stepwise.parameters)
  }

  @Test("masked parameters are zeroed and stay exactly zero; the others train")
  func mask() throws {
    let problem = try LaplaceProblem.classification()
    var options = TrainingOptions()
    options.epochs = 4
    options.batchSize = 4
    // Every hidden unit keeps a path to an output, so every kept parameter has a gradient.
    options.mask = (0..<problem.model.parameterCount).map { $0 % 4 == 1 ? 0 : 1 }
    var model = problem.model
    try model.train(inputs: problem.x, targets: problem.targets, likelihood: CategoricalLikelihood(), options: options)
    for i in model.parameters.indices {
      if i % 4 == 1 { #expect(model.parameters[i] == 0, "masked parameter \(i)") } else { #expect(model.parameters[i] != problem.model.parameters[i], "kept parameter \(i) trained") }
    }
    options.mask = [1, 0]
    #expect(throws: BDLError.self) { try model.train(inputs: problem.x, targets: problem.targets, likelihood: CategoricalLikelihood(), options: options) }
    options.mask = [Double](repeating: 0.5, count: model.parameterCount)
    #expect(throws: BDLError.self) { try model.train(inputs: problem.x, targets: problem.targets, likelihood: CategoricalLikelihood(), options: options) }
  }
}

@Suite("Unit-wise prior: δ_ij = a_i·b_j tuned by the evidence")
struct UnitwisePriorTests {
  @Test("the factor map covers Linear and Conv2d weights and biases")
  func layout() throws {
    let prior = try UnitwisePrior(shapes: [[2, 3], [2], [2, 3, 2, 2]])
    #expect(prior.factorCount == 5 + 2 + 5)
    let (first, second) = prior.factorIndices()
    #expect(first.count == prior.parameterCount)
    #expect(Array(first[0..<6]) == [0, 0, 0, 1, 1, 1] && Array(second[0..<6]) == [2, 3, 4, 2, 3, 4])
    #expect(Array(first[6..<8]) == [5, 6] && Array(second[6..<8]) == [-1, -1])
    // Conv (out 2, in 3, 2×2): the four kernel positions of channel pair (0, 1) share factors 7 and 10.
    #expect(Array(first[12..<16]) == [7, 7, 7, 7] && Array(second[12..<16]) == [10, 10, 10, 10])
    #expect(throws: BDLError.self) { try UnitwisePrior(shapes: [[2, 0]]) }
  }

  /// The evidence as a function of the unit factors t, for finite differences.
  private func evidence(_ laplace: Laplace, _ prior: UnitwisePrior, _ t: [Double]) throws -> Double {
    let map = try PriorParametrization(prior, groups: laplace.groups)
    var hp = laplace.hyperparameters
    hp.priorPrecision = map.priorPrecision(t[...])
    return try laplace.logMarginalLikelihood(hp)
  }

  @Test("the gradient in the unit factors matches central differences", arguments: [Laplace.Structure.full, .kron])
  func gradient(structure: Laplace.Structure) throws {
    let problem = try LaplaceProblem.classification()
    let laplace = try problem.fit(structure)
    let prior = try UnitwisePrior(shapes: problem.model.layers.flatMap(\.parameterShapes))
    let map = try PriorParametrization(prior, groups: laplace.groups)
    var rng = SeededGenerator(seed: 31)
    let t = (0..<map.count).map { _ in 0.3 * rng.normal() }
    var hp = laplace.hyperparameters
    hp.priorPrecision = map.priorPrecision(t[...])
    let analytic = map.pullBack(try laplace.logMarginalLikelihoodGradient(hp).logPriorPrecision)
    let ε = 1e-5
    let numeric = try (0..<map.count).map { k in
      var up = t, down = t
      up[k] += ε
      down[k] -= ε
      return (try evidence(laplace, prior, up) - evidence(laplace, prior, down)) / (2 * ε)
    }
    expectClose(analytic, numeric, tolerance: Tolerance.finiteDifference, "unit-wise gradient (\(structure))")
  }

  @Test("the optimum is stationary and at least as high as the layerwise optimum", arguments: [Laplace.Structure.full, .diagonal])
  func optimum(structure: Laplace.Structure) throws {
    let problem = try LaplaceProblem.classification()
    var layerwise = try problem.fit(structure)
    let grouped = try layerwise.optimizePriorPrecision(structure: .layerwise)
    var unitwise = try problem.fit(structure)
    let prior = try UnitwisePrior(shapes: problem.model.layers.flatMap(\.parameterShapes))
    let result = try unitwise.optimizePriorPrecision(unitwise: prior)
    #expect(result.converged && result.gradientNorm < 1e-8)
    #expect(result.hyperparameters.priorPrecision.count == problem.model.parameterCount)
    // Unit-wise contains every per-tensor prior (all a_i equal, all b_j equal), so it cannot lose.
    #expect(result.logMarginalLikelihood >= grouped.logMarginalLikelihood - 1e-9 * abs(grouped.logMarginalLikelihood))
    #expect(throws: BDLError.self) { try unitwise.optimizePriorPrecision(unitwise: UnitwisePrior(shapes: [[3, 3]])) }
  }
}

@Suite("Marginal-likelihood training")
struct MarginalLikelihoodTrainingTests {
  @Test("the evidence increases over hyperparameter steps and the best model is kept",
        arguments: [MarginalLikelihoodTraining.Prior.scalar, .layerwise, .diagonal, .unitwise])
  func increasing(prior: MarginalLikelihoodTraining.Prior) throws {
    var problem = try LaplaceProblem.classification()
    var options = MarginalLikelihoodTraining.Options()
    options.training.epochs = 12
    options.training.batchSize = 4
    options.training.learningRate = 0.02
    options.training.seed = 5
    options.prior = prior
    options.frequency = 2
    options.burnin = 2
    var reports: [MarginalLikelihoodTraining.Progress] = []
    let result = try MarginalLikelihoodTraining.train(
      &problem.model, inputs: problem.x, targets: problem.targets, likelihood: .classification, options: options
    ) { reports.append($0); return true }
    #expect(reports == result.history && reports.count == 12)
    let evidences = result.history.compactMap(\.logMarginalLikelihood)
    #expect(evidences.count == 5)  // epochs 4, 6, 8, 10, 12
    #expect(result.history[3].logMarginalLikelihood != nil && result.history[2].logMarginalLikelihood == nil)
    for (before, after) in zip(evidences, evidences.dropFirst()) {
      #expect(after > before, "evidence \(before) → \(after) (\(prior))")
    }
    // The kept model and posterior are those of the best step.
    let best = evidences.max()!
    #expect(result.history[result.bestEpoch - 1].logMarginalLikelihood == best)
    expectClose(result.logMarginalLikelihood, best, tolerance: 1e-12, "kept evidence")
    #expect(result.laplace.mean == problem.model.parameters)
  }

  @Test("regression tunes σ with δ and is reproducible for a seed")
  func regression() throws {
    let problem = try LaplaceProblem.regression()
    var options = MarginalLikelihoodTraining.Options()
    options.training.epochs = 6
    options.training.batchSize = 5
    options.training.learningRate = 0.01
    options.laplace.structure = .diagonal
    var a = problem.model, b = problem.model
    let first = try MarginalLikelihoodTraining.train(&a, inputs: problem.x, targets: problem.targets, likelihood: .regression, options: options)
    let second = try MarginalLikelihoodTraining.train(&b, inputs: problem.x, targets: problem.targets, likelihood: .regression, options: options)
    #expect(a.parameters == b.parameters && first.history == second.history)
    #expect(first.laplace.hyperparameters.sigma != 1)
    let stationary = try first.laplace.logMarginalLikelihoodGradient()
    #expect(abs(stationary.logSigma) < options.tolerance && stationary.logPriorPrecision.allSatisfy { abs($0) < options.tolerance })
  }

  @Test("a linear model on the diabetes data learns the closed-form optimum (δ, σ)")
  func diabetesClosedForm() throws {
    let data = try diabetes()
    let n = data.train.inputs.rows, d = data.train.inputs.columns
    // Targets in units of their standard deviation: the MAP objective is then well scaled for a
    // fixed learning rate whatever σ the evidence picks.
    let spread = (data.train.targets.reduce(0) { $0 + $1 * $1 } / Double(n)).squareRoot()
    let targets = data.train.targets.map { $0 / spread }
    let reference = try BayesianLinearRegression(inputs: data.train.inputs, targets: targets).optimizeHyperparameters(tolerance: 1e-10).posterior
    var model = try Sequential([Linear(d, 1, bias: false)], inputShape: [d])
    let x = try Tensor(shape: [n, d], elements: data.train.inputs.elements)
    let y = try Tensor(shape: [n, 1], elements: targets)
    var options = MarginalLikelihoodTraining.Options()
    options.training.epochs = 2000
    options.training.batchSize = n  // full batch: heavy-ball steps converge to the exact MAP of each prior
    options.training.optimizer = .sgd(momentum: 0.9)
    options.training.learningRate = 0.1
    options.training.priorPrecision = [1]
    options.prior = .scalar
    options.laplace.structure = .full
    options.frequency = 50
    options.tolerance = 1e-10
    let result = try MarginalLikelihoodTraining.train(&model, inputs: x, targets: .values(y), likelihood: .regression, options: options)
    let learned = result.laplace.hyperparameters
    // Alternating MAP and evidence steps has the joint optimum as its fixed point (the envelope
    // theorem: ∂E/∂δ at fixed θ* equals the total derivative), reached to the MAP solver's accuracy.
    expectClose([learned.priorPrecision[0], learned.sigma], [reference.priorPrecision, reference.sigma], tolerance: 1e-6, "(δ, σ)")
    expectClose(result.logMarginalLikelihood, reference.logMarginalLikelihood, tolerance: 1e-9, "evidence")
  }

  @Test("with one batch the NTK objective is the full-GGN evidence: the same steps as the Laplace objective")
  func ntkObjective() throws {
    let problem = try LaplaceProblem.classification()
    var options = MarginalLikelihoodTraining.Options()
    options.training.epochs = 6
    options.training.batchSize = 4
    options.training.learningRate = 0.02
    options.laplace.structure = .full
    options.frequency = 2
    options.tolerance = 1e-9
    var a = problem.model, b = problem.model
    let laplace = try MarginalLikelihoodTraining.train(&a, inputs: problem.x, targets: problem.targets, likelihood: .classification, options: options)
    options.objective = .ntkBound(.init())
    let bound = try MarginalLikelihoodTraining.train(&b, inputs: problem.x, targets: problem.targets, likelihood: .classification, options: options)
    // Same objective, same solver tolerance: the trajectories agree to the solver's accuracy.
    expectClose(bound.history.compactMap(\.logMarginalLikelihood), laplace.history.compactMap(\.logMarginalLikelihood), tolerance: 1e-7, "step values")
    expectClose(bound.laplace.hyperparameters.priorPrecision, laplace.laplace.hyperparameters.priorPrecision, tolerance: 1e-5, "learned δ")
    expectClose(bound.bestObjective, laplace.bestObjective, tolerance: 1e-7, "best objective")

    // Batches of 4 of 12: a lower bound at every step, maximised to stationarity.
    let nb = try NTKEvidenceBound(model: b, inputs: problem.x, targets: problem.targets, likelihood: .classification, options: .init(batchSize: 4))
    let start = LaplaceHyperparameters(priorPrecision: [1, 1, 1, 1])
    let optimum = try nb.maximize(from: start, tolerance: 1e-9)
    let startValue = try nb.evaluate(start).value
    #expect(optimum.converged && optimum.value >= startValue)
    var full = try LaplaceProblem(model: b, x: problem.x, targets: problem.targets, likelihood: .classification).fit(.full)
    try full.setHyperparameters(optimum.hyperparameters)
    let evidence = try full.logMarginalLikelihood()
    #expect(optimum.value <= evidence)
    options.prior = .diagonal
    #expect(throws: BDLError.self) {
      try MarginalLikelihoodTraining.train(&b, inputs: problem.x, targets: problem.targets, likelihood: .classification, options: options)
    }
  }

  @Test("bad options are refused before anything changes")
  func errors() throws {
    var problem = try LaplaceProblem.classification()
    let before = problem.model.parameters
    var options = MarginalLikelihoodTraining.Options()
    options.training.epochs = 1
    for change in [{ (o: inout MarginalLikelihoodTraining.Options) in o.frequency = 0 },
                   { $0.burnin = -1 }, { $0.laplace.subset = .lastLayer }, { $0.tolerance = .nan },
                   { $0.training.priorPrecision = [0] }, { $0.sigma = -1 }, { $0.maxHyperparameterIterations = 0 },
                   { $0.training.priorPrecision = [1, 2, 3] }, { $0.training.learningRate = -1 }] {
      var bad = options
      change(&bad)
      #expect(throws: BDLError.self) {
        try MarginalLikelihoodTraining.train(&problem.model, inputs: problem.x, targets: problem.targets, likelihood: .classification, options: bad)
      }
      #expect(problem.model.parameters == before)
    }
  }
}

@Suite("Layer-wise equivariance selection by the evidence")
struct EquivarianceSelectionTests {
  @Test("the evidence switches off the FC path on a translation-invariant task and the conv path on a positional one")
  func selection() throws {
    let shape = try EquivarianceSelection.run(.shape, trainCount: 600, testCount: 400, epochs: 20)
    let position = try EquivarianceSelection.run(.position, trainCount: 600, testCount: 400, epochs: 20)
    // Shape: the FC weight is pushed to a much stronger prior than the convolution's.
    #expect(shape.fullyConnectedWeight > 10 * shape.convolutionWeight, "shape task δ: \(shape.priorPrecision)")
    // Position: the convolution's weight is the one shrunk away.
    #expect(position.convolutionWeight > 10 * position.fullyConnectedWeight, "position task δ: \(position.priorPrecision)")
    // Both tasks are learned (chance is 0.25; this short run stops before the shape task converges).
    #expect(shape.testAccuracy > 0.6 && position.testAccuracy > 0.9, "accuracies \(shape.testAccuracy), \(position.testAccuracy)")
  }
}
