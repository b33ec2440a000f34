import BDLCore

// A Kronecker-factored posterior precision P = h·B⊗A + δI, eigendecomposed once.
let b = try Matrix([[2.0, 0.5], [0.5, 1.0]])
let a = try Matrix([[3.0, 1.0, 0.0], [1.0, 2.0, 0.2], [0.0, 0.2, 1.0]])
let factor = try KroneckerEigendecomposition(b: b, a: a)
let logdet = try factor.logDeterminant(scale: 1.0, shift: 0.1)
let variances = try factor.diagonalOfPower(-1, scale: 1.0, shift: 0.1)  // diag(P⁻¹), 2 × 3
print("log det P = \(logdet)")
print("posterior variances: \(variances.elements)")

// Bayesian linear regression with the evidence-optimal prior precision and noise.
let x = try Matrix([[1.0, 0.5], [0.2, 1.0], [1.5, -0.3], [0.7, 0.8], [-0.4, 1.2]])
let y = [1.1, 0.9, 1.2, 1.4, 0.6]
let model = try BayesianLinearRegression(inputs: x, targets: y)
let (posterior, _) = try model.optimizeHyperparameters()
print("evidence-optimal δ = \(posterior.priorPrecision), σ = \(posterior.sigma), log evidence = \(posterior.logMarginalLikelihood)")

// A network in PyTorch's parameter layout: XOR-like labels from two inputs.
var network = try Sequential([Linear(2, 16), Activation.tanh, Linear(16, 2)], inputShape: [2], seed: 0)
var random = RandomSource(seed: 1)
let points = (0..<200).map { _ in [2 * random.uniform() - 1, 2 * random.uniform() - 1] }
let inputs = try Tensor(shape: [200, 2], elements: points.flatMap { $0 })
let labels = points.map { $0[0] * $0[1] > 0 ? 1 : 0 }
var options = TrainingOptions()
options.learningRate = 0.01
options.epochs = 200
let history = try network.train(
  inputs: inputs, targets: .classes(labels), likelihood: CategoricalLikelihood(), options: options)
print("mean NLL after \(history.count) epochs: \(history.last!.meanNegativeLogLikelihood)")

// A K-FAC Laplace posterior around the trained network, its prior chosen by the evidence.
var laplace = try Laplace.fit(model: network, inputs: inputs, targets: .classes(labels), likelihood: .classification)
let optimum = try laplace.optimizePriorPrecision(structure: .layerwise)
let query = try Tensor(shape: [1, 2], elements: [0.5, -0.5])
let probabilities = try laplace.predictProbabilities(model: network, inputs: query, link: .probit)
print("log evidence \(optimum.logMarginalLikelihood) at δ = \(laplace.hyperparameters.priorPrecision)")
print("p(y | x = (0.5, -0.5)) = \(probabilities.elements)")

// Train a fresh network and one prior precision per parameter tensor by the evidence, then
// prune half of its weights by optimal posterior damage (P_ii·θ_i²).
var selected = try Sequential([Linear(2, 16), Activation.tanh, Linear(16, 2)], inputShape: [2], seed: 0)
var marglik = MarginalLikelihoodTraining.Options()
marglik.training = options
marglik.training.priorPrecision = [1]  // the evidence needs a proper prior to start from
marglik.frequency = 50
let trained = try MarginalLikelihoodTraining.train(&selected, inputs: inputs, targets: .classes(labels), likelihood: .classification, options: marglik)
let scores = try PruningScores.compute(.opd, laplace: trained.laplace, model: selected)
let mask = try PruningMask.unstructured(scores: scores, sparsity: 0.5, model: selected)
try selected.applyMask(mask)
print("evidence-trained: log evidence \(trained.logMarginalLikelihood), δ = \(trained.laplace.hyperparameters.priorPrecision)")

// Checks that the quickstart still computes what the README says it does.
precondition(abs(logdet - 5.184716) < 1e-6, "log det changed: \(logdet)")
precondition(posterior.gradientNorm < 1e-8, "not stationary")
precondition(history.last!.meanNegativeLogLikelihood < 0.2, "the network did not learn")
precondition(optimum.converged && probabilities.elements[0] > 0.5, "the posterior changed")
precondition(trained.bestEpoch > 0 && trained.logMarginalLikelihood.isFinite, "no hyperparameter step")
precondition(selected.parameters.filter { $0 == 0 }.count == 32, "half of the 64 weights pruned")
print("quickstart: 1 passed, 0 failed")
