@testable import BDLCore
import Testing

/// The exact GGN Σ_n J_nᵀ Λ_n J_n from the Jacobian (Λ = diag p − p pᵀ, or I for regression).
func denseGGN(_ model: Sequential, _ x: Tensor, classification: Bool) throws -> Matrix {
  let j = try model.jacobian(x)
  let c = model.outputCount, p = model.parameterCount
  let outputs = try model.forward(x)
  let probabilities = CategoricalLikelihood().probabilities(outputs)
  var g = Matrix(rows: p, columns: p)
  for n in 0..<x.count {
    var lambda = Matrix.identity(c)
    if classification {
      for a in 0..<c {
        for b in 0..<c {
          lambda[a, b] = (a == b ? probabilities.elements[n * c + a] : 0) - probabilities.elements[n * c + a] * probabilities.elements[n * c + b]
        }
      }
    }
    let jn = try Matrix(rows: c, columns: p, elements: Array(j.elements[(n * c * p)..<((n + 1) * c * p)]))
    try g.add(jn.multiplied(by: lambda.multiplied(by: jn), transposingSelf: true))
  }
  return g
}

/// The largest |K-FAC − GGN| over the diagonal blocks, relative to the largest GGN entry there.
func blockError(_ kfac: KFAC, _ ggn: Matrix, layers: Set<Int>? = nil) throws -> Double {
  let dense = try kfac.dense()
  var worst = 0.0, scale = 0.0
  for block in kfac.blocks where layers?.contains(block.layerIndex) ?? true {
    for i in block.parameters {
      for j in block.parameters {
        worst = max(worst, abs(dense[i, j] - ggn[i, j]))
        scale = max(scale, abs(ggn[i, j]))
      }
    }
  }
  return worst / max(scale, 1e-300)
}

@Suite("K-FAC: exact regimes, merging, Monte Carlo, operator algebra")
struct KFACTests {
  @Test("equals the GGN's diagonal blocks for a single datum (nonlinear network)", arguments: [0, 1, 3])
  func singleDatum(index: Int) throws {
    var model = try TestNetworks.all[index].1()
    try randomize(&model, seed: 500)
    let x = randomBatch(model, n: 1, seed: 501)
    let kfac = try KFAC.fit(model: model, inputs: x, targets: .classes([0]), likelihood: CategoricalLikelihood())
    // Convolutions and sequences share weights over positions: one datum is exact only for R = 1.
    let denseLayers = Set(kfac.blocks.filter { block in
      (model.layers[block.layerIndex] as? Linear).map { _ in model.shapes[block.layerIndex].count == 1 } ?? false
    }.map(\.layerIndex))
    #expect(!denseLayers.isEmpty)
    let error = try blockError(kfac, denseGGN(model, x, classification: true), layers: denseLayers)
    #expect(error < 1e-12, "\(TestNetworks.all[index].0): relative block error \(error)")
  }

  @Test("a mixture's fully-connected path is exact for a single datum; its layout is conv then FC")
  func mixture() throws {
    var model = try TestNetworks.mixture()
    try randomize(&model, seed: 510)
    #expect(model.layers[0].parameterShapes == [[3, 2, 3, 3], [3]] && model.layers[1].parameterShapes == [[60, 40], [60]])
    let x = randomBatch(model, n: 1, seed: 511)
    let kfac = try KFAC.fit(model: model, inputs: x, targets: .classes([2]), likelihood: CategoricalLikelihood())
    #expect(kfac.blocks.map(\.layerIndex) == [0, 0, 1, 1, 5, 5])
    let error = try blockError(kfac, denseGGN(model, x, classification: true), layers: [1, 5])
    #expect(error < 1e-12, "relative block error \(error)")
    // y = ½(conv(x) + W·vec(x) + b): with W = 0, b = 0 it is half the convolution.
    var convOnly = try Sequential([Conv2d(2, 3, kernelSize: 3, padding: 1), Flatten()], inputShape: [2, 4, 5])
    try convOnly.setParameters(Array(model.parameters[model.parameterRange(ofLayer: 0)]))
    var halved = model
    var theta = model.parameters
    for i in model.parameterRange(ofLayer: 1) { theta[i] = 0 }
    try halved.setParameters(theta)
    var part = try Sequential(Array(halved.layers[0...1]) + [Flatten()], inputShape: [2, 4, 5])
    try part.setParameters(Array(theta[0..<model.parameterRange(ofLayer: 1).upperBound]))
    let expected = try convOnly.forward(x).elements.map { 0.5 * $0 }
    expectClose(try part.forward(x).elements, expected, tolerance: 1e-14, "mixture with a zero FC path")
  }

  @Test("expand is exact for a deep linear network with squared loss, any N")
  func deepLinear() throws {
    var model = try Sequential([Linear(4, 5), Linear(5, 3, bias: false), Linear(3, 2)], inputShape: [4], seed: 9)
    try randomize(&model, seed: 502)
    let x = randomBatch(model, n: 7, seed: 503)
    let y = try Tensor(shape: [7, 2], elements: [Double](repeating: 0, count: 14))
    let kfac = try KFAC.fit(model: model, inputs: x, targets: .values(y), likelihood: GaussianLikelihood(), batchSize: 3)
    let error = try blockError(kfac, denseGGN(model, x, classification: false))
    #expect(error < 1e-10, "relative block error \(error)")
  }

  @Test("reduce is exact when positions are averaged before the loss; expand is not")
  func reduceSetting() throws {
    var model = try Sequential([Linear(3, 4), Linear(4, 4), MeanOverSequence(), Linear(4, 2)], inputShape: [5, 3], seed: 3)
    try randomize(&model, seed: 504)
    let x = randomBatch(model, n: 6, seed: 505)
    let y = try Tensor(shape: [6, 2], elements: [Double](repeating: 0, count: 12))
    let ggn = try denseGGN(model, x, classification: false)
    let reduce = try KFAC.fit(model: model, inputs: x, targets: .values(y), likelihood: GaussianLikelihood(), approximation: .reduce)
    let expand = try KFAC.fit(model: model, inputs: x, targets: .values(y), likelihood: GaussianLikelihood(), approximation: .expand)
    let sequenceLayers: Set<Int> = [0, 1]
    let reduceError = try blockError(reduce, ggn, layers: sequenceLayers)
    let expandError = try blockError(expand, ggn, layers: sequenceLayers)
    #expect(reduceError < 1e-10, "reduce: \(reduceError)")
    #expect(expandError > 1e-3, "expand should not be exact here: \(expandError)")
  }

  @Test("merging accumulators over disjoint halves equals one accumulator over all")
  func merge() throws {
    let (model, x, labels) = try cnnClassification(n: 6, seed: 506)
    let likelihood = CategoricalLikelihood()
    for approximation in [KFACApproximation.expand, .reduce] {
      let all = try KFAC.fit(model: model, inputs: x, targets: labels, likelihood: likelihood, approximation: approximation)
      let first = try KFAC.fit(model: model, inputs: Tensor(shape: [2] + model.inputShape, elements: Array(x.elements[0..<(2 * x.exampleSize)])), targets: labels.subset(0..<2), likelihood: likelihood, approximation: approximation)
      let second = try KFAC.fit(model: model, inputs: Tensor(shape: [4] + model.inputShape, elements: Array(x.elements[(2 * x.exampleSize)...])), targets: labels.subset(2..<6), likelihood: likelihood, approximation: approximation)
      for (i, accumulator) in all.accumulators.enumerated() {
        let merged = try first.accumulators[i].merged(with: second.accumulators[i])
        expectClose(merged.inputFactor.elements, accumulator.inputFactor.elements, tolerance: 1e-13, "A of layer \(i)")
        expectClose(merged.outputGradientFactor.elements, accumulator.outputGradientFactor.elements, tolerance: 1e-13, "B of layer \(i)")
        #expect(merged.examples == 6)
      }
      #expect(throws: BDLError.self) { try first.accumulators[0].merged(with: first.accumulators[1]) }
    }
  }

  @Test("an engine fit times its accumulation: d²·rows flops per Gram, kept by damping and EK-FAC; none from accumulators")
  func accumulationProfile() throws {
    let (model, x, labels) = try cnnClassification(n: 6, seed: 510)
    let likelihood = CategoricalLikelihood()
    let pass = try model.forwardPass(x)
    // The engine backpropagates the reduced root: C − 1 vectors per example.
    let statistics = try model.backward(pass, vectors: likelihood.reducedHessianSquareRoot(pass.output))
    func expectedFlops(_ approximation: KFACApproximation) -> Double {
      statistics.reduce(0.0) { total, s in
        let (n, k, r) = (s.outputGradients.shape[0], s.outputGradients.shape[1], s.outputGradients.shape[2])
        let rows = Double(approximation == .expand ? n * r : n)
        let (dIn, dOut) = (Double(s.inputs.shape[2]), Double(s.outputGradients.shape[3]))
        return total + dIn * dIn * rows + dOut * dOut * rows * Double(k)
      }
    }
    for approximation in [KFACApproximation.expand, .reduce] {
      let kfac = try KFAC.fit(model: model, inputs: x, targets: labels, likelihood: likelihood, approximation: approximation, batchSize: 4)
      let profile = try #require(kfac.accumulationProfile)
      #expect(profile.flops == expectedFlops(approximation), "\(approximation)")
      #expect(profile.threadSeconds > 0 && profile.workers == 1 && profile.rate > 0, "\(approximation): a small batch runs on one worker")
      #expect(try kfac.withDamping(.factored(balanced: true)).accumulationProfile == profile)
      let fromAccumulators = try KFAC(
        accumulators: kfac.accumulators, layerIndices: kfac.blocks.filter { !$0.isBias }.map(\.layerIndex),
        offsets: kfac.blocks.filter { !$0.isBias }.map(\.parameters.lowerBound), parameterCount: kfac.parameterCount)
      #expect(fromAccumulators.accumulationProfile == nil)
    }
    let ekfac = try KFAC.fitEigenvalueCorrected(model: model, inputs: x, targets: labels, likelihood: likelihood, batchSize: 4)
    #expect(ekfac.accumulationProfile?.flops == expectedFlops(.expand))
  }

  @Test("the engine's exact K-FAC (C − 1 backpropagated vectors) equals accumulating all C columns of S, records K = C and merges with it")
  func reducedRootStatistics() throws {
    let (model, x, labels) = try cnnClassification(n: 5, seed: 508)
    let likelihood = CategoricalLikelihood()
    let engine = try KFAC.fit(model: model, inputs: x, targets: labels, likelihood: likelihood)
    let pass = try model.forwardPass(x)
    let statistics = try model.backward(pass, vectors: likelihood.hessianSquareRoot(pass.output))
    for (i, s) in statistics.enumerated() {
      var full = try KFACLayerAccumulator(
        inputDimension: s.inputs.shape[2], outputDimension: s.outputGradients.shape[3], hasBias: s.hasBias, approximation: .expand)
      try full.add(inputs: s.inputs, outputGradients: s.outputGradients)
      let fitted = engine.accumulators[i]
      #expect(fitted.vectorsPerExample == model.outputCount && full.vectorsPerExample == model.outputCount)
      expectClose(fitted.outputGradientFactor.elements, full.outputGradientFactor.elements, tolerance: 1e-13, "B of layer \(i)")
      expectClose(fitted.inputFactor.elements, full.inputFactor.elements, tolerance: 1e-14, "A of layer \(i)")
      #expect(try fitted.merged(with: full).examples == 10)
    }
  }

  @Test("Monte-Carlo K-FAC approaches the exact one as samples grow")
  func monteCarlo() throws {
    var model = try TestNetworks.mlp()
    try randomize(&model, seed: 508)
    let x = randomBatch(model, n: 20, seed: 509)
    let labels = Targets.classes((0..<20).map { $0 % 3 })
    let exact = try KFAC.fit(model: model, inputs: x, targets: labels, likelihood: CategoricalLikelihood())
    func error(_ samples: Int) throws -> Double {
      let mc = try KFAC.fit(model: model, inputs: x, targets: labels, likelihood: CategoricalLikelihood(), fisher: .monteCarlo(samples: samples, seed: 11))
      var worst = 0.0
      for (i, accumulator) in exact.accumulators.enumerated() {
        let b = accumulator.outputGradientFactor, bmc = mc.accumulators[i].outputGradientFactor
        let difference = zip(b.elements, bmc.elements).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        let norm = b.elements.reduce(0) { $0 + $1 * $1 }.squareRoot()
        worst = max(worst, difference / norm)
      }
      return worst
    }
    let (few, many) = (try error(2), try error(2000))
    #expect(many < few, "\(many) vs \(few)")
    #expect(many < 0.1, "normalised error with 2000 samples: \(many)")
  }

  @Test("sharded statistics passes equal the serial pass: same outputs, same Monte-Carlo draws, sums within rounding", arguments: [1, 2, 3, 7])
  func shardedPass(workers: Int) throws {
    let (model, x, labels) = try cnnClassification(n: 7, seed: 513)
    let likelihood = CategoricalLikelihood()
    for fisher in [FisherSource.exact, .monteCarlo(samples: 3, seed: 9), .empirical] {
      func accumulate(workers: Int) throws -> (sums: [[KFACLayerAccumulator]], outputs: [Double]) {
        let empty = try model.layers.compactMap { $0 as? any LinearMapLayer }.map {
          try KFACLayerAccumulator(inputDimension: $0.inputDimension, outputDimension: $0.outputDimension, hasBias: $0.hasBias, approximation: .expand)
        }
        var sums = [[KFACLayerAccumulator]](repeating: empty, count: workers)
        var outputs: [Double] = []
        try sums.withUnsafeMutableBufferPointer { sums throws(BDLError) in
          try forEachStatisticsShard(
            model: model, inputs: x, targets: labels, likelihood: likelihood, fisher: fisher, batchSize: 4,
            workers: workers, outputs: { f, _ in outputs += f.elements }) { statistics, worker throws(BDLError) in
            for (i, s) in statistics.enumerated() { try sums[worker][i].add(inputs: s.inputs, outputGradients: s.outputGradients) }
          }
        }
        return (sums, outputs)
      }
      let serial = try accumulate(workers: 1), sharded = try accumulate(workers: workers)
      #expect(sharded.outputs == serial.outputs, "\(fisher): the batches' outputs")
      for i in serial.sums[0].indices {
        var merged = sharded.sums[0][i]
        for shard in sharded.sums.dropFirst() where shard[i].examples > 0 { merged = try merged.merged(with: shard[i]) }
        #expect(merged.examples == 7)
        expectClose(merged.outputGradientFactor.elements, serial.sums[0][i].outputGradientFactor.elements, tolerance: 1e-13, "\(fisher): B of layer \(i)")
        expectClose(merged.inputFactor.elements, serial.sums[0][i].inputFactor.elements, tolerance: 1e-13, "\(fisher): A of layer \(i)")
      }
    }
  }

  @Test("concurrent regions restore OpenBLAS's thread count, also when a worker fails")
  func threadBudget() throws {
    let before = BLASThreads.count
    var seen = [Int](repeating: 0, count: 3)
    try seen.withUnsafeMutableBufferPointer { seen in
      try BLASThreads.concurrently(3) { worker in seen[worker] = BLASThreads.count }
    }
    #expect(seen == [1, 1, 1])
    #expect(BLASThreads.count == before)
    #expect(throws: BDLError.invalidArgument("worker 2")) {
      try BLASThreads.concurrently(4) { worker throws(BDLError) in if worker >= 2 { throw BDLError.invalidArgument("worker \(worker)") } }
    }
    #expect(BLASThreads.count == before)
  }

  @Test("log det, solve and diagonal equal the dense damped matrix's")
  func operatorAlgebra() throws {
    var model = try TestNetworks.sequence()
    try randomize(&model, seed: 510)
    let x = randomBatch(model, n: 5, seed: 511)
    let kfac = try KFAC.fit(model: model, inputs: x, targets: .classes([0, 1, 2, 1, 0]), likelihood: CategoricalLikelihood())
    let (h, δ) = (0.7, 0.3)
    let dense = try kfac.dense(scale: h, damping: δ)
    let cholesky = try Cholesky(dense)
    expectClose(try kfac.logDeterminant(scale: h, damping: δ), cholesky.logDeterminant, tolerance: 1e-10, "log det")
    var rng = SeededGenerator(seed: 512)
    let v = rng.vector(model.parameterCount)
    expectClose(try kfac.applyPower(-1, to: v, scale: h, damping: δ), try cholesky.solve(v), tolerance: 1e-9, "solve")
    expectClose(try kfac.applyPower(1, to: v, scale: h, damping: δ), try dense.multiplied(by: v), tolerance: 1e-10, "multiply")
    expectClose(try kfac.diagonal(exponent: -1, scale: h, damping: δ), try cholesky.inverse().diagonalEntries, tolerance: 1e-9, "diag of inverse")
    expectClose(try kfac.diagonal(scale: h, damping: δ), dense.diagonalEntries, tolerance: 1e-12, "diag")
  }

  @Test("statistics that overflow inside a fit are a named error, not a factor")
  func overflowingFit() throws {
    var model = try Sequential([Linear(2, 3), Activation.relu, Linear(3, 2)], inputShape: [2], seed: 1)
    try model.setParameters(Array(repeating: 1e200, count: model.parameterCount))
    let x = try Tensor(shape: [4, 2], elements: [1, 2, 3, 4, 5, 6, 7, 8])
    #expect {
      try KFAC.fit(model: model, inputs: x, targets: .classes([0, 1, 0, 1]), likelihood: CategoricalLikelihood())
    } throws: { error in
      guard case .nonFiniteInput = error as? BDLError else { return false }
      return true
    }
  }

  @Test("bad statistics leave the accumulator unchanged")
  func badStatistics() throws {
    var accumulator = try KFACLayerAccumulator(inputDimension: 3, outputDimension: 2, hasBias: true, approximation: .expand)
    let before = accumulator
    #expect(throws: BDLError.self) { try accumulator.add(inputs: Tensor(shape: [2, 1, 4]), outputGradients: Tensor(shape: [2, 1, 1, 2])) }
    #expect(throws: BDLError.self) { try accumulator.add(inputs: Tensor(shape: [2, 1, 3]), outputGradients: Tensor(shape: [3, 1, 1, 2])) }
    var nan = Tensor(shape: [2, 1, 3])
    nan.elements[1] = .nan
    #expect(throws: BDLError.self) { try accumulator.add(inputs: nan, outputGradients: Tensor(shape: [2, 1, 1, 2])) }
    #expect(accumulator == before)
    // A non-finite entry anywhere: in the vectorised scan's blocks of 8 or its tail.
    for (index, value) in [(0, Double.infinity), (9, -.infinity), (17, .nan), (21, .nan)] {
      var g = Tensor(shape: [11, 1, 1, 2], repeating: 1)
      g.elements[index] = value
      #expect(throws: BDLError.nonFiniteInput("g: entry \(index) is \(value); all entries must be finite")) {
        try accumulator.add(inputs: Tensor(shape: [11, 1, 3], repeating: 1), outputGradients: g)
      }
    }
    // Finite entries whose squares overflow: the Gram is not finite, so the batch is refused.
    #expect(throws: BDLError.nonFiniteInput("a: its sums of squares overflow to ∞ (entries too large for Σ aaᵀ in Double)")) {
      try accumulator.add(inputs: Tensor(shape: [4, 1, 3], repeating: 1e200), outputGradients: Tensor(shape: [4, 1, 1, 2], repeating: 1))
    }
    #expect(accumulator == before)
    // Reduce: a non-finite entry survives pooling over positions; the error names it in the caller's a.
    let freshReduce = try KFACLayerAccumulator(inputDimension: 3, outputDimension: 2, hasBias: true, approximation: .reduce)
    var reduce = freshReduce
    var pooledNaN = Tensor(shape: [4, 2, 3], repeating: 1)
    pooledNaN.elements[13] = .nan
    #expect(throws: BDLError.nonFiniteInput("a: entry 13 is nan; all entries must be finite")) {
      try reduce.add(inputs: pooledNaN, outputGradients: Tensor(shape: [4, 1, 2, 2], repeating: 1))
    }
    #expect(reduce == freshReduce)
    #expect(throws: BDLError.self) { try KFACLayerAccumulator(inputDimension: 0, outputDimension: 2, hasBias: true, approximation: .reduce) }
    // K is fixed by the first batch: a later batch or a merge with another K is refused.
    try accumulator.add(inputs: Tensor(shape: [2, 1, 3], repeating: 1), outputGradients: Tensor(shape: [2, 2, 1, 2], repeating: 1))
    let afterFirst = accumulator
    #expect(throws: BDLError.self) { try accumulator.add(inputs: Tensor(shape: [2, 1, 3]), outputGradients: Tensor(shape: [2, 3, 1, 2])) }
    #expect(accumulator == afterFirst)
    var other = try KFACLayerAccumulator(inputDimension: 3, outputDimension: 2, hasBias: true, approximation: .expand)
    try other.add(inputs: Tensor(shape: [1, 1, 3], repeating: 1), outputGradients: Tensor(shape: [1, 1, 1, 2], repeating: 1))
    #expect(throws: BDLError.self) { try accumulator.merged(with: other) }
  }
}

@Suite("EK-FAC, dense and diagonal GGN operators")
struct CurvatureOperatorTests {
  /// ‖K-FAC block − GGN block‖_F over the weight blocks (of `layers` only, if given).
  func frobeniusError(_ op: KFAC, _ ggn: Matrix, layers: Set<Int>? = nil) throws -> Double {
    let dense = try op.dense()
    var total = 0.0
    for block in op.blocks where !block.isBias && (layers?.contains(block.layerIndex) ?? true) {
      for i in block.parameters { for j in block.parameters { total += (dense[i, j] - ggn[i, j]) * (dense[i, j] - ggn[i, j]) } }
    }
    return total.squareRoot()
  }

  @Test("EK-FAC is exact for one example (layers without weight sharing) and never further from the GGN than K-FAC", arguments: [0, 1, 3])
  func ekfac(index: Int) throws {
    var model = try TestNetworks.all[index].1()
    try randomize(&model, seed: 600)
    let likelihood = CategoricalLikelihood()
    let one = randomBatch(model, n: 1, seed: 601)
    let exact = try KFAC.fitEigenvalueCorrected(model: model, inputs: one, targets: .classes([1]), likelihood: likelihood)
    #expect(exact.isEigenvalueCorrected)
    let ggnOne = try DenseGGN.fit(model: model, inputs: one, targets: .classes([1]), likelihood: likelihood).matrix
    // With R > 1 positions the one-example GGN block Σ_k vec(Σ_r g aᵀ)vec(·)ᵀ is not diagonal in
    // K-FAC's eigenbasis, so exactness holds for R = 1 layers.
    let denseLayers = Set(exact.blocks.map(\.layerIndex).filter { model.layers[$0] is Linear && model.shapes[$0].count == 1 })
    let oneError = try frobeniusError(exact, ggnOne, layers: denseLayers) / ggnOne.elements.reduce(0) { $0 + $1 * $1 }.squareRoot()
    #expect(oneError < 1e-10, "EK-FAC on one example: relative error \(oneError)")
    let x = randomBatch(model, n: 6, seed: 602)
    let labels = Targets.classes([0, 1, 2, 0, 1, 2].map { $0 % model.outputCount })
    let ggn = try DenseGGN.fit(model: model, inputs: x, targets: labels, likelihood: likelihood).matrix
    let kfac = try KFAC.fit(model: model, inputs: x, targets: labels, likelihood: likelihood)
    let ekfac = try KFAC.fitEigenvalueCorrected(model: model, inputs: x, targets: labels, likelihood: likelihood)
    let (kError, eError) = (try frobeniusError(kfac, ggn), try frobeniusError(ekfac, ggn))
    #expect(eError <= kError * (1 + 1e-12), "EK-FAC \(eError) vs K-FAC \(kError)")
  }

  @Test("dense GGN equals Σ Jᵀ Λ J; its diagonal is DiagonalGGN; operators match dense algebra")
  func denseAndDiagonal() throws {
    let (model, x, labels) = try cnnClassification(n: 4, seed: 610)
    let likelihood = CategoricalLikelihood()
    let ggn = try DenseGGN.fit(model: model, inputs: x, targets: labels, likelihood: likelihood, batchSize: 3)
    let reference = try denseGGN(model, x, classification: true)
    expectClose(ggn.matrix.elements, reference.elements, tolerance: 1e-12, "dense GGN")
    let diagonal = try DiagonalGGN.fit(model: model, inputs: x, targets: labels, likelihood: likelihood, batchSize: 3)
    expectClose(diagonal.values, reference.diagonalEntries, tolerance: 1e-12, "diagonal GGN")
    expectClose(try diagonal.trace(), reference.diagonalEntries.reduce(0, +), tolerance: 1e-12, "trace")
    let (h, δ) = (2.0, 0.5)
    var rng = SeededGenerator(seed: 612)
    let v = rng.vector(model.parameterCount)
    let damped = try ggn.dense(scale: h, damping: δ)
    let cholesky = try Cholesky(damped)
    expectClose(try ggn.logDeterminant(scale: h, damping: δ), cholesky.logDeterminant, tolerance: 1e-10, "GGN log det")
    expectClose(try ggn.applyPower(-1, to: v, scale: h, damping: δ), try cholesky.solve(v), tolerance: 1e-8, "GGN solve")
    expectClose(try ggn.diagonal(exponent: -1, scale: h, damping: δ), try cholesky.inverse().diagonalEntries, tolerance: 1e-8, "GGN inverse diagonal")
    expectClose(try diagonal.logDeterminant(scale: h, damping: δ), diagonal.values.reduce(0) { $0 + logarithm(h * $1 + δ) }, tolerance: 1e-12, "diag log det")
    expectClose(try diagonal.applyPower(-1, to: v, scale: h, damping: δ), zip(diagonal.values, v).map { $1 / (h * $0 + δ) }, tolerance: 1e-14, "diag solve")
    #expect(throws: BDLError.self) { try DiagonalGGN(values: [1, 0]).logDeterminant(scale: 1, damping: 0) }  // singular
    #expect(throws: BDLError.self) { try DiagonalGGN(values: [1, -1]) }
  }
}

#if canImport(Glibc)
import Glibc
#endif

/// A fresh temporary directory (under $TMPDIR, else the system's).
func temporaryDirectory() -> String {
  let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
  var template = Array((base + "/bdlcore-test-XXXXXX").utf8CString)
  return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}

@Suite("K-FAC accumulator files")
struct KFACFileTests {
  func accumulators() throws -> [KFACLayerAccumulator] {
    var model = try TestNetworks.sequence()
    try randomize(&model, seed: 700)
    let x = randomBatch(model, n: 4, seed: 701)
    return try KFAC.fit(model: model, inputs: x, targets: .classes([0, 1, 2, 0]), likelihood: CategoricalLikelihood(), approximation: .reduce).accumulators
  }

  @Test("save and load round-trip bit-exactly; saving over a file replaces it")
  func roundTrip() throws {
    let layers = try accumulators()
    let path = temporaryDirectory() + "/kfac.bin"
    try KFACAccumulatorFile.save(layers, to: path)
    try KFACAccumulatorFile.save(layers, to: path)
    let loaded = try KFACAccumulatorFile.load(from: path)
    #expect(loaded == layers)
  }

  @Test("every truncation and a flipped byte are corrupt data, never garbage")
  func corruption() throws {
    let bytes = KFACAccumulatorFile.encode(try accumulators())
    for length in 0..<bytes.count {  // every truncation
      #expect(throws: BDLError.self, "length \(length)") { try KFACAccumulatorFile.decode(Array(bytes[0..<length])) }
    }
    for position in bytes.indices {  // every single damaged byte
      var damaged = bytes
      damaged[position] ^= 0x40
      #expect {
        try KFACAccumulatorFile.decode(damaged)
      } throws: { error in
        guard case .corruptData = error as? BDLError else { return false }
        return true
      }
    }
    #expect(throws: BDLError.self) { try KFACAccumulatorFile.decode(bytes + [0]) }
  }

  @Test("I/O failures are I/O errors and leave no temporary file")
  func ioErrors() throws {
    let directory = temporaryDirectory()
    #expect {
      try KFACAccumulatorFile.load(from: directory + "/missing.bin")
    } throws: { error in
      guard case .ioError = error as? BDLError else { return false }
      return true
    }
    #expect(throws: BDLError.self) { try KFACAccumulatorFile.save(try accumulators(), to: directory + "/no/such/dir/kfac.bin") }
  }
}

@Suite("K-FAC expand with weight sharing, loss on every position")
struct ExpandSettingTests {
  /// A deep linear network applied position by position with a squared loss at every position is
  /// the same network on N·T independent examples. Its per-position statistics, arranged as a
  /// sequence model's (a: (N, T, d_in); g: (N, K = T·C, T, d_out), zero off the loss's own
  /// position), are what the expand setting produces; K-FAC-expand on them must equal the exact
  /// GGN blocks, and K-FAC-reduce must not.
  @Test("expand is exact, reduce is not")
  func expandSetting() throws {
    let (n, t, c) = (3, 4, 2)
    var positionwise = try Sequential([Linear(3, 5), Linear(5, c)], inputShape: [3], seed: 1)
    try randomize(&positionwise, seed: 900)
    let x = randomBatch(positionwise, n: n * t, seed: 901)   // row n·T + t is position t of sequence n
    let ggn = try denseGGN(positionwise, x, classification: false)
    let pass = try positionwise.forwardPass(x)
    let statistics = try positionwise.backward(pass, vectors: GaussianLikelihood().hessianSquareRoot(pass.output))
    for approximation in [KFACApproximation.expand, .reduce] {
      var accumulators: [KFACLayerAccumulator] = []
      for s in statistics {
        let (dIn, dOut) = (s.inputs.shape[2], s.outputGradients.shape[3])
        var accumulator = try KFACLayerAccumulator(inputDimension: dIn, outputDimension: dOut, hasBias: true, approximation: approximation)
        // a: (N, T, d_in) is the positions' rows as they are; g: (N, T·C, T, d_out), where vector
        // (t′, k) of sequence n is position t′'s k-th column, nonzero only at position t′.
        let a = try Tensor(shape: [n, t, dIn], elements: s.inputs.elements)
        var g = Tensor(shape: [n, t * c, t, dOut])
        for sequence in 0..<n {
          for position in 0..<t {
            for k in 0..<c {
              let source = ((sequence * t + position) * c + k) * dOut
              let target = (((sequence * t * c) + position * c + k) * t + position) * dOut
              for i in 0..<dOut { g.elements[target + i] = s.outputGradients.elements[source + i] }
            }
          }
        }
        try accumulator.add(inputs: a, outputGradients: g)
        accumulators.append(accumulator)
      }
      let kfac = try KFAC(accumulators: accumulators, layerIndices: [0, 1], offsets: [0, positionwise.parameterOffsets[1]], parameterCount: positionwise.parameterCount)
      let error = try blockError(kfac, ggn)
      if approximation == .expand {
        #expect(error < 1e-10, "expand: \(error)")
      } else {
        #expect(error > 1e-3, "reduce should not be exact here: \(error)")
      }
    }
  }
}
