import BDLCore
import CBDLCore

// Influence and its evaluation (see the "Influence" section of bdlcore.h).

/// The influence object behind a `bdl_influence*`.
final class InfluenceHandle: Sendable {
  let influence: Influence
  init(_ influence: Influence) { self.influence = influence }
}

private func influenceHandle(_ handle: OpaquePointer?) throws(BDLError) -> Influence {
  try Handles.value(handle, kind: .influence, as: InfluenceHandle.self, "influence").influence
}

/// The queries, their targets (or nil) and the measurement of a C call.
private func queries(
  _ m: Sequential, _ X: UnsafePointer<Double>?, _ n: Int64, _ y: UnsafePointer<Double>?, likelihood: Int32,
  measurement: Int32, cotangents: UnsafePointer<Double>?
) throws(BDLError) -> (Tensor, Targets?, InfluenceMeasurement) {
  let x = try ModelArguments.batch(X, n, m)
  let c = m.outputCount
  var targets: Targets? = nil
  if y != nil { targets = try ModelArguments.supervision(y, n: x.count, likelihood: likelihood, sigma: 1, model: m).1 }
  let kind: InfluenceMeasurement
  switch Int(measurement) {
  case BDL_MEASURE_LOSS: kind = .loss
  case BDL_MEASURE_LOG_PROB: kind = .logProbability
  case BDL_MEASURE_MARGIN: kind = .margin
  case BDL_MEASURE_COTANGENT:
    let values = try Arguments.array(cotangents, count: try Arguments.product([x.count, c], "n_queries·C"), "cotangents")
    kind = .cotangent(try Tensor(shape: [x.count, c], elements: values))
  default: throw .invalidArgument("measurement = \(measurement) is not a BDL_MEASURE_* value")
  }
  if case .cotangent = kind {} else if targets == nil {
    throw .invalidArgument("y_query is NULL; this measurement needs the queries' labels or targets")
  }
  return (x, targets, kind)
}

private func progressClosure(_ progress: bdl_pass_progress_fn?, _ userData: UnsafeMutableRawPointer?) -> ((Int, Int) -> Void)? {
  progress.map { callback in { done, total in callback(Int64(done), Int64(total), userData) } }
}

@c @implementation
public func bdl_influence_params_init(_ params: UnsafeMutablePointer<bdl_influence_params>!) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(params, "params")
    out.pointee = bdl_influence_params(
      struct_size: UInt32(MemoryLayout<bdl_influence_params>.size), likelihood: Int32(BDL_LIKELIHOOD_CLASSIFICATION),
      curvature: Int32(BDL_INFLUENCE_EKFAC), fisher: Int32(BDL_FISHER_EXACT), approximation: Int32(BDL_KFAC_EXPAND),
      relative_damping: 1, damping: 0.1, mc_samples: 1, seed: 0, batch_size: 256)
  }
}

@c @implementation
public func bdl_influence_fit(
  _ modelHandle: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ y: UnsafePointer<Double>!,
  _ params: UnsafePointer<bdl_influence_params>!, _ progress: bdl_pass_progress_fn!, _ userData: UnsafeMutableRawPointer!,
  _ outInfluence: UnsafeMutablePointer<OpaquePointer?>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outInfluence, "out_influence")
    let m = try ModelArguments.model(modelHandle)
    var p = bdl_influence_params()
    if let params { p = params.pointee } else { _ = bdl_influence_params_init(&p) }
    guard Int(p.struct_size) == MemoryLayout<bdl_influence_params>.size else {
      throw .invalidArgument("params->struct_size = \(p.struct_size); initialise params with bdl_influence_params_init")
    }
    guard let curvature = Influence.Curvature(rawValue: Int(p.curvature) - 1) else {
      throw .invalidArgument("params->curvature = \(p.curvature) is not a BDL_INFLUENCE_* value")
    }
    guard p.relative_damping == 0 || p.relative_damping == 1 else {
      throw .invalidArgument("params->relative_damping = \(p.relative_damping); it must be 0 or 1")
    }
    let x = try ModelArguments.batch(X, n, m)
    let (_, targets) = try ModelArguments.supervision(y, n: x.count, likelihood: p.likelihood, sigma: 1, model: m)
    let influence = try Influence.fit(
      model: m, inputs: x, targets: targets, likelihood: try ModelArguments.likelihoodKind(p.likelihood), curvature: curvature,
      fisher: try Arguments.fisher(p.fisher, samples: p.mc_samples, seed: p.seed),
      approximation: try Arguments.approximation(p.approximation),
      damping: p.relative_damping == 1 ? .relative(p.damping) : .absolute(p.damping),
      batchSize: try Arguments.size(p.batch_size, "params->batch_size"), progress: progressClosure(progress, userData))
    out.pointee = Handles.make(InfluenceHandle(influence), kind: .influence)
  }
}

@c @implementation
public func bdl_influence_free(_ influence: OpaquePointer!) {
  Handles.free(influence, kind: .influence, as: InfluenceHandle.self, "influence")
}

@c @implementation
public func bdl_influence_info(
  _ influence: OpaquePointer!, _ outCurvature: UnsafeMutablePointer<Int32>!, _ outNTrain: UnsafeMutablePointer<Int64>!,
  _ outNumParameters: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let i = try influenceHandle(influence)
    outCurvature?.pointee = Int32(i.curvature.rawValue + 1)
    outNTrain?.pointee = Int64(i.trainCount)
    outNumParameters?.pointee = Int64(i.parameterCount)
  }
}

@c @implementation
public func bdl_influence_scores(
  _ influence: OpaquePointer!, _ modelHandle: OpaquePointer!, _ XQuery: UnsafePointer<Double>!, _ nQueries: Int64,
  _ yQuery: UnsafePointer<Double>!, _ measurement: Int32, _ cotangents: UnsafePointer<Double>!,
  _ progress: bdl_pass_progress_fn!, _ userData: UnsafeMutableRawPointer!, _ outScores: UnsafeMutablePointer<Double>!,
  _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let i = try influenceHandle(influence)
    let m = try ModelArguments.model(modelHandle)
    let likelihood = Int32(i.likelihood == .classification ? BDL_LIKELIHOOD_CLASSIFICATION : BDL_LIKELIHOOD_REGRESSION)
    let (x, targets, kind) = try queries(m, XQuery, nQueries, yQuery, likelihood: likelihood, measurement: measurement, cotangents: cotangents)
    let out = try Arguments.output(outScores, capacity: capacity, needed: try Arguments.product([x.count, i.trainCount], "n_queries·n_train"), "out_scores")
    out.write(try i.scores(model: m, queries: x, targets: targets, measurement: kind, progress: progressClosure(progress, userData)).elements)
  }
}

@c @implementation
public func bdl_influence_damping(
  _ influence: OpaquePointer!, _ outDamping: UnsafeMutablePointer<Double>!, _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let i = try influenceHandle(influence)
    try Arguments.output(outDamping, capacity: capacity, needed: i.damping.count, "out_damping").write(i.damping)
  }
}

@c @implementation
public func bdl_influence_self(
  _ influence: OpaquePointer!, _ modelHandle: OpaquePointer!, _ progress: bdl_pass_progress_fn!,
  _ userData: UnsafeMutableRawPointer!, _ outScores: UnsafeMutablePointer<Double>!, _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let i = try influenceHandle(influence)
    let m = try ModelArguments.model(modelHandle)
    let out = try Arguments.output(outScores, capacity: capacity, needed: i.trainCount, "out_scores")
    out.write(try i.selfInfluence(model: m, progress: progressClosure(progress, userData)))
  }
}

/// The statistics of the curvature's layers from a caller's `bdl_layer_data` array.
private func capturedStatistics(
  _ data: UnsafePointer<bdl_layer_data>?, count n: Int, kfac: KFAC, _ name: String
) throws(BDLError) -> [Sequential.LayerStatistics] {
  guard let data else { throw .invalidArgument("\(name) is NULL") }
  return try kfac.blocks.filter { !$0.isBias }.enumerated().map { (i, block) throws(BDLError) in
    let entry = data[i]
    let r = try Arguments.size(entry.positions, "\(name)[\(i)].positions")
    let (dIn, dOut) = (block.factors.inputOrder, block.factors.outputOrder)
    let a = try Arguments.array(entry.a, count: try Arguments.product([n, r, dIn], "\(name)[\(i)] a size"), "\(name)[\(i)].a")
    let g = try Arguments.array(entry.g, count: try Arguments.product([n, r, dOut], "\(name)[\(i)] g size"), "\(name)[\(i)].g")
    return try Sequential.LayerStatistics(
      capturedAt: i, inputs: try Tensor(shape: [n, r, dIn], elements: a), outputGradients: try Tensor(shape: [n, 1, r, dOut], elements: g),
      hasBias: kfac.blocks.contains { $0.isBias && $0.layerIndex == block.layerIndex })
  }
}

@c @implementation
public func bdl_influence_scores_from_statistics(
  _ curvature: OpaquePointer!, _ damping: Double, _ relativeDamping: Int32, _ nLayers: Int64, _ queries: UnsafePointer<bdl_layer_data>!,
  _ nQueries: Int64, _ train: UnsafePointer<bdl_layer_data>!, _ nTrain: Int64, _ outScores: UnsafeMutablePointer<Double>!,
  _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    guard let kfac = try curvatureHandle(curvature).kfac else {
      throw .wrongState("influence from statistics needs a K-FAC or EK-FAC curvature")
    }
    guard relativeDamping == 0 || relativeDamping == 1 else { throw .invalidArgument("relative_damping = \(relativeDamping); it must be 0 or 1") }
    let layers = kfac.blocks.filter { !$0.isBias }.count
    guard nLayers == Int64(layers) else {
      throw .shapeMismatch("n_layers = \(nLayers); the curvature has \(layers) layers")
    }
    let nq = try Arguments.size(nQueries, "n_queries"), nt = try Arguments.size(nTrain, "n_train")
    let out = try Arguments.output(outScores, capacity: capacity, needed: try Arguments.product([nq, nt], "n_queries·n_train"), "out_scores")
    let scores = try Influence.scores(
      curvature: kfac, damping: relativeDamping == 1 ? .relative(damping) : .absolute(damping),
      queries: try capturedStatistics(queries, count: nq, kfac: kfac, "queries"),
      training: try capturedStatistics(train, count: nt, kfac: kfac, "train"))
    out.write(scores.elements)
  }
}

@c @implementation
public func bdl_influence_top_k(
  _ scores: UnsafePointer<Double>!, _ nRows: Int64, _ nCols: Int64, _ k: Int64, _ outHelpful: UnsafeMutablePointer<Int64>!,
  _ outHarmful: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let rows = try Arguments.size(nRows, "n_rows"), columns = try Arguments.size(nCols, "n_cols")
    let values = try Arguments.array(scores, count: try Arguments.product([rows, columns], "n_rows·n_cols"), "scores")
    let count = try Arguments.size(k, "k")
    let (helpful, harmful) = try Influence.topK(try Matrix(rows: rows, columns: columns, elements: values), k: count)
    for (q, indices) in helpful.enumerated() { for (t, j) in indices.enumerated() { outHelpful?[q * count + t] = Int64(j) } }
    for (q, indices) in harmful.enumerated() { for (t, j) in indices.enumerated() { outHarmful?[q * count + t] = Int64(j) } }
  }
}

/// The training set, queries, scores and options shared by the two evaluations.
private struct EvaluationArguments {
  let model: Sequential
  let x: Tensor
  let y: Targets
  let likelihood: LaplaceLikelihood
  let sigma: Double
  let queries: Tensor
  let queryTargets: Targets?
  let measurement: InfluenceMeasurement
  let scores: Matrix
  let options: TrainingOptions

  init(
    _ modelHandle: OpaquePointer?, _ X: UnsafePointer<Double>?, _ n: Int64, _ y: UnsafePointer<Double>?,
    _ XQuery: UnsafePointer<Double>?, _ nQueries: Int64, _ yQuery: UnsafePointer<Double>?, _ measurement: Int32,
    _ cotangents: UnsafePointer<Double>?, _ scores: UnsafePointer<Double>?, _ train: UnsafePointer<bdl_train_params>?
  ) throws(BDLError) {
    model = try ModelArguments.model(modelHandle)
    var p = bdl_train_params()
    if let train { p = train.pointee } else { _ = bdl_train_params_init(&p) }
    options = try trainingOptions(p)
    likelihood = try ModelArguments.likelihoodKind(p.likelihood)
    sigma = p.sigma
    x = try ModelArguments.batch(X, n, model)
    self.y = try ModelArguments.supervision(y, n: x.count, likelihood: p.likelihood, sigma: p.sigma, model: model).1
    (queries, queryTargets, self.measurement) = try BDLCoreC.queries(model, XQuery, nQueries, yQuery, likelihood: p.likelihood, measurement: measurement, cotangents: cotangents)
    let values = try Arguments.array(scores, count: try Arguments.product([queries.count, x.count], "n_queries·n"), "scores")
    self.scores = try Matrix(rows: queries.count, columns: x.count, elements: values)
  }
}

@c @implementation
public func bdl_evaluation_lds(
  _ modelHandle: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ y: UnsafePointer<Double>!,
  _ XQuery: UnsafePointer<Double>!, _ nQueries: Int64, _ yQuery: UnsafePointer<Double>!, _ measurement: Int32,
  _ cotangents: UnsafePointer<Double>!, _ scores: UnsafePointer<Double>!, _ subsets: Int64, _ fraction: Double,
  _ train: UnsafePointer<bdl_train_params>!, _ seed: UInt64, _ progress: bdl_pass_progress_fn!,
  _ userData: UnsafeMutableRawPointer!, _ outPerQuery: UnsafeMutablePointer<Double>!, _ outMean: UnsafeMutablePointer<Double>!,
  _ outSubsetSeeds: UnsafeMutablePointer<UInt64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let a = try EvaluationArguments(modelHandle, X, n, y, XQuery, nQueries, yQuery, measurement, cotangents, scores, train)
    guard fraction.isFinite else { throw .invalidArgument("fraction = \(fraction); it must be in (0, 1)") }
    let result = try InfluenceEvaluation.linearDatamodelingScore(
      model: a.model, trainInputs: a.x, trainTargets: a.y, likelihood: a.likelihood, queries: a.queries, queryTargets: a.queryTargets,
      measurement: a.measurement, scores: a.scores, subsets: try Arguments.size(subsets, "subsets"), fraction: fraction,
      training: a.options, sigma: a.sigma, seed: seed, progress: progressClosure(progress, userData))
    outPerQuery?.write(result.perQuery)
    outMean?.pointee = result.mean
    if let outSubsetSeeds { for (m, seed) in result.subsetSeeds.enumerated() { outSubsetSeeds[m] = seed } }
  }
}

@c @implementation
public func bdl_evaluation_retrain_without_top_k(
  _ modelHandle: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ y: UnsafePointer<Double>!,
  _ XQuery: UnsafePointer<Double>!, _ nQueries: Int64, _ yQuery: UnsafePointer<Double>!, _ measurement: Int32,
  _ cotangents: UnsafePointer<Double>!, _ scores: UnsafePointer<Double>!, _ k: Int64, _ train: UnsafePointer<bdl_train_params>!,
  _ seed: UInt64, _ progress: bdl_pass_progress_fn!, _ userData: UnsafeMutableRawPointer!,
  _ outWithoutTopK: UnsafeMutablePointer<Double>!, _ outWithoutRandom: UnsafeMutablePointer<Double>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let a = try EvaluationArguments(modelHandle, X, n, y, XQuery, nQueries, yQuery, measurement, cotangents, scores, train)
    let result = try InfluenceEvaluation.retrainWithoutTopK(
      model: a.model, trainInputs: a.x, trainTargets: a.y, likelihood: a.likelihood, queries: a.queries, queryTargets: a.queryTargets,
      measurement: a.measurement, scores: a.scores, k: try Arguments.size(k, "k"), training: a.options, sigma: a.sigma, seed: seed,
      progress: progressClosure(progress, userData))
    outWithoutTopK?.write(result.withoutTopK)
    outWithoutRandom?.write(result.withoutRandom)
  }
}
