import BDLCore
import CBDLCore

// Model selection by the evidence (see the "Model selection" section of bdlcore.h).

@c @implementation
public func bdl_ntk_bound_params_init(_ params: UnsafeMutablePointer<bdl_ntk_bound_params>!) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(params, "params")
    let defaults = NTKEvidenceBound.Options()
    out.pointee = bdl_ntk_bound_params(
      struct_size: UInt32(MemoryLayout<bdl_ntk_bound_params>.size), likelihood: Int32(BDL_LIKELIHOOD_CLASSIFICATION),
      prior_precision: nil, prior_precision_count: 0, prior_mean: nil, prior_mean_count: 0, sigma_noise: 1,
      temperature: 1, batch_size: 0, independent_outputs: defaults.independentOutputs ? 1 : 0,
      group_by_class: defaults.groupByClass ? 1 : 0, seed: defaults.seed, batch_index: -1, output_index: -1)
  }
}

/// The checked params (NULL: the defaults).
private func ntkBoundParams(_ params: UnsafePointer<bdl_ntk_bound_params>?) throws(BDLError) -> bdl_ntk_bound_params {
  var p = bdl_ntk_bound_params()
  if let params { p = params.pointee } else { _ = bdl_ntk_bound_params_init(&p) }
  guard Int(p.struct_size) == MemoryLayout<bdl_ntk_bound_params>.size else {
    throw .invalidArgument("params->struct_size = \(p.struct_size); initialise params with bdl_ntk_bound_params_init")
  }
  return p
}

/// A 0/1 flag.
private func flag(_ value: Int32, _ name: String) throws(BDLError) -> Bool {
  guard value == 0 || value == 1 else { throw .invalidArgument("\(name) = \(value); it must be 0 or 1") }
  return value == 1
}

/// An index that is −1 (none) or ≥ 0 (its range is checked by the core).
private func optionalIndex(_ value: Int64, _ name: String) throws(BDLError) -> Int? {
  value == -1 ? nil : try Arguments.size(value, name, minimum: 0)
}

@c @implementation
public func bdl_ntk_evidence_bound(
  _ modelHandle: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ y: UnsafePointer<Double>!,
  _ params: UnsafePointer<bdl_ntk_bound_params>!, _ outValue: UnsafeMutablePointer<Double>!,
  _ outGradLogPrior: UnsafeMutablePointer<Double>!, _ outGradLogSigma: UnsafeMutablePointer<Double>!,
  _ outNumBatches: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let m = try ModelArguments.model(modelHandle)
    let p = try ntkBoundParams(params)
    let kind = try ModelArguments.likelihoodKind(p.likelihood)
    var options = NTKEvidenceBound.Options()
    let batchSize = try Arguments.size(p.batch_size, "params->batch_size", minimum: 0)
    options.batchSize = batchSize == 0 ? nil : batchSize
    options.independentOutputs = try flag(p.independent_outputs, "params->independent_outputs")
    options.groupByClass = try flag(p.group_by_class, "params->group_by_class")
    options.seed = p.seed
    let batch = try optionalIndex(p.batch_index, "params->batch_index")
    let output = try optionalIndex(p.output_index, "params->output_index")
    if output != nil && batch == nil {
      throw .invalidArgument("params->output_index = \(p.output_index) needs a batch_index ≥ 0 (a single-output estimate is per batch)")
    }
    var hp = LaplaceHyperparameters(sigma: p.sigma_noise, temperature: p.temperature)
    if let prior = p.prior_precision {
      hp.priorPrecision = try Arguments.array(prior, count: try Arguments.size(p.prior_precision_count, "params->prior_precision_count"), "params->prior_precision")
    }
    if let mean = p.prior_mean {
      hp.priorMean = try Arguments.array(mean, count: try Arguments.size(p.prior_mean_count, "params->prior_mean_count"), "params->prior_mean")
    }
    let x = try ModelArguments.batch(X, n, m)
    let (_, targets) = try ModelArguments.supervision(y, n: x.count, likelihood: p.likelihood, sigma: 1, model: m)
    let bound = try NTKEvidenceBound(model: m, inputs: x, targets: targets, likelihood: kind, options: options)
    let result: NTKEvidenceBound.Result
    if let batch { result = try bound.estimate(batch: batch, output: output, hp) } else { result = try bound.evaluate(hp) }
    outValue?.pointee = result.value
    outGradLogPrior?.write(result.logPriorPrecision)
    outGradLogSigma?.pointee = result.logSigma
    outNumBatches?.pointee = Int64(bound.batches.count)
  }
}
