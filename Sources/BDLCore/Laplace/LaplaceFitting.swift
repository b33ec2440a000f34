/// Fitting a Laplace posterior to a network with the built-in engine.
extension Laplace {
  /// What to fit: the curvature structure, the parameters covered and how the curvature is
  /// accumulated. Defaults follow laplace-torch: the exact GGN (type-2 Fisher), K-FAC expand.
  public struct FitOptions: Sendable {
    public var structure: Structure = .kron
    public var subset: Subset = .all
    public var fisher: FisherSource = .exact
    public var approximation: KFACApproximation = .expand
    /// Examples per forward/backward pass; bounds memory, not the result.
    public var batchSize: Int = 256
    /// See `Laplace.dampedKronecker`.
    public var dampedKronecker: Bool = false
    public init() {}
  }

  /// Fits the posterior of `model` at its current parameters θ* on (inputs, targets): one pass for
  /// the loss L and the curvature together. `progress(done, total)` reports examples.
  /// For `subset = .lastLayer` the network is split before its last linear-map layer: the
  /// features φ(x) are computed once, and the head (that layer and any parameter-free layers
  /// after it) is treated as a network of its own on φ — so the curvature of the last layer is
  /// built from φ and the output vectors directly, never from a φ ⊗ I Jacobian.
  public static func fit(
    model: Sequential, inputs x: Tensor, targets: Targets, likelihood: LaplaceLikelihood,
    options: FitOptions = .init(), hyperparameters: LaplaceHyperparameters = .init(),
    progress: ((Int, Int) -> Void)? = nil
  ) throws(BDLError) -> Laplace {
    try model.validateInput(x)
    let network = try SubsetNetwork(model: model, subset: options.subset)
    let features = try network.features(x, batchSize: options.batchSize)
    let head = network.head
    // L, summed in the curvature's own pass: Σ cross-entropy, or ½Σ‖y − f‖² (σ = 1).
    var loss = CompensatedSum()
    let curvature: Curvature
    switch likelihood {
    case .classification:
      let categorical = CategoricalLikelihood()
      curvature = try fitCurvature(head, features, targets, categorical, options, progress) { (f, y) throws(BDLError) in
        loss.add(try categorical.negativeLogLikelihood(f, y))
      }
    case .regression:
      curvature = try fitCurvature(head, features, targets, GaussianLikelihood(), options, progress) { (f, y) throws(BDLError) in
        guard case .values(let t) = y else { throw .invalidArgument("regression needs real-valued targets") }
        for i in f.elements.indices { loss.add(0.5 * (f.elements[i] - t.elements[i]) * (f.elements[i] - t.elements[i])) }
      }
    }
    return try Laplace(
      curvature: curvature, mean: head.parameters, tensorSizes: head.tensorSizes, loss: loss.value,
      dataCount: x.count, outputCount: model.outputCount, likelihood: likelihood,
      hyperparameters: hyperparameters, dampedKronecker: options.dampedKronecker, subset: options.subset,
      parameterRange: network.parameterRange, networkParameterCount: model.parameterCount)
  }

  private static func fitCurvature(
    _ model: Sequential, _ x: Tensor, _ targets: Targets, _ likelihood: some Likelihood,
    _ options: FitOptions, _ progress: ((Int, Int) -> Void)?, outputs: BatchOutputsObserver?
  ) throws(BDLError) -> Curvature {
    try Curvature.fit(
      options.structure, model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: options.fisher,
      approximation: options.approximation, batchSize: options.batchSize, progress: progress, outputs: outputs)
  }

  /// Checks that `model` is still the network this posterior was fitted to (by size: the values
  /// of its parameters are the caller's responsibility) and returns the part it covers.
  func network(_ model: Sequential) throws(BDLError) -> SubsetNetwork {
    guard model.parameterCount == networkParameterCount else {
      throw .shapeMismatch("the network has \(model.parameterCount) parameters; the posterior was fitted to one with \(networkParameterCount)")
    }
    let network = try SubsetNetwork(model: model, subset: subset)
    guard network.parameterRange == parameterRange, network.head.outputCount == outputCount else {
      throw .shapeMismatch("the network's layout differs from the one the posterior was fitted to")
    }
    return network
  }
}

/// A network seen as feature extractor + head: for `.all` the head is the whole network (no
/// features); for `.lastLayer` the head starts at the last linear-map layer.
struct SubsetNetwork {
  let model: Sequential
  /// The layers before the head (empty for `.all`).
  let body: Range<Int>
  let head: Sequential
  let parameterRange: Range<Int>

  init(model: Sequential, subset: Laplace.Subset) throws(BDLError) {
    self.model = model
    switch subset {
    case .all:
      body = 0..<0
      head = model
      parameterRange = 0..<model.parameterCount
    case .lastLayer:
      guard let last = model.layers.lastIndex(where: { $0 is any LinearMapLayer }) else {
        throw .invalidArgument("subset last_layer: the network has no Linear or Conv2d layer")
      }
      body = 0..<last
      var head = try Sequential(Array(model.layers[last...]), inputShape: model.shapes[last])
      parameterRange = model.parameterOffsets[last]..<model.parameterCount
      try head.setParameters(Array(model.parameters[parameterRange]))
      self.head = head
    }
  }

  /// φ(x): the inputs pushed through the body, in batches (x itself for `.all`).
  func features(_ x: Tensor, batchSize: Int) throws(BDLError) -> Tensor {
    guard !body.isEmpty else { return x }
    guard batchSize >= 1 else { throw .invalidArgument("batch_size = \(batchSize); it must be ≥ 1") }
    let featureShape = model.shapes[body.upperBound]
    var result = Tensor(shape: [x.count] + featureShape)
    let inSize = x.exampleSize, outSize = result.exampleSize
    try model.parameters.withUnsafeBufferPointer { p throws(BDLError) in
      for start in stride(from: 0, to: x.count, by: batchSize) {
        let end = min(start + batchSize, x.count)
        var current = try Tensor(shape: [end - start] + model.inputShape, elements: Array(x.elements[(start * inSize)..<(end * inSize)]))
        for index in body {
          current = try model.layers[index].forward(current, parameters: UnsafeBufferPointer(rebasing: p[model.parameterRange(ofLayer: index)])).output
        }
        result.elements.replaceSubrange((start * outSize)..<(end * outSize), with: current.elements)
      }
    }
    return result
  }
}

extension Sequential {
  /// The sizes of the parameter tensors in order: each linear-map layer's weight, then its bias.
  var tensorSizes: [Int] {
    layers.flatMap { layer -> [Int] in
      guard let map = layer as? any LinearMapLayer else { return layer.parameterCount > 0 ? [layer.parameterCount] : [] }
      let weight = map.inputDimension * map.outputDimension
      return map.hasBias ? [weight, map.outputDimension] : [weight]
    }
  }
}

extension Laplace.Curvature {
  /// G of `model` on the data in `structure`: the dense GGN, its exact diagonal, or K-FAC — EK-FAC
  /// with `eigenvalueCorrected` (its refit needs a second pass, which does not see `outputs`).
  static func fit(
    _ structure: Laplace.Structure, eigenvalueCorrected: Bool = false, model: Sequential, inputs x: Tensor,
    targets: Targets, likelihood: some Likelihood, fisher: FisherSource, approximation: KFACApproximation,
    batchSize: Int, progress: ((Int, Int) -> Void)?, outputs: BatchOutputsObserver? = nil
  ) throws(BDLError) -> Laplace.Curvature {
    switch structure {
    case .full:
      return .full(try DenseGGN.fit(model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, batchSize: batchSize, progress: progress, outputs: outputs).matrix)
    case .diagonal:
      return .diagonal(try DiagonalGGN.fit(model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, batchSize: batchSize, progress: progress, outputs: outputs).values)
    case .kron where eigenvalueCorrected:
      return .kron(try KFAC.fitEigenvalueCorrected(model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, approximation: approximation, batchSize: batchSize, progress: progress))
    case .kron:
      return .kron(try KFAC.fit(model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, approximation: approximation, batchSize: batchSize, progress: progress, outputs: outputs))
    }
  }

  /// h·G + diag(δ) factored for this structure (see `PosteriorPrecision`).
  func precision(scale h: Double, prior δ: [Double], dampedKronecker: Bool = false) throws(BDLError) -> any PosteriorPrecision {
    switch self {
    case .full(let g): return try FullPosteriorPrecision(curvature: g, scale: h, prior: δ)
    case .diagonal(let g): return try DiagonalPosteriorPrecision(curvature: g, scale: h, prior: δ)
    case .kron(let k): return try KroneckerPosteriorPrecision(kfac: k, scale: h, prior: δ, damped: dampedKronecker)
    }
  }

  /// diag(G), the curvature's own diagonal.
  func diagonal() throws(BDLError) -> [Double] {
    switch self {
    case .full(let g): return g.diagonalEntries
    case .diagonal(let g): return g
    case .kron(let k): return try k.diagonal(exponent: 1, scale: 1, damping: 0)
    }
  }
}
