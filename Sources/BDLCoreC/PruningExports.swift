import BDLCore
import CBDLCore

// Pruning scores, masks, sparsity reports and model files (see the "Pruning" section of bdlcore.h).

/// A BDL_PRUNING_* value.
private func criterion(_ value: Int32) throws(BDLError) -> PruningCriterion {
  switch Int(value) {
  case BDL_PRUNING_OPD: return .opd
  case BDL_PRUNING_OBD: return .obd
  case BDL_PRUNING_MAGNITUDE: return .magnitude
  case BDL_PRUNING_RANDOM: return .random
  case BDL_PRUNING_KFAC_OBS: return .kfacOBS
  default: throw .invalidArgument("criterion = \(value) is not a BDL_PRUNING_* value")
  }
}

/// A 0/1 flag argument.
private func flag(_ value: Int32, _ name: String) throws(BDLError) -> Bool {
  guard value == 0 || value == 1 else { throw .invalidArgument("\(name) = \(value); it must be 0 or 1") }
  return value == 1
}

/// The caller's mask for `model`: `count` values, each 0 or 1.
private func maskArgument(_ mask: UnsafePointer<Double>?, _ count: Int64, _ model: Sequential, _ name: String) throws(BDLError) -> PruningMask {
  let n = try Arguments.size(count, "\(name)_count", minimum: 0)
  guard n == model.parameterCount else {
    throw .shapeMismatch("\(name)_count = \(n); the model has \(model.parameterCount) parameters")
  }
  return try PruningMask(values: Arguments.array(mask, count: n, name), model: model)
}

@c @implementation
public func bdl_pruning_scores(
  _ laplace: OpaquePointer!, _ model: OpaquePointer!, _ criterionValue: Int32, _ structured: Int32, _ seed: UInt64,
  _ outScores: UnsafeMutablePointer<Double>!, _ capacity: Int64, _ outCount: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let la = try laplace.map { (handle) throws(BDLError) in try Handles.value(handle, kind: .laplace, as: LaplaceHandle.self, "laplace").laplace }
    let m = try model.map { (handle) throws(BDLError) in try ModelArguments.model(handle) }
    let scores = try PruningScores.compute(
      criterion(criterionValue), laplace: la, model: m, structured: flag(structured, "structured"), seed: seed)
    if outScores != nil {
      try Arguments.output(outScores, capacity: capacity, needed: scores.count, "out_scores").write(scores)
    }
    outCount?.pointee = Int64(scores.count)
  }
}

@c @implementation
public func bdl_pruning_mask(
  _ model: OpaquePointer!, _ scores: UnsafePointer<Double>!, _ nScores: Int64, _ sparsity: Double, _ structured: Int32,
  _ perLayer: UnsafePointer<Double>!, _ nPerLayer: Int64, _ includeBiases: Int32, _ outMask: UnsafeMutablePointer<Double>!,
  _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let m = try ModelArguments.model(model)
    let values = try Arguments.array(scores, count: try Arguments.size(nScores, "n_scores", minimum: 0), "scores")
    let out = try Arguments.output(outMask, capacity: capacity, needed: m.parameterCount, "out_mask")
    let biases = try flag(includeBiases, "include_biases")
    let mask: PruningMask
    if try flag(structured, "structured") {
      let fractions = perLayer == nil
        ? [sparsity] : try Arguments.array(perLayer, count: try Arguments.size(nPerLayer, "n_per_layer"), "per_layer")
      mask = try PruningMask.structured(groupScores: values, fractions: fractions, model: m)
    } else {
      mask = try PruningMask.unstructured(scores: values, sparsity: sparsity, model: m, includeBiases: biases)
    }
    out.write(mask.values)
  }
}

@c @implementation
public func bdl_model_apply_mask(_ model: OpaquePointer!, _ mask: UnsafePointer<Double>!, _ count: Int64) -> bdl_status {
  exported { () throws(BDLError) in
    let handle = try Handles.value(model, kind: .model, as: ModelHandle.self, "model")
    let values = try maskArgument(mask, count, handle.model, "mask")
    try handle.model.applyMask(values)
  }
}

@c @implementation
public func bdl_pruning_sparsity_curve(
  _ model: OpaquePointer!, _ scores: UnsafePointer<Double>!, _ nScores: Int64, _ sparsities: UnsafePointer<Double>!,
  _ nSparsities: Int64, _ XTest: UnsafePointer<Double>!, _ nTest: Int64, _ yTest: UnsafePointer<Double>!,
  _ fineTune: UnsafePointer<bdl_train_params>!, _ XTrain: UnsafePointer<Double>!, _ nTrain: Int64,
  _ yTrain: UnsafePointer<Double>!, _ outAccuracy: UnsafeMutablePointer<Double>!, _ outNLL: UnsafeMutablePointer<Double>!,
  _ outECE: UnsafeMutablePointer<Double>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let m = try ModelArguments.model(model)
    let values = try Arguments.array(scores, count: try Arguments.size(nScores, "n_scores"), "scores")
    let targets = try Arguments.array(sparsities, count: try Arguments.size(nSparsities, "n_sparsities"), "sparsities")
    let x = try ModelArguments.batch(XTest, nTest, m)
    let (_, labels) = try ModelArguments.supervision(yTest, n: x.count, likelihood: Int32(BDL_LIKELIHOOD_CLASSIFICATION), sigma: 1, model: m)
    guard case .classes(let testLabels) = labels else { throw .internal("classification labels") }
    var tuning: SparsityCurve.FineTuning?
    if let fineTune {
      guard Int(fineTune.pointee.likelihood) == BDL_LIKELIHOOD_CLASSIFICATION else {
        throw .invalidArgument("fine_tune->likelihood must be BDL_LIKELIHOOD_CLASSIFICATION: the curve scores a classifier")
      }
      let xt = try ModelArguments.batch(XTrain, nTrain, m)
      let (_, trainTargets) = try ModelArguments.supervision(yTrain, n: xt.count, likelihood: fineTune.pointee.likelihood, sigma: 1, model: m)
      tuning = SparsityCurve.FineTuning(inputs: xt, targets: trainTargets, options: try trainingOptions(fineTune.pointee))
    }
    let points = try SparsityCurve.evaluate(
      model: m, scores: values, sparsities: targets, testInputs: x, testLabels: testLabels, fineTuning: tuning)
    for (i, point) in points.enumerated() {
      outAccuracy?[i] = point.accuracy
      outNLL?[i] = point.meanNegativeLogLikelihood
      outECE?[i] = point.expectedCalibrationError
    }
  }
}

@c @implementation
public func bdl_model_sparsity(
  _ model: OpaquePointer!, _ mask: UnsafePointer<Double>!, _ count: Int64,
  _ outLayers: UnsafeMutablePointer<bdl_layer_sparsity>!, _ capacity: Int64, _ outCount: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let m = try ModelArguments.model(model)
    let values = try mask.map { (pointer) throws(BDLError) in try maskArgument(pointer, count, m, "mask") }
    let report = try m.sparsityReport(mask: values)
    if outLayers != nil {
      let out = try Arguments.output(outLayers, capacity: capacity, needed: report.layers.count, "out_layers")
      for (i, layer) in report.layers.enumerated() {
        out[i] = bdl_layer_sparsity(
          layer: Int64(layer.layerIndex), weights: Int64(layer.weights), weights_kept: Int64(layer.keptWeights),
          biases: Int64(layer.biases), biases_kept: Int64(layer.keptBiases), units: Int64(layer.units),
          units_kept: Int64(layer.keptUnits), macs: Int64(layer.multiplyAccumulates),
          macs_kept: Int64(layer.keptMultiplyAccumulates))
      }
    }
    outCount?.pointee = Int64(report.layers.count)
  }
}

@c @implementation
public func bdl_model_layers(
  _ model: OpaquePointer!, _ outLayers: UnsafeMutablePointer<bdl_layer_spec>!, _ capacity: Int64,
  _ outCount: UnsafeMutablePointer<Int64>!, _ outInputShape: UnsafeMutablePointer<Int64>!, _ shapeCapacity: Int64,
  _ outInputRank: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let m = try ModelArguments.model(model)
    let records = try ModelFile.LayerRecord.records(of: m.layers)
    let layers = try outLayers.map { (pointer) throws(BDLError) in
      try Arguments.output(pointer, capacity: capacity, needed: records.count, "out_layers")
    }
    let shape = try outInputShape.map { (pointer) throws(BDLError) in
      try Arguments.output(pointer, capacity: shapeCapacity, needed: m.inputShape.count, "out_input_shape")
    }
    for (i, r) in records.enumerated() {
      layers?[i] = bdl_layer_spec(
        kind: Int32(r.kind.rawValue), bias: r.bias ? 1 : 0, in_features: Int64(r.inFeatures),
        out_features: Int64(r.outFeatures), kernel_size: Int64(r.kernelSize), stride: Int64(r.stride),
        padding: Int64(r.padding))
    }
    for (i, d) in m.inputShape.enumerated() { shape?[i] = Int64(d) }
    outCount?.pointee = Int64(records.count)
    outInputRank?.pointee = Int64(m.inputShape.count)
  }
}

@c @implementation
public func bdl_model_save(
  _ model: OpaquePointer!, _ mask: UnsafePointer<Double>!, _ maskCount: Int64, _ path: UnsafePointer<CChar>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let m = try ModelArguments.model(model)
    let values = try mask.map { (pointer) throws(BDLError) in try maskArgument(pointer, maskCount, m, "mask") }
    try ModelFile.save(m, mask: values, to: Arguments.path(path))
  }
}

@c @implementation
public func bdl_model_file_info(
  _ path: UnsafePointer<CChar>!, _ outNumParameters: UnsafeMutablePointer<Int64>!, _ outHasMask: UnsafeMutablePointer<Int32>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let (model, mask) = try ModelFile.load(from: Arguments.path(path))
    outNumParameters?.pointee = Int64(model.parameterCount)
    outHasMask?.pointee = mask == nil ? 0 : 1
  }
}

@c @implementation
public func bdl_model_load(
  _ path: UnsafePointer<CChar>!, _ outModel: UnsafeMutablePointer<OpaquePointer?>!, _ outMask: UnsafeMutablePointer<Double>!,
  _ maskCapacity: Int64, _ outHasMask: UnsafeMutablePointer<Int32>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outModel, "out_model")
    let (model, mask) = try ModelFile.load(from: Arguments.path(path))
    if let mask, outMask != nil {
      try Arguments.output(outMask, capacity: maskCapacity, needed: mask.values.count, "out_mask").write(mask.values)
    }
    out.pointee = Handles.make(ModelHandle(model), kind: .model)
    outHasMask?.pointee = mask == nil ? 0 : 1
  }
}
