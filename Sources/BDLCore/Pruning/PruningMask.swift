/// A pruning mask of one network: m_i = 1 keeps parameter i, m_i = 0 removes it (θ_i = 0).
///
/// It carries the parameter-tensor shapes of the network it was made for, so a mask is never
/// applied to another network that merely has the same number of parameters. Kept through
/// training (a 0 stays an exact 0), it makes pruning permanent.
public struct PruningMask: Sendable, Equatable {
  /// One value per parameter, in parameter-vector order: exactly 0 or 1.
  public let values: [Double]
  /// The parameter tensors of the network, layer by layer (weight, then bias), in PyTorch's shapes.
  public let parameterShapes: [[Int]]

  /// A mask for `model` from 0/1 values.
  /// - Throws: `.shapeMismatch` unless there is one value per parameter; `.invalidArgument` for a
  ///   value other than 0 or 1 (a mask is not a weighting).
  public init(values: [Double], model: Sequential) throws(BDLError) {
    guard values.count == model.parameterCount else {
      throw .shapeMismatch("the mask has \(values.count) entries; the network has \(model.parameterCount) parameters")
    }
    if let i = values.firstIndex(where: { $0 != 0 && $0 != 1 }) {
      throw .invalidArgument("mask entry \(i) is \(values[i]); a mask holds 0 (pruned) or 1 (kept)")
    }
    self.values = values
    self.parameterShapes = Self.shapes(of: model)
  }

  /// The mask that keeps every parameter of `model`.
  public static func keepingAll(of model: Sequential) -> PruningMask {
    PruningMask(checkedValues: [Double](repeating: 1, count: model.parameterCount), shapes: shapes(of: model))
  }

  private init(checkedValues: [Double], shapes: [[Int]]) {
    values = checkedValues
    parameterShapes = shapes
  }

  static func shapes(of model: Sequential) -> [[Int]] { model.layers.flatMap(\.parameterShapes) }

  /// P.
  public var parameterCount: Int { values.count }
  /// The number of parameters removed.
  public var prunedCount: Int { values.lazy.filter { $0 == 0 }.count }
  /// The fraction of all parameters removed.
  public var sparsity: Double { values.isEmpty ? 0 : Double(prunedCount) / Double(values.count) }

  /// Throws unless this mask was made for a network with `model`'s parameter tensors.
  public func requireMatches(_ model: Sequential) throws(BDLError) {
    let shapes = Self.shapes(of: model)
    guard values.count == model.parameterCount, shapes == parameterShapes else {
      throw .shapeMismatch(
        "the mask is for a network with parameter tensors \(parameterShapes) (\(values.count) parameters); this network has \(shapes) (\(model.parameterCount))")
    }
  }

  // MARK: Making masks

  /// Global unstructured pruning: removes the k = round(s·n) parameters with the smallest scores
  /// among the n prunable ones — every network parameter's score compared against every other's,
  /// i.e. a threshold at the s-quantile of the prunable scores. Ties are broken by position (the
  /// earlier parameter is pruned first), so the mask is a deterministic function of the scores.
  ///
  /// Prunable by default: the weights only (`includeBiases: false`). Biases are about 1% of a
  /// network's parameters and cost no multiplications — the FLOP count is set by the weights —
  /// and zeroing a bias shifts all of a unit's activations instead of cutting one connection;
  /// SpaM and the magnitude-pruning baselines prune weights only. The sparsity s is the fraction
  /// of the prunable parameters removed; biases (if not prunable) are kept.
  ///
  /// - Parameters:
  ///   - scores: one per network parameter (any criterion; NaN is refused, ±∞ is ordered).
  ///   - sparsity: s in [0, 1); 0 keeps everything (applying the mask then changes no bit).
  /// - Throws: `.invalidArgument` for s outside [0, 1) or one that would remove every prunable
  ///   parameter; `.shapeMismatch` for scores of another length; `.nonFiniteInput` for NaN.
  public static func unstructured(
    scores: [Double], sparsity s: Double, model: Sequential, includeBiases: Bool = false
  ) throws(BDLError) -> PruningMask {
    try requireFraction(s, "sparsity")
    guard scores.count == model.parameterCount else {
      throw .shapeMismatch("scores have \(scores.count) entries; the network has \(model.parameterCount) parameters (one score each)")
    }
    if let i = scores.firstIndex(where: { $0.isNaN }) { throw .nonFiniteInput("scores: entry \(i) is NaN") }
    let candidates = includeBiases ? Array(0..<model.parameterCount) : weightIndices(model)
    let k = Int((s * Double(candidates.count)).rounded())
    guard k < candidates.count || candidates.isEmpty else {
      throw .invalidArgument("sparsity = \(s) would remove all \(candidates.count) prunable parameters")
    }
    var values = [Double](repeating: 1, count: model.parameterCount)
    for i in lowest(k, of: candidates, by: scores) { values[i] = 0 }
    return PruningMask(checkedValues: values, shapes: shapes(of: model))
  }

  /// Structured pruning, layer by layer: in prunable layer l (`PruningGroups.layers`) removes the
  /// k_l = round(f_l·n_l) of its n_l units with the smallest group scores (ties: the lower unit
  /// first) — each unit's weights and bias. Per layer rather than global because group sums of
  /// layers with different fan-in are not on one scale.
  ///
  /// - Parameters:
  ///   - groupScores: one per unit, in `PruningGroups(model:)` order (e.g. `PruningScores.compute`
  ///     with `structured: true`).
  ///   - fractions: f_l in [0, 1), one per prunable layer, or one value for all of them.
  /// - Throws: `.invalidArgument` for a fraction outside [0, 1) or one that would remove every
  ///   unit of a layer; `.shapeMismatch` for scores or fractions of another length.
  public static func structured(
    groupScores: [Double], fractions: [Double], model: Sequential
  ) throws(BDLError) -> PruningMask {
    let units = try PruningGroups(model: model)
    guard groupScores.count == units.groups.count else {
      throw .shapeMismatch("group scores have \(groupScores.count) entries; the network has \(units.groups.count) prunable units")
    }
    if let i = groupScores.firstIndex(where: { $0.isNaN }) { throw .nonFiniteInput("group scores: entry \(i) is NaN") }
    guard fractions.count == 1 || fractions.count == units.layers.count else {
      throw .shapeMismatch("\(fractions.count) per-layer fractions; the network has \(units.layers.count) prunable layers (or give one value for all)")
    }
    var values = [Double](repeating: 1, count: model.parameterCount)
    for (l, layer) in units.layers.enumerated() {
      let f = fractions.count == 1 ? fractions[0] : fractions[l]
      try requireFraction(f, fractions.count == 1 ? "sparsity" : "per-layer fraction \(l)")
      let k = Int((f * Double(layer.unitCount)).rounded())
      guard k < layer.unitCount else {
        throw .invalidArgument(
          "fraction \(f) would remove all \(layer.unitCount) units of layer \(layer.layerIndex) (\(model.layers[layer.layerIndex])); every layer keeps at least one")
      }
      for g in lowest(k, of: Array(layer.groups), by: groupScores) {
        let group = units.groups[g]
        for i in group.weights { values[i] = 0 }
        if let bias = group.bias { values[bias] = 0 }
      }
    }
    return PruningMask(checkedValues: values, shapes: shapes(of: model))
  }

  /// The k candidates with the smallest scores, ties to the smaller index.
  private static func lowest(_ k: Int, of candidates: [Int], by scores: [Double]) -> ArraySlice<Int> {
    guard k > 0 else { return [] }
    return candidates.sorted { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }.prefix(k)
  }

  /// Every parameter except the biases of linear-map layers.
  static func weightIndices(_ model: Sequential) -> [Int] {
    var result: [Int] = []
    for (index, layer) in model.layers.enumerated() {
      let range = model.parameterRange(ofLayer: index)
      if let map = layer as? any LinearMapLayer, map.hasBias {
        result += range.lowerBound..<(range.lowerBound + map.outputDimension * map.inputDimension)
      } else {
        result += range
      }
    }
    return result
  }

  private static func requireFraction(_ value: Double, _ name: String) throws(BDLError) {
    guard value >= 0, value < 1 else {
      throw .invalidArgument("\(name) = \(value); it must be in [0, 1)")
    }
  }
}

extension Sequential {
  /// Applies a pruning mask: θ_i = +0 where m_i = 0; every kept θ_i is left bit for bit.
  /// - Throws: `.shapeMismatch` for a mask made for another network (θ unchanged).
  public mutating func applyMask(_ mask: PruningMask) throws(BDLError) {
    try mask.requireMatches(self)
    for i in mask.values.indices where mask.values[i] == 0 { parameters[i] = 0 }
  }
}
