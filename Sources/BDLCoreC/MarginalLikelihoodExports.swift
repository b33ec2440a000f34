import BDLCore
import CBDLCore

// Marginal-likelihood training (see the "Marginal-likelihood training" section of bdlcore.h).

@c @implementation
public func bdl_marglik_params_init(_ params: UnsafeMutablePointer<bdl_marglik_params>!) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(params, "params")
    let defaults = MarginalLikelihoodTraining.Options()
    var p = bdl_marglik_params()
    p.struct_size = UInt32(MemoryLayout<bdl_marglik_params>.size)
    _ = bdl_train_params_init(&p.train)
    _ = bdl_laplace_params_init(&p.laplace)
    p.prior_structure = Int32(BDL_PRIOR_LAYERWISE)
    p.optimize_sigma = defaults.optimizeSigma ? 1 : 0
    p.frequency = Int64(defaults.frequency)
    p.burnin = Int64(defaults.burnin)
    p.tolerance = defaults.tolerance
    p.max_hyper_iterations = Int64(defaults.maxHyperparameterIterations)
    p.objective = Int32(BDL_OBJECTIVE_LAPLACE)
    p.bound_batch_size = 0
    p.independent_outputs = 0
    p.group_by_class = 0
    out.pointee = p
  }
}

/// The options of checked params.
private func marglikOptions(_ p: bdl_marglik_params) throws(BDLError) -> MarginalLikelihoodTraining.Options {
  guard Int(p.struct_size) == MemoryLayout<bdl_marglik_params>.size else {
    throw .invalidArgument("params->struct_size = \(p.struct_size); initialise params with bdl_marglik_params_init")
  }
  var options = MarginalLikelihoodTraining.Options()
  options.training = try trainingOptions(p.train)
  if p.train.prior_precision == nil { options.training.priorPrecision = [1] }
  var laplace = p.laplace
  // Only the fit fields of the embedded Laplace params matter; its struct_size is checked too.
  laplace = try withUnsafePointer(to: &laplace) { (pointer) throws(BDLError) in try laplaceParams(pointer) }
  options.laplace = try fitOptions(laplace)
  options.prior = try priorChoice(p.prior_structure, "params->prior_structure")
  guard p.optimize_sigma == 0 || p.optimize_sigma == 1 else {
    throw .invalidArgument("params->optimize_sigma = \(p.optimize_sigma); it must be 0 or 1")
  }
  options.optimizeSigma = p.optimize_sigma == 1
  options.frequency = try Arguments.size(p.frequency, "params->frequency")
  options.burnin = try Arguments.size(p.burnin, "params->burnin", minimum: 0)
  options.sigma = p.train.sigma
  options.temperature = laplace.temperature
  options.tolerance = p.tolerance
  options.maxHyperparameterIterations = try Arguments.size(p.max_hyper_iterations, "params->max_hyper_iterations")
  switch Int(p.objective) {
  case BDL_OBJECTIVE_LAPLACE: options.objective = .laplace
  case BDL_OBJECTIVE_NTK_BOUND:
    guard p.independent_outputs == 0 || p.independent_outputs == 1, p.group_by_class == 0 || p.group_by_class == 1 else {
      throw .invalidArgument("params->independent_outputs and params->group_by_class must be 0 or 1")
    }
    let batch = try Arguments.size(p.bound_batch_size, "params->bound_batch_size", minimum: 0)
    options.objective = .ntkBound(.init(
      batchSize: batch == 0 ? nil : batch, independentOutputs: p.independent_outputs == 1,
      groupByClass: p.group_by_class == 1, seed: p.train.seed))
  default: throw .invalidArgument("params->objective = \(p.objective) is not a BDL_OBJECTIVE_* value")
  }
  return options
}

private func progressReport(_ report: MarginalLikelihoodTraining.Progress) -> bdl_marglik_progress {
  bdl_marglik_progress(
    epoch: Int64(report.epoch), epochs: Int64(report.epochs), objective: report.objective,
    mean_negative_log_likelihood: report.meanNegativeLogLikelihood,
    hyperparameter_step: report.logMarginalLikelihood == nil ? 0 : 1,
    log_marginal_likelihood: report.logMarginalLikelihood ?? .nan, sigma_noise: report.hyperparameters.sigma)
}

@c @implementation
public func bdl_train_marglik(
  _ modelHandle: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ y: UnsafePointer<Double>!,
  _ params: UnsafePointer<bdl_marglik_params>!, _ progress: bdl_marglik_progress_fn!, _ userData: UnsafeMutableRawPointer!,
  _ outLaplace: UnsafeMutablePointer<OpaquePointer?>!, _ outHistory: UnsafeMutablePointer<bdl_marglik_progress>!,
  _ historyCapacity: Int64, _ outBestEpoch: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outLaplace, "out_laplace")
    let handle = try Handles.value(modelHandle, kind: .model, as: ModelHandle.self, "model")
    var p = bdl_marglik_params()
    if let params { p = params.pointee } else { _ = bdl_marglik_params_init(&p) }
    let options = try marglikOptions(p)
    let history = outHistory == nil ? nil
      : try Arguments.output(outHistory, capacity: historyCapacity, needed: options.training.epochs, "out_history")
    let kind = try ModelArguments.likelihoodKind(p.train.likelihood)
    let x = try ModelArguments.batch(X, n, handle.model)
    let (_, targets) = try ModelArguments.supervision(y, n: x.count, likelihood: p.train.likelihood, sigma: 1, model: handle.model)
    var model = handle.model
    let result = try MarginalLikelihoodTraining.train(
      &model, inputs: x, targets: targets, likelihood: kind, options: options
    ) { report in
      guard let progress else { return true }
      var c = progressReport(report)
      return progress(&c, userData) == 0
    }
    handle.model = model
    if let history { for (i, report) in result.history.enumerated() { history[i] = progressReport(report) } }
    outBestEpoch?.pointee = Int64(result.bestEpoch)
    out.pointee = Handles.make(LaplaceHandle(result.laplace, model: model), kind: .laplace)
  }
}
