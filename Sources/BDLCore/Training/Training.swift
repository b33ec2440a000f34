#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Sequential {
  /// The per-parameter prior precision δ from one value, one per parameter tensor (in
  /// parameter-vector order W₀, b₀, W₁, b₁, …) or one per parameter.
  public func expandPriorPrecision(_ values: [Double]) throws(BDLError) -> [Double] {
    let tensors = layers.flatMap { $0.parameterShapes.map { $0.reduce(1, *) } }
    guard values.count == 1 || values.count == tensors.count || values.count == parameterCount else {
      throw .shapeMismatch(
        "prior precision has \(values.count) entries; give 1, one per parameter tensor (\(tensors.count)) or one per parameter (\(parameterCount))")
    }
    if let bad = values.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
      throw .invalidArgument("prior precision entry \(bad) = \(values[bad]); it must be finite and ≥ 0")
    }
    if values.count == parameterCount { return values }
    if values.count == 1 { return [Double](repeating: values[0], count: parameterCount) }
    var expanded: [Double] = []
    expanded.reserveCapacity(parameterCount)
    for (size, value) in zip(tensors, values) { expanded += repeatElement(value, count: size) }
    return expanded
  }

  /// Σ_n ∇NLL_n over a batch, and the summed NLL. A batch with enough work is split into one
  /// contiguous shard per BLAS thread, computed concurrently and summed in shard order
  /// (`BLASThreads`): reproducible for a given thread count, and equal to the serial sum up to
  /// rounding.
  public func lossGradient(
    _ x: Tensor, _ targets: Targets, likelihood: some Likelihood
  ) throws(BDLError) -> (negativeLogLikelihood: Double, gradient: [Double]) {
    let work = forwardMultiplyAdds.multipliedReportingOverflow(by: x.count).partialValue
    return try lossGradient(x, targets, likelihood: likelihood, workers: BLASThreads.workers(forMultiplyAdds: work))
  }

  /// The same over `workers` shards.
  func lossGradient(
    _ x: Tensor, _ targets: Targets, likelihood: some Likelihood, workers requested: Int
  ) throws(BDLError) -> (negativeLogLikelihood: Double, gradient: [Double]) {
    try validateInput(x)
    guard targets.count == x.count else { throw .shapeMismatch("\(targets.count) targets for \(x.count) examples") }
    let workers = min(requested, max(x.count, 1))
    guard workers > 1 else { return try shardLossGradient(x, targets, likelihood: likelihood) }
    try likelihood.validate(targets, outputs: Tensor(shape: [x.count, outputCount]))  // errors name batch positions
    let ranges = Tensor.shards(of: x.count, into: workers)
    var shards = [(Double, [Double])](repeating: (0, []), count: workers)
    try shards.withUnsafeMutableBufferPointer { shards throws(BDLError) in
      try BLASThreads.concurrently(workers) { w throws(BDLError) in
        shards[w] = try shardLossGradient(x.examples(ranges[w]), targets.subset(ranges[w]), likelihood: likelihood)
      }
    }
    var (nll, gradient) = shards[0]
    for (shardNLL, shardGradient) in shards.dropFirst() {
      nll += shardNLL
      for i in gradient.indices { gradient[i] += shardGradient[i] }
    }
    return (nll, gradient)
  }

  private func shardLossGradient(
    _ x: Tensor, _ targets: Targets, likelihood: some Likelihood
  ) throws(BDLError) -> (negativeLogLikelihood: Double, gradient: [Double]) {
    let pass = try forwardPass(x)
    let nll = try likelihood.negativeLogLikelihood(pass.output, targets)
    let v = try likelihood.outputGradient(pass.output, targets)
    return (nll, try parameterGradient(backward(pass, vectors: v)))
  }

  /// Fits θ to the MAP estimate by minibatch SGD or Adam (see `TrainingOptions`).
  ///
  /// `progress` is called after every epoch; returning false stops the run after that epoch.
  /// - Throws: for bad inputs (shape, labels, options) before anything changes; `.notConverged`
  ///   if the objective or θ becomes NaN/Inf, with θ restored to its value before the call.
  @discardableResult
  public mutating func train(
    inputs x: Tensor, targets: Targets, likelihood: some Likelihood, options: TrainingOptions,
    progress: ((TrainingProgress) -> Bool)? = nil
  ) throws(BDLError) -> [TrainingProgress] {
    var trainer = try MAPTrainer(model: self, inputs: x, targets: targets, likelihood: likelihood, options: options)
    let original = parameters
    var history: [TrainingProgress] = []
    do {
      for _ in 0..<options.epochs {
        let report = try trainer.runEpoch(&self, inputs: x, targets: targets, likelihood: likelihood)
        history.append(report)
        if let progress, !progress(report) { break }
      }
    } catch {
      parameters = original
      throw error
    }
    return history
  }
}

/// A MAP optimisation that spans several calls: the optimiser's moments, its step count (for the
/// learning-rate schedule) and the shuffling generator persist between epochs, so that a loop
/// which changes the prior precision between epochs (marginal-likelihood training) takes the same
/// steps as one long run would, only with the new δ.
public struct MAPTrainer: Sendable {
  public let options: TrainingOptions
  /// δ, one value per parameter (see `setPriorPrecision`).
  public private(set) var priorPrecision: [Double]
  /// 1 where a parameter trains, 0 where the mask holds it at exactly 0 (nil: all train).
  public let mask: [Double]?
  /// Steps taken so far.
  public private(set) var step = 0
  /// Epochs finished so far.
  public private(set) var epoch = 0
  private var random: RandomSource
  private var first: [Double], second: [Double]
  private let dataCount: Int
  private let totalSteps: Int

  /// Checks the data against `model` and the options, and applies nothing yet.
  public init(
    model: Sequential, inputs x: Tensor, targets: Targets, likelihood: some Likelihood, options: TrainingOptions
  ) throws(BDLError) {
    try model.validateInput(x)
    guard targets.count == x.count else {
      throw .shapeMismatch("\(targets.count) targets for \(x.count) examples")
    }
    // Validate the targets against outputs of the right shape, without a forward pass.
    try likelihood.validate(targets, outputs: Tensor(shape: [x.count, model.outputCount]))
    guard options.epochs >= 0 else { throw .invalidArgument("epochs = \(options.epochs); it must be ≥ 0") }
    guard options.batchSize >= 1 else { throw .invalidArgument("batch_size = \(options.batchSize); it must be ≥ 1") }
    guard options.learningRate.isFinite, options.learningRate > 0 else {
      throw .invalidArgument("learning rate = \(options.learningRate); it must be finite and > 0")
    }
    switch options.optimizer {
    case .sgd(let momentum):
      guard momentum.isFinite, momentum >= 0, momentum < 1 else { throw .invalidArgument("momentum = \(momentum); it must be in [0, 1)") }
    case .adam(let b1, let b2, let eps):
      guard (0..<1).contains(b1), (0..<1).contains(b2), eps.isFinite, eps > 0 else {
        throw .invalidArgument("Adam betas (\(b1), \(b2)) must be in [0, 1) and epsilon = \(eps) > 0")
      }
    }
    if let mask = options.mask {
      guard mask.count == model.parameterCount else {
        throw .shapeMismatch("the mask has \(mask.count) entries; the model has \(model.parameterCount) parameters")
      }
      if let bad = mask.firstIndex(where: { $0 != 0 && $0 != 1 }) {
        throw .invalidArgument("mask entry \(bad) = \(mask[bad]); a mask holds 0 (pruned) or 1 (kept)")
      }
    }
    self.options = options
    self.priorPrecision = try model.expandPriorPrecision(options.priorPrecision)
    self.mask = options.mask
    self.random = RandomSource(seed: options.seed)
    self.first = [Double](repeating: 0, count: model.parameterCount)
    self.second = first
    self.dataCount = x.count
    self.totalSteps = max(1, (x.count + options.batchSize - 1) / options.batchSize * options.epochs)
  }

  /// Replaces δ for the following steps (one value, one per parameter tensor or one per parameter).
  public mutating func setPriorPrecision(_ values: [Double], for model: Sequential) throws(BDLError) {
    priorPrecision = try model.expandPriorPrecision(values)
  }

  /// One pass over the data in a fresh seeded order. Masked parameters are set to 0 first and
  /// stay 0 (their gradient is dropped).
  /// - Throws: `.notConverged` if the objective or θ becomes NaN/Inf; θ may then be partly
  ///   updated (`Sequential.train` restores it).
  public mutating func runEpoch(
    _ model: inout Sequential, inputs x: Tensor, targets: Targets, likelihood: some Likelihood
  ) throws(BDLError) -> TrainingProgress {
    let n = x.count, size = x.exampleSize, p = model.parameterCount
    guard n == dataCount, p == priorPrecision.count else {
      throw .wrongState("the trainer was set up for \(dataCount) examples and \(priorPrecision.count) parameters; got \(n) and \(p)")
    }
    if let mask { for i in 0..<p where mask[i] == 0 { model.parameters[i] = 0 } }
    epoch += 1
    let order = random.permutation(n)
    let stepsPerEpoch = (n + options.batchSize - 1) / options.batchSize
    var objectiveSum = 0.0, nllSum = 0.0
    for start in stride(from: 0, to: n, by: options.batchSize) {
      let batch = order[start..<min(start + options.batchSize, n)]
      var elements: [Double] = []
      elements.reserveCapacity(batch.count * size)
      for i in batch { elements += x.elements[(i * size)..<((i + 1) * size)] }
      let xb = try Tensor(shape: [batch.count] + model.inputShape, elements: elements)
      var (nll, g) = try model.lossGradient(xb, targets.subset(batch), likelihood: likelihood)
      let scale = 1 / Double(batch.count)
      var penalty = 0.0
      let θ = model.parameters
      for i in 0..<p {
        penalty += priorPrecision[i] * θ[i] * θ[i]
        g[i] = g[i] * scale + priorPrecision[i] * θ[i] / Double(n)
      }
      if let mask { for i in 0..<p { g[i] *= mask[i] } }
      let objective = nll * scale + 0.5 * penalty / Double(n)
      guard objective.isFinite else {
        throw .notConverged("training diverged in epoch \(epoch) (objective \(objective)) — lower the learning rate")
      }
      objectiveSum += objective
      nllSum += nll
      step += 1
      takeStep(&model.parameters, gradient: g)
      guard model.parameters.allSatisfy(\.isFinite) else {
        throw .notConverged("training diverged in epoch \(epoch): a step made parameters non-finite — lower the learning rate")
      }
    }
    return TrainingProgress(
      epoch: epoch, epochs: options.epochs, objective: objectiveSum / Double(stepsPerEpoch),
      meanNegativeLogLikelihood: nllSum / Double(n))
  }

  /// θ ← θ − η_t·(SGD momentum buffer or Adam's bias-corrected ratio), η_t per `options.schedule`.
  private mutating func takeStep(_ parameters: inout [Double], gradient g: [Double]) {
    let rate = options.schedule == .cosine
      ? options.learningRate * 0.5 * (1 + cos(Double.pi * Double(min(step, totalSteps) - 1) / Double(totalSteps)))
      : options.learningRate
    let isFirstStep = step == 1, step = self.step, p = g.count
    parameters.withUnsafeMutableBufferPointer { theta in
      first.withUnsafeMutableBufferPointer { m in
        second.withUnsafeMutableBufferPointer { v in
          switch options.optimizer {
          case .sgd(let momentum):
            for i in 0..<p {
              m[i] = isFirstStep ? g[i] : momentum * m[i] + g[i]
              theta[i] -= rate * m[i]
            }
          case .adam(let b1, let b2, let eps):
            let c1 = 1 - pow(b1, Double(step)), c2 = 1 - pow(b2, Double(step))
            for i in 0..<p {
              m[i] = b1 * m[i] + (1 - b1) * g[i]
              v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
              theta[i] -= rate * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
            }
          }
        }
      }
    }
  }
}
