/// The K-FAC approximation of a network's GGN: one block per weight, B ⊗ A, and one per bias,
/// B ⊗ [1] (laplace-torch's and curvlinops' default), zero between blocks. Every function of the
/// damped curvature h·G + δ·I is exact through the eigendecompositions of the factors, made once
/// here (`KroneckerEigendecomposition`).
public struct KFAC: Sendable {
  /// One Kronecker block: a weight (B ⊗ A) or a bias (B ⊗ [1]) over a contiguous parameter range.
  public struct Block: Sendable {
    /// Position of the layer in the network's layer list.
    public let layerIndex: Int
    /// The parameters the block covers (row-major weight (d_out, d_in), or the bias (d_out)).
    public let parameters: Range<Int>
    public let isBias: Bool
    public let factors: KroneckerEigendecomposition
  }

  public let blocks: [Block]
  public let parameterCount: Int
  /// The accumulators the factors came from (A, B, counts), for merging and inspection.
  public let accumulators: [KFACLayerAccumulator]

  /// Decomposes the factors of every accumulated layer; `layerIndices[i]` and `offsets[i]` say
  /// where layer i's weight (then bias) sits in the parameter vector of `parameterCount`.
  public init(
    accumulators: [KFACLayerAccumulator], layerIndices: [Int], offsets: [Int], parameterCount: Int
  ) throws(BDLError) {
    guard accumulators.count == layerIndices.count, accumulators.count == offsets.count else {
      throw .shapeMismatch("K-FAC: \(accumulators.count) accumulators for \(layerIndices.count) layers")
    }
    var blocks: [Block] = []
    for (i, accumulator) in accumulators.enumerated() {
      let weightSize = accumulator.outputDimension * accumulator.inputDimension
      let b = try SymmetricEigendecomposition.positiveSemidefinite(accumulator.outputGradientFactor, name: "B of layer \(layerIndices[i])")
      let a = try SymmetricEigendecomposition.positiveSemidefinite(accumulator.inputFactor, name: "A of layer \(layerIndices[i])")
      blocks.append(Block(layerIndex: layerIndices[i], parameters: offsets[i]..<(offsets[i] + weightSize), isBias: false, factors: KroneckerEigendecomposition(b: b, a: a)))
      if accumulator.hasBias {
        let start = offsets[i] + weightSize
        blocks.append(Block(layerIndex: layerIndices[i], parameters: start..<(start + accumulator.outputDimension), isBias: true, factors: KroneckerEigendecomposition(b: b, a: .unit)))
      }
    }
    guard let last = blocks.last?.parameters.upperBound, last <= parameterCount else {
      throw .shapeMismatch("K-FAC: blocks do not fit in \(parameterCount) parameters")
    }
    self.blocks = blocks
    self.parameterCount = parameterCount
    self.accumulators = accumulators
  }

  /// K-FAC of `model` on (inputs, targets): a forward pass and a backward of the Fisher source's
  /// output vectors per batch of `batchSize`, each batch added to the per-layer accumulators.
  /// Monte-Carlo batches draw from one seeded stream, so the result does not depend on the
  /// batch size's effect on seeding (it does on which sample each example gets).
  public static func fit(
    model: Sequential, inputs x: Tensor, targets: Targets, likelihood: some Likelihood,
    fisher: FisherSource = .exact, approximation: KFACApproximation = .expand, batchSize: Int = 256
  ) throws(BDLError) -> KFAC {
    try model.validateInput(x)
    guard targets.count == x.count else { throw .shapeMismatch("\(targets.count) targets for \(x.count) examples") }
    try likelihood.validate(targets, outputs: Tensor(shape: [x.count, model.outputCount]))
    guard batchSize >= 1 else { throw .invalidArgument("batch_size = \(batchSize); it must be ≥ 1") }
    let linearLayers = model.layers.indices.filter { model.layers[$0] is any LinearMapLayer }
    var accumulators: [KFACLayerAccumulator] = []
    for index in linearLayers {
      let layer = model.layers[index] as! any LinearMapLayer
      accumulators.append(try KFACLayerAccumulator(
        inputDimension: layer.inputDimension, outputDimension: layer.outputDimension,
        hasBias: layer.hasBias, approximation: approximation))
    }
    var batchSeed = UInt64(0)
    if case .monteCarlo(_, let seed) = fisher { batchSeed = seed }
    let size = x.exampleSize
    for start in stride(from: 0, to: x.count, by: batchSize) {
      let indices = start..<min(start + batchSize, x.count)
      let xb = try Tensor(shape: [indices.count] + model.inputShape, elements: Array(x.elements[(start * size)..<(indices.upperBound * size)]))
      let pass = try model.forwardPass(xb)
      var source = fisher
      if case .monteCarlo(let samples, _) = fisher {
        source = .monteCarlo(samples: samples, seed: batchSeed)
        batchSeed = batchSeed &+ 0x9E37_79B9_7F4A_7C15  // the next batch's stream
      }
      let v = try source.outputVectors(pass.output, targets.subset(indices), likelihood: likelihood)
      for (i, s) in try model.backward(pass, vectors: v).enumerated() {
        try accumulators[i].add(inputs: s.inputs, outputGradients: s.outputGradients)
      }
    }
    return try KFAC(accumulators: accumulators, layerIndices: linearLayers, offsets: linearLayers.map { model.parameterOffsets[$0] }, parameterCount: model.parameterCount)
  }

  /// log det(h·G_KFAC + δ·I) over the parameters the blocks cover: Σ_blocks Σ_ij log(h β_i α_j + δ).
  public func logDeterminant(scale h: Double = 1, damping δ: Double) throws(BDLError) -> Double {
    var total = 0.0
    for block in blocks { total += try block.factors.logDeterminant(scale: h, shift: δ) }
    return total
  }

  /// (h·G_KFAC + δ·I)^e·v, block by block (exponent −1: the exact damped inverse).
  public func applyPower(_ e: Double, to v: [Double], scale h: Double = 1, damping δ: Double) throws(BDLError) -> [Double] {
    guard v.count == parameterCount else {
      throw .shapeMismatch("vector has \(v.count) entries, the network has \(parameterCount) parameters")
    }
    var result = v
    for block in blocks {
      let piece = try block.factors.applyPower(e, scale: h, shift: δ, to: Array(v[block.parameters]), count: 1)
      result.replaceSubrange(block.parameters, with: piece)
    }
    return result
  }

  /// diag((h·G_KFAC + δ·I)^e) (exponent 1: h·B_ii·A_jj + δ; −1: K-FAC marginal variances).
  public func diagonal(exponent e: Double = 1, scale h: Double = 1, damping δ: Double = 0) throws(BDLError) -> [Double] {
    var result = [Double](repeating: 0, count: parameterCount)
    for block in blocks {
      result.replaceSubrange(block.parameters, with: try block.factors.diagonalOfPower(e, scale: h, shift: δ).elements)
    }
    return result
  }

  /// The dense P × P matrix h·G_KFAC + δ·I (blocks on the diagonal): for tests and small models.
  public func dense(scale h: Double = 1, damping δ: Double = 0) throws(BDLError) -> Matrix {
    _ = try Validation.product(parameterCount, parameterCount, "dense K-FAC size")
    var m = Matrix(rows: parameterCount, columns: parameterCount)
    for block in blocks {
      let local = try Kronecker(block.factors.b.reconstructed(), block.factors.a.reconstructed()).dense()
      for (i, row) in block.parameters.enumerated() {
        for (j, column) in block.parameters.enumerated() { m[row, column] = h * local[i, j] }
      }
    }
    for i in 0..<parameterCount { m[i, i] += δ }
    return m
  }
}
