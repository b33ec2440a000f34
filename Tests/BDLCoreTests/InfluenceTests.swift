@testable import BDLCore
import Foundation
import Testing

/// The per-example gradients J_nᵀ v_n (N × P) for one cotangent v_n (C) per example, from the
/// Jacobian: an independent route to ∇m and ∇ℓ.
func gradientsFromJacobian(_ model: Sequential, _ x: Tensor, cotangents v: [Double]) throws -> Matrix {
  let j = try model.jacobian(x)
  let c = model.outputCount, p = model.parameterCount
  var rows = Matrix(rows: x.count, columns: p)
  for n in 0..<x.count {
    for k in 0..<c {
      for q in 0..<p { rows.elements[n * p + q] += v[n * c + k] * j.elements[(n * c + k) * p + q] }
    }
  }
  return rows
}

/// p − e_y per example (the cross-entropy's output gradient).
func crossEntropyCotangents(_ model: Sequential, _ x: Tensor, _ labels: [Int]) throws -> [Double] {
  var p = CategoricalLikelihood().probabilities(try model.forward(x)).elements
  let c = model.outputCount
  for (n, y) in labels.enumerated() { p[n * c + y] -= 1 }
  return p
}

/// An L2-regularised multinomial logistic regression trained to its exact optimum by Newton's
/// method (for a linear model the GGN is the Hessian): θ ← θ − (G + δI)⁻¹(∇Σℓ + δθ).
func newtonLogisticRegression(_ model: inout Sequential, _ x: Tensor, _ labels: [Int], prior δ: Double) throws {
  for _ in 0..<30 {
    let (_, gradient) = try model.lossGradient(x, .classes(labels), likelihood: CategoricalLikelihood())
    let full = zip(gradient, model.parameters).map { $0 + δ * $1 }
    if full.map(abs).max()! < 1e-13 { return }
    let g = try DenseGGN.fit(model: model, inputs: x, targets: .classes(labels), likelihood: CategoricalLikelihood())
    let step = try g.applyPower(-1, to: full, scale: 1, damping: δ)
    try model.setParameters(zip(model.parameters, step).map { $0 - $1 })
  }
}

@Suite("Influence: dense formula, retraining, self-influence, evaluation")
struct InfluenceTests {
  static func problem() throws -> (Sequential, Tensor, [Int], Tensor, [Int]) {
    var model = try Sequential([Linear(4, 5), Activation.tanh, Linear(5, 3)], inputShape: [4], seed: 3)
    try randomize(&model, seed: 4)
    let x = randomBatch(model, n: 14, seed: 5), xq = randomBatch(model, n: 3, seed: 6)
    return (model, x, (0..<14).map { $0 % 3 }, xq, [2, 0, 1])
  }

  @Test("scores equal ∇mᵀ (G + λI)⁻¹ ∇ℓ computed densely, for every curvature and measurement")
  func denseFormula() throws {
    let (model, x, labels, xq, queryLabels) = try Self.problem()
    let train = try gradientsFromJacobian(model, x, cotangents: try crossEntropyCotangents(model, x, labels))
    let lossQueries = try gradientsFromJacobian(model, xq, cotangents: try crossEntropyCotangents(model, xq, queryLabels))
    let p = model.parameterCount
    for curvature in Influence.Curvature.allCases {
      for damping in [Influence.Damping.absolute(0.3), .relative(0.1)] {
        let influence = try Influence.fit(
          model: model, inputs: x, targets: .classes(labels), likelihood: .classification, curvature: curvature, damping: damping, batchSize: 4)
        // The dense G of the structure, + diag(λ).
        var g: Matrix
        switch curvature {
        case .ggn: g = try denseGGN(model, x, classification: true)
        case .diagonal: g = Matrix.diagonal(try denseGGN(model, x, classification: true).diagonalEntries)
        case .kfac: g = try KFAC.fit(model: model, inputs: x, targets: .classes(labels), likelihood: CategoricalLikelihood()).dense()
        case .ekfac: g = try KFAC.fitEigenvalueCorrected(model: model, inputs: x, targets: .classes(labels), likelihood: CategoricalLikelihood()).dense()
        case .identity: g = Matrix(rows: p, columns: p)
        }
        if curvature == .identity {
          g = Matrix.identity(p)
        } else {
          for i in 0..<p { g[i, i] += influence.damping[i] }
        }
        let expected = try lossQueries.multiplied(by: try Cholesky(g).solve(train.transposed))
        let scores = try influence.scores(model: model, queries: xq, targets: .classes(queryLabels))
        expectClose(scores.elements, expected.elements, tolerance: 1e-10, "\(curvature) \(damping)")
        // Self-influence is the diagonal of the training-set score matrix.
        let selfScores = try influence.selfInfluence(model: model)
        let trainScores = try influence.scores(model: model, queries: x, targets: .classes(labels))
        expectClose(selfScores, (0..<x.count).map { trainScores[$0, $0] }, tolerance: 1e-10, "\(curvature) self-influence")
      }
    }
  }

  @Test("measurements: log-probability is minus the loss; margin and cotangents use their own ∂m/∂f")
  func measurements() throws {
    let (model, x, labels, xq, queryLabels) = try Self.problem()
    let influence = try Influence.fit(model: model, inputs: x, targets: .classes(labels), likelihood: .classification, curvature: .kfac, damping: .absolute(0.5))
    let loss = try influence.scores(model: model, queries: xq, targets: .classes(queryLabels), measurement: .loss)
    let logProbability = try influence.scores(model: model, queries: xq, targets: .classes(queryLabels), measurement: .logProbability)
    expectClose(logProbability.elements, loss.elements.map { -$0 }, tolerance: 1e-14, "log p = −ℓ")
    let f = try model.forward(xq)
    var cotangent = Tensor(shape: [3, 3])
    for q in 0..<3 {
      let y = queryLabels[q]
      let other = (0..<3).filter { $0 != y }.max { f.elements[q * 3 + $0] < f.elements[q * 3 + $1] }!
      cotangent.elements[q * 3 + y] = 1
      cotangent.elements[q * 3 + other] = -1
    }
    let margin = try influence.scores(model: model, queries: xq, targets: .classes(queryLabels), measurement: .margin)
    let viaCotangent = try influence.scores(model: model, queries: xq, targets: nil, measurement: .cotangent(cotangent))
    expectClose(margin.elements, viaCotangent.elements, tolerance: 1e-14, "margin = its cotangent")
  }

  @Test("for L2-regularised logistic regression, exact-Hessian influence predicts leave-one-out retraining")
  func leaveOneOut() throws {
    var rng = SeededGenerator(seed: 21)
    let n = 200, d = 3, δ = 1.0
    var x = Tensor(shape: [n, d])
    var labels: [Int] = []
    for i in 0..<n {
      for k in 0..<d { x.elements[i * d + k] = rng.normal() }
      let logit = 1.5 * x.elements[i * d] - x.elements[i * d + 1] + 0.5 * rng.normal()
      labels.append(logit > 0 ? 1 : 0)
    }
    var model = try Sequential([Linear(d, 2)], inputShape: [d], seed: 1)
    try newtonLogisticRegression(&model, x, labels, prior: δ)
    let xq = try Tensor(shape: [2, d], elements: [0.3, -0.2, 0.5, -1.0, 0.4, 0.1])
    let queryLabels = [1, 0]
    // The Hessian of Σℓ + ½δ‖θ‖² is G + δI: the ggn curvature with absolute damping δ.
    let influence = try Influence.fit(model: model, inputs: x, targets: .classes(labels), likelihood: .classification, curvature: .ggn, damping: .absolute(δ))
    let scores = try influence.scores(model: model, queries: xq, targets: .classes(queryLabels))
    let before = try InfluenceMeasurement.loss.values(try model.forward(xq), targets: .classes(queryLabels), likelihood: .classification)
    for q in 0..<2 {
      var predicted: [Double] = [], actual: [Double] = []
      for j in 0..<n {
        let kept = (0..<n).filter { $0 != j }
        var retrained = model
        let size = d
        let xs = try Tensor(shape: [n - 1, d], elements: kept.flatMap { Array(x.elements[($0 * size)..<(($0 + 1) * size)]) })
        try newtonLogisticRegression(&retrained, xs, kept.map { labels[$0] }, prior: δ)
        let after = try InfluenceMeasurement.loss.values(try retrained.forward(xq), targets: .classes(queryLabels), likelihood: .classification)
        predicted.append(scores[q, j])
        actual.append(after[q] - before[q])
      }
      let r = InfluenceEvaluation.pearson(predicted, actual)
      #expect(r >= 0.99, "query \(q): Pearson \(r) between predicted and actual leave-one-out changes")
    }
  }

  @Test("top-k, Spearman with ties, and LDS: exact-Hessian influence beats gradient dot products")
  func evaluation() throws {
    let scores = try Matrix([[0.3, -1.0, 2.0, 0.3], [-0.5, 0.1, 0.0, 0.2]])
    let (helpful, harmful) = try Influence.topK(scores, k: 2)
    #expect(helpful == [[2, 0], [3, 1]])
    #expect(harmful == [[1, 0], [0, 2]])
    #expect(throws: BDLError.self) { _ = try Influence.topK(scores, k: 5) }
    #expect(InfluenceEvaluation.ranks([3, 1, 3, 2]) == [3.5, 1, 3.5, 2])
    expectClose(InfluenceEvaluation.spearman([1, 2, 3, 4], [10, 20, 25, 100]), 1, tolerance: 1e-15, "monotone")
    expectClose(InfluenceEvaluation.spearman([1, 2, 3], [3, 2, 1]), -1, tolerance: 1e-15, "reversed")

    // Logistic regression trained by full-batch Adam from a fixed start; LDS over 12 half subsets.
    var rng = SeededGenerator(seed: 31)
    let n = 40, d = 4
    // Features on different scales, so that curvature matters.
    let scales = [3.0, 1.0, 0.3, 0.1]
    var x = Tensor(shape: [n, d])
    var labels: [Int] = []
    for i in 0..<n {
      for k in 0..<d { x.elements[i * d + k] = scales[k] * rng.normal() }
      labels.append(x.elements[i * d] / 3 + 7 * x.elements[i * d + 2] + 0.6 * rng.normal() > 0 ? 1 : 0)
    }
    let initial = try Sequential([Linear(d, 2)], inputShape: [d], seed: 2)
    var options = TrainingOptions()
    options.epochs = 300
    options.batchSize = n
    options.learningRate = 0.05
    options.priorPrecision = [1]
    var trained = initial
    try trained.train(inputs: x, targets: .classes(labels), likelihood: CategoricalLikelihood(), options: options)
    let xq = randomBatch(trained, n: 4, seed: 32)
    let queryLabels = [0, 1, 1, 0]
    var lds: [Influence.Curvature: Double] = [:]
    for curvature in [Influence.Curvature.ggn, .identity] {
      let influence = try Influence.fit(model: trained, inputs: x, targets: .classes(labels), likelihood: .classification, curvature: curvature, damping: .absolute(1))
      let scores = try influence.scores(model: trained, queries: xq, targets: .classes(queryLabels))
      let result = try InfluenceEvaluation.linearDatamodelingScore(
        model: initial, trainInputs: x, trainTargets: .classes(labels), likelihood: .classification, queries: xq,
        queryTargets: .classes(queryLabels), scores: scores, subsets: 12, training: options, seed: 7)
      let again = try InfluenceEvaluation.linearDatamodelingScore(
        model: initial, trainInputs: x, trainTargets: .classes(labels), likelihood: .classification, queries: xq,
        queryTargets: .classes(queryLabels), scores: scores, subsets: 12, training: options, seed: 7)
      #expect(result == again, "LDS is reproducible from its seed")
      lds[curvature] = result.mean
    }
    #expect(lds[.ggn]! > 0.8, "LDS of exact-Hessian influence \(lds[.ggn]!)")
    #expect(lds[.ggn]! > lds[.identity]!, "exact Hessian \(lds[.ggn]!) vs gradient dot products \(lds[.identity]!)")
  }

  @Test("from captured statistics and a K-FAC/EK-FAC curvature: the same scores as the engine's")
  func fromStatistics() throws {
    let (model, x, labels, xq, queryLabels) = try Self.problem()
    func statistics(_ inputs: Tensor, _ labels: [Int]) throws -> [Sequential.LayerStatistics] {
      let pass = try model.forwardPass(inputs)
      let v = try CategoricalLikelihood().outputGradient(pass.output, .classes(labels))
      // Relabelled as a caller would have them: entry i is the i-th linear layer.
      return try model.backward(pass, vectors: v).enumerated().map { i, s in
        try Sequential.LayerStatistics(capturedAt: i, inputs: s.inputs, outputGradients: s.outputGradients, hasBias: s.hasBias)
      }
    }
    let queries = try statistics(xq, queryLabels), training = try statistics(x, labels)
    for corrected in [false, true] {
      let kfac = corrected
        ? try KFAC.fitEigenvalueCorrected(model: model, inputs: x, targets: .classes(labels), likelihood: CategoricalLikelihood())
        : try KFAC.fit(model: model, inputs: x, targets: .classes(labels), likelihood: CategoricalLikelihood())
      for damping in [Influence.Damping.absolute(0.3), .relative(0.1)] {
        let engine = try Influence.fit(
          model: model, inputs: x, targets: .classes(labels), likelihood: .classification, curvature: corrected ? .ekfac : .kfac, damping: damping)
        let expected = try engine.scores(model: model, queries: xq, targets: .classes(queryLabels))
        let captured = try Influence.scores(curvature: kfac, damping: damping, queries: queries, training: training)
        expectClose(captured.elements, expected.elements, tolerance: 1e-12, "\(corrected ? "EK-FAC" : "K-FAC") \(damping)")
      }
    }
    let kfac = try KFAC.fit(model: model, inputs: x, targets: .classes(labels), likelihood: CategoricalLikelihood())
    #expect(throws: BDLError.self) { _ = try Influence.scores(curvature: kfac, damping: .absolute(1), queries: Array(queries.prefix(1)), training: training) }
    #expect(throws: BDLError.self) { _ = try Influence.scores(curvature: kfac, damping: .absolute(1), queries: training.reversed(), training: training) }
    #expect(throws: BDLError.self) { _ = try Influence.scores(curvature: kfac, damping: .absolute(-1), queries: queries, training: training) }
    #expect(throws: BDLError.self) {
      _ = try Sequential.LayerStatistics(capturedAt: 0, inputs: Tensor(shape: [2, 1, 3]), outputGradients: Tensor(shape: [3, 1, 1, 4]), hasBias: true)
    }
  }

  @Test("bad input: clear errors")
  func badInput() throws {
    let (model, x, labels, xq, queryLabels) = try Self.problem()
    #expect(throws: BDLError.self) { _ = try Influence.fit(model: model, inputs: x, targets: .classes(labels), likelihood: .classification, damping: .absolute(-1)) }
    #expect(throws: BDLError.self) { _ = try Influence.fit(model: model, inputs: x, targets: .classes(labels), likelihood: .classification, damping: .relative(.nan)) }
    #expect(throws: BDLError.self) { _ = try Influence.fit(model: model, inputs: x, targets: .classes([0]), likelihood: .classification) }
    let influence = try Influence.fit(model: model, inputs: x, targets: .classes(labels), likelihood: .classification, curvature: .kfac)
    let wide = try Tensor(shape: [2, 5], elements: [Double](repeating: 0, count: 10))
    #expect(throws: BDLError.self) { _ = try influence.scores(model: model, queries: wide, targets: .classes([0, 1])) }
    #expect(throws: BDLError.self) { _ = try influence.scores(model: model, queries: xq, targets: .classes([0])) }
    #expect(throws: BDLError.self) { _ = try influence.scores(model: model, queries: xq, targets: nil) }
    let other = try Sequential([Linear(4, 3)], inputShape: [4])
    #expect(throws: BDLError.self) { _ = try influence.scores(model: other, queries: xq, targets: .classes(queryLabels)) }
    #expect(throws: BDLError.self) { _ = try influence.selfInfluence(model: other) }
    #expect(throws: BDLError.self) {
      _ = try Influence.fit(model: model, inputs: x, targets: .classes(labels), likelihood: .classification, curvature: .ggn, damping: .absolute(0)).scores(model: model, queries: xq, targets: .classes(queryLabels))
    }
  }
}
