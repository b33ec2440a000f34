@testable import BDLCore
import Foundation
import Testing

/// The evidence from a dense posterior precision P (Cholesky), DESIGN.md §4's formula literally.
func denseEvidence(
  precision: Matrix, theta: [Double], prior: [Double], mean: [Double], logLikelihood: Double
) throws -> Double {
  let logDetP = try Cholesky(precision).logDeterminant
  var logDetPrior = 0.0, quadratic = 0.0
  for p in prior.indices {
    logDetPrior += log(prior[p])
    quadratic += prior[p] * (theta[p] - mean[p]) * (theta[p] - mean[p])
  }
  return logLikelihood - 0.5 * (logDetP - logDetPrior) - 0.5 * quadratic
}

/// A small classifier and regressor at random parameters, with data.
struct LaplaceProblem {
  var model: Sequential
  let x: Tensor
  let targets: Targets
  let likelihood: LaplaceLikelihood

  static func classification(seed: UInt64 = 3) throws -> LaplaceProblem {
    var model = try Sequential([Linear(4, 6), Activation.tanh, Linear(6, 3)], inputShape: [4], seed: seed)
    try randomize(&model, seed: seed + 1)
    let x = randomBatch(model, n: 12, seed: seed + 2)
    return LaplaceProblem(model: model, x: x, targets: .classes((0..<12).map { $0 % 3 }), likelihood: .classification)
  }

  /// A CNN (two convolutions, R > 1 positions) and a sequence model (a Linear at T positions).
  static func weightSharing(seed: UInt64 = 11) throws -> [LaplaceProblem] {
    var cnn = try Sequential(
      [Conv2d(2, 3, kernelSize: 3, padding: 1), Activation.gelu, AvgPool2d(2), Conv2d(3, 2, kernelSize: 2, stride: 2),
       Activation.tanh, Flatten(), Linear(2 * 2 * 2, 3)],
      inputShape: [2, 8, 8], seed: seed)
    try randomize(&cnn, seed: seed + 1)
    var sequence = try Sequential([Linear(4, 5), Activation.relu, MeanOverSequence(), Linear(5, 3)], inputShape: [6, 4], seed: seed)
    try randomize(&sequence, seed: seed + 2)
    return [cnn, sequence].map { model in
      LaplaceProblem(model: model, x: randomBatch(model, n: 7, seed: seed + 3), targets: .classes((0..<7).map { $0 % 3 }), likelihood: .classification)
    }
  }

  static func regression(seed: UInt64 = 7) throws -> LaplaceProblem {
    var model = try Sequential([Linear(3, 5), Activation.relu, Linear(5, 2)], inputShape: [3], seed: seed)
    try randomize(&model, seed: seed + 1)
    let x = randomBatch(model, n: 10, seed: seed + 2)
    var rng = SeededGenerator(seed: seed + 3)
    let y = try Tensor(shape: [10, 2], elements: rng.vector(20))
    return LaplaceProblem(model: model, x: x, targets: .values(y), likelihood: .regression)
  }

  func fit(_ structure: Laplace.Structure, subset: Laplace.Subset = .all, damped: Bool = false, hp: LaplaceHyperparameters = .init()) throws -> Laplace {
    var options = Laplace.FitOptions()
    options.structure = structure
    options.subset = subset
    options.dampedKronecker = damped
    options.batchSize = 5  // several batches
    return try Laplace.fit(model: model, inputs: x, targets: targets, likelihood: likelihood, options: options, hyperparameters: hp)
  }

  /// The dense GGN of all parameters.
  func ggn() throws -> Matrix { try denseGGN(model, x, classification: likelihood == .classification) }

  /// log p(D|θ*) from the network's outputs.
  func logLikelihood(_ hp: LaplaceHyperparameters) throws -> Double {
    let f = try model.forward(x)
    switch targets {
    case .classes:
      return -(try CategoricalLikelihood().negativeLogLikelihood(f, targets)) / hp.temperature
    case .values:
      let g = try GaussianLikelihood(sigma: hp.sigma * hp.temperature.squareRoot())
      let nll = try g.negativeLogLikelihood(f, targets)
      // −h·L − N·C·log(σ√2π): the Gaussian NLL at σ√T, with the constant at σ.
      let count = Double(f.elements.count)
      return -nll + count * log(hp.sigma * hp.temperature.squareRoot()) - count * log(hp.sigma)
    }
  }
}

/// Hyperparameter sets covering every prior shape, a prior mean and a temperature.
func hyperparameterCases(tensors: Int, parameters: Int, regression: Bool) -> [(String, LaplaceHyperparameters)] {
  var rng = SeededGenerator(seed: 77)
  let sigma = regression ? 0.7 : 1
  return [
    ("scalar", LaplaceHyperparameters(priorPrecision: [0.8], sigma: sigma)),
    ("layerwise", LaplaceHyperparameters(priorPrecision: (0..<tensors).map { _ in 0.3 + 2 * rng.uniform() }, sigma: sigma)),
    ("diagonal", LaplaceHyperparameters(priorPrecision: (0..<parameters).map { _ in 0.3 + 2 * rng.uniform() }, sigma: sigma)),
    ("mean and temperature", LaplaceHyperparameters(priorPrecision: [1.5], priorMean: [0.3], sigma: regression ? 1.3 : 1, temperature: 2)),
  ]
}

/// The dense h·G of a structure (K-FAC: its block-diagonal matrix).
func structureCurvature(_ laplace: Laplace) throws -> Matrix {
  switch laplace.curvature {
  case .full(let g): return g
  case .diagonal(let g): return Matrix.diagonal(g)
  case .kron(let k): return try k.dense()
  }
}

/// The dense posterior precision: h·G + diag(δ) — for K-FAC with a prior that varies inside a
/// block, h·G + Q·diag(δ̃)·Qᵀ with δ̃ = diag(Qᵀ·diag(Δ)·Q) per block (the eigenbasis projection).
func densePrecision(_ laplace: Laplace, scale h: Double, prior δ: [Double]) throws -> Matrix {
  var p = try structureCurvature(laplace)
  try p.scale(by: h)
  guard case .kron(let kfac) = laplace.curvature else {
    for i in δ.indices { p[i, i] += δ[i] }
    return p
  }
  for block in kfac.blocks {
    let q = kroneckerProduct(try block.factors.b.eigenvectors, try block.factors.a.eigenvectors)
    let range = block.parameters
    var rotatedPrior = [Double](repeating: 0, count: range.count)
    for k in 0..<range.count {
      for m in 0..<range.count { rotatedPrior[k] += q[m, k] * q[m, k] * δ[range.lowerBound + m] }
    }
    for i in 0..<range.count {
      for j in 0..<range.count {
        var total = 0.0
        for k in 0..<range.count { total += q[i, k] * rotatedPrior[k] * q[j, k] }
        p[range.lowerBound + i, range.lowerBound + j] += total
      }
    }
  }
  return p
}

func kroneckerProduct(_ b: Matrix, _ a: Matrix) -> Matrix {
  var result = Matrix(rows: b.rows * a.rows, columns: b.columns * a.columns)
  for i in 0..<b.rows {
    for j in 0..<b.columns {
      for k in 0..<a.rows {
        for l in 0..<a.columns { result[i * a.rows + k, j * a.columns + l] = b[i, j] * a[k, l] }
      }
    }
  }
  return result
}

/// Spreads a prior vector of any shape over the parameters (an independent copy of the rule).
func perParameter(_ values: [Double], tensorSizes: [Int]) -> [Double] {
  let total = tensorSizes.reduce(0, +)
  if values.count == 1 { return [Double](repeating: values[0], count: total) }
  if values.count == total { return values }
  return zip(values, tensorSizes).flatMap { [Double](repeating: $0, count: $1) }
}

@Suite("Laplace: evidence, gradients, optimum, predictive")
struct LaplaceTests {
  static let structures: [Laplace.Structure] = [.full, .diagonal, .kron]

  @Test("the evidence equals the dense formula for every structure, prior shape, mean and temperature", arguments: [false, true])
  func evidenceMatchesDense(regression: Bool) throws {
    let problem = try regression ? LaplaceProblem.regression() : LaplaceProblem.classification()
    for structure in Self.structures {
      let laplace = try problem.fit(structure)
      for (name, hp) in hyperparameterCases(tensors: laplace.tensorSizes.count, parameters: laplace.parameterCount, regression: regression) {
        let h = Laplace.likelihoodScale(hp, problem.likelihood)
        let δ = perParameter(hp.priorPrecision, tensorSizes: laplace.tensorSizes)
        let expected = try denseEvidence(
          precision: densePrecision(laplace, scale: h, prior: δ), theta: problem.model.parameters,
          prior: δ, mean: perParameter(hp.priorMean, tensorSizes: laplace.tensorSizes), logLikelihood: problem.logLikelihood(hp))
        expectClose(try laplace.logMarginalLikelihood(hp), expected, tolerance: Tolerance.relativeDense, "\(structure) \(name)")
      }
    }
  }

  @Test("the full structure's curvature is the exact GGN; diag its diagonal; last layer its last block")
  func curvatureIsExact() throws {
    let problem = try LaplaceProblem.classification()
    let ggn = try problem.ggn()
    guard case .full(let g) = try problem.fit(.full).curvature, case .diagonal(let d) = try problem.fit(.diagonal).curvature,
      case .full(let last) = try problem.fit(.full, subset: .lastLayer).curvature
    else { Issue.record("wrong curvature kinds"); return }
    expectClose(g.elements, ggn.elements, tolerance: Tolerance.relativeDense, "full GGN")
    expectClose(d, ggn.diagonalEntries, tolerance: Tolerance.relativeDense, "GGN diagonal")
    let start = problem.model.parameterOffsets[2], p = problem.model.parameterCount
    var block: [Double] = []
    for i in start..<p { for j in start..<p { block.append(ggn[i, j]) } }
    expectClose(last.elements, block, tolerance: Tolerance.relativeDense, "last-layer GGN")
  }

  @Test("evidence gradients equal central finite differences", arguments: [false, true])
  func gradients(regression: Bool) throws {
    let problem = try regression ? LaplaceProblem.regression() : LaplaceProblem.classification()
    for (structure, damped) in [(Laplace.Structure.full, false), (.diagonal, false), (.kron, false), (.kron, true)] {
      for subset in [Laplace.Subset.all, .lastLayer] {
        let laplace = try problem.fit(structure, subset: subset, damped: damped)
        for (name, hp) in hyperparameterCases(tensors: laplace.tensorSizes.count, parameters: laplace.parameterCount, regression: regression) {
          if damped && hp.priorPrecision.count == laplace.parameterCount { continue }  // damped needs per-block δ
          let analytic = try laplace.logMarginalLikelihoodGradient(hp)
          let ε = 1e-5
          var numeric: [Double] = []
          for k in hp.priorPrecision.indices {
            var up = hp, down = hp
            up.priorPrecision[k] *= exp(ε)
            down.priorPrecision[k] *= exp(-ε)
            numeric.append((try laplace.logMarginalLikelihood(up) - laplace.logMarginalLikelihood(down)) / (2 * ε))
          }
          let what = "\(structure)\(damped ? " damped" : "") \(subset) \(name)"
          expectClose(analytic.logPriorPrecision, numeric, tolerance: Tolerance.finiteDifference, "\(what): ∂/∂log δ")
          var up = hp, down = hp
          up.sigma *= exp(ε)
          down.sigma *= exp(-ε)
          let numericSigma = (try laplace.logMarginalLikelihood(up) - laplace.logMarginalLikelihood(down)) / (2 * ε)
          expectClose(analytic.logSigma, numericSigma, tolerance: Tolerance.finiteDifference, "\(what): ∂/∂log σ")
          expectClose(analytic.logMarginalLikelihood, try laplace.logMarginalLikelihood(hp), tolerance: 1e-14, "\(what): value")
        }
      }
    }
  }

  @Test("for a linear-Gaussian model the Laplace evidence is the closed-form Bayesian linear regression evidence")
  func linearGaussianIsExact() throws {
    var rng = SeededGenerator(seed: 41)
    let inputs = rng.matrix(30, 4)
    let y = rng.vector(30)
    let blr = try BayesianLinearRegression(inputs: inputs, targets: y)
    let (δ, σ) = (0.7, 0.4)
    let posterior = try blr.posterior(priorPrecision: δ, sigma: σ)
    var model = try Sequential([Linear(4, 1, bias: false)], inputShape: [4])
    try model.setParameters(posterior.mean)
    let x = Tensor(inputs)
    for structure in Self.structures where structure != .diagonal {
      var options = Laplace.FitOptions()
      options.structure = structure
      let laplace = try Laplace.fit(
        model: model, inputs: x, targets: .values(try Tensor(shape: [30, 1], elements: y)), likelihood: .regression,
        options: options, hyperparameters: .init(priorPrecision: [δ], sigma: σ))
      expectClose(try laplace.logMarginalLikelihood(), posterior.logMarginalLikelihood, tolerance: 1e-12, "\(structure)")
    }
  }

  @Test("optimising the prior (and σ) reaches a stationary point of the evidence", arguments: [false, true])
  func optimumIsStationary(regression: Bool) throws {
    let problem = try regression ? LaplaceProblem.regression() : LaplaceProblem.classification()
    for structure in Self.structures {
      for prior in PriorStructure.allCases {
        var laplace = try problem.fit(structure)
        let before = try laplace.logMarginalLikelihood()
        let result = try laplace.optimizePriorPrecision(structure: prior, optimizeSigma: regression)
        let what = "\(structure) \(prior)"
        #expect(result.converged, "\(what): gradient norm \(result.gradientNorm) after \(result.iterations) iterations")
        #expect(result.logMarginalLikelihood >= before, "\(what)")
        let g = try laplace.logMarginalLikelihoodGradient()
        let interior = zip(g.logPriorPrecision, laplace.hyperparameters.priorPrecision).filter { $0.1 > 1.0001e-10 && $0.1 < 0.9999e10 }
        let norm = (interior.reduce(0) { $0 + $1.0 * $1.0 } + g.logSigma * g.logSigma).squareRoot()
        #expect(norm < 1e-8, "\(what): gradient norm \(norm)")
        #expect(laplace.hyperparameters.priorPrecision.count == prior.countForTests(laplace))
        // A concave-in-log-δ objective: nudging any coordinate lowers the evidence.
        var nudged = laplace.hyperparameters
        nudged.priorPrecision[0] *= 1.01
        #expect(try laplace.logMarginalLikelihood(nudged) <= result.logMarginalLikelihood + 1e-12)
      }
    }
  }

  @Test("the closed-form evidence Hessian equals central differences of the analytic gradient")
  func exactHessian() throws {
    let problem = try LaplaceProblem.regression()
    for structure in [Laplace.Structure.diagonal, .kron] {
      let laplace = try problem.fit(structure)
      for prior in [[0.7], [0.4, 2.0, 1.1, 3.0]] {
        let hp = LaplaceHyperparameters(priorPrecision: prior, priorMean: [0.1], sigma: 0.8, temperature: 1.3)
        let m = prior.count + 1
        let map = PriorParametrization(prior.count == 1 ? .scalar : .layerwise, groups: laplace.groups)
        guard let hessian = try laplace.exactHessian(try laplace.evaluate(hp), parametrization: map, withSigma: true) else {
          Issue.record("\(structure): no closed form"); continue
        }
        func gradient(_ t: [Double]) throws -> [Double] {
          var moved = hp
          moved.priorPrecision = t[0..<prior.count].map { exp($0) }
          moved.sigma = exp(t[prior.count])
          let g = try laplace.logMarginalLikelihoodGradient(moved)
          return g.logPriorPrecision + [g.logSigma]
        }
        let t = prior.map { log($0) } + [log(0.8)]
        let ε = 1e-5
        var numeric: [Double] = []
        for j in 0..<m {
          for k in 0..<m {
            var up = t, down = t
            up[k] += ε
            down[k] -= ε
            numeric.append((try gradient(up)[j] - gradient(down)[j]) / (2 * ε))
          }
        }
        expectClose(hessian.elements, numeric, tolerance: Tolerance.finiteDifference, "\(structure) \(prior.count) prior values")
      }
    }
  }

  @Test("the functional variance is J P⁻¹ Jᵀ; probit and regression predictives follow from it")
  func predictive() throws {
    for problem in [try LaplaceProblem.classification(), try LaplaceProblem.regression()] + (try LaplaceProblem.weightSharing()) {
      let xTest = randomBatch(problem.model, n: 4, seed: 99)
      let j = try problem.model.jacobian(xTest)
      let c = problem.model.outputCount, p = problem.model.parameterCount
      for structure in Self.structures {
        let hp = LaplaceHyperparameters(priorPrecision: [0.9], sigma: 0.8)
        let laplace = try problem.fit(structure, hp: hp)
        let h = Laplace.likelihoodScale(hp, problem.likelihood)
        let precision = try densePrecision(laplace, scale: h, prior: [Double](repeating: 0.9, count: p))
        let solved = try Cholesky(precision).solve(j.transposed)  // P⁻¹ Jᵀ
        let expected = try j.multiplied(by: solved)
        let (f, variance) = try laplace.functionalVariance(model: problem.model, inputs: xTest)
        expectClose(f.elements, try problem.model.forward(xTest).elements, tolerance: 1e-14, "\(structure) mean")
        var blocks: [Double] = []
        for n in 0..<4 { for a in 0..<c { for b in 0..<c { blocks.append(expected[n * c + a, n * c + b]) } } }
        expectClose(variance.elements, blocks, tolerance: Tolerance.relativeDense, "\(structure) Σ_f")
        if problem.likelihood == .classification {
          let probit = try laplace.predictProbabilities(model: problem.model, inputs: xTest, link: .probit)
          for n in 0..<4 {
            let scaled = (0..<c).map { f.elements[n * c + $0] / (1 + Double.pi / 8 * variance.elements[(n * c + $0) * c + $0]).squareRoot() }
            let e = scaled.map { exp($0 - scaled.max()!) }
            expectClose(Array(probit.elements[(n * c)..<((n + 1) * c)]), e.map { $0 / e.reduce(0, +) }, tolerance: 1e-14, "probit")
          }
          let bridge = try laplace.predictProbabilities(model: problem.model, inputs: xTest, link: .bridge)
          for n in 0..<4 { expectClose(Array(bridge.elements[(n * c)..<((n + 1) * c)]).reduce(0, +), 1, tolerance: 1e-14, "bridge sums to 1") }
          // Monte Carlo converges to E[softmax(f)]: more samples land closer to a 50k-sample value.
          guard problem.model.layers.count == 3 else { continue }  // once (the MLP) is enough
          let reference = try laplace.predictProbabilities(model: problem.model, inputs: xTest, link: .monteCarlo(samples: 50_000, seed: 5))
          let coarse = try laplace.predictProbabilities(model: problem.model, inputs: xTest, link: .monteCarlo(samples: 100, seed: 6))
          let fine = try laplace.predictProbabilities(model: problem.model, inputs: xTest, link: .monteCarlo(samples: 10_000, seed: 7))
          #expect(worstRelativeError(fine.elements, reference.elements).error < worstRelativeError(coarse.elements, reference.elements).error)
        } else {
          let (_, predictive) = try laplace.predictRegression(model: problem.model, inputs: xTest)
          for i in 0..<(4 * c * c) where (i / c) % c == i % c {
            expectClose(predictive.elements[i], variance.elements[i] + 0.64, tolerance: 1e-14, "σ² on the diagonal")
          }
        }
      }
    }
  }

  @Test("samples have mean θ* and covariance P⁻¹; log_prob is the Gaussian density")
  func sampling() throws {
    let problem = try LaplaceProblem.regression()
    for structure in Self.structures {
      for subset in [Laplace.Subset.all, .lastLayer] {
        let laplace = try problem.fit(structure, subset: subset, hp: .init(priorPrecision: [2], sigma: 0.8))
        let p = laplace.parameterCount
        let draws = try laplace.sample(count: 40_000, seed: 11)
        let again = try laplace.sample(count: 3, seed: 11)
        #expect(Array(draws.elements[0..<(3 * p)]) == again.elements, "seeded draws are reproducible")
        let hp = laplace.hyperparameters
        let precision = try Cholesky(densePrecision(laplace, scale: Laplace.likelihoodScale(hp, .regression), prior: [Double](repeating: 2, count: p)))
        let inverse = try precision.inverse()
        // Normalised error of the sample covariance: entries have standard error √((Σ_ii Σ_jj + Σ_ij²)/n).
        var worst = 0.0
        var centred = draws
        for r in 0..<draws.rows { for q in 0..<p { centred.elements[r * p + q] -= laplace.mean[q] } }
        let covariance = try centred.gram()
        for i in 0..<p {
          for j in 0..<p {
            let estimate = covariance[i, j] / Double(draws.rows)
            let standardError = ((inverse[i, i] * inverse[j, j] + inverse[i, j] * inverse[i, j]) / Double(draws.rows)).squareRoot()
            worst = max(worst, abs(estimate - inverse[i, j]) / standardError)
          }
        }
        #expect(worst < 5.5, "\(structure) \(subset): worst normalised covariance error \(worst)")
        // log N(θ; θ*, P⁻¹) at a draw, against the dense formula.
        let theta = Array(draws.elements[0..<p])
        let r = zip(theta, laplace.mean).map { $0 - $1 }
        let pr = try precision.lower.multiplied(by: try precision.lower.multiplied(by: r, transposingSelf: true))
        let expected = -0.5 * (try dot(r, pr)) + 0.5 * precision.logDeterminant - 0.5 * Double(p) * log(2 * Double.pi)
        expectClose(try laplace.logProbability(theta), expected, tolerance: 1e-10, "\(structure) \(subset) log_prob")
      }
    }
  }

  @Test("save and load: the same posterior back; damaged files are refused")
  func saveAndLoad() throws {
    let problem = try LaplaceProblem.classification()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bdlcore-laplace-\(getpid())").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let xTest = randomBatch(problem.model, n: 3, seed: 8)
    for structure in Self.structures {
      for subset in [Laplace.Subset.all, .lastLayer] {
        var laplace = try problem.fit(structure, subset: subset)
        _ = try laplace.optimizePriorPrecision(structure: .layerwise)
        let path = folder + "/posterior-\(structure)-\(subset).bdl"
        try LaplaceFile.save(laplace, to: path)
        let loaded = try LaplaceFile.load(from: path)
        #expect(loaded.hyperparameters == laplace.hyperparameters)
        #expect(try loaded.logMarginalLikelihood() == laplace.logMarginalLikelihood(), "\(structure) \(subset)")
        #expect(try loaded.functionalVariance(model: problem.model, inputs: xTest).variance == laplace.functionalVariance(model: problem.model, inputs: xTest).variance)
        #expect(LaplaceFile.encode(loaded) == LaplaceFile.encode(laplace))
      }
    }
    let bytes = LaplaceFile.encode(try problem.fit(.kron))
    for cut in [0, 7, 12, bytes.count / 2, bytes.count - 1] {
      #expect(throws: BDLError.self, "truncated at \(cut)") { _ = try LaplaceFile.decode(Array(bytes[0..<cut])) }
    }
    for position in [3, 20, bytes.count / 2, bytes.count - 3] {
      var damaged = bytes
      damaged[position] ^= 0x10
      #expect(throws: BDLError.self, "byte \(position) flipped") { _ = try LaplaceFile.decode(damaged) }
    }
    #expect(throws: BDLError.self) { _ = try LaplaceFile.decode(KFACAccumulatorFile.encode([])) }
    #expect(throws: BDLError.self) { _ = try LaplaceFile.load(from: folder + "/missing.bdl") }
    #expect(throws: BDLError.self) { try LaplaceFile.save(try problem.fit(.diagonal), to: folder + "/no/such/folder/x.bdl") }
  }

  @Test("bad input: a clear error, and the posterior is unchanged")
  func badInput() throws {
    let problem = try LaplaceProblem.regression()
    var laplace = try problem.fit(.kron)
    let before = laplace.hyperparameters
    #expect(throws: BDLError.self) { try laplace.setHyperparameters(.init(priorPrecision: [0])) }
    #expect(throws: BDLError.self) { try laplace.setHyperparameters(.init(priorPrecision: [-1])) }
    #expect(throws: BDLError.self) { try laplace.setHyperparameters(.init(priorPrecision: [.nan])) }
    #expect(throws: BDLError.self) { try laplace.setHyperparameters(.init(priorPrecision: [1, 2, 3])) }
    #expect(throws: BDLError.self) { try laplace.setHyperparameters(.init(sigma: 0)) }
    #expect(throws: BDLError.self) { try laplace.setHyperparameters(.init(sigma: .infinity)) }
    #expect(throws: BDLError.self) { try laplace.setHyperparameters(.init(temperature: -1)) }
    #expect(throws: BDLError.self) { try laplace.setHyperparameters(.init(priorMean: [0, 1])) }
    #expect(throws: BDLError.self) { _ = try laplace.logMarginalLikelihood(.init(priorPrecision: [0])) }
    #expect(laplace.hyperparameters == before)
    let other = try Sequential([Linear(3, 4), Activation.relu, Linear(4, 2)], inputShape: [3])
    #expect(throws: BDLError.self) { _ = try laplace.functionalVariance(model: other, inputs: problem.x) }
    #expect(throws: BDLError.self) { _ = try laplace.predictProbabilities(model: problem.model, inputs: problem.x) }
    #expect(throws: BDLError.self) { _ = try laplace.logProbability([1, 2]) }
    #expect(throws: BDLError.self) { _ = try laplace.sample(count: -1, seed: 0) }
    #expect(throws: BDLError.self) {
      _ = try Laplace(curvature: .diagonal([1, -1]), mean: [0, 0], loss: 1, dataCount: 3, outputCount: 1, likelihood: .regression)
    }
    #expect(throws: BDLError.self) {
      _ = try Laplace(curvature: .diagonal([1, 1]), mean: [0, .nan], loss: 1, dataCount: 3, outputCount: 1, likelihood: .regression)
    }
    #expect(throws: BDLError.self) {
      _ = try Laplace(curvature: .full(Matrix.identity(3)), mean: [0, 0], loss: 1, dataCount: 3, outputCount: 1, likelihood: .regression)
    }
    var damped = try problem.fit(.kron, damped: true)
    #expect(throws: BDLError.self) { try damped.setHyperparameters(.init(priorPrecision: (0..<damped.parameterCount).map { 1 + Double($0) })) }
  }
}

extension PriorStructure {
  func countForTests(_ laplace: Laplace) -> Int {
    switch self {
    case .scalar: 1
    case .layerwise: laplace.tensorSizes.count
    case .diagonal: laplace.parameterCount
    }
  }
}

