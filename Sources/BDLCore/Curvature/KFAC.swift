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
  /// For a fit from the engine (`fit`, and `fitEigenvalueCorrected`'s first pass): the rate of
  /// its accumulation; nil for factors from accumulators.
  public private(set) var accumulationProfile: AccumulationProfile?

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

  /// K-FAC of `model` on (inputs, targets): per batch of `batchSize`, a forward pass and a
  /// backward of the Fisher source's output vectors, added to the per-layer accumulators; then
  /// the factors are eigendecomposed once (eigenvalues now, eigenvectors on first use; see
  /// `SymmetricEigendecomposition`).
  public static func fit(
    model: Sequential, inputs x: Tensor, targets: Targets, likelihood: some Likelihood,
    fisher: FisherSource = .exact, approximation: KFACApproximation = .expand, batchSize: Int = 256,
    progress: ((Int, Int) -> Void)? = nil, outputs: BatchOutputsObserver? = nil
  ) throws(BDLError) -> KFAC {
    let linearLayers = model.layers.indices.filter { model.layers[$0] is any LinearMapLayer }
    var accumulators: [KFACLayerAccumulator] = []
    for index in linearLayers {
      let layer = model.layers[index] as! any LinearMapLayer
      accumulators.append(try KFACLayerAccumulator(
        inputDimension: layer.inputDimension, outputDimension: layer.outputDimension,
        hasBias: layer.hasBias, approximation: approximation))
    }
    let vectors = fisher.vectorCount(outputs: model.outputCount)
    let (sums, profile) = try sumOverStatistics(
      model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, batchSize: batchSize,
      progress: progress, outputs: outputs, initial: (accumulators, AccumulationProfile()),
      add: { sum, statistics throws(BDLError) in
        let start = AccumulationProfile.now()
        var flops = 0.0
        for (i, s) in statistics.enumerated() {
          try sum.0[i].add(inputs: s.inputs, outputGradients: s.outputGradients, checkingFinite: false, recordingVectors: vectors)
          flops += sum.0[i].gramFlops(inputs: s.inputs, outputGradients: s.outputGradients)
        }
        sum.1.record(flops: flops, since: start)
      },
      combine: { total, other throws(BDLError) in
        for i in total.0.indices { total.0[i] = try total.0[i].merged(with: other.0[i]) }
        total.1.flops += other.1.flops
        total.1.threadSeconds += other.1.threadSeconds
        total.1.workers += other.1.workers
      })
    var kfac = try KFAC(accumulators: sums, layerIndices: linearLayers, offsets: linearLayers.map { model.parameterOffsets[$0] }, parameterCount: model.parameterCount)
    kfac.accumulationProfile = profile
    return kfac
  }

  /// EK-FAC (George et al. 2018): K-FAC's eigenbases Q_B ⊗ Q_A, with the eigenvalues refit in a
  /// second pass over the data to the per-example gradients' second moments in that basis:
  ///   Λ_ij = Σ_n Σ_k ((Q_Bᵀ ∇W_{n,k} Q_A)_ij)²,  ∇W_{n,k} = Σ_r g_{n,k,r} a_{n,r}ᵀ,
  /// and for a bias Λ_i = Σ_n Σ_k ((Q_Bᵀ Σ_r g_{n,k,r})_i)² (curvlinops' rule). Among all matrices
  /// diagonal in K-FAC's eigenbasis it is the closest to the Fisher/GGN in Frobenius norm, so it
  /// is never further than K-FAC; it is exact for one example.
  public static func fitEigenvalueCorrected(
    model: Sequential, inputs x: Tensor, targets: Targets, likelihood: some Likelihood,
    fisher: FisherSource = .exact, approximation: KFACApproximation = .expand, batchSize: Int = 256,
    progress: ((Int, Int) -> Void)? = nil
  ) throws(BDLError) -> KFAC {
    // Progress counts both passes: 0…N while fitting the factors, N…2N while refitting.
    let first = progress.map { report in { (done: Int, total: Int) in report(done, 2 * total) } }
    let second = progress.map { report in { (done: Int, total: Int) in report(total + done, 2 * total) } }
    let kfac = try fit(model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, approximation: approximation, batchSize: batchSize, progress: first)
    let corrected = try sumOverStatistics(
      model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, batchSize: batchSize,
      progress: second, initial: kfac.blocks.map { Matrix(rows: $0.factors.outputOrder, columns: $0.factors.inputOrder) },
      add: { corrected, statistics throws(BDLError) in
        for (blockIndex, block) in kfac.blocks.enumerated() {
          guard let s = statistics.first(where: { $0.layerIndex == block.layerIndex }) else { continue }
          try corrected[blockIndex].add(s.rotatedGradientSquares(in: block.factors, bias: block.isBias))
        }
      },
      combine: { total, other throws(BDLError) in
        for i in total.indices { try total[i].add(other[i]) }
      })
    let blocks = try kfac.blocks.enumerated().map { (i, block) throws(BDLError) in
      // As for K-FAC's factors: refit eigenvalues within rounding of zero are exactly zero, so a
      // singular curvature is reported as singular.
      var values = corrected[i]
      let largest = values.maxAbsoluteEntry
      let floor = SymmetricEigendecomposition.roundingFloor(order: max(values.rows, values.columns), largest: largest)
      for j in values.elements.indices where values.elements[j] <= floor { values.elements[j] = 0 }
      return Block(layerIndex: block.layerIndex, parameters: block.parameters, isBias: block.isBias, factors: try block.factors.correcting(eigenvalues: values))
    }
    return KFAC(blocks: blocks, parameterCount: kfac.parameterCount, accumulators: kfac.accumulators, accumulationProfile: kfac.accumulationProfile)
  }

  /// The same blocks with refit eigenvalues where given (EK-FAC read back from a file).
  func correcting(eigenvalues: [Matrix?]) throws(BDLError) -> KFAC {
    guard eigenvalues.count == blocks.count else { throw .shapeMismatch("\(eigenvalues.count) eigenvalue sets for \(blocks.count) blocks") }
    let corrected = try zip(blocks, eigenvalues).map { (block, values) throws(BDLError) in
      guard let values else { return block }
      return Block(layerIndex: block.layerIndex, parameters: block.parameters, isBias: block.isBias, factors: try block.factors.correcting(eigenvalues: values))
    }
    return KFAC(blocks: corrected, parameterCount: parameterCount, accumulators: accumulators, accumulationProfile: accumulationProfile)
  }

  private init(blocks: [Block], parameterCount: Int, accumulators: [KFACLayerAccumulator], accumulationProfile: AccumulationProfile?) {
    self.blocks = blocks
    self.parameterCount = parameterCount
    self.accumulators = accumulators
    self.accumulationProfile = accumulationProfile
  }

  /// The same curvature with every block damped in `mode` (see `KroneckerDamping`); all later
  /// queries (log det, powers, diagonals, dense) use it. `.unsupported` for EK-FAC.
  public func withDamping(_ mode: KroneckerDamping) throws(BDLError) -> KFAC {
    let damped = try blocks.map { (block) throws(BDLError) in
      Block(layerIndex: block.layerIndex, parameters: block.parameters, isBias: block.isBias, factors: try block.factors.damped(mode))
    }
    return KFAC(blocks: damped, parameterCount: parameterCount, accumulators: accumulators, accumulationProfile: accumulationProfile)
  }

  /// Whether the blocks carry refit (EK-FAC) eigenvalues.
  public var isEigenvalueCorrected: Bool { blocks.contains { $0.factors.correctedEigenvalues != nil } }

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
    try Validation.requireFinite(v, "V")
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

  /// The dense P × P matrix h·G_KFAC + δ·I (blocks on the diagonal), each block built by
  /// applying it to unit vectors: for tests and small models.
  public func dense(scale h: Double = 1, damping δ: Double = 0) throws(BDLError) -> Matrix {
    try requireDamping(scale: h, damping: δ)
    _ = try Validation.product(parameterCount, parameterCount, "dense K-FAC size")
    var m = Matrix.identity(parameterCount)
    try m.scale(by: δ)
    for block in blocks {
      let size = block.parameters.count
      var units = [Double](repeating: 0, count: size * size)
      for i in 0..<size { units[i * size + i] = 1 }
      let columns = try block.factors.applyPower(1, scale: h, shift: δ, to: units, count: size)
      for (i, row) in block.parameters.enumerated() {
        for (j, column) in block.parameters.enumerated() { m[row, column] = columns[j * size + i] }
      }
    }
    return m
  }
}

extension KFAC: CurvatureOperator {}
