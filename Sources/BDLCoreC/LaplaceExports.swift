import BDLCore
import CBDLCore

// Laplace posteriors and calibration metrics (see the "Laplace" and "Calibration metrics"
// sections of bdlcore.h).

/// The posterior behind a `bdl_laplace*` (hyperparameters and optimisation change it).
final class LaplaceHandle: @unchecked Sendable {  // mutated only by its one user thread
  var laplace: Laplace
  /// The covered parameter tensors' shapes when known (fitted from a model): a unit-wise prior needs them.
  let parameterShapes: [[Int]]?
  init(_ laplace: Laplace, model: Sequential? = nil) {
    self.laplace = laplace
    // The covered tensors are the model's last ones (all, or the last layer's).
    var shapes = model?.layers.flatMap(\.parameterShapes) ?? []
    while !shapes.isEmpty && shapes.reduce(0, { $0 + $1.reduce(1, *) }) > laplace.parameterCount { shapes.removeFirst() }
    parameterShapes = shapes.isEmpty ? nil : shapes
  }
}

private func laplaceHandle(_ handle: OpaquePointer?) throws(BDLError) -> LaplaceHandle {
  try Handles.value(handle, kind: .laplace, as: LaplaceHandle.self, "laplace")
}

/// The checked params (NULL: the defaults).
func laplaceParams(_ params: UnsafePointer<bdl_laplace_params>?) throws(BDLError) -> bdl_laplace_params {
  var p = bdl_laplace_params()
  if let params { p = params.pointee } else { _ = bdl_laplace_params_init(&p) }
  guard Int(p.struct_size) == MemoryLayout<bdl_laplace_params>.size else {
    throw .invalidArgument("params->struct_size = \(p.struct_size); initialise params with bdl_laplace_params_init")
  }
  return p
}

/// An optional array argument: NULL gives nil; otherwise count ≥ 1 values.
private func optionalArray(_ pointer: UnsafePointer<Double>?, _ count: Int64, _ name: String) throws(BDLError) -> [Double]? {
  guard let pointer else { return nil }
  return try Arguments.array(pointer, count: try Arguments.size(count, "\(name)_count"), name)
}

private func hyperparameters(_ p: bdl_laplace_params) throws(BDLError) -> LaplaceHyperparameters {
  LaplaceHyperparameters(
    priorPrecision: try optionalArray(p.prior_precision, p.prior_precision_count, "params->prior_precision") ?? [1],
    priorMean: try optionalArray(p.prior_mean, p.prior_mean_count, "params->prior_mean") ?? [0],
    sigma: p.sigma_noise, temperature: p.temperature)
}

/// The caller's hyperparameters for an evaluation: the current ones with the given prior and σ.
private func evaluationPoint(
  _ laplace: Laplace, _ prior: UnsafePointer<Double>?, _ count: Int64, _ sigma: UnsafePointer<Double>?
) throws(BDLError) -> LaplaceHyperparameters {
  var hp = laplace.hyperparameters
  if let values = try optionalArray(prior, count, "prior_precision") { hp.priorPrecision = values }
  if let sigma { hp.sigma = sigma.pointee }
  return hp
}

@c @implementation
public func bdl_laplace_params_init(_ params: UnsafeMutablePointer<bdl_laplace_params>!) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(params, "params")
    out.pointee = bdl_laplace_params(
      struct_size: UInt32(MemoryLayout<bdl_laplace_params>.size), likelihood: Int32(BDL_LIKELIHOOD_CLASSIFICATION),
      structure: Int32(BDL_LAPLACE_KRON), subset: Int32(BDL_SUBSET_ALL), fisher: Int32(BDL_FISHER_EXACT),
      approximation: Int32(BDL_KFAC_EXPAND), damped: 0, mc_samples: 1, seed: 0, batch_size: 256,
      prior_precision: nil, prior_precision_count: 0, prior_mean: nil, prior_mean_count: 0,
      sigma_noise: 1, temperature: 1)
  }
}

@c @implementation
public func bdl_laplace_fit(
  _ modelHandle: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ y: UnsafePointer<Double>!,
  _ params: UnsafePointer<bdl_laplace_params>!, _ progress: bdl_pass_progress_fn!, _ userData: UnsafeMutableRawPointer!,
  _ outLaplace: UnsafeMutablePointer<OpaquePointer?>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outLaplace, "out_laplace")
    let m = try ModelArguments.model(modelHandle)
    let p = try laplaceParams(params)
    let options = try fitOptions(p)
    let kind = try ModelArguments.likelihoodKind(p.likelihood)
    let x = try ModelArguments.batch(X, n, m)
    let (_, targets) = try ModelArguments.supervision(y, n: x.count, likelihood: p.likelihood, sigma: 1, model: m)
    let report: ((Int, Int) -> Void)? = progress.map { callback in { done, total in callback(Int64(done), Int64(total), userData) } }
    let laplace = try Laplace.fit(
      model: m, inputs: x, targets: targets, likelihood: kind, options: options, hyperparameters: try hyperparameters(p),
      progress: report)
    out.pointee = Handles.make(LaplaceHandle(laplace, model: m), kind: .laplace)
  }
}

/// The fit options of checked params.
func fitOptions(_ p: bdl_laplace_params) throws(BDLError) -> Laplace.FitOptions {
  var options = Laplace.FitOptions()
  switch Int(p.structure) {
  case BDL_LAPLACE_FULL: options.structure = .full
  case BDL_LAPLACE_DIAG: options.structure = .diagonal
  case BDL_LAPLACE_KRON: options.structure = .kron
  default: throw .invalidArgument("params->structure = \(p.structure) is not a BDL_LAPLACE_* value")
  }
  switch Int(p.subset) {
  case BDL_SUBSET_ALL: options.subset = .all
  case BDL_SUBSET_LAST_LAYER: options.subset = .lastLayer
  default: throw .invalidArgument("params->subset = \(p.subset) is not a BDL_SUBSET_* value")
  }
  guard p.damped == 0 || p.damped == 1 else { throw .invalidArgument("params->damped = \(p.damped); it must be 0 or 1") }
  options.fisher = try Arguments.fisher(p.fisher, samples: p.mc_samples, seed: p.seed)
  options.approximation = try Arguments.approximation(p.approximation)
  options.batchSize = try Arguments.size(p.batch_size, "params->batch_size")
  options.dampedKronecker = p.damped == 1
  return options
}

@c @implementation
public func bdl_laplace_from_curvature(
  _ curvature: OpaquePointer!, _ theta: UnsafePointer<Double>!, _ numParameters: Int64,
  _ tensorSizes: UnsafePointer<Int64>!, _ nTensors: Int64, _ loss: Double, _ nData: Int64, _ nOutputs: Int64,
  _ params: UnsafePointer<bdl_laplace_params>!, _ outLaplace: UnsafeMutablePointer<OpaquePointer?>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outLaplace, "out_laplace")
    let handle = try curvatureHandle(curvature)
    let p = try laplaceParams(params)
    let count = try Arguments.size(numParameters, "num_parameters")
    let mean = try Arguments.array(theta, count: count, "theta")
    var sizes: [Int]? = nil
    if let tensorSizes {
      let tensors = try Arguments.size(nTensors, "n_tensors")
      sizes = try (0..<tensors).map { (i) throws(BDLError) in try Arguments.size(tensorSizes[i], "tensor_sizes[\(i)]") }
    }
    let g: Laplace.Curvature
    if let kfac = handle.kfac {
      g = .kron(kfac)
    } else if let diagonal = handle.operator_ as? DiagonalGGN {
      g = .diagonal(diagonal.values)
    } else if let dense = handle.operator_ as? DenseGGN {
      g = .full(dense.matrix)
    } else {
      throw .unsupported("curvature kind \(handle.kind) cannot define a posterior")
    }
    guard p.damped == 0 || p.damped == 1 else { throw .invalidArgument("params->damped = \(p.damped); it must be 0 or 1") }
    let laplace = try Laplace(
      curvature: g, mean: mean, tensorSizes: sizes, loss: loss, dataCount: try Arguments.size(nData, "n_data"),
      outputCount: try Arguments.size(nOutputs, "n_outputs"), likelihood: try ModelArguments.likelihoodKind(p.likelihood),
      hyperparameters: try hyperparameters(p), dampedKronecker: p.damped == 1)
    out.pointee = Handles.make(LaplaceHandle(laplace), kind: .laplace)
  }
}

@c @implementation
public func bdl_laplace_free(_ laplace: OpaquePointer!) {
  Handles.free(laplace, kind: .laplace, as: LaplaceHandle.self, "laplace")
}

@c @implementation
public func bdl_laplace_info(
  _ laplace: OpaquePointer!, _ outStructure: UnsafeMutablePointer<Int32>!, _ outSubset: UnsafeMutablePointer<Int32>!,
  _ outLikelihood: UnsafeMutablePointer<Int32>!, _ outNumParameters: UnsafeMutablePointer<Int64>!,
  _ outNumTensors: UnsafeMutablePointer<Int64>!, _ outFirstParameter: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let la = try laplaceHandle(laplace).laplace
    switch la.structure {
    case .full: outStructure?.pointee = Int32(BDL_LAPLACE_FULL)
    case .diagonal: outStructure?.pointee = Int32(BDL_LAPLACE_DIAG)
    case .kron: outStructure?.pointee = Int32(BDL_LAPLACE_KRON)
    }
    outSubset?.pointee = Int32(la.subset == .all ? BDL_SUBSET_ALL : BDL_SUBSET_LAST_LAYER)
    outLikelihood?.pointee = Int32(la.likelihood == .classification ? BDL_LIKELIHOOD_CLASSIFICATION : BDL_LIKELIHOOD_REGRESSION)
    outNumParameters?.pointee = Int64(la.parameterCount)
    outNumTensors?.pointee = Int64(la.tensorSizes.count)
    outFirstParameter?.pointee = Int64(la.parameterRange.lowerBound)
  }
}

@c @implementation
public func bdl_laplace_set_hyperparameters(
  _ laplace: OpaquePointer!, _ priorPrecision: UnsafePointer<Double>!, _ priorPrecisionCount: Int64,
  _ priorMean: UnsafePointer<Double>!, _ priorMeanCount: Int64, _ sigmaNoise: Double, _ temperature: Double
) -> bdl_status {
  exported { () throws(BDLError) in
    let handle = try laplaceHandle(laplace)
    var hp = handle.laplace.hyperparameters
    if let values = try optionalArray(priorPrecision, priorPrecisionCount, "prior_precision") { hp.priorPrecision = values }
    if let values = try optionalArray(priorMean, priorMeanCount, "prior_mean") { hp.priorMean = values }
    hp.sigma = sigmaNoise
    hp.temperature = temperature
    try handle.laplace.setHyperparameters(hp)
  }
}

@c @implementation
public func bdl_laplace_hyperparameters(
  _ laplace: OpaquePointer!, _ outPrior: UnsafeMutablePointer<Double>!, _ priorCapacity: Int64,
  _ outPriorCount: UnsafeMutablePointer<Int64>!, _ outPriorMean: UnsafeMutablePointer<Double>!, _ meanCapacity: Int64,
  _ outMeanCount: UnsafeMutablePointer<Int64>!, _ outSigma: UnsafeMutablePointer<Double>!,
  _ outTemperature: UnsafeMutablePointer<Double>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let hp = try laplaceHandle(laplace).laplace.hyperparameters
    try writeOptional(hp.priorPrecision, outPrior, priorCapacity, "out_prior", hp.priorMean, outPriorMean, meanCapacity, "out_prior_mean")
    outPriorCount?.pointee = Int64(hp.priorPrecision.count)
    outMeanCount?.pointee = Int64(hp.priorMean.count)
    outSigma?.pointee = hp.sigma
    outTemperature?.pointee = hp.temperature
  }
}

@c @implementation
public func bdl_laplace_log_marginal_likelihood(
  _ laplace: OpaquePointer!, _ priorPrecision: UnsafePointer<Double>!, _ priorPrecisionCount: Int64,
  _ sigmaNoise: UnsafePointer<Double>!, _ outValue: UnsafeMutablePointer<Double>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outValue, "out_value")
    let la = try laplaceHandle(laplace).laplace
    out.pointee = try la.logMarginalLikelihood(try evaluationPoint(la, priorPrecision, priorPrecisionCount, sigmaNoise))
  }
}

@c @implementation
public func bdl_laplace_log_marginal_likelihood_grad(
  _ laplace: OpaquePointer!, _ priorPrecision: UnsafePointer<Double>!, _ priorPrecisionCount: Int64,
  _ sigmaNoise: UnsafePointer<Double>!, _ outValue: UnsafeMutablePointer<Double>!,
  _ outGradLogPrior: UnsafeMutablePointer<Double>!, _ capacity: Int64, _ outGradLogSigma: UnsafeMutablePointer<Double>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let la = try laplaceHandle(laplace).laplace
    let hp = try evaluationPoint(la, priorPrecision, priorPrecisionCount, sigmaNoise)
    let gradient = try la.logMarginalLikelihoodGradient(hp)
    let grad = try Arguments.output(outGradLogPrior, capacity: capacity, needed: gradient.logPriorPrecision.count, "out_grad_log_prior")
    grad.write(gradient.logPriorPrecision)
    outValue?.pointee = gradient.logMarginalLikelihood
    outGradLogSigma?.pointee = gradient.logSigma
  }
}

/// A BDL_PRIOR_* value.
func priorChoice(_ value: Int32, _ name: String) throws(BDLError) -> MarginalLikelihoodTraining.Prior {
  switch Int(value) {
  case BDL_PRIOR_SCALAR: return .scalar
  case BDL_PRIOR_LAYERWISE: return .layerwise
  case BDL_PRIOR_DIAG: return .diagonal
  case BDL_PRIOR_UNITWISE: return .unitwise
  default: throw .invalidArgument("\(name) = \(value) is not a BDL_PRIOR_* value")
  }
}

@c @implementation
public func bdl_laplace_optimize_prior_precision(
  _ laplace: OpaquePointer!, _ priorStructure: Int32, _ optimizeSigma: Int32, _ tolerance: Double,
  _ maxIterations: Int64, _ out: UnsafeMutablePointer<bdl_evidence_optimum>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let handle = try laplaceHandle(laplace)
    let prior = try priorChoice(priorStructure, "prior_structure")
    guard optimizeSigma == 0 || optimizeSigma == 1 else { throw .invalidArgument("optimize_sigma = \(optimizeSigma); it must be 0 or 1") }
    guard !tolerance.isNaN else { throw .invalidArgument("tolerance is NaN") }
    let (tolerance, iterations) = (tolerance > 0 ? tolerance : 1e-8, maxIterations > 0 ? Int(maxIterations) : 200)
    let result: Laplace.EvidenceMaximization
    if let structure = prior.structure {
      result = try handle.laplace.optimizePriorPrecision(
        structure: structure, optimizeSigma: optimizeSigma == 1, tolerance: tolerance, maxIterations: iterations)
    } else {
      guard let shapes = handle.parameterShapes else {
        throw .invalidArgument("a unit-wise prior needs the layer shapes: use a posterior made by bdl_laplace_fit")
      }
      result = try handle.laplace.optimizePriorPrecision(
        unitwise: UnitwisePrior(shapes: shapes), optimizeSigma: optimizeSigma == 1, tolerance: tolerance, maxIterations: iterations)
    }
    out?.pointee = bdl_evidence_optimum(
      log_marginal_likelihood: result.logMarginalLikelihood, gradient_norm: result.gradientNorm,
      iterations: Int64(result.iterations), converged: result.converged ? 1 : 0)
  }
}

@c @implementation
public func bdl_laplace_functional_variance(
  _ laplace: OpaquePointer!, _ modelHandle: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64,
  _ outMean: UnsafeMutablePointer<Double>!, _ meanCapacity: Int64, _ outVariance: UnsafeMutablePointer<Double>!,
  _ varianceCapacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let la = try laplaceHandle(laplace).laplace
    let m = try ModelArguments.model(modelHandle)
    let x = try ModelArguments.batch(X, n, m)
    let (mean, variance) = try la.functionalVariance(model: m, inputs: x)
    try writeOptional(mean.elements, outMean, meanCapacity, "out_mean", variance.elements, outVariance, varianceCapacity, "out_variance")
  }
}

/// Writes up to two optional outputs, after checking both capacities (so nothing is half-written).
private func writeOptional(
  _ first: [Double], _ firstOut: UnsafeMutablePointer<Double>?, _ firstCapacity: Int64, _ firstName: String,
  _ second: [Double]?, _ secondOut: UnsafeMutablePointer<Double>?, _ secondCapacity: Int64, _ secondName: String
) throws(BDLError) {
  let a = try firstOut.map { (p) throws(BDLError) in try Arguments.output(p, capacity: firstCapacity, needed: first.count, firstName) }
  var b: UnsafeMutablePointer<Double>? = nil
  if let secondOut {
    guard let second else { throw .invalidArgument("\(secondName) must be NULL here (there is no such output)") }
    b = try Arguments.output(secondOut, capacity: secondCapacity, needed: second.count, secondName)
  }
  a?.write(first)
  if let b, let second { b.write(second) }
}

@c @implementation
public func bdl_laplace_predict(
  _ laplace: OpaquePointer!, _ modelHandle: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ link: Int32,
  _ nSamples: Int64, _ seed: UInt64, _ outProbs: UnsafeMutablePointer<Double>!, _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let la = try laplaceHandle(laplace).laplace
    let m = try ModelArguments.model(modelHandle)
    let predictive: PredictiveLink
    switch Int(link) {
    case BDL_LINK_PROBIT: predictive = .probit
    case BDL_LINK_BRIDGE: predictive = .bridge
    case BDL_LINK_MC: predictive = .monteCarlo(samples: try Arguments.size(nSamples, "n_samples"), seed: seed)
    default: throw .invalidArgument("link = \(link) is not a BDL_LINK_* value")
    }
    let x = try ModelArguments.batch(X, n, m)
    let out = try Arguments.output(outProbs, capacity: capacity, needed: x.count * la.outputCount, "out_probs")
    out.write(try la.predictProbabilities(model: m, inputs: x, link: predictive).elements)
  }
}

@c @implementation
public func bdl_laplace_predict_regression(
  _ laplace: OpaquePointer!, _ modelHandle: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ includeNoise: Int32,
  _ outMean: UnsafeMutablePointer<Double>!, _ meanCapacity: Int64, _ outVariance: UnsafeMutablePointer<Double>!,
  _ varianceCapacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let la = try laplaceHandle(laplace).laplace
    let m = try ModelArguments.model(modelHandle)
    guard includeNoise == 0 || includeNoise == 1 else { throw .invalidArgument("include_noise = \(includeNoise); it must be 0 or 1") }
    let x = try ModelArguments.batch(X, n, m)
    let (mean, variance) = try la.predictRegression(model: m, inputs: x, includeNoise: includeNoise == 1)
    try writeOptional(mean.elements, outMean, meanCapacity, "out_mean", variance.elements, outVariance, varianceCapacity, "out_variance")
  }
}

@c @implementation
public func bdl_laplace_predict_sampling(
  _ laplace: OpaquePointer!, _ modelHandle: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ nSamples: Int64,
  _ seed: UInt64, _ includeNoise: Int32, _ outMean: UnsafeMutablePointer<Double>!, _ meanCapacity: Int64,
  _ outVariance: UnsafeMutablePointer<Double>!, _ varianceCapacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let la = try laplaceHandle(laplace).laplace
    let m = try ModelArguments.model(modelHandle)
    guard includeNoise == 0 || includeNoise == 1 else { throw .invalidArgument("include_noise = \(includeNoise); it must be 0 or 1") }
    let x = try ModelArguments.batch(X, n, m)
    let samples = try Arguments.size(nSamples, "n_samples")
    if outVariance != nil, la.likelihood == .classification { throw .invalidArgument("out_variance must be NULL for classification") }
    let (mean, variance) = try la.samplingPredictive(model: m, inputs: x, samples: samples, seed: seed, includeNoise: includeNoise == 1)
    try writeOptional(mean.elements, outMean, meanCapacity, "out_mean", variance?.elements, outVariance, varianceCapacity, "out_variance")
  }
}

@c @implementation
public func bdl_laplace_sample(
  _ laplace: OpaquePointer!, _ nSamples: Int64, _ seed: UInt64, _ outSamples: UnsafeMutablePointer<Double>!, _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let la = try laplaceHandle(laplace).laplace
    let count = try Arguments.size(nSamples, "n_samples", minimum: 0)
    let needed = try Arguments.product([count, la.parameterCount], "n_samples·P")
    let out = try Arguments.output(outSamples, capacity: capacity, needed: needed, "out_samples")
    out.write(try la.sample(count: count, seed: seed).elements)
  }
}

@c @implementation
public func bdl_laplace_log_prob(
  _ laplace: OpaquePointer!, _ theta: UnsafePointer<Double>!, _ numParameters: Int64, _ outValue: UnsafeMutablePointer<Double>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outValue, "out_value")
    let la = try laplaceHandle(laplace).laplace
    let values = try Arguments.array(theta, count: try Arguments.size(numParameters, "num_parameters"), "theta")
    out.pointee = try la.logProbability(values)
  }
}

@c @implementation
public func bdl_laplace_save(_ laplace: OpaquePointer!, _ path: UnsafePointer<CChar>!) -> bdl_status {
  exported { () throws(BDLError) in
    try LaplaceFile.save(try laplaceHandle(laplace).laplace, to: Arguments.path(path))
  }
}

@c @implementation
public func bdl_laplace_load(
  _ path: UnsafePointer<CChar>!, _ modelHandle: OpaquePointer!, _ outLaplace: UnsafeMutablePointer<OpaquePointer?>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outLaplace, "out_laplace")
    let laplace = try LaplaceFile.load(from: Arguments.path(path))
    var model: Sequential?
    if modelHandle != nil {
      let m = try ModelArguments.model(modelHandle)
      model = m
      guard m.parameterCount == laplace.networkParameterCount else {
        throw .shapeMismatch("the model has \(m.parameterCount) parameters; the saved posterior belongs to a network with \(laplace.networkParameterCount)")
      }
    }
    out.pointee = Handles.make(LaplaceHandle(laplace, model: model), kind: .laplace)
  }
}

// Calibration metrics.

/// The probabilities and labels of a metrics call.
private func metricsArguments(
  _ probs: UnsafePointer<Double>?, _ n: Int64, _ classes: Int64, _ labels: UnsafePointer<Int64>?
) throws(BDLError) -> (Matrix, [Int]) {
  let rows = try Arguments.size(n, "n"), columns = try Arguments.size(classes, "n_classes")
  let values = try Arguments.array(probs, count: try Arguments.product([rows, columns], "n·n_classes"), "probs")
  guard let labels else { throw .invalidArgument("labels is NULL") }
  var list: [Int] = []
  for i in 0..<rows {
    guard let label = Int(exactly: labels[i]) else { throw .invalidArgument("label \(labels[i]) is out of range") }
    list.append(label)
  }
  return (try Matrix(rows: rows, columns: columns, elements: values), list)
}

private func metric(
  _ probs: UnsafePointer<Double>?, _ n: Int64, _ classes: Int64, _ labels: UnsafePointer<Int64>?,
  _ out: UnsafeMutablePointer<Double>?, _ body: (Matrix, [Int]) throws(BDLError) -> Double
) -> bdl_status {
  exported { () throws(BDLError) in
    let target = try Arguments.output(out, "out_value")
    let (p, y) = try metricsArguments(probs, n, classes, labels)
    target.pointee = try body(p, y)
  }
}

@c @implementation
public func bdl_metrics_accuracy(
  _ probs: UnsafePointer<Double>!, _ n: Int64, _ nClasses: Int64, _ labels: UnsafePointer<Int64>!, _ outValue: UnsafeMutablePointer<Double>!
) -> bdl_status {
  metric(probs, n, nClasses, labels, outValue) { (p, y) throws(BDLError) in try CalibrationMetrics.accuracy(p, labels: y) }
}

@c @implementation
public func bdl_metrics_nll(
  _ probs: UnsafePointer<Double>!, _ n: Int64, _ nClasses: Int64, _ labels: UnsafePointer<Int64>!, _ outValue: UnsafeMutablePointer<Double>!
) -> bdl_status {
  metric(probs, n, nClasses, labels, outValue) { (p, y) throws(BDLError) in try CalibrationMetrics.negativeLogLikelihood(p, labels: y) }
}

@c @implementation
public func bdl_metrics_brier(
  _ probs: UnsafePointer<Double>!, _ n: Int64, _ nClasses: Int64, _ labels: UnsafePointer<Int64>!, _ outValue: UnsafeMutablePointer<Double>!
) -> bdl_status {
  metric(probs, n, nClasses, labels, outValue) { (p, y) throws(BDLError) in try CalibrationMetrics.brierScore(p, labels: y) }
}

@c @implementation
public func bdl_metrics_ece(
  _ probs: UnsafePointer<Double>!, _ n: Int64, _ nClasses: Int64, _ labels: UnsafePointer<Int64>!, _ bins: Int64,
  _ outValue: UnsafeMutablePointer<Double>!
) -> bdl_status {
  metric(probs, n, nClasses, labels, outValue) { (p, y) throws(BDLError) in
    try CalibrationMetrics.expectedCalibrationError(p, labels: y, bins: try Arguments.size(bins, "bins"))
  }
}

@c @implementation
public func bdl_metrics_reliability(
  _ probs: UnsafePointer<Double>!, _ n: Int64, _ nClasses: Int64, _ labels: UnsafePointer<Int64>!, _ bins: Int64,
  _ outCounts: UnsafeMutablePointer<Int64>!, _ outConfidence: UnsafeMutablePointer<Double>!, _ outAccuracy: UnsafeMutablePointer<Double>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let (p, y) = try metricsArguments(probs, n, nClasses, labels)
    let table = try CalibrationMetrics.reliability(p, labels: y, bins: try Arguments.size(bins, "bins"))
    for (i, bin) in table.enumerated() {
      outCounts?[i] = Int64(bin.count)
      outConfidence?[i] = bin.confidence
      outAccuracy?[i] = bin.accuracy
    }
  }
}
