import BDLCore
import CBDLCore

#if canImport(Glibc)
import Glibc
#endif

// Curvature (see the "Curvature" section of bdlcore.h).

/// What a `bdl_curvature*` holds: the operator, its kind, and the K-FAC blocks when it has them.
final class CurvatureHandle: @unchecked Sendable {  // mutated only by its one user thread
  let kind: Int32
  private(set) var operator_: any CurvatureOperator
  private(set) var kfac: KFAC?

  /// Switches a K-FAC curvature's damping form (its operator becomes the re-damped K-FAC).
  func setDamping(_ mode: KroneckerDamping) throws(BDLError) {
    guard let kfac else { throw .wrongState("this curvature (kind \(kind)) has no Kronecker factors to damp") }
    let damped = try kfac.withDamping(mode)
    self.kfac = damped
    self.operator_ = damped
  }
  init(kind: Int32, operator_: any CurvatureOperator, kfac: KFAC?) {
    self.kind = kind
    self.operator_ = operator_
    self.kfac = kfac
  }
}

/// The mutable accumulators behind a `bdl_kfac_accumulator*`.
final class AccumulatorHandle: @unchecked Sendable {
  var layers: [KFACLayerAccumulator]
  init(_ layers: [KFACLayerAccumulator]) { self.layers = layers }
}

func curvatureHandle(_ handle: OpaquePointer?) throws(BDLError) -> CurvatureHandle {
  try Handles.value(handle, kind: .curvature, as: CurvatureHandle.self, "curvature")
}

private func accumulatorHandle(_ handle: OpaquePointer?, _ name: String = "accumulator") throws(BDLError) -> AccumulatorHandle {
  try Handles.value(handle, kind: .kfacAccumulator, as: AccumulatorHandle.self, name)
}

@c @implementation
public func bdl_curvature_params_init(_ params: UnsafeMutablePointer<bdl_curvature_params>!) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(params, "params")
    out.pointee = bdl_curvature_params(
      struct_size: UInt32(MemoryLayout<bdl_curvature_params>.size), kind: Int32(BDL_CURVATURE_KFAC),
      fisher: Int32(BDL_FISHER_EXACT), approximation: Int32(BDL_KFAC_EXPAND),
      likelihood: Int32(BDL_LIKELIHOOD_CLASSIFICATION), mc_samples: 1, seed: 0, batch_size: 256)
  }
}

@c @implementation
public func bdl_curvature_fit(
  _ model: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ y: UnsafePointer<Double>!,
  _ params: UnsafePointer<bdl_curvature_params>!, _ outCurvature: UnsafeMutablePointer<OpaquePointer?>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outCurvature, "out_curvature")
    let m = try Handles.value(model, kind: .model, as: ModelHandle.self, "model").model
    var p = bdl_curvature_params()
    if let params { p = params.pointee } else { _ = bdl_curvature_params_init(&p) }
    guard Int(p.struct_size) == MemoryLayout<bdl_curvature_params>.size else {
      throw .invalidArgument("params->struct_size = \(p.struct_size); initialise params with bdl_curvature_params_init")
    }
    let fisher = try Arguments.fisher(p.fisher, samples: p.mc_samples, seed: p.seed)
    let approx = try Arguments.approximation(p.approximation)
    let batchSize = try Arguments.size(p.batch_size, "params->batch_size")
    let x = try ModelArguments.batch(X, n, m)
    let (likelihood, targets) = try ModelArguments.supervision(y, n: x.count, likelihood: p.likelihood, sigma: 1, model: m)
    let handle: CurvatureHandle
    switch Int(p.kind) {
    case BDL_CURVATURE_KFAC, BDL_CURVATURE_EKFAC:
      let kfac = Int(p.kind) == BDL_CURVATURE_KFAC
        ? try KFAC.fit(model: m, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, approximation: approx, batchSize: batchSize)
        : try KFAC.fitEigenvalueCorrected(model: m, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, approximation: approx, batchSize: batchSize)
      handle = CurvatureHandle(kind: p.kind, operator_: kfac, kfac: kfac)
    case BDL_CURVATURE_DIAG_GGN:
      handle = CurvatureHandle(kind: p.kind, operator_: try DiagonalGGN.fit(model: m, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, batchSize: batchSize), kfac: nil)
    case BDL_CURVATURE_GGN:
      handle = CurvatureHandle(kind: p.kind, operator_: try DenseGGN.fit(model: m, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, batchSize: batchSize), kfac: nil)
    default:
      throw .invalidArgument("params->kind = \(p.kind) is not a BDL_CURVATURE_* value")
    }
    out.pointee = Handles.make(handle, kind: .curvature)
  }
}

@c @implementation
public func bdl_curvature_free(_ curvature: OpaquePointer!) {
  Handles.free(curvature, kind: .curvature, as: CurvatureHandle.self, "curvature")
}

@c @implementation
public func bdl_curvature_set_kfac_damping(_ curvature: OpaquePointer!, _ mode: Int32) -> bdl_status {
  exported { () throws(BDLError) in
    let c = try curvatureHandle(curvature)
    switch Int(mode) {
    case BDL_KFAC_DAMPING_EXACT: try c.setDamping(.exact)
    case BDL_KFAC_DAMPING_FACTORED: try c.setDamping(.factored(balanced: false))
    case BDL_KFAC_DAMPING_PI: try c.setDamping(.factored(balanced: true))
    default: throw .invalidArgument("mode = \(mode) is not a BDL_KFAC_DAMPING_* value")
    }
  }
}

@c @implementation
public func bdl_curvature_info(
  _ curvature: OpaquePointer!, _ outKind: UnsafeMutablePointer<Int32>!,
  _ outNumParameters: UnsafeMutablePointer<Int64>!, _ outNumLayers: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let c = try curvatureHandle(curvature)
    outKind?.pointee = c.kind
    outNumParameters?.pointee = Int64(c.operator_.parameterCount)
    outNumLayers?.pointee = Int64(c.kfac?.accumulators.count ?? 0)
  }
}

@c @implementation
public func bdl_curvature_logdet(
  _ curvature: OpaquePointer!, _ scale: Double, _ damping: Double, _ outLogdet: UnsafeMutablePointer<Double>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let c = try curvatureHandle(curvature)
    let out = try Arguments.output(outLogdet, "out_logdet")
    out.pointee = try c.operator_.logDeterminant(scale: scale, damping: damping)
  }
}

@c @implementation
public func bdl_curvature_apply_power(
  _ curvature: OpaquePointer!, _ scale: Double, _ damping: Double, _ exponent: Double,
  _ V: UnsafePointer<Double>!, _ k: Int64, _ outResult: UnsafeMutablePointer<Double>!, _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let c = try curvatureHandle(curvature)
    let p = c.operator_.parameterCount
    let count = try Arguments.size(k, "k")
    let total = try Arguments.product([count, p], "k·P")
    let v = try Arguments.array(V, count: total, "V")
    let out = try Arguments.output(outResult, capacity: capacity, needed: total, "out_result")
    var result: [Double] = []
    result.reserveCapacity(total)
    for t in 0..<count {
      result += try c.operator_.applyPower(exponent, to: Array(v[(t * p)..<((t + 1) * p)]), scale: scale, damping: damping)
    }
    out.write(result)
  }
}

@c @implementation
public func bdl_curvature_diagonal(
  _ curvature: OpaquePointer!, _ scale: Double, _ damping: Double, _ exponent: Double,
  _ outDiagonal: UnsafeMutablePointer<Double>!, _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let c = try curvatureHandle(curvature)
    let out = try Arguments.output(outDiagonal, capacity: capacity, needed: c.operator_.parameterCount, "out_diagonal")
    out.write(try c.operator_.diagonal(exponent: exponent, scale: scale, damping: damping))
  }
}

@c @implementation
public func bdl_curvature_dense(
  _ curvature: OpaquePointer!, _ scale: Double, _ damping: Double,
  _ outMatrix: UnsafeMutablePointer<Double>!, _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let c = try curvatureHandle(curvature)
    let p = c.operator_.parameterCount
    let needed = try Arguments.product([p, p], "P²")
    try Validation.requireAllocatable(needed, "dense curvature")
    let out = try Arguments.output(outMatrix, capacity: capacity, needed: needed, "out_matrix")
    out.write(try c.operator_.dense(scale: scale, damping: damping).elements)
  }
}

@c @implementation
public func bdl_curvature_kfac_factors(
  _ curvature: OpaquePointer!, _ index: Int64, _ outLayer: UnsafeMutablePointer<Int64>!,
  _ outDOut: UnsafeMutablePointer<Int64>!, _ outDIn: UnsafeMutablePointer<Int64>!,
  _ outB: UnsafeMutablePointer<Double>!, _ bCapacity: Int64, _ outA: UnsafeMutablePointer<Double>!,
  _ aCapacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let c = try curvatureHandle(curvature)
    guard let kfac = c.kfac else { throw .wrongState("this curvature (kind \(c.kind)) has no Kronecker factors") }
    guard index >= 0, index < Int64(kfac.accumulators.count) else {
      throw .invalidArgument("index = \(index); the curvature has \(kfac.accumulators.count) K-FAC layers")
    }
    let accumulator = kfac.accumulators[Int(index)]
    let layer = kfac.blocks.filter { !$0.isBias }[Int(index)].layerIndex
    let b = outB == nil ? nil : try Arguments.output(outB, capacity: bCapacity, needed: accumulator.outputDimension * accumulator.outputDimension, "out_B")
    let a = outA == nil ? nil : try Arguments.output(outA, capacity: aCapacity, needed: accumulator.inputDimension * accumulator.inputDimension, "out_A")
    outLayer?.pointee = Int64(layer)
    outDOut?.pointee = Int64(accumulator.outputDimension)
    outDIn?.pointee = Int64(accumulator.inputDimension)
    b?.write(accumulator.outputGradientFactor.elements)
    a?.write(accumulator.inputFactor.elements)
  }
}

@c @implementation
public func bdl_curvature_kfac_accumulation(
  _ curvature: OpaquePointer!, _ outFlops: UnsafeMutablePointer<Double>!,
  _ outThreadSeconds: UnsafeMutablePointer<Double>!, _ outWorkers: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let c = try curvatureHandle(curvature)
    guard let profile = c.kfac?.accumulationProfile else {
      throw .wrongState("this curvature (kind \(c.kind)) was not accumulated by an engine fit, so its accumulation was not timed")
    }
    outFlops?.pointee = profile.flops
    outThreadSeconds?.pointee = profile.threadSeconds
    outWorkers?.pointee = Int64(profile.workers)
  }
}

@c @implementation
public func bdl_kfac_accumulator_create(
  _ dIn: UnsafePointer<Int64>!, _ dOut: UnsafePointer<Int64>!, _ hasBias: UnsafePointer<Int32>!,
  _ nLayers: Int64, _ approx: Int32, _ outAccumulator: UnsafeMutablePointer<OpaquePointer?>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outAccumulator, "out_accumulator")
    let count = try Arguments.size(nLayers, "n_layers")
    guard let dIn else { throw .invalidArgument("d_in is NULL") }
    guard let dOut else { throw .invalidArgument("d_out is NULL") }
    guard let hasBias else { throw .invalidArgument("has_bias is NULL") }
    let flavour = try Arguments.approximation(approx)
    var layers: [KFACLayerAccumulator] = []
    for i in 0..<count {
      layers.append(try KFACLayerAccumulator(
        inputDimension: Arguments.size(dIn[i], "d_in[\(i)]"), outputDimension: Arguments.size(dOut[i], "d_out[\(i)]"),
        hasBias: hasBias[i] != 0, approximation: flavour))
    }
    out.pointee = Handles.make(AccumulatorHandle(layers), kind: .kfacAccumulator)
  }
}

@c @implementation
public func bdl_kfac_accumulator_free(_ accumulator: OpaquePointer!) {
  Handles.free(accumulator, kind: .kfacAccumulator, as: AccumulatorHandle.self, "accumulator")
}

@c @implementation
public func bdl_kfac_accumulator_info(
  _ accumulator: OpaquePointer!, _ outNumLayers: UnsafeMutablePointer<Int64>!,
  _ outApproximation: UnsafeMutablePointer<Int32>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let layers = try accumulatorHandle(accumulator).layers
    outNumLayers?.pointee = Int64(layers.count)
    outApproximation?.pointee = Int32(layers.first?.approximation == .reduce ? BDL_KFAC_REDUCE : BDL_KFAC_EXPAND)
  }
}

@c @implementation
public func bdl_kfac_accumulator_layer(
  _ accumulator: OpaquePointer!, _ index: Int64, _ outDIn: UnsafeMutablePointer<Int64>!,
  _ outDOut: UnsafeMutablePointer<Int64>!, _ outHasBias: UnsafeMutablePointer<Int32>!,
  _ outExamples: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let layers = try accumulatorHandle(accumulator).layers
    guard index >= 0, index < Int64(layers.count) else {
      throw .invalidArgument("index = \(index); the accumulator has \(layers.count) layers")
    }
    let layer = layers[Int(index)]
    outDIn?.pointee = Int64(layer.inputDimension)
    outDOut?.pointee = Int64(layer.outputDimension)
    outHasBias?.pointee = layer.hasBias ? 1 : 0
    outExamples?.pointee = Int64(layer.examples)
  }
}

/// Layer `layer` of an accumulator and the sizes of a batch for it, checked.
private func batchShape(
  _ handle: AccumulatorHandle, _ layer: Int64, _ n: Int64, _ positions: Int64, _ k: Int64
) throws(BDLError) -> (layer: Int, n: Int, r: Int, k: Int, aCount: Int, gCount: Int) {
  guard layer >= 0, layer < Int64(handle.layers.count) else {
    throw .invalidArgument("layer = \(layer); the accumulator has \(handle.layers.count) layers")
  }
  let target = handle.layers[Int(layer)]
  let (examples, r, vectors) = (try Arguments.size(n, "n"), try Arguments.size(positions, "positions"), try Arguments.size(k, "k"))
  return (Int(layer), examples, r, vectors,
          try Arguments.product([examples, r, target.inputDimension], "n·positions·d_in"),
          try Arguments.product([examples, vectors, r, target.outputDimension], "n·k·positions·d_out"))
}

@c @implementation
public func bdl_kfac_accumulator_add(
  _ accumulator: OpaquePointer!, _ layer: Int64, _ a: UnsafePointer<Double>!, _ n: Int64,
  _ positions: Int64, _ g: UnsafePointer<Double>!, _ k: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let handle = try accumulatorHandle(accumulator)
    let shape = try batchShape(handle, layer, n, positions, k)
    // Read in place: the statistics can be large and are only summed.
    try handle.layers[shape.layer].add(
      inputs: Arguments.buffer(a, count: shape.aCount, "a"), outputGradients: Arguments.buffer(g, count: shape.gCount, "g"),
      examples: shape.n, positions: shape.r, vectors: shape.k)
  }
}

@c @implementation
public func bdl_kfac_accumulator_add_f32(
  _ accumulator: OpaquePointer!, _ layer: Int64, _ a: UnsafePointer<Float>!, _ n: Int64,
  _ positions: Int64, _ g: UnsafePointer<Float>!, _ k: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let handle = try accumulatorHandle(accumulator)
    let shape = try batchShape(handle, layer, n, positions, k)
    func widened(_ p: UnsafePointer<Float>?, _ count: Int, _ name: String) throws(BDLError) -> [Double] {
      guard let p else { throw .invalidArgument("\(name) is NULL") }
      try Validation.requireAllocatable(count, name)
      return UnsafeBufferPointer(start: p, count: count).map(Double.init)
    }
    let (inputs, gradients) = (try widened(a, shape.aCount, "a"), try widened(g, shape.gCount, "g"))
    try inputs.withUnsafeBufferPointer { ap throws(BDLError) in
      try gradients.withUnsafeBufferPointer { gp throws(BDLError) in
        try handle.layers[shape.layer].add(inputs: ap, outputGradients: gp, examples: shape.n, positions: shape.r, vectors: shape.k)
      }
    }
  }
}

@c @implementation
public func bdl_kfac_accumulator_merge(_ accumulator: OpaquePointer!, _ other: OpaquePointer!) -> bdl_status {
  exported { () throws(BDLError) in
    let handle = try accumulatorHandle(accumulator)
    let source = try accumulatorHandle(other, "other")
    guard source.layers.count == handle.layers.count else {
      throw .shapeMismatch("merge: \(handle.layers.count) layers and \(source.layers.count) layers")
    }
    var merged: [KFACLayerAccumulator] = []
    for (mine, theirs) in zip(handle.layers, source.layers) { merged.append(try mine.merged(with: theirs)) }
    handle.layers = merged  // only after every layer merged
  }
}

@c @implementation
public func bdl_kfac_accumulator_save(_ accumulator: OpaquePointer!, _ path: UnsafePointer<CChar>!) -> bdl_status {
  exported { () throws(BDLError) in
    let handle = try accumulatorHandle(accumulator)
    try KFACAccumulatorFile.save(handle.layers, to: Arguments.path(path))
  }
}

@c @implementation
public func bdl_kfac_accumulator_load(_ path: UnsafePointer<CChar>!, _ outAccumulator: UnsafeMutablePointer<OpaquePointer?>!) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outAccumulator, "out_accumulator")
    let layers = try KFACAccumulatorFile.load(from: Arguments.path(path))
    out.pointee = Handles.make(AccumulatorHandle(layers), kind: .kfacAccumulator)
  }
}

@c @implementation
public func bdl_kfac_accumulator_finalize(_ accumulator: OpaquePointer!, _ outCurvature: UnsafeMutablePointer<OpaquePointer?>!) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outCurvature, "out_curvature")
    let layers = try accumulatorHandle(accumulator).layers
    var offsets: [Int] = []
    var total = 0
    for layer in layers {
      offsets.append(total)
      total += layer.outputDimension * layer.inputDimension + (layer.hasBias ? layer.outputDimension : 0)
    }
    let kfac = try KFAC(accumulators: layers, layerIndices: Array(layers.indices), offsets: offsets, parameterCount: total)
    out.pointee = Handles.make(CurvatureHandle(kind: Int32(BDL_CURVATURE_KFAC), operator_: kfac, kfac: kfac), kind: .curvature)
  }
}
