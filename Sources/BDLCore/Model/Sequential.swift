/// A feed-forward network: layers applied in order, with one parameter vector θ that is the
/// concatenation, layer by layer, of each layer's weight then bias, flattened row-major in
/// PyTorch's shapes — `parameters_to_vector(model.parameters())` of the same `nn.Sequential`.
public struct Sequential: Sendable {
  public let layers: [any Layer]
  /// Shape of one input example, e.g. [64], [T, D] or [C, H, W].
  public let inputShape: [Int]
  /// Input shape of every layer, then the network's output shape (one example each).
  public let shapes: [[Int]]
  /// Where each layer's parameters start in θ.
  public let parameterOffsets: [Int]
  /// θ.
  public internal(set) var parameters: [Double]

  /// Builds the network for examples of `inputShape`, checking that every layer accepts what the
  /// one before produces and that the output is a vector (C); parameters are initialised as
  /// PyTorch's defaults would be, from `seed`.
  /// - Throws: `.shapeMismatch` naming the first layer (1-based position and description) whose
  ///   input does not fit or whose output is not a vector, `.invalidArgument` for an empty network.
  public init(_ layers: [any Layer], inputShape: [Int], seed: UInt64 = 0) throws(BDLError) {
    guard !layers.isEmpty else { throw .invalidArgument("a network needs at least one layer") }
    guard !inputShape.isEmpty, inputShape.allSatisfy({ $0 >= 1 }) else {
      throw .invalidArgument("input shape \(Tensor.describe(inputShape)) must have positive dimensions")
    }
    var shapes = [inputShape]
    var offsets: [Int] = []
    var total = 0
    for (index, layer) in layers.enumerated() {
      do {
        shapes.append(try layer.outputShape(forInput: shapes[index]))
      } catch {
        throw .shapeMismatch("layer \(index + 1) of \(layers.count): \(error.message)")
      }
      offsets.append(total)
      total += layer.parameterCount
    }
    guard shapes.last!.count == 1 else {
      throw .shapeMismatch("the network's output has shape \(Tensor.describe(shapes.last!)) per example; add Flatten or a pooling layer so that it is a vector")
    }
    self.layers = layers
    self.inputShape = inputShape
    self.shapes = shapes
    self.parameterOffsets = offsets
    self.parameters = [Double](repeating: 0, count: total)
    var random = RandomSource(seed: seed)
    parameters.withUnsafeMutableBufferPointer { p in
      for (index, layer) in layers.enumerated() {
        layer.initialize(
          UnsafeMutableBufferPointer(rebasing: p[offsets[index]..<(offsets[index] + layer.parameterCount)]),
          using: &random)
      }
    }
  }

  /// P, the number of parameters.
  public var parameterCount: Int { parameters.count }
  /// C, the length of the output vector.
  public var outputCount: Int { shapes.last![0] }

  /// Multiply-adds of one example's forward pass through the linear maps (Σ over Linear and
  /// Conv2d layers of positions × d_in × d_out, i.e. output size × d_in): the measure of a
  /// batch's work that decides whether it is worth sharding over threads (`BLASThreads`).
  var forwardMultiplyAdds: Int {
    layers.indices.reduce(0) { total, index in
      guard let map = layers[index] as? any LinearMapLayer else { return total }
      let outputs = shapes[index + 1].reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
      return total.addingReportingOverflow(outputs.multipliedReportingOverflow(by: map.inputDimension).partialValue).partialValue
    }
  }

  /// Replaces θ; `.shapeMismatch` for a wrong length, `.nonFiniteInput` for NaN/Inf (θ unchanged).
  public mutating func setParameters(_ values: [Double]) throws(BDLError) {
    guard values.count == parameters.count else {
      throw .shapeMismatch("parameter vector has \(values.count) entries, the network has \(parameters.count)")
    }
    try Validation.requireFinite(values, "parameters")
    parameters = values
  }

  /// The parameter slice of layer `index`.
  public func parameterRange(ofLayer index: Int) -> Range<Int> {
    parameterOffsets[index]..<(parameterOffsets[index] + layers[index].parameterCount)
  }

  /// Checks a batch: shape (N, inputShape…) with N ≥ 1 and finite entries.
  public func validateInput(_ x: Tensor) throws(BDLError) {
    guard x.shape.count == inputShape.count + 1, Array(x.shape.dropFirst()) == inputShape else {
      throw .shapeMismatch("input has shape \(Tensor.describe(x.shape)); the network expects (N, \(inputShape.map(String.init).joined(separator: ", ")))")
    }
    guard x.count >= 1 else { throw .shapeMismatch("input batch is empty (N = 0)") }
    try Validation.requireFinite(x.elements, "X")
    try requireWorkingMemory(batch: x.count)
  }

  /// Σ over layers of (input + output) sizes of one example: a backward pass's memory per output
  /// vector (gradients and statistics), in doubles.
  var activationCount: Int {
    layers.indices.reduce(0) { $0 &+ shapes[$1].reduce(1, *) &+ shapes[$1 + 1].reduce(1, *) }
  }

  /// Refuses a batch whose activations and caches (and, for `vectors` K > 0, the backward
  /// gradients and statistics) would not fit in memory, before anything is allocated. Estimates:
  /// forward N·Σ_layers (output + cache, `Layer.cacheSize`); backward
  /// N·K·Σ_layers (input + output).
  public func requireWorkingMemory(batch n: Int, vectors k: Int = 0) throws(BDLError) {
    let size = { (shape: [Int]) in shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue } }
    var perExample = 0, perVector = 0
    for (index, layer) in layers.enumerated() {
      let input = size(shapes[index]), output = size(shapes[index + 1])
      perExample = perExample &+ output &+ layer.cacheSize(forInput: shapes[index])
      perVector = perVector &+ input &+ output
    }
    let total = n.multipliedReportingOverflow(by: perExample).partialValue
      .addingReportingOverflow(n.multipliedReportingOverflow(by: k).partialValue.multipliedReportingOverflow(by: perVector).partialValue).partialValue
    try Validation.requireAllocatable(total, "a batch of \(n) examples\(k > 0 ? " with \(k) output vectors each" : "")")
  }

  /// The outputs f(x) for a batch: (N, C).
  public func forward(_ x: Tensor) throws(BDLError) -> Tensor {
    try validateInput(x)
    return try forwardPass(x).output
  }

  /// Every layer's cache and the output: what a backward pass needs.
  public struct ForwardPass: Sendable {
    public let output: Tensor
    let caches: [Tensor]
    let batchSize: Int
  }

  /// The forward pass keeping the caches (input already validated).
  public func forwardPass(_ x: Tensor) throws(BDLError) -> ForwardPass {
    var current = x
    var caches: [Tensor] = []
    caches.reserveCapacity(layers.count)
    try parameters.withUnsafeBufferPointer { p throws(BDLError) in
      for (index, layer) in layers.enumerated() {
        let (output, cache) = try layer.forward(current, parameters: UnsafeBufferPointer(rebasing: p[parameterRange(ofLayer: index)]))
        caches.append(cache)
        current = output
      }
    }
    return ForwardPass(output: current, caches: caches, batchSize: x.count)
  }

  /// The layer inputs a (N, R, d_in) and output-gradients g (N, K, R, d_out) of one linear-map
  /// layer: the per-example statistics behind gradients, Jacobians and K-FAC.
  public struct LayerStatistics: Sendable {
    /// Position of the layer in `layers`.
    public let layerIndex: Int
    public let inputs: Tensor
    public let outputGradients: Tensor
    public let hasBias: Bool

    init(layerIndex: Int, inputs: Tensor, outputGradients: Tensor, hasBias: Bool) {
      self.layerIndex = layerIndex
      self.inputs = inputs
      self.outputGradients = outputGradients
      self.hasBias = hasBias
    }

    /// Statistics captured outside the engine: a (N, R, d_in) and g (N, K, R, d_out), finite.
    /// - Throws: `.shapeMismatch` for other ranks or disagreeing N and R, `.nonFiniteInput`.
    public init(capturedAt layerIndex: Int, inputs a: Tensor, outputGradients g: Tensor, hasBias: Bool) throws(BDLError) {
      guard a.shape.count == 3, g.shape.count == 4, a.shape[0] == g.shape[0], a.shape[1] == g.shape[2] else {
        throw .shapeMismatch("layer \(layerIndex): a has shape \(Tensor.describe(a.shape)) and g \(Tensor.describe(g.shape)); expected (N, R, d_in) and (N, K, R, d_out)")
      }
      try Validation.requireFinite(a.elements, "a of layer \(layerIndex)")
      try Validation.requireFinite(g.elements, "g of layer \(layerIndex)")
      self.init(layerIndex: layerIndex, inputs: a, outputGradients: g, hasBias: hasBias)
    }
  }

  /// Backpropagates K vectors per example through the network: V (N, K, C) gives, for every
  /// linear-map layer, its a and g with g_{n,k} = ∂⟨f(x_n), V_{n,k}⟩/∂(layer output). Never forms
  /// a Jacobian.
  public func backward(_ pass: ForwardPass, vectors v: Tensor) throws(BDLError) -> [LayerStatistics] {
    guard v.shape.count == 3, v.shape[0] == pass.batchSize, v.shape[2] == outputCount, v.shape[1] >= 1 else {
      throw .shapeMismatch("output vectors have shape \(Tensor.describe(v.shape)); expected (\(pass.batchSize), K, \(outputCount)) with K ≥ 1")
    }
    try Validation.requireFinite(v.elements, "V")
    let k = v.shape[1]
    try requireWorkingMemory(batch: pass.batchSize, vectors: k)
    var gradient = v
    var statistics: [LayerStatistics] = []
    try parameters.withUnsafeBufferPointer { p throws(BDLError) in
      for index in layers.indices.reversed() {
        let layer = layers[index]
        let slice = UnsafeBufferPointer(rebasing: p[parameterRange(ofLayer: index)])
        gradient = gradient.reshaped([pass.batchSize, k] + shapes[index + 1])
        // The gradient with respect to the network input (index 0) is not needed.
        if let map = layer as? any LinearMapLayer {
          let (recorded, inputGradient) = try map.recordingBackward(
            consume gradient, cache: pass.caches[index], inputShape: shapes[index], parameters: slice, inputGradient: index > 0)
          statistics.append(LayerStatistics(
            layerIndex: index, inputs: map.layerInputs(cache: pass.caches[index]), outputGradients: recorded, hasBias: map.hasBias))
          gradient = inputGradient ?? Tensor(shape: [0])
        } else if index > 0 {
          gradient = try layer.backward(consume gradient, cache: pass.caches[index], inputShape: shapes[index], parameters: slice)
        }
      }
    }
    return statistics.reversed()
  }

  /// Σ_{n,k} ∂⟨f(x_n), V_{n,k}⟩/∂θ, the summed parameter gradient (a gemm per layer).
  public func parameterGradient(_ statistics: [LayerStatistics]) throws(BDLError) -> [Double] {
    var gradient = [Double](repeating: 0, count: parameterCount)
    for s in statistics {
      let (n, k, r) = (s.outputGradients.shape[0], s.outputGradients.shape[1], s.outputGradients.shape[2])
      let dOut = s.outputGradients.shape[3], dIn = s.inputs.shape[2]
      // a does not depend on k: sum the K output-gradients first, then dW = Σ_{n,r} ĝ aᵀ.
      let summed = k == 1 ? s.outputGradients.elements : [Double](unsafeUninitializedCapacity: n * r * dOut) { out, initialized in
        s.outputGradients.elements.withUnsafeBufferPointer { gp in
          let block = r * dOut
          for example in 0..<n {
            let target = out.baseAddress! + example * block
            target.update(from: gp.baseAddress! + example * k * block, count: block)
            for vector in 1..<k {
              let source = gp.baseAddress! + (example * k + vector) * block
              for i in 0..<block { target[i] += source[i] }
            }
          }
        }
        initialized = n * r * dOut
      }
      let offset = parameterOffsets[s.layerIndex]
      try summed.withUnsafeBufferPointer { gp throws(BDLError) in
        try s.inputs.elements.withUnsafeBufferPointer { ap throws(BDLError) in
          try gradient.withUnsafeMutableBufferPointer { out throws(BDLError) in
            try BLAS.gemm(
              transposeA: true, transposeB: false, m: dOut, n: dIn, k: n * r, alpha: 1,
              a: gp.baseAddress!, lda: dOut, b: ap.baseAddress!, ldb: dIn, beta: 0,
              c: out.baseAddress! + offset, ldc: dIn)
            if s.hasBias {
              let bias = out.baseAddress! + offset + dOut * dIn
              var row = gp.baseAddress!
              for _ in 0..<(n * r) {
                for i in 0..<dOut { bias[i] += row[i] }
                row += dOut
              }
            }
          }
        }
      }
    }
    return gradient
  }

  /// Per-example, per-vector parameter gradients ∂⟨f(x_n), V_{n,k}⟩/∂θ as an (N·K) × P matrix
  /// (row n·K + k): for small models and tests. P·N·K doubles.
  public func perExampleGradients(_ statistics: [LayerStatistics]) throws(BDLError) -> Matrix {
    guard let first = statistics.first else {
      throw .invalidArgument("the network has no linear-map layer, so no parameter gradients")
    }
    let n = first.outputGradients.shape[0], k = first.outputGradients.shape[1]
    let rows = n * k
    _ = try Validation.product(try Validation.product(rows, parameterCount, "per-example gradients"), 8, "bytes")
    var result = Matrix(rows: rows, columns: parameterCount)
    for s in statistics {
      let r = s.outputGradients.shape[2], dOut = s.outputGradients.shape[3], dIn = s.inputs.shape[2]
      let offset = parameterOffsets[s.layerIndex]
      try s.outputGradients.elements.withUnsafeBufferPointer { gp throws(BDLError) in
        try s.inputs.elements.withUnsafeBufferPointer { ap throws(BDLError) in
          try result.elements.withUnsafeMutableBufferPointer { out throws(BDLError) in
            for example in 0..<n {
              for vector in 0..<k {
                let row = example * k + vector
                let g = gp.baseAddress! + row * r * dOut
                let target = out.baseAddress! + row * parameterCount + offset
                try BLAS.gemm(
                  transposeA: true, transposeB: false, m: dOut, n: dIn, k: r, alpha: 1, a: g, lda: dOut,
                  b: ap.baseAddress! + example * r * dIn, ldb: dIn, beta: 0, c: target, ldc: dIn)
                if s.hasBias {
                  for position in 0..<r {
                    for i in 0..<dOut { target[dOut * dIn + i] += g[position * dOut + i] }
                  }
                }
              }
            }
          }
        }
      }
    }
    return result
  }

  /// The Jacobian J(x_n) = ∂f(x_n)/∂θ for a few inputs, as an (N·C) × P matrix (row n·C + c):
  /// backward of the C unit vectors per example. For predictive variances and tests.
  public func jacobian(_ x: Tensor) throws(BDLError) -> Matrix {
    try validateInput(x)
    let pass = try forwardPass(x)
    let c = outputCount
    var units = Tensor(shape: [x.count, c, c])
    for example in 0..<x.count {
      for i in 0..<c { units.elements[(example * c + i) * c + i] = 1 }
    }
    return try perExampleGradients(backward(pass, vectors: units))
  }
}
