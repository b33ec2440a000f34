/// The units structured pruning removes whole: each output neuron of a Linear layer (its row of
/// W, shape (out, in), with its bias entry) and each output filter of a Conv2d layer (its slice
/// W[j] of shape (in, k, k), with its bias entry). Because weights are stored row-major in
/// PyTorch's shapes, a unit's weights are one contiguous run of the parameter vector.
///
/// The output layer — the last Linear/Conv2d of the network — is never pruned structurally:
/// removing one of its units removes a class or an output dimension, not capacity.
///
/// A group's score is the sum of its parameters' unstructured scores (`sums`): for OPD/OBD that
/// is the damage of zeroing the whole unit under the diagonal approximation the scores make.
public struct PruningGroups: Sendable, Equatable {
  /// One unit.
  public struct Group: Sendable, Equatable {
    /// The layer's position in the network's layer list.
    public let layerIndex: Int
    /// The output neuron or filter j (0-based) within the layer.
    public let unit: Int
    /// Its weights: W[j, :] (Linear) or W[j, :, :, :] (Conv2d), in the parameter vector.
    public let weights: Range<Int>
    /// Its bias entry, if the layer has a bias.
    public let bias: Int?
  }

  /// A prunable layer and where its units sit in `groups`.
  public struct PrunableLayer: Sendable, Equatable {
    public let layerIndex: Int
    public let groups: Range<Int>
    public var unitCount: Int { groups.count }
  }

  /// Every unit, layer by layer, unit by unit.
  public let groups: [Group]
  /// The layers whose units are in `groups` (every Linear/Conv2d except the last).
  public let layers: [PrunableLayer]
  /// P of the network the groups were made for.
  public let parameterCount: Int

  /// The units of `model`.
  /// - Throws: `.invalidArgument` if the network has no linear-map layer before its output layer.
  public init(model: Sequential) throws(BDLError) {
    let maps = model.layers.indices.compactMap { index in (model.layers[index] as? any LinearMapLayer).map { (index, $0) } }
    guard maps.count >= 2 else {
      throw .invalidArgument(
        "structured pruning needs a Linear or Conv2d layer before the output layer; this network has \(maps.count) linear-map layer\(maps.count == 1 ? "" : "s") and the output layer is never pruned structurally")
    }
    var groups: [Group] = []
    var layers: [PrunableLayer] = []
    for (index, map) in maps.dropLast() {
      let (dOut, dIn, start) = (map.outputDimension, map.inputDimension, model.parameterOffsets[index])
      let first = groups.count
      for j in 0..<dOut {
        groups.append(Group(
          layerIndex: index, unit: j, weights: (start + j * dIn)..<(start + (j + 1) * dIn),
          bias: map.hasBias ? start + dOut * dIn + j : nil))
      }
      layers.append(PrunableLayer(layerIndex: index, groups: first..<groups.count))
    }
    self.groups = groups
    self.layers = layers
    self.parameterCount = model.parameterCount
  }

  /// The group scores S_g = Σ_{i∈g} s_i from one score per network parameter.
  /// - Throws: `.shapeMismatch` unless `scores` has one entry per parameter; `.nonFiniteInput`
  ///   for NaN.
  public func sums(_ scores: [Double]) throws(BDLError) -> [Double] {
    guard scores.count == parameterCount else {
      throw .shapeMismatch("scores have \(scores.count) entries; the network has \(parameterCount) parameters (one score each)")
    }
    if let i = scores.firstIndex(where: { $0.isNaN }) {
      throw .nonFiniteInput("scores: entry \(i) is NaN")
    }
    return groups.map { group in
      var total = CompensatedSum()
      for i in group.weights { total.add(scores[i]) }
      if let bias = group.bias { total.add(scores[bias]) }
      return total.value
    }
  }
}
