/// The per-layer statistics (a, g) of one batch, computed as contiguous shards of its examples on
/// the BLAS threads (`BLASThreads`): shard w holds examples [w·N/T, (w+1)·N/T). Every layer's a
/// (N, R, d_in) and g (N, K, R, d_out) are the shards' pieces in order, since both put the example
/// first; `copyLayer` writes them into caller memory, the shards concurrently.
///
/// Why: the backward of K vectors through a CNN runs serial loops between its BLAS calls (im2col,
/// col2im, pooling) and writes gigabytes of fresh memory, whose first-touch page faults the
/// kernel serves on the faulting thread; shards keep every core busy with both.
public struct ShardedStatistics: Sendable {
  public let shards: [[Sequential.LayerStatistics]]

  /// The layers covered (linear-map layers, in network order).
  public var layerCount: Int { shards[0].count }

  /// Layer `i`'s position in the network, and N, K, R, d_in, d_out, bias of the whole batch.
  public func shape(ofLayer i: Int) -> (layerIndex: Int, n: Int, k: Int, positions: Int, dIn: Int, dOut: Int, hasBias: Bool) {
    let first = shards[0][i]
    let g = first.outputGradients.shape
    let n = shards.reduce(0) { $0 + $1[i].outputGradients.shape[0] }
    return (first.layerIndex, n, g[1], g[2], first.inputs.shape[2], g[3], first.hasBias)
  }

  /// Entries of layer `i`'s a and g over the whole batch.
  public func counts(ofLayer i: Int) -> (inputs: Int, outputGradients: Int) {
    shards.reduce((0, 0)) { ($0.0 + $1[i].inputs.elements.count, $0.1 + $1[i].outputGradients.elements.count) }
  }

  /// Writes layer `i`'s a and g (row-major, whole batch) to `inputs` and `outputGradients` (either
  /// may be nil), which must hold `counts(ofLayer: i)` entries; one thread per shard.
  public func copyLayer(
    _ i: Int, inputs: UnsafeMutablePointer<Double>?, outputGradients: UnsafeMutablePointer<Double>?
  ) throws(BDLError) {
    var offsets = [(0, 0)]
    for shard in shards.dropLast() {
      let last = offsets.last!
      offsets.append((last.0 + shard[i].inputs.elements.count, last.1 + shard[i].outputGradients.elements.count))
    }
    try BLASThreads.concurrently(shards.count) { w throws(BDLError) in
      let piece = shards[w][i]
      piece.inputs.elements.withUnsafeBufferPointer { source in
        inputs.map { ($0 + offsets[w].0).update(from: source.baseAddress!, count: source.count) }
      }
      piece.outputGradients.elements.withUnsafeBufferPointer { source in
        outputGradients.map { ($0 + offsets[w].1).update(from: source.baseAddress!, count: source.count) }
      }
    }
  }

  /// All shards joined: the statistics `Sequential.backward` returns for the whole batch.
  public func joined() throws(BDLError) -> [Sequential.LayerStatistics] {
    guard shards.count > 1 else { return shards[0] }
    return try (0..<layerCount).map { (i) throws(BDLError) in
      let s = shape(ofLayer: i)
      let (aCount, gCount) = counts(ofLayer: i)
      var a = [Double](repeating: 0, count: aCount), g = [Double](repeating: 0, count: gCount)
      try a.withUnsafeMutableBufferPointer { ap throws(BDLError) in
        try g.withUnsafeMutableBufferPointer { gp throws(BDLError) in
          try copyLayer(i, inputs: ap.baseAddress, outputGradients: gp.baseAddress)
        }
      }
      return Sequential.LayerStatistics(
        layerIndex: s.layerIndex, inputs: try Tensor(shape: [s.n, s.positions, s.dIn], elements: a),
        outputGradients: try Tensor(shape: [s.n, s.k, s.positions, s.dOut], elements: g), hasBias: s.hasBias)
    }
  }
}

extension Sequential {
  /// `backward(forwardPass(x), vectors: v)` with the batch split into one shard per BLAS thread
  /// when its work (forward multiply-adds × N × K) reaches `BLASThreads.workers`' threshold.
  /// - Throws: as `forwardPass` and `backward`; V must be (N, K, C).
  public func shardedBackward(_ x: Tensor, vectors v: Tensor) throws(BDLError) -> ShardedStatistics {
    try validateInput(x)
    guard v.shape.count == 3, v.shape[0] == x.count, v.shape[2] == outputCount, v.shape[1] >= 1 else {
      throw .shapeMismatch("output vectors have shape \(Tensor.describe(v.shape)); expected (\(x.count), K, \(outputCount)) with K ≥ 1")
    }
    let work = forwardMultiplyAdds.multipliedReportingOverflow(by: x.count).partialValue
      .multipliedReportingOverflow(by: v.shape[1]).partialValue
    return try shardedBackward(x, vectors: v, workers: BLASThreads.workers(forMultiplyAdds: work))
  }

  /// The same over `workers` shards (at most one per example).
  func shardedBackward(_ x: Tensor, vectors v: Tensor, workers requested: Int) throws(BDLError) -> ShardedStatistics {
    let workers = min(max(requested, 1), max(x.count, 1))
    if workers == 1 { return ShardedStatistics(shards: [try backward(forwardPass(x), vectors: v)]) }
    let ranges = Tensor.shards(of: x.count, into: workers)
    var shards = [[LayerStatistics]](repeating: [], count: workers)
    try shards.withUnsafeMutableBufferPointer { shards throws(BDLError) in
      try BLASThreads.concurrently(workers) { w throws(BDLError) in
        shards[w] = try backward(forwardPass(x.examples(ranges[w])), vectors: v.examples(ranges[w]))
      }
    }
    return ShardedStatistics(shards: shards)
  }
}
