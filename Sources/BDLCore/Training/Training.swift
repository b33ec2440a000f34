#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Sequential {
  /// The per-parameter prior precision δ from a scalar or one value per parameter tensor.
  public func expandPriorPrecision(_ values: [Double]) throws(BDLError) -> [Double] {
    let tensors = layers.flatMap { $0.parameterShapes.map { $0.reduce(1, *) } }
    guard values.count == 1 || values.count == tensors.count else {
      throw .shapeMismatch("prior precision has \(values.count) entries; give 1 or one per parameter tensor (\(tensors.count))")
    }
    if let bad = values.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
      throw .invalidArgument("prior precision entry \(bad) = \(values[bad]); it must be finite and ≥ 0")
    }
    if values.count == 1 { return [Double](repeating: values[0], count: parameterCount) }
    var expanded: [Double] = []
    expanded.reserveCapacity(parameterCount)
    for (size, value) in zip(tensors, values) { expanded += repeatElement(value, count: size) }
    return expanded
  }

  /// Σ_n ∇NLL_n over a batch, and the summed NLL.
  public func lossGradient(
    _ x: Tensor, _ targets: Targets, likelihood: some Likelihood
  ) throws(BDLError) -> (negativeLogLikelihood: Double, gradient: [Double]) {
    try validateInput(x)
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
    try validateInput(x)
    guard targets.count == x.count else {
      throw .shapeMismatch("\(targets.count) targets for \(x.count) examples")
    }
    // Validate the targets against outputs of the right shape, without a forward pass.
    try likelihood.validate(targets, outputs: Tensor(shape: [x.count, outputCount]))
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
    let delta = try expandPriorPrecision(options.priorPrecision)

    let original = parameters
    let n = x.count, size = x.exampleSize, p = parameterCount
    let stepsPerEpoch = (n + options.batchSize - 1) / options.batchSize
    let totalSteps = max(1, stepsPerEpoch * options.epochs)
    var random = RandomSource(seed: options.seed)
    var first = [Double](repeating: 0, count: p), second = [Double](repeating: 0, count: p)
    var step = 0
    var history: [TrainingProgress] = []

    for epoch in 1...max(options.epochs, 1) where options.epochs > 0 {
      let order = random.permutation(n)
      var objectiveSum = 0.0, nllSum = 0.0
      for start in stride(from: 0, to: n, by: options.batchSize) {
        let batch = order[start..<min(start + options.batchSize, n)]
        var elements: [Double] = []
        elements.reserveCapacity(batch.count * size)
        for i in batch { elements += x.elements[(i * size)..<((i + 1) * size)] }
        let xb = try Tensor(shape: [batch.count] + inputShape, elements: elements)
        var (nll, g) = try lossGradient(xb, targets.subset(batch), likelihood: likelihood)
        let scale = 1 / Double(batch.count)
        var penalty = 0.0
        for i in 0..<p {
          penalty += delta[i] * parameters[i] * parameters[i]
          g[i] = g[i] * scale + delta[i] * parameters[i] / Double(n)
        }
        let objective = nll * scale + 0.5 * penalty / Double(n)
        guard objective.isFinite else {
          parameters = original
          throw .notConverged("training diverged in epoch \(epoch) (objective \(objective)); parameters restored — lower the learning rate")
        }
        objectiveSum += objective
        nllSum += nll
        step += 1
        let rate = options.schedule == .cosine
          ? options.learningRate * 0.5 * (1 + cos(Double.pi * Double(step - 1) / Double(totalSteps)))
          : options.learningRate
        let isFirstStep = step == 1
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
        guard parameters.allSatisfy(\.isFinite) else {
          parameters = original
          throw .notConverged("training diverged in epoch \(epoch): a step made parameters non-finite; parameters restored — lower the learning rate")
        }
      }
      let report = TrainingProgress(
        epoch: epoch, epochs: options.epochs, objective: objectiveSum / Double(stepsPerEpoch),
        meanNegativeLogLikelihood: nllSum / Double(n))
      history.append(report)
      if let progress, !progress(report) { break }
    }
    return history
  }
}
