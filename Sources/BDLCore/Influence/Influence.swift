/// Influence of training examples on a query (Koh & Liang 2017, with a curvature of choice):
///
///   τ(z_q, z_j) = ∇_θ m(θ*; z_q)ᵀ (G + λI)⁻¹ ∇_θ ℓ(θ*; z_j),
///
/// G the curvature as a SUM over the N training examples (DESIGN.md §4), λ ≥ 0 the damping.
/// Sign: for the summed objective Σ_j ℓ_j + ½θᵀP0θ (Hessian G + P0 ≈ G + λI), removing the set
/// S changes m to first order by +Σ_{j∈S} τ(z_q, z_j). A positive score means the example pushed
/// m down — for a loss measurement, it helped the query.
///
/// Scores never store per-example training gradients beyond one batch: the few queries are
/// preconditioned once (Q̃_q = (G + λI)⁻¹∇m_q, exactly, through the same factorisations as a
/// Laplace posterior with h = 1 and prior precision λ), then each training batch's per-example
/// gradients meet all queries in one gemm.
public struct Influence: Sendable {
  /// The curvature G.
  public enum Curvature: Int, Sendable, CaseIterable {
    /// The dense GGN (small models).
    case ggn = 0
    /// The exact GGN diagonal.
    case diagonal = 1
    /// K-FAC, inverted exactly through its eigendecompositions: 1/(β_i α_j + λ).
    case kfac = 2
    /// EK-FAC: K-FAC's eigenbases with refit eigenvalues Λ_ij: 1/(Λ_ij + λ).
    case ekfac = 3
    /// G + λI replaced by I: plain gradient dot products (TracIn-style), damping unused.
    case identity = 4
  }

  /// How λ is chosen.
  public enum Damping: Sendable, Equatable {
    /// λ for every parameter.
    case absolute(Double)
    /// λ = r × the mean eigenvalue of G on each parameter tensor (tr(G_t)/n_t: for K-FAC the
    /// mean of β_i α_j, for EK-FAC of Λ_ij) — scale-free, as kronfluence's heuristic damping.
    case relative(Double)

    /// λ per parameter: the absolute value, or r × the mean of diag(G) over each tensor (the
    /// identity has no G: its λ is the value given, and unused).
    /// - Throws: `.invalidArgument` for a negative value, `.nonFiniteInput` for NaN/Inf.
    func perParameter(diagonal: [Double]?, tensors: [Range<Int>], count: Int) throws(BDLError) -> [Double] {
      let factor: Double
      switch self {
      case .absolute(let value), .relative(let value):
        guard value.isFinite, value >= 0 else {
          throw value.isFinite ? .invalidArgument("damping = \(value); it must be ≥ 0") : .nonFiniteInput("damping = \(value)")
        }
        factor = value
      }
      var λ = [Double](repeating: factor, count: count)
      if case .relative = self, let diagonal {
        for range in tensors {
          let mean = CompensatedSum.of(diagonal[range]) / Double(range.count)
          for p in range { λ[p] = factor * mean }
        }
      }
      return λ
    }
  }

  public let curvature: Curvature
  public let likelihood: LaplaceLikelihood
  /// λ per parameter.
  public let damping: [Double]
  /// (G + λI) factored; nil for `identity`.
  let precision: (any PosteriorPrecision)?
  /// The training set (kept: scores and self-influence run over it).
  public let trainInputs: Tensor
  public let trainTargets: Targets
  /// The network's parameter count at fit (a changed network is refused).
  public let parameterCount: Int
  /// Examples per forward/backward pass.
  public let batchSize: Int

  /// Fits G on the training set at the model's parameters θ*.
  /// - Throws: `.invalidArgument` for λ < 0 or non-finite, bad options; `.notPositiveDefinite`
  ///   when λ = 0 leaves G + λI singular; shape and label errors as the engine's.
  public static func fit(
    model: Sequential, inputs x: Tensor, targets: Targets, likelihood: LaplaceLikelihood, curvature: Curvature = .ekfac,
    fisher: FisherSource = .exact, approximation: KFACApproximation = .expand, damping: Damping = .relative(0.1),
    batchSize: Int = 256, progress: ((Int, Int) -> Void)? = nil
  ) throws(BDLError) -> Influence {
    try model.validateInput(x)
    guard targets.count == x.count else { throw .shapeMismatch("\(targets.count) targets for \(x.count) examples") }
    guard batchSize >= 1 else { throw .invalidArgument("batch_size = \(batchSize); it must be ≥ 1") }
    let fitted: Laplace.Curvature?
    let structure: Laplace.Structure = curvature == .ggn ? .full : curvature == .diagonal ? .diagonal : .kron
    switch (curvature, likelihood) {
    case (.identity, _): fitted = nil
    case (_, .classification):
      fitted = try .fit(
        structure, eigenvalueCorrected: curvature == .ekfac, model: model, inputs: x, targets: targets,
        likelihood: CategoricalLikelihood(), fisher: fisher, approximation: approximation, batchSize: batchSize, progress: progress)
    case (_, .regression):
      fitted = try .fit(
        structure, eigenvalueCorrected: curvature == .ekfac, model: model, inputs: x, targets: targets,
        likelihood: GaussianLikelihood(), fisher: fisher, approximation: approximation, batchSize: batchSize, progress: progress)
    }
    let λ = try damping.perParameter(diagonal: try fitted?.diagonal(), tensors: model.tensorRanges, count: model.parameterCount)
    let precision = try fitted?.precision(scale: 1, prior: λ)
    return Influence(
      curvature: curvature, likelihood: likelihood, damping: λ, precision: precision, trainInputs: x, trainTargets: targets,
      parameterCount: model.parameterCount, batchSize: batchSize)
  }

  /// The training set size N.
  public var trainCount: Int { trainInputs.count }

  func requireModel(_ model: Sequential) throws(BDLError) {
    guard model.parameterCount == parameterCount else {
      throw .shapeMismatch("the network has \(model.parameterCount) parameters; the influence object was fitted to one with \(parameterCount)")
    }
  }

  /// Rows ∇_θ⟨f(x_n), v_n⟩ (N × P) for one output vector per example, in one pass.
  static func gradientRows(_ model: Sequential, _ x: Tensor, vectors: (Tensor) throws(BDLError) -> Tensor) throws(BDLError) -> Matrix {
    let pass = try model.forwardPass(x)
    return try model.perExampleGradients(model.backward(pass, vectors: try vectors(pass.output)))
  }

  /// ∇_θ m(θ*; z_q) for each query (N_q × P).
  public func queryGradients(
    model: Sequential, queries x: Tensor, targets: Targets?, measurement: InfluenceMeasurement = .loss
  ) throws(BDLError) -> Matrix {
    try requireModel(model)
    try model.validateInput(x)
    if let targets, targets.count != x.count { throw .shapeMismatch("\(targets.count) query targets for \(x.count) queries") }
    return try Self.gradientRows(model, x) { (f) throws(BDLError) in try measurement.outputVectors(f, targets: targets, likelihood: likelihood) }
  }

  /// The training-loss gradient vectors ∂ℓ/∂f (N_b, 1, C) of a batch.
  func lossVectors(_ f: Tensor, _ targets: Targets) throws(BDLError) -> Tensor {
    try InfluenceMeasurement.loss.outputVectors(f, targets: targets, likelihood: likelihood)
  }

  /// Training examples per batch: per-example gradient rows of at most 2²⁴ doubles (128 MB).
  func gradientBatch(_ p: Int) -> Int { max(1, min(batchSize, (1 << 24) / max(p, 1))) }

  /// One layer's preconditioned queries, in the basis the curvature is diagonal in.
  struct PreconditionedLayer {
    /// Q_B and Q_A (nil: the parameter basis).
    let outputBasis: Matrix?
    let inputBasis: Matrix?
    /// (N_q·d_out × d_in): per query the weight block of (G + λI)⁻¹∇m, in that basis.
    let weights: Matrix
    /// (N_q × d_out) for the bias, or nil.
    let bias: Matrix?
  }

  /// The queries preconditioned layer by layer. For the diagonal and Kronecker curvatures in each
  /// block's eigenbasis, from the queries' layer statistics: W_q = (Σ_r Q_Bᵀ g_{q,r} a_{q,r}ᵀ Q_A) ∘ (1/d)
  /// — O(d_out·d_in) per query, no rotation back. Otherwise (G + λI)⁻¹ applied to the queries'
  /// gradients in the parameter basis.
  func preconditionedQueries(model: Sequential, pass: Sequential.ForwardPass, vectors: Tensor) throws(BDLError) -> [Int: PreconditionedLayer] {
    let nq = vectors.shape[0]
    let statistics = try model.backward(pass, vectors: vectors)
    var layers: [Int: PreconditionedLayer] = [:]
    if let blocks = try precision?.varianceBlocks(head: model) {
      return try Self.preconditioned(statistics, blocks: blocks)
    }
    let gradients = try model.perExampleGradients(statistics)
    let preconditioned = try precision?.applyPower(-1, toRows: gradients) ?? gradients
    for s in statistics {
      let dOut = s.outputGradients.shape[3], dIn = s.inputs.shape[2], offset = model.parameterOffsets[s.layerIndex]
      var w = Matrix(rows: nq * dOut, columns: dIn)
      var b = Matrix(rows: nq, columns: dOut)
      for q in 0..<nq {
        let row = q * model.parameterCount + offset
        w.elements.replaceSubrange((q * dOut * dIn)..<((q + 1) * dOut * dIn), with: preconditioned.elements[row..<(row + dOut * dIn)])
        if s.hasBias {
          b.elements.replaceSubrange((q * dOut)..<((q + 1) * dOut), with: preconditioned.elements[(row + dOut * dIn)..<(row + dOut * dIn + dOut)])
        }
      }
      layers[s.layerIndex] = PreconditionedLayer(outputBasis: nil, inputBasis: nil, weights: w, bias: s.hasBias ? b : nil)
    }
    return layers
  }

  /// The block path of `preconditionedQueries`: per layer W_q = (Σ_r Q_Bᵀ g_{q,r} a_{q,r}ᵀ Q_A) ∘ (1/d)
  /// from the queries' statistics (a (N_q, R, d_in), g (N_q, 1, R, d_out)).
  static func preconditioned(_ statistics: [Sequential.LayerStatistics], blocks: [VarianceBlock]) throws(BDLError) -> [Int: PreconditionedLayer] {
    var layers: [Int: PreconditionedLayer] = [:]
    for s in statistics {
      let nq = s.outputGradients.shape[0], r = s.outputGradients.shape[2], dOut = s.outputGradients.shape[3], dIn = s.inputs.shape[2]
      guard let weightBlock = blocks.first(where: { $0.layerIndex == s.layerIndex && !$0.isBias }) else {
        throw .shapeMismatch("no curvature block for layer \(s.layerIndex)")
      }
      guard weightBlock.inverseEigenvalues.rows == dOut, weightBlock.inverseEigenvalues.columns == dIn else {
        throw .shapeMismatch("layer \(s.layerIndex): statistics have d_out = \(dOut), d_in = \(dIn); the curvature block is \(weightBlock.inverseEigenvalues.rows) × \(weightBlock.inverseEigenvalues.columns)")
      }
      var g = try Matrix(rows: nq * r, columns: dOut, elements: s.outputGradients.elements)
      if let qb = weightBlock.outputBasis { g = try g.multiplied(by: qb) }
      var a = try Matrix(rows: nq * r, columns: dIn, elements: s.inputs.elements)
      if let qa = weightBlock.inputBasis { a = try a.multiplied(by: qa) }
      var weights = Matrix(rows: nq * dOut, columns: dIn)
      for q in 0..<nq {
        // Σ_r g̃_{q,r} ã_{q,r}ᵀ (d_out × d_in), then ∘ 1/d.
        let gq = try Matrix(rows: r, columns: dOut, elements: Array(g.elements[(q * r * dOut)..<((q + 1) * r * dOut)]))
        let aq = try Matrix(rows: r, columns: dIn, elements: Array(a.elements[(q * r * dIn)..<((q + 1) * r * dIn)]))
        let m = try gq.multiplied(by: aq, transposingSelf: true)
        for i in 0..<(dOut * dIn) { weights.elements[q * dOut * dIn + i] = m.elements[i] * weightBlock.inverseEigenvalues.elements[i] }
      }
      var bias: Matrix? = nil
      if let biasBlock = blocks.first(where: { $0.layerIndex == s.layerIndex && $0.isBias }) {
        var b = Matrix(rows: nq, columns: dOut)
        for q in 0..<nq {
          for position in 0..<r {
            for i in 0..<dOut { b.elements[q * dOut + i] += g.elements[(q * r + position) * dOut + i] }
          }
          for i in 0..<dOut { b.elements[q * dOut + i] *= biasBlock.inverseEigenvalues.elements[i] }
        }
        bias = b
      }
      layers[s.layerIndex] = PreconditionedLayer(outputBasis: weightBlock.outputBasis, inputBasis: weightBlock.inputBasis, weights: weights, bias: bias)
    }
    return layers
  }

  /// Σ over layers of ⟨W_q, Σ_r g̃_{j,r} ã_{j,r}ᵀ⟩ (+ bias terms) for the training examples of one
  /// batch of statistics (a (B, R, d_in), g (B, 1, R, d_out)): an N_q × B block of scores.
  static func contract(
    _ layers: [Int: PreconditionedLayer], with statistics: [Sequential.LayerStatistics], queries nq: Int,
    workspace: inout [Double]
  ) throws(BDLError) -> Matrix {
    let count = statistics.first?.inputs.shape[0] ?? 0
    var block = Matrix(rows: nq, columns: count)
    for s in statistics {
      guard let layer = layers[s.layerIndex] else { continue }
      let r = s.outputGradients.shape[2], dOut = s.outputGradients.shape[3], dIn = s.inputs.shape[2]
      var a = try Matrix(rows: count * r, columns: dIn, elements: s.inputs.elements)
      if let qa = layer.inputBasis { a = try a.multiplied(by: qa) }
      var g = try Matrix(rows: count * r, columns: dOut, elements: s.outputGradients.elements)
      if let qb = layer.outputBasis { g = try g.multiplied(by: qb) }
      // Y = Ã·Wᵀ, (B·R) × (N_q·d_out), into the reused workspace (fresh pages would be zeroed by
      // the kernel on first touch every batch: ~0.1 s per GB).
      let rows = count * r, columns = nq * dOut
      if workspace.count < rows * columns { workspace = [Double](repeating: 0, count: rows * columns) }
      try a.elements.withUnsafeBufferPointer { ap throws(BDLError) in
        try layer.weights.elements.withUnsafeBufferPointer { wp throws(BDLError) in
          try workspace.withUnsafeMutableBufferPointer { yp throws(BDLError) in
            try BLAS.gemm(
              transposeA: false, transposeB: true, m: rows, n: columns, k: a.columns, alpha: 1, a: ap.baseAddress!,
              lda: a.columns, b: wp.baseAddress!, ldb: a.columns, beta: 0, c: yp.baseAddress!, ldc: columns)
          }
        }
      }
      workspace.withUnsafeBufferPointer { yp in
        g.elements.withUnsafeBufferPointer { gp in
          block.elements.withUnsafeMutableBufferPointer { bp in
            for j in 0..<count {
              for position in 0..<r {
                let row = yp.baseAddress! + (j * r + position) * columns, gRow = gp.baseAddress! + (j * r + position) * dOut
                for q in 0..<nq {
                  var total = 0.0
                  let yq = row + q * dOut
                  for i in 0..<dOut { total += yq[i] * gRow[i] }
                  bp[q * count + j] += total
                }
              }
            }
          }
        }
      }
      if let bias = layer.bias {
        var summed = Matrix(rows: count, columns: dOut)
        for j in 0..<count {
          for position in 0..<r {
            for i in 0..<dOut { summed.elements[j * dOut + i] += g.elements[(j * r + position) * dOut + i] }
          }
        }
        try block.add(try bias.multiplied(by: summed, transposingOther: true))
      }
    }
    return block
  }

  /// τ(z_q, z_j) for every query and training example (N_q × N).
  ///
  /// The queries are preconditioned once (`preconditionedQueries`). Then, per batch of training
  /// examples, their layer statistics (inputs a, output-gradients g of the loss), rotated into the
  /// same basis, meet all queries layer by layer without forming per-example gradients: for a
  /// weight block
  ///   Σ_{i,k} W_q[i,k] Σ_r g̃_{j,r}[i] ã_{j,r}[k]  =  Σ_{r,i} (Ã Wᵀ)[(j,r),(q,i)] · g̃_{j,r}[i],
  /// one gemm (B·R × d_in)·(d_in × N_q·d_out) and a reduction; for a bias Σ_i W_q[i] Σ_r g̃_{j,r}[i].
  public func scores(
    model: Sequential, queries x: Tensor, targets: Targets?, measurement: InfluenceMeasurement = .loss,
    progress: ((Int, Int) -> Void)? = nil
  ) throws(BDLError) -> Matrix {
    try requireModel(model)
    try model.validateInput(x)
    if let targets, targets.count != x.count { throw .shapeMismatch("\(targets.count) query targets for \(x.count) queries") }
    let n = trainCount, nq = x.count
    try Validation.requireAllocatable(try Validation.product(nq, n, "scores"), "scores")
    let queryPass = try model.forwardPass(x)
    let layers = try preconditionedQueries(
      model: model, pass: queryPass, vectors: try measurement.outputVectors(queryPass.output, targets: targets, likelihood: likelihood))
    // Batches of `batchSize`, fewer if the largest Ã Wᵀ product (B·R × N_q·d_out) would exceed
    // 2²⁴ doubles (128 MB).
    let widest = model.layers.indices.compactMap { i -> Int? in
      guard let map = model.layers[i] as? any LinearMapLayer else { return nil }
      return nq * map.outputDimension * (model.shapes[i + 1].reduce(1, *) / map.outputDimension)
    }.max() ?? 1
    let batch = max(1, min(batchSize, (1 << 24) / max(widest, 1)))
    var result = Matrix(rows: nq, columns: n)
    var workspace: [Double] = []
    let size = trainInputs.exampleSize
    for start in stride(from: 0, to: n, by: batch) {
      let end = min(start + batch, n), count = end - start
      let xb = try Tensor(shape: [count] + model.inputShape, elements: Array(trainInputs.elements[(start * size)..<(end * size)]))
      let pass = try model.forwardPass(xb)
      let statistics = try model.backward(pass, vectors: try lossVectors(pass.output, trainTargets.subset(start..<end)))
      let block = try Self.contract(layers, with: statistics, queries: nq, workspace: &workspace)
      for q in 0..<nq {
        result.elements.replaceSubrange((q * n + start)..<(q * n + end), with: block.elements[(q * count)..<((q + 1) * count)])
      }
      progress?(end, n)
    }
    return result
  }

  /// Self-influence τ(z_j, z_j) = ∇ℓ_jᵀ (G + λI)⁻¹ ∇ℓ_j for every training example: for the
  /// diagonal and Kronecker curvatures from layer statistics in each block's eigenbasis (no
  /// per-example gradient is formed), otherwise from per-example gradient rows in batches.
  public func selfInfluence(model: Sequential, progress: ((Int, Int) -> Void)? = nil) throws(BDLError) -> [Double] {
    try requireModel(model)
    let n = trainCount, size = trainInputs.exampleSize
    let blocks = try precision?.varianceBlocks(head: model)
    let batch = blocks == nil ? gradientBatch(parameterCount) : max(1, min(batchSize, (1 << 22) / max(1, model.activationCount)))
    var result = [Double](repeating: 0, count: n)
    for start in stride(from: 0, to: n, by: batch) {
      let end = min(start + batch, n)
      let xb = try Tensor(shape: [end - start] + model.inputShape, elements: Array(trainInputs.elements[(start * size)..<(end * size)]))
      if let blocks {
        let pass = try model.forwardPass(xb)
        let vectors = try lossVectors(pass.output, trainTargets.subset(start..<end))
        var forms = Tensor(shape: [end - start, 1, 1])
        try Laplace.addBlockwiseQuadraticForms(head: model, inputs: xb, vectors: vectors, blocks: blocks, into: &forms, at: 0)
        result.replaceSubrange(start..<end, with: forms.elements)
      } else {
        let rows = try Self.gradientRows(model, xb) { (f) throws(BDLError) in try lossVectors(f, trainTargets.subset(start..<end)) }
        let solved = try precision?.applyPower(-1, toRows: rows) ?? rows
        for j in 0..<rows.rows {
          result[start + j] = try dot(Array(rows.elements[(j * rows.columns)..<((j + 1) * rows.columns)]), Array(solved.elements[(j * rows.columns)..<((j + 1) * rows.columns)]))
        }
      }
      progress?(end, n)
    }
    return result
  }

  /// Per query (row of `scores`), the indices of the k largest scores (most helpful: removing
  /// them raises the measurement most) and of the k smallest (most harmful), in order; ties go
  /// to the lower index.
  public static func topK(_ scores: Matrix, k: Int) throws(BDLError) -> (helpful: [[Int]], harmful: [[Int]]) {
    guard k >= 1, k <= scores.columns else { throw .invalidArgument("k = \(k); it must be in 1...\(scores.columns) (the training set size)") }
    try Validation.requireFinite(scores.elements, "scores")
    var helpful: [[Int]] = [], harmful: [[Int]] = []
    for q in 0..<scores.rows {
      let row = Array(scores.elements[(q * scores.columns)..<((q + 1) * scores.columns)])
      // Ties broken by the lower index, so results are deterministic.
      let descending = row.indices.sorted { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 }
      let ascending = row.indices.sorted { row[$0] != row[$1] ? row[$0] < row[$1] : $0 < $1 }
      helpful.append(Array(descending.prefix(k)))
      harmful.append(Array(ascending.prefix(k)))
    }
    return (helpful, harmful)
  }
}

extension Sequential {
  /// The parameter tensors' ranges in θ (each linear map's weight, then its bias).
  var tensorRanges: [Range<Int>] {
    var ranges: [Range<Int>] = []
    var start = 0
    for size in tensorSizes {
      ranges.append(start..<(start + size))
      start += size
    }
    return ranges
  }
}
