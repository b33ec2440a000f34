/// What pruning left of a network, per linear-map layer (Linear, Conv2d) and in total: parameters
/// kept and the cost of one example's forward pass in multiply-accumulates.
///
/// A layer computing y_r = W·a_r + b at R positions per example (R = 1 for a dense layer on
/// vectors, T on sequences, H_out·W_out for a convolution) costs R·d_out·d_in multiply-accumulates
/// (MACs; one MAC is a multiply and an add, 2 FLOPs) when dense, and R·(kept weights) after the
/// mask — the products with a zero weight are the ones sparse kernels skip. Bias additions,
/// activations and pooling are not counted (they are not multiply-accumulates), and an input
/// that is dead because its upstream unit was pruned is not discounted.
public struct SparsityReport: Sendable, Equatable {
  /// One linear-map layer.
  public struct Layer: Sendable, Equatable {
    /// The layer's position in the network's layer list.
    public let layerIndex: Int
    public let weights: Int
    public let keptWeights: Int
    public let biases: Int
    public let keptBiases: Int
    /// Output neurons (Linear) or filters (Conv2d).
    public let units: Int
    /// Units with at least one kept weight or bias.
    public let keptUnits: Int
    /// R·d_out·d_in per example.
    public let multiplyAccumulates: Int
    /// R·(kept weights) per example.
    public let keptMultiplyAccumulates: Int

    /// The fraction of the layer's weights removed.
    public var weightSparsity: Double { weights == 0 ? 0 : 1 - Double(keptWeights) / Double(weights) }
  }

  public let layers: [Layer]

  public var weights: Int { layers.reduce(0) { $0 + $1.weights } }
  public var keptWeights: Int { layers.reduce(0) { $0 + $1.keptWeights } }
  public var multiplyAccumulates: Int { layers.reduce(0) { $0 + $1.multiplyAccumulates } }
  public var keptMultiplyAccumulates: Int { layers.reduce(0) { $0 + $1.keptMultiplyAccumulates } }
  /// The fraction of all weights removed.
  public var weightSparsity: Double { weights == 0 ? 0 : 1 - Double(keptWeights) / Double(weights) }
}

extension Sequential {
  /// The sparsity of the network under `mask`, or — with no mask — of its parameters as they are
  /// (a parameter that is exactly 0 counts as pruned).
  /// - Throws: `.shapeMismatch` for a mask made for another network.
  public func sparsityReport(mask: PruningMask? = nil) throws(BDLError) -> SparsityReport {
    try mask?.requireMatches(self)
    let kept: (Int) -> Bool = mask.map { m in { m.values[$0] != 0 } } ?? { self.parameters[$0] != 0 }
    // R of every linear map, as its K-FAC statistics see it: the layer inputs (1, R, d_in) of
    // one example's forward pass (the values do not matter, only the shapes).
    let pass = try forwardPass(Tensor(shape: [1] + inputShape))
    var layers: [SparsityReport.Layer] = []
    for (index, layer) in self.layers.enumerated() {
      guard let map = layer as? any LinearMapLayer else { continue }
      let (dOut, dIn, start) = (map.outputDimension, map.inputDimension, parameterOffsets[index])
      let positions = map.layerInputs(cache: pass.caches[index]).shape[1]
      var keptWeights = 0, keptBiases = 0, keptUnits = 0
      for j in 0..<dOut {
        let row = (start + j * dIn)..<(start + (j + 1) * dIn)
        let rowKept = row.lazy.filter(kept).count
        let biasKept = map.hasBias && kept(start + dOut * dIn + j)
        keptWeights += rowKept
        if biasKept { keptBiases += 1 }
        if rowKept > 0 || biasKept { keptUnits += 1 }
      }
      layers.append(SparsityReport.Layer(
        layerIndex: index, weights: dOut * dIn, keptWeights: keptWeights, biases: map.hasBias ? dOut : 0,
        keptBiases: keptBiases, units: dOut, keptUnits: keptUnits, multiplyAccumulates: try Validation.product(positions, dOut * dIn, "multiply-accumulates"),
        keptMultiplyAccumulates: positions * keptWeights))
    }
    return SparsityReport(layers: layers)
  }
}
