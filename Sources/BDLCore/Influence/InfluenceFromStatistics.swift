/// Influence for a model that lives elsewhere (e.g. in PyTorch): its per-layer statistics,
/// captured with hooks, and a K-FAC or EK-FAC curvature of the same layers (for example from a
/// `KFACLayerAccumulator` fed with the training statistics and finalized).
extension Influence {
  /// τ(z_q, z_j) = ∇m_qᵀ (G + λI)⁻¹ ∇ℓ_j for the queries and training examples whose statistics
  /// are given: entry i of `queries` and `training` belongs to K-FAC layer i (its accumulator i),
  /// with a (N, R, d_in) and g (N, 1, R, d_out) — for queries the output-gradients of the
  /// measurement, for training examples those of the loss. Call once per batch of training
  /// examples to fill the columns of a larger score matrix. λ as for `fit` (relative: r × the
  /// mean eigenvalue of each block).
  public static func scores(
    curvature kfac: KFAC, damping: Damping, queries: [Sequential.LayerStatistics], training: [Sequential.LayerStatistics]
  ) throws(BDLError) -> Matrix {
    let layers = kfac.blocks.filter { !$0.isBias }
    guard queries.count == layers.count, training.count == layers.count else {
      throw .shapeMismatch("\(queries.count) query and \(training.count) training layer statistics for a curvature of \(layers.count) layers")
    }
    let λ = try damping.perParameter(
      diagonal: try kfac.diagonal(exponent: 1, scale: 1, damping: 0), tensors: kfac.blocks.map(\.parameters), count: kfac.parameterCount)
    let precision = try KroneckerPosteriorPrecision(kfac: kfac, scale: 1, prior: λ, damped: false)
    func relabel(_ list: [Sequential.LayerStatistics], _ what: String) throws(BDLError) -> [Sequential.LayerStatistics] {
      var n: Int? = nil
      var result: [Sequential.LayerStatistics] = []
      for (i, s) in list.enumerated() {
        let block = layers[i]
        guard s.outputGradients.shape[1] == 1 else {
          throw .shapeMismatch("\(what) layer \(i): g has K = \(s.outputGradients.shape[1]) vectors per example; influence needs one gradient each")
        }
        guard s.inputs.shape[2] == block.factors.inputOrder, s.outputGradients.shape[3] == block.factors.outputOrder else {
          throw .shapeMismatch("\(what) layer \(i): d_in = \(s.inputs.shape[2]), d_out = \(s.outputGradients.shape[3]); the curvature's layer has \(block.factors.inputOrder), \(block.factors.outputOrder)")
        }
        guard n == nil || n == s.inputs.shape[0] else { throw .shapeMismatch("\(what) statistics disagree on N across layers") }
        n = s.inputs.shape[0]
        let hasBias = kfac.blocks.contains { $0.isBias && $0.layerIndex == block.layerIndex }
        result.append(Sequential.LayerStatistics(layerIndex: block.layerIndex, inputs: s.inputs, outputGradients: s.outputGradients, hasBias: hasBias))
      }
      return result
    }
    let q = try relabel(queries, "query"), t = try relabel(training, "training")
    let preconditioned = try preconditioned(q, blocks: precision.blocksInEigenbasis())
    var workspace: [Double] = []
    return try contract(preconditioned, with: t, queries: q.first?.inputs.shape[0] ?? 0, workspace: &workspace)
  }
}
