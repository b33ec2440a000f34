@testable import BDLCore
import Testing
@testable import bdl

@Suite("Likelihoods and training")
struct TrainingTests {
  @Test("categorical: S·Sᵀ = diag(p) − p·pᵀ, gradient p − e_y matches finite differences")
  func categorical() throws {
    var rng = SeededGenerator(seed: 400)
    let f = try Tensor(shape: [2, 4], elements: rng.vector(8))
    let likelihood = CategoricalLikelihood()
    expectCategoricalRoot(likelihood.hessianSquareRoot(f), of: likelihood.probabilities(f))
    let targets = Targets.classes([1, 3])
    let g = try likelihood.outputGradient(f, targets)
    for i in 0..<8 {
      var plus = f, minus = f
      plus.elements[i] += 1e-6
      minus.elements[i] -= 1e-6
      let fd = (try likelihood.negativeLogLikelihood(plus, targets) - likelihood.negativeLogLikelihood(minus, targets)) / 2e-6
      #expect(abs(fd - g.elements[i]) < 1e-8, "entry \(i): \(fd) vs \(g.elements[i])")
    }
    #expect(throws: BDLError.self) { try likelihood.negativeLogLikelihood(f, .classes([0, 4])) }
    #expect(throws: BDLError.self) { try likelihood.negativeLogLikelihood(f, .classes([0])) }
  }

  @Test("categorical reduced root: C − 1 columns with R·Rᵀ = diag(p) − p·pᵀ, also at saturated p; S itself for C = 1")
  func reducedCategoricalRoot() throws {
    var rng = SeededGenerator(seed: 401)
    let likelihood = CategoricalLikelihood()
    // Random logits, then rows whose last or first class holds almost all the mass.
    let rows = rng.vector(12) + [0, 0, 0, 40] + [40, 0, 0, 0] + [-40, 0, 0, 0]
    let f = try Tensor(shape: [6, 4], elements: rows)
    let r = likelihood.reducedHessianSquareRoot(f)
    #expect(r.shape == [6, 3, 4])
    expectCategoricalRoot(r, of: likelihood.probabilities(f))
    let single = try Tensor(shape: [2, 1], elements: [0.3, -2])
    #expect(likelihood.reducedHessianSquareRoot(single) == likelihood.hessianSquareRoot(single))
    let gaussian = try GaussianLikelihood(sigma: 0.5)
    #expect(gaussian.reducedHessianSquareRoot(f) == gaussian.hessianSquareRoot(f))
  }

  @Test("Gaussian: NLL is the closed form, S = I/σ, gradient (f − y)/σ²")
  func gaussian() throws {
    let likelihood = try GaussianLikelihood(sigma: 0.5)
    let f = try Tensor(shape: [2, 2], elements: [1, 2, 3, 4])
    let y = try Tensor(shape: [2, 2], elements: [1.5, 2, 2, 4])
    let expected = 0.5 * (0.25 + 1) / 0.25 + 4 * logarithm(0.5 * (2 * Double.pi).squareRoot())
    expectClose(try likelihood.negativeLogLikelihood(f, .values(y)), expected, tolerance: 1e-14, "NLL")
    expectClose(try likelihood.outputGradient(f, .values(y)).elements, [-2, 0, 4, 0], tolerance: 1e-14, "gradient")
    #expect(likelihood.hessianSquareRoot(f).elements == [2, 0, 0, 2, 2, 0, 0, 2])
    #expect(throws: BDLError.self) { try GaussianLikelihood(sigma: 0) }
  }

  @Test("Monte-Carlo output vectors: E[v vᵀ] → Λ, closer with more samples")
  func monteCarlo() throws {
    let f = try Tensor(shape: [1, 3], elements: [0.3, -1, 0.8])
    let likelihood = CategoricalLikelihood()
    let p = likelihood.probabilities(f).elements
    func error(samples: Int) -> Double {
      var random = RandomSource(seed: 7)
      let v = likelihood.sampledOutputGradients(f, samples: samples, using: &random)
      var worst = 0.0
      for a in 0..<3 {
        for b in 0..<3 {
          var estimate = 0.0
          for k in 0..<samples { estimate += v.elements[k * 3 + a] * v.elements[k * 3 + b] }  // already /√K each
          worst = max(worst, abs(estimate - ((a == b ? p[a] : 0) - p[a] * p[b])))
        }
      }
      return worst
    }
    let (few, many) = (error(samples: 100), error(samples: 100_000))
    #expect(many < few, "\(many) should be below \(few)")
    #expect(many < 5 / 100_000.0.squareRoot(), "MC error \(many) beyond 5 standard errors")
  }

  @Test("a batch's loss gradient over 2, 3 or 7 concurrent shards equals the serial one; errors name batch positions", arguments: [2, 3, 7])
  func shardedLossGradient(workers: Int) throws {
    let (model, x, labels) = try cnnClassification(n: 7, seed: 402)
    let likelihood = CategoricalLikelihood()
    let serial = try model.lossGradient(x, labels, likelihood: likelihood, workers: 1)
    let sharded = try model.lossGradient(x, labels, likelihood: likelihood, workers: workers)
    expectClose(sharded.negativeLogLikelihood, serial.negativeLogLikelihood, tolerance: 1e-14, "NLL")
    expectClose(sharded.gradient, serial.gradient, tolerance: 1e-13, "gradient")
    #expect(try model.lossGradient(x, labels, likelihood: likelihood, workers: workers) == sharded, "reproducible")
    #expect(throws: BDLError.invalidArgument("label 3 of example 5 is outside [0, 3)")) {
      try model.lossGradient(x, .classes([0, 1, 2, 0, 1, 3, 2]), likelihood: likelihood, workers: workers)
    }
    #expect(throws: BDLError.self) { try model.lossGradient(x, .classes([0, 1]), likelihood: likelihood, workers: workers) }
  }

  @Test("the digits MLP reaches ≥ 95% test accuracy, bit-for-bit reproducibly")
  func digits() throws {
    let data = try DigitsClassification(table: NumericTable(contentsOf: repositoryRoot + "/data/digits.csv"))
    var epochs = 0
    let model = try data.train { _ in epochs += 1; return true }
    #expect(epochs == DigitsClassification.options().epochs)
    let evaluation = try data.evaluate(model)
    #expect(evaluation.accuracy >= 0.95, "test accuracy \(evaluation.accuracy)")
    let again = try data.train()
    #expect(again.parameters == model.parameters, "same seed, same parameters")
    let other = try data.train(seed: 1)
    #expect(other.parameters != model.parameters)
  }

  @Test("bad training input changes nothing; the callback can stop early")
  func badInput() throws {
    var model = try Sequential([Linear(3, 4), Activation.relu, Linear(4, 2)], inputShape: [3], seed: 5)
    let before = model.parameters
    let x = try Tensor(shape: [4, 3], elements: (0..<12).map(Double.init))
    var options = TrainingOptions()
    options.epochs = 3
    #expect(throws: BDLError.self) { try model.train(inputs: x, targets: .classes([0, 1, 2, 0]), likelihood: CategoricalLikelihood(), options: options) }
    #expect(throws: BDLError.self) { try model.train(inputs: x, targets: .classes([0, 1]), likelihood: CategoricalLikelihood(), options: options) }
    #expect(throws: BDLError.self) { try model.train(inputs: x, targets: .classes([0, 1, 1, 0]), likelihood: GaussianLikelihood(), options: options) }
    options.priorPrecision = [1, 2]
    #expect(throws: BDLError.self) { try model.train(inputs: x, targets: .classes([0, 1, 1, 0]), likelihood: CategoricalLikelihood(), options: options) }
    options.priorPrecision = [0]
    options.learningRate = -1
    #expect(throws: BDLError.self) { try model.train(inputs: x, targets: .classes([0, 1, 1, 0]), likelihood: CategoricalLikelihood(), options: options) }
    #expect(model.parameters == before)
    options.learningRate = 1e-2
    var calls = 0
    let history = try model.train(inputs: x, targets: .classes([0, 1, 1, 0]), likelihood: CategoricalLikelihood(), options: options) { _ in
      calls += 1
      return false
    }
    #expect(calls == 1 && history.count == 1)
    #expect(model.parameters != before)
    options.optimizer = .sgd(momentum: 0)  // steps of 1e200 × 1e150 overflow: θ is restored
    options.learningRate = 1e200
    let trained = model.parameters
    var huge = x
    for i in huge.elements.indices { huge.elements[i] *= 1e150 }
    #expect(throws: BDLError.self) { try model.train(inputs: huge, targets: .classes([0, 1, 1, 0]), likelihood: CategoricalLikelihood(), options: options) }
    #expect(model.parameters == trained)
  }
}

/// Checks that the vectors V (N, K, C) of every example satisfy Σ_k v·vᵀ = diag(p) − p·pᵀ.
func expectCategoricalRoot(_ v: Tensor, of p: Tensor, sourceLocation: SourceLocation = #_sourceLocation) {
  let (n, k, c) = (v.shape[0], v.shape[1], v.shape[2])
  for example in 0..<n {
    for a in 0..<c {
      for b in 0..<c {
        var sum = 0.0
        for vector in 0..<k { sum += v.elements[(example * k + vector) * c + a] * v.elements[(example * k + vector) * c + b] }
        let lambda = (a == b ? p.elements[example * c + a] : 0) - p.elements[example * c + a] * p.elements[example * c + b]
        #expect(abs(sum - lambda) < 1e-15, "example \(example), entry (\(a), \(b)): \(sum) vs \(lambda)", sourceLocation: sourceLocation)
      }
    }
  }
}
