/// A curvature approximation G of a network's parameters, used through its damped form
/// M = h·G + δ·I (h: likelihood scale such as 1/σ² or 1/T; δ: damping or prior precision).
/// Structures supply what they can do exactly: log det M, M^e·v (e = −1 solves), diag(M^e),
/// and the dense matrix for small models and tests.
public protocol CurvatureOperator: Sendable {
  /// P, the number of parameters.
  var parameterCount: Int { get }
  /// log det(h·G + δ·I).
  func logDeterminant(scale h: Double, damping δ: Double) throws(BDLError) -> Double
  /// (h·G + δ·I)^e·v.
  func applyPower(_ e: Double, to v: [Double], scale h: Double, damping δ: Double) throws(BDLError) -> [Double]
  /// diag((h·G + δ·I)^e).
  func diagonal(exponent e: Double, scale h: Double, damping δ: Double) throws(BDLError) -> [Double]
  /// The dense P × P matrix h·G + δ·I.
  func dense(scale h: Double, damping δ: Double) throws(BDLError) -> Matrix
}

extension CurvatureOperator {
  /// tr(G) = Σ diag(G).
  public func trace() throws(BDLError) -> Double {
    try diagonal(exponent: 1, scale: 1, damping: 0).reduce(0, +)
  }
}

/// Called by a curvature fit with each batch's network outputs (N_b, C) and targets.
public typealias BatchOutputsObserver = (Tensor, Targets) throws(BDLError) -> Void

/// Batch by batch over (inputs, targets): a forward pass, the Fisher source's output vectors and
/// their backward — the per-layer statistics (a, g) every curvature is built from. The vectors
/// are `FisherSource.accumulatedVectors` (for `.exact`, C − 1 per example for the categorical),
/// so a body may only use them through sums over k of quadratic terms. Monte-Carlo
/// batches draw from one seeded sequence of streams. `progress(done, total)` follows each batch
/// (examples done so far, N); `outputs` sees each batch's network outputs and targets (e.g. to
/// sum the loss in the same pass).
func forEachStatisticsBatch(
  model: Sequential, inputs x: Tensor, targets: Targets, likelihood: some Likelihood,
  fisher: FisherSource, batchSize: Int, progress: ((Int, Int) -> Void)? = nil,
  outputs: BatchOutputsObserver? = nil,
  _ body: ([Sequential.LayerStatistics]) throws(BDLError) -> Void
) throws(BDLError) {
  try forEachStatisticsShard(
    model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, batchSize: batchSize,
    workers: 1, progress: progress, outputs: outputs) { statistics, _ throws(BDLError) in try body(statistics) }
}

/// The same pass with each batch split into `workers` contiguous shards whose forward and
/// backward passes run concurrently (`BLASThreads.concurrently`): `body(statistics, worker)` is
/// called from several threads at once, each with its own worker index, and must only touch
/// that worker's state. The batch's outputs are joined before the output vectors are formed, so
/// `outputs` and the Monte-Carlo draws see the whole batch exactly as in the serial pass; what
/// depends on `workers` is only how the bodies' sums are split (rounding).
func forEachStatisticsShard(
  model: Sequential, inputs x: Tensor, targets: Targets, likelihood: some Likelihood,
  fisher: FisherSource, batchSize: Int, workers: Int, progress: ((Int, Int) -> Void)? = nil,
  outputs: BatchOutputsObserver? = nil,
  _ body: (_ statistics: [Sequential.LayerStatistics], _ worker: Int) throws(BDLError) -> Void
) throws(BDLError) {
  try model.validateInput(x)
  guard targets.count == x.count else { throw .shapeMismatch("\(targets.count) targets for \(x.count) examples") }
  try likelihood.validate(targets, outputs: Tensor(shape: [x.count, model.outputCount]))
  guard batchSize >= 1 else { throw .invalidArgument("batch_size = \(batchSize); it must be ≥ 1") }
  precondition(workers >= 1, "internal: workers ≥ 1")
  var seed = UInt64(0)
  if case .monteCarlo(_, let s) = fisher { seed = s }
  let c = model.outputCount
  for start in stride(from: 0, to: x.count, by: batchSize) {
    let indices = start..<min(start + batchSize, x.count)
    let shardCount = min(workers, indices.count)
    let shards = Tensor.shards(of: indices.count, into: shardCount)  // within the batch
    var passes = [Sequential.ForwardPass?](repeating: nil, count: shardCount)
    try passes.withUnsafeMutableBufferPointer { slots throws(BDLError) in
      try BLASThreads.concurrently(shardCount) { w throws(BDLError) in
        slots[w] = try model.forwardPass(x.examples((start + shards[w].lowerBound)..<(start + shards[w].upperBound)))
      }
    }
    let batchOutput = shardCount == 1
      ? passes[0]!.output
      : try Tensor(shape: [indices.count, c], elements: passes.flatMap { $0!.output.elements })
    var source = fisher
    if case .monteCarlo(let samples, _) = fisher {
      source = .monteCarlo(samples: samples, seed: seed)
      seed = seed &+ 0x9E37_79B9_7F4A_7C15  // the next batch's stream
    }
    let batchTargets = targets.subset(indices)
    try outputs?(batchOutput, batchTargets)
    let v = try source.accumulatedVectors(batchOutput, batchTargets, likelihood: likelihood)
    try BLASThreads.concurrently(shardCount) { w throws(BDLError) in
      try body(model.backward(passes[w]!, vectors: shardCount == 1 ? v : v.examples(shards[w])), w)
    }
    progress?(indices.upperBound, x.count)
  }
}

/// Sums over the statistics pass on every BLAS thread: each worker folds its shards into its own
/// copy of `initial` with `add`, and the copies are combined in worker order with `combine`
/// (see `forEachStatisticsShard`). For sums whose per-worker copies are cheap to hold.
func sumOverStatistics<Sum>(
  model: Sequential, inputs x: Tensor, targets: Targets, likelihood: some Likelihood,
  fisher: FisherSource, batchSize: Int, progress: ((Int, Int) -> Void)? = nil,
  outputs: BatchOutputsObserver? = nil, initial: Sum,
  add: (inout Sum, [Sequential.LayerStatistics]) throws(BDLError) -> Void,
  combine: (inout Sum, Sum) throws(BDLError) -> Void
) throws(BDLError) -> Sum {
  let batchWork = model.forwardMultiplyAdds.multipliedReportingOverflow(by: min(batchSize, x.count)).partialValue
  let workers = BLASThreads.workers(forMultiplyAdds: batchWork)
  var sums = [Sum](repeating: initial, count: workers)
  try sums.withUnsafeMutableBufferPointer { sums throws(BDLError) in
    try forEachStatisticsShard(
      model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, batchSize: batchSize,
      workers: workers, progress: progress, outputs: outputs) { statistics, worker throws(BDLError) in
      try add(&sums[worker], statistics)
    }
  }
  var total = sums[0]
  for sum in sums.dropFirst() { try combine(&total, sum) }
  return total
}

/// Per-example gradients of ⟨f(x_n), v_{n,k}⟩ (rows), batch by batch: their outer products sum
/// to the GGN (exact source) or a Fisher estimate.
func forEachGradientBatch(
  model: Sequential, inputs x: Tensor, targets: Targets, likelihood: some Likelihood,
  fisher: FisherSource, batchSize: Int, progress: ((Int, Int) -> Void)? = nil,
  outputs: BatchOutputsObserver? = nil, _ body: (Matrix) throws(BDLError) -> Void
) throws(BDLError) {
  try forEachStatisticsBatch(model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, batchSize: batchSize, progress: progress, outputs: outputs) { statistics throws(BDLError) in
    try body(model.perExampleGradients(statistics))
  }
}
