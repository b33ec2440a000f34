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
  try model.validateInput(x)
  guard targets.count == x.count else { throw .shapeMismatch("\(targets.count) targets for \(x.count) examples") }
  try likelihood.validate(targets, outputs: Tensor(shape: [x.count, model.outputCount]))
  guard batchSize >= 1 else { throw .invalidArgument("batch_size = \(batchSize); it must be ≥ 1") }
  var seed = UInt64(0)
  if case .monteCarlo(_, let s) = fisher { seed = s }
  let size = x.exampleSize
  for start in stride(from: 0, to: x.count, by: batchSize) {
    let indices = start..<min(start + batchSize, x.count)
    let xb = try Tensor(shape: [indices.count] + model.inputShape, elements: Array(x.elements[(start * size)..<(indices.upperBound * size)]))
    let pass = try model.forwardPass(xb)
    var source = fisher
    if case .monteCarlo(let samples, _) = fisher {
      source = .monteCarlo(samples: samples, seed: seed)
      seed = seed &+ 0x9E37_79B9_7F4A_7C15  // the next batch's stream
    }
    let batchTargets = targets.subset(indices)
    try outputs?(pass.output, batchTargets)
    let v = try source.accumulatedVectors(pass.output, batchTargets, likelihood: likelihood)
    try body(model.backward(pass, vectors: v))
    progress?(indices.upperBound, x.count)
  }
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
