@testable import BDLCore
import Synchronization
import Testing

/// Small networks covering every layer, in the three settings (dense, convolutional, sequence).
enum TestNetworks {
  static func mlp(seed: UInt64 = 1) throws -> Sequential {
    try Sequential(
      [Linear(5, 7), Activation.relu, Linear(7, 6), Activation.tanh, Linear(6, 4, bias: false),
       Activation.sigmoid, Linear(4, 3)],
      inputShape: [5], seed: seed)
  }

  static func cnn(seed: UInt64 = 2) throws -> Sequential {
    try Sequential(
      [Conv2d(2, 3, kernelSize: 3, padding: 1), Activation.gelu, AvgPool2d(2),
       Conv2d(3, 4, kernelSize: 2, stride: 2, bias: false), Activation.tanh, Flatten(), Linear(4 * 2 * 2, 3)],
      inputShape: [2, 9, 8], seed: seed)
  }

  static func globalPool(seed: UInt64 = 3) throws -> Sequential {
    try Sequential(
      [Conv2d(1, 3, kernelSize: 3, stride: 2, padding: 1), Activation.relu, GlobalAvgPool2d(), Linear(3, 2)],
      inputShape: [1, 5, 6], seed: seed)
  }

  static func sequence(seed: UInt64 = 4) throws -> Sequential {
    try Sequential(
      [Linear(3, 5), Activation.gelu, Linear(5, 4), MeanOverSequence(), Activation.identity, Linear(4, 3)],
      inputShape: [4, 3], seed: seed)
  }

  /// A convolution / fully-connected mixture (two engine layers) between ordinary layers.
  static func mixture(seed: UInt64 = 5) throws -> Sequential {
    try Sequential(
      try ConvolutionFullyConnectedMixture.layers(2, 3, kernelSize: 3, padding: 1, inputShape: [2, 4, 5])
        + [Activation.tanh, AvgPool2d(2), Flatten(), Linear(3 * 2 * 2, 3)],
      inputShape: [2, 4, 5], seed: seed)
  }

  static var all: [(String, () throws -> Sequential)] {
    [("mlp", { try mlp() }), ("cnn", { try cnn() }), ("global", { try globalPool() }), ("sequence", { try sequence() }),
     ("mixture", { try mixture() })]
  }
}

/// Random inputs for a network, and random parameters (generic values, not the initialisation).
func randomBatch(_ model: Sequential, n: Int, seed: UInt64) -> Tensor {
  var rng = SeededGenerator(seed: seed)
  var x = Tensor(shape: [n] + model.inputShape)
  for i in x.elements.indices { x.elements[i] = rng.normal() }
  return x
}

func randomize(_ model: inout Sequential, seed: UInt64) throws {
  var rng = SeededGenerator(seed: seed)
  try model.setParameters((0..<model.parameterCount).map { _ in 0.5 * rng.normal() })
}

/// The curvature and training tests' classification problem: `TestNetworks.cnn()` with random
/// parameters (`seed`), n random images (`seed + 1`) and labels cycling through its 3 classes.
func cnnClassification(n: Int, seed: UInt64) throws -> (model: Sequential, x: Tensor, labels: Targets) {
  var model = try TestNetworks.cnn()
  try randomize(&model, seed: seed)
  return (model, randomBatch(model, n: n, seed: seed + 1), Targets.classes((0..<n).map { $0 % 3 }))
}

/// Σ_{n,k} ⟨f(x_n), V_{n,k}⟩ at parameters θ.
func contraction(_ model: Sequential, _ theta: [Double], _ x: Tensor, _ v: Tensor) throws -> Double {
  var m = model
  try m.setParameters(theta)
  let f = try m.forward(x)
  let (n, k, c) = (v.shape[0], v.shape[1], v.shape[2])
  var total = 0.0
  for example in 0..<n {
    for vector in 0..<k {
      for i in 0..<c { total += f.elements[example * c + i] * v.elements[(example * k + vector) * c + i] }
    }
  }
  return total
}

@Suite("Sequential networks: shapes, gradients, Jacobians, GGN from (a, g)")
struct ModelTests {
  @Test("parameter gradients of ⟨f, V⟩ match central finite differences", arguments: TestNetworks.all.indices)
  func parameterGradient(index: Int) throws {
    var model = try TestNetworks.all[index].1()
    try randomize(&model, seed: 10 + UInt64(index))
    let x = randomBatch(model, n: 3, seed: 20)
    var rng = SeededGenerator(seed: 30)
    var v = Tensor(shape: [3, 2, model.outputCount])
    for i in v.elements.indices { v.elements[i] = rng.normal() }
    let stats = try model.backward(model.forwardPass(x), vectors: v)
    let gradient = try model.parameterGradient(stats)
    let step = 1e-5
    for _ in 0..<4 {
      let direction = rng.vector(model.parameterCount)
      let plus = zip(model.parameters, direction).map { $0 + step * $1 }
      let minus = zip(model.parameters, direction).map { $0 - step * $1 }
      let fd = (try contraction(model, plus, x, v) - contraction(model, minus, x, v)) / (2 * step)
      let analytic = try dot(gradient, direction)
      #expect(abs(fd - analytic) <= Tolerance.finiteDifference * max(1, abs(fd)), "\(TestNetworks.all[index].0): FD \(fd) vs analytic \(analytic)")
    }
    // The per-example rows sum to the total.
    let rows = try model.perExampleGradients(stats)
    var summed = [Double](repeating: 0, count: model.parameterCount)
    for r in 0..<rows.rows { for j in 0..<rows.columns { summed[j] += rows[r, j] } }
    expectClose(summed, gradient, tolerance: 1e-12, "Σ per-example = total")
  }

  @Test("every layer's input gradient matches central finite differences", arguments: TestNetworks.all.indices)
  func inputGradients(index: Int) throws {
    var model = try TestNetworks.all[index].1()
    try randomize(&model, seed: 40 + UInt64(index))
    var rng = SeededGenerator(seed: 50)
    for (position, layer) in model.layers.enumerated() {
      let inShape = model.shapes[position], outShape = model.shapes[position + 1]
      let slice = Array(model.parameters[model.parameterRange(ofLayer: position)])
      var x = Tensor(shape: [2] + inShape)
      for i in x.elements.indices { x.elements[i] = rng.normal() }
      var g = Tensor(shape: [2, 2] + outShape)
      for i in g.elements.indices { g.elements[i] = rng.normal() }
      let (_, cache) = try slice.withUnsafeBufferPointer { p in try layer.forward(x, parameters: p) }
      let dx = try slice.withUnsafeBufferPointer { p in try layer.backward(g, cache: cache, inputShape: inShape, parameters: p) }
      #expect(dx.shape == [2, 2] + inShape)
      let direction = rng.vector(x.elements.count)
      func project(_ xs: [Double]) throws -> [Double] {
        let y = try slice.withUnsafeBufferPointer { p in try layer.forward(Tensor(shape: x.shape, elements: xs), parameters: p).output }
        let size = y.exampleSize
        // ⟨y_n, g_{n,k}⟩ for each (n, k)
        return (0..<2).flatMap { n in (0..<2).map { k in
          (0..<size).reduce(0.0) { $0 + y.elements[n * size + $1] * g.elements[(n * 2 + k) * size + $1] } } }
      }
      let step = 1e-6
      let plus = try project(zip(x.elements, direction).map { $0 + step * $1 })
      let minus = try project(zip(x.elements, direction).map { $0 - step * $1 })
      let size = x.exampleSize
      for n in 0..<2 {
        for k in 0..<2 {
          let fd = (plus[n * 2 + k] - minus[n * 2 + k]) / (2 * step)
          var analytic = 0.0
          for i in 0..<size { analytic += dx.elements[(n * 2 + k) * size + i] * direction[n * size + i] }
          #expect(abs(fd - analytic) <= 1e-6 * max(1, abs(fd)), "\(layer): example \(n) vector \(k): FD \(fd) vs \(analytic)")
        }
      }
    }
  }

  @Test("the Jacobian matches finite differences of the outputs")
  func jacobian() throws {
    var model = try TestNetworks.cnn()
    try randomize(&model, seed: 60)
    let x = randomBatch(model, n: 2, seed: 61)
    let j = try model.jacobian(x)
    #expect(j.rows == 2 * model.outputCount && j.columns == model.parameterCount)
    var rng = SeededGenerator(seed: 62)
    let direction = rng.vector(model.parameterCount)
    var plus = model, minus = model
    try plus.setParameters(zip(model.parameters, direction).map { $0 + 1e-6 * $1 })
    try minus.setParameters(zip(model.parameters, direction).map { $0 - 1e-6 * $1 })
    let fd = zip(try plus.forward(x).elements, try minus.forward(x).elements).map { ($0 - $1) / 2e-6 }
    expectClose(try j.multiplied(by: direction), fd, tolerance: 1e-6, "J·d")
  }

  @Test("(a, g) from the output-Hessian square root reproduce the exact GGN Σ Jᵀ Λ J", arguments: [0, 3, 4])
  func ggn(index: Int) throws {
    var model = try TestNetworks.all[index].1()
    try randomize(&model, seed: 70)
    let x = randomBatch(model, n: 3, seed: 71)
    let likelihood = CategoricalLikelihood()
    let pass = try model.forwardPass(x)
    let s = likelihood.hessianSquareRoot(pass.output)
    let rows = try model.perExampleGradients(model.backward(pass, vectors: s))  // rows J_nᵀ S_n[:, k]
    let fromStatistics = try rows.gram()
    // Dense reference: Σ_n J_nᵀ (diag p − p pᵀ) J_n from the Jacobian.
    let j = try model.jacobian(x)
    let p = likelihood.probabilities(pass.output)
    let c = model.outputCount
    var reference = Matrix(rows: model.parameterCount, columns: model.parameterCount)
    for n in 0..<3 {
      var lambda = Matrix(rows: c, columns: c)
      for a in 0..<c { for b in 0..<c { lambda[a, b] = (a == b ? p.elements[n * c + a] : 0) - p.elements[n * c + a] * p.elements[n * c + b] } }
      let jn = try Matrix(rows: c, columns: model.parameterCount, elements: Array(j.elements[(n * c * model.parameterCount)..<((n + 1) * c * model.parameterCount)]))
      try reference.add(try jn.multiplied(by: lambda.multiplied(by: jn), transposingSelf: true))
    }
    expectClose(fromStatistics.elements, reference.elements, tolerance: 1e-12, "GGN")
  }

  @Test("forEachPiece covers 0..<count once, in contiguous pieces, split only for big loops")
  func pieces() throws {
    for (count, entries) in [(0, 0), (1, 1 << 24), (5, 10), (1000, BLASThreads.pieceThreshold), (7, 1 << 22)] {
      let seen = Mutex([Range<Int>]())
      BLASThreads.forEachPiece(of: count, entries: entries) { piece in seen.withLock { $0.append(piece) } }
      let pieces = seen.withLock { $0 }.sorted { $0.lowerBound < $1.lowerBound }
      #expect(pieces.first?.lowerBound == 0 && pieces.last?.upperBound == count, "count \(count)")
      #expect(zip(pieces, pieces.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "count \(count)")
      let expected = entries >= BLASThreads.pieceThreshold ? min(count, BLASThreads.count) : 1
      #expect(pieces.count == max(expected, 1), "count \(count), entries \(entries)")
    }
  }

  @Test("a backward whose loops run in pieces on the BLAS threads gives the one-thread statistics")
  func piecewiseBackward() throws {
    // Big enough (≥ 2²⁰ entries) for pooling, activations, layout changes and the second
    // convolution's input gradient to be split; the reference runs where OpenBLAS has one thread.
    var model = try Sequential(
      [Conv2d(1, 4, kernelSize: 3, padding: 1), Activation.relu, Conv2d(4, 4, kernelSize: 3, padding: 1), Activation.gelu,
       AvgPool2d(2), Flatten(), Linear(4 * 8 * 8, 3)],
      inputShape: [1, 16, 16], seed: 5)
    try randomize(&model, seed: 72)
    let x = randomBatch(model, n: 400, seed: 73)
    var rng = SeededGenerator(seed: 74)
    let v = try Tensor(shape: [400, 3, 3], elements: rng.vector(3600))
    let pieces = try model.backward(model.forwardPass(x), vectors: v)
    var serial: [Sequential.LayerStatistics] = []
    try BLASThreads.concurrently(2) { w throws(BDLError) in
      if w == 0 { serial = try model.backward(model.forwardPass(x), vectors: v) }
    }
    #expect(serial.count == pieces.count)
    for (i, (s, p)) in zip(serial, pieces).enumerated() {
      #expect(p.inputs.shape == s.inputs.shape && p.outputGradients.shape == s.outputGradients.shape)
      expectClose(p.inputs.elements, s.inputs.elements, tolerance: 1e-13, "a of layer \(i)")
      expectClose(p.outputGradients.elements, s.outputGradients.elements, tolerance: 1e-13, "g of layer \(i)")
    }
  }

  @Test("a convolution's in-place recording backward equals outputGradients + backward")
  func convolutionRecordingBackward() throws {
    for conv in [try Conv2d(2, 3, kernelSize: 3, padding: 1), try Conv2d(3, 4, kernelSize: 2, stride: 2, bias: false)] {
      let inputShape = [conv.inChannels, 6, 5]
      let outputShape = try conv.outputShape(forInput: inputShape)
      var rng = SeededGenerator(seed: 76)
      let parameters = rng.vector(conv.parameterCount)
      let x = try Tensor(shape: [3] + inputShape, elements: rng.vector(3 * inputShape.reduce(1, *)))
      let g = try Tensor(shape: [3, 2] + outputShape, elements: rng.vector(6 * outputShape.reduce(1, *)))
      try parameters.withUnsafeBufferPointer { p throws(BDLError) in
        let cache = try conv.forward(x, parameters: p).cache
        let expected = (conv.outputGradients(g), try conv.backward(g, cache: cache, inputShape: inputShape, parameters: p))
        let recorded = try conv.recordingBackward(g, cache: cache, inputShape: inputShape, parameters: p, inputGradient: true)
        #expect(recorded.outputGradients == expected.0)
        #expect(recorded.inputGradient?.shape == expected.1.shape)
        expectClose(recorded.inputGradient?.elements ?? [], expected.1.elements, tolerance: 1e-14, "input gradient of \(conv)")
        let recordOnly = try conv.recordingBackward(g, cache: cache, inputShape: inputShape, parameters: p, inputGradient: false)
        #expect(recordOnly.outputGradients == expected.0 && recordOnly.inputGradient == nil)
      }
    }
  }

  @Test("shapes are checked when a network is built, naming the layer")
  func badArchitectures() throws {
    #expect {
      try Sequential([Linear(4, 3), Flatten(), Conv2d(1, 2, kernelSize: 2)], inputShape: [4])
    } throws: { error in
      guard case .shapeMismatch(let message) = error as? BDLError else { return false }
      return message.contains("layer 3 of 3") && message.contains("Conv2d(1, 2")
    }
    #expect(throws: BDLError.self) { try Sequential([Linear(5, 3)], inputShape: [4]) }
    #expect(throws: BDLError.self) { try Sequential([Conv2d(1, 2, kernelSize: 2)], inputShape: [1, 4, 4]) }  // output not a vector
    #expect(throws: BDLError.self) { try Sequential([], inputShape: [4]) }
    #expect(throws: BDLError.self) { try Linear(0, 3) }
    #expect(throws: BDLError.self) { try Conv2d(1, 2, kernelSize: 5) .outputShape(forInput: [1, 3, 3]) }
    var model = try TestNetworks.mlp()
    let before = model.parameters
    #expect(throws: BDLError.self) { try model.setParameters([1, 2, 3]) }
    #expect(throws: BDLError.self) { try model.setParameters([Double](repeating: .nan, count: model.parameterCount)) }
    #expect(model.parameters == before, "a failed update leaves θ unchanged")
    #expect(throws: BDLError.self) { try model.forward(Tensor(shape: [2, 4])) }
    #expect(throws: BDLError.self) { try model.forward(Tensor(shape: [0, 5])) }
    var bad = Tensor(shape: [1, 5])
    bad.elements[2] = .infinity
    #expect(throws: BDLError.self) { try model.forward(bad) }
  }

  @Test("parameter layout: weight then bias per layer, PyTorch shapes")
  func layout() throws {
    let model = try TestNetworks.cnn()
    let shapes = model.layers.flatMap(\.parameterShapes)
    #expect(shapes == [[3, 2, 3, 3], [3], [4, 3, 2, 2], [3, 16], [3]])
    #expect(model.parameterCount == shapes.reduce(0) { $0 + $1.reduce(1, *) })
    // PyTorch's default bound 1/√fan_in: the first conv has fan_in 2·3·3 = 18.
    let first = model.parameters[0..<54]
    #expect(first.allSatisfy { abs($0) <= 1 / 18.0.squareRoot() } && Set(first).count == 54)
  }
}

@Suite("Working-memory guard")
struct WorkingMemoryTests {
  @Test("a batch whose caches cannot fit is refused before allocating, not a crash")
  func refusesHugeBatches() throws {
    let model = try TestNetworks.cnn()
    #expect(throws: BDLError.self) { try model.requireWorkingMemory(batch: 1 << 40) }
    #expect(throws: BDLError.self) { try model.requireWorkingMemory(batch: 1_000, vectors: 1 << 40) }
    try model.requireWorkingMemory(batch: 100, vectors: 3)
  }
}
