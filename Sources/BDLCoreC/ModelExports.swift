import BDLCore
import CBDLCore

// Networks (see the "Networks" section of bdlcore.h).

/// The mutable state behind a `bdl_model*`.
final class ModelHandle: @unchecked Sendable {
  var model: Sequential
  init(_ model: Sequential) { self.model = model }
}

/// The statistics behind a `bdl_layer_statistics*`: never changed after creation, so pointers
/// into them (`bdl_layer_statistics_data`) stay valid until the handle is freed.
final class StatisticsHandle: Sendable {
  let statistics: [Sequential.LayerStatistics]
  init(_ statistics: [Sequential.LayerStatistics]) { self.statistics = statistics }
}

private func modelHandle(_ handle: OpaquePointer?) throws(BDLError) -> ModelHandle {
  try Handles.value(handle, kind: .model, as: ModelHandle.self, "model")
}

private func statisticsHandle(_ handle: OpaquePointer?) throws(BDLError) -> StatisticsHandle {
  try Handles.value(handle, kind: .layerStatistics, as: StatisticsHandle.self, "statistics")
}

/// A layer from its C description; errors name the position.
private func layer(_ spec: bdl_layer_spec, position: Int, kind: Int? = nil) throws(BDLError) -> any Layer {
  func size(_ value: Int64, _ field: String, minimum: Int64 = 1) throws(BDLError) -> Int {
    try Arguments.size(value, "layers[\(position)].\(field)", minimum: minimum)
  }
  switch kind ?? Int(spec.kind) {
  case BDL_LAYER_LINEAR:
    return try Linear(size(spec.in_features, "in_features"), size(spec.out_features, "out_features"), bias: spec.bias != 0)
  case BDL_LAYER_CONV2D:
    return try Conv2d(
      size(spec.in_features, "in_features"), size(spec.out_features, "out_features"),
      kernelSize: size(spec.kernel_size, "kernel_size"), stride: size(spec.stride, "stride"),
      padding: size(spec.padding, "padding", minimum: 0), bias: spec.bias != 0)
  case BDL_LAYER_RELU: return Activation.relu
  case BDL_LAYER_TANH: return Activation.tanh
  case BDL_LAYER_SIGMOID: return Activation.sigmoid
  case BDL_LAYER_GELU: return Activation.gelu
  case BDL_LAYER_IDENTITY: return Activation.identity
  case BDL_LAYER_FLATTEN: return Flatten()
  case BDL_LAYER_AVG_POOL2D: return try AvgPool2d(size(spec.kernel_size, "kernel_size"))
  case BDL_LAYER_GLOBAL_AVG_POOL2D: return GlobalAvgPool2d()
  case BDL_LAYER_MEAN_OVER_SEQUENCE: return MeanOverSequence()
  default: throw .invalidArgument("layers[\(position)].kind = \(spec.kind) is not a BDL_LAYER_* value")
  }
}

/// Argument conversions shared by the model and curvature exports.
enum ModelArguments {
  /// The network behind a live `bdl_model*`.
  static func model(_ handle: OpaquePointer?) throws(BDLError) -> Sequential {
    try Handles.value(handle, kind: .model, as: ModelHandle.self, "model").model
  }

  /// A BDL_LIKELIHOOD_* value as the task of a posterior or an influence object.
  static func likelihoodKind(_ value: Int32) throws(BDLError) -> LaplaceLikelihood {
    switch Int(value) {
    case BDL_LIKELIHOOD_CLASSIFICATION: return .classification
    case BDL_LIKELIHOOD_REGRESSION: return .regression
    default: throw .invalidArgument("likelihood = \(value) is not a BDL_LIKELIHOOD_* value")
    }
  }

  /// The caller's batch of n examples as a tensor of the model's input shape.
  static func batch(_ x: UnsafePointer<Double>?, _ n: Int64, _ model: Sequential) throws(BDLError) -> Tensor {
  let count = try Arguments.size(n, "n")
  let size = model.inputShape.reduce(1, *)
  let total = try Arguments.product([count, size], "n·input_size")
  return try Tensor(shape: [count] + model.inputShape, elements: Arguments.array(x, count: total, "X"))
}

  /// The likelihood and targets of a C call.
  static func supervision(
  _ y: UnsafePointer<Double>?, n: Int, likelihood: Int32, sigma: Double, model: Sequential
) throws(BDLError) -> (any Likelihood, Targets) {
  let c = model.outputCount
  switch Int(likelihood) {
  case BDL_LIKELIHOOD_CLASSIFICATION:
    let values = try Arguments.array(y, count: n, "y")
    return (CategoricalLikelihood(), try .classes(fromValues: values, classes: c))
  case BDL_LIKELIHOOD_REGRESSION:
    let values = try Arguments.array(y, count: try Arguments.product([n, c], "n·C"), "y")
    return (try GaussianLikelihood(sigma: sigma), .values(try Tensor(shape: [n, c], elements: values)))
  default:
    throw .invalidArgument("likelihood = \(likelihood) is not a BDL_LIKELIHOOD_* value")
  }
}
}

@c @implementation
public func bdl_model_create(
  _ layers: UnsafePointer<bdl_layer_spec>!, _ nLayers: Int64, _ inputShape: UnsafePointer<Int64>!,
  _ inputRank: Int64, _ seed: UInt64, _ outModel: UnsafeMutablePointer<OpaquePointer?>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outModel, "out_model")
    let count = try Arguments.size(nLayers, "n_layers")
    guard let layers else { throw .invalidArgument("layers is NULL") }
    let rank = try Arguments.size(inputRank, "input_rank")
    guard rank <= 3 else { throw .invalidArgument("input_rank = \(rank); it must be 1, 2 or 3") }
    guard let inputShape else { throw .invalidArgument("input_shape is NULL") }
    var shape: [Int] = []
    for i in 0..<rank { shape.append(try Arguments.size(inputShape[i], "input_shape[\(i)]")) }
    var built: [any Layer] = []
    var current = shape  // the running shape: a mixture's FC path is sized by its input image
    for i in 0..<count {
      let spec = layers[i]
      if Int(spec.kind) == BDL_LAYER_CONV_FC_MIXTURE {
        // A shape error earlier in the stack is reported by the network, naming its layer.
        if current.isEmpty { _ = try Sequential(built, inputShape: shape) }
        guard let conv = try layer(spec, position: i, kind: BDL_LAYER_CONV2D) as? Conv2d else { throw .internal("a mixture's convolution") }
        let pair = try ConvolutionFullyConnectedMixture.layers(
          conv.inChannels, conv.outChannels, kernelSize: conv.kernelSize, stride: conv.stride, padding: conv.padding,
          bias: conv.hasBias, inputShape: current)
        built += pair
        current = try pair[1].outputShape(forInput: pair[0].outputShape(forInput: current))
      } else {
        let next = try layer(spec, position: i)
        built.append(next)
        current = current.isEmpty ? [] : (try? next.outputShape(forInput: current)) ?? []
      }
    }
    let model = try Sequential(built, inputShape: shape, seed: seed)
    out.pointee = Handles.make(ModelHandle(model), kind: .model)
  }
}

@c @implementation
public func bdl_model_free(_ model: OpaquePointer!) {
  Handles.free(model, kind: .model, as: ModelHandle.self, "model")
}

@c @implementation
public func bdl_model_sizes(
  _ model: OpaquePointer!, _ outNumParameters: UnsafeMutablePointer<Int64>!,
  _ outNumOutputs: UnsafeMutablePointer<Int64>!, _ outInputSize: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let m = try modelHandle(model).model
    outNumParameters?.pointee = Int64(m.parameterCount)
    outNumOutputs?.pointee = Int64(m.outputCount)
    outInputSize?.pointee = Int64(m.inputShape.reduce(1, *))
  }
}

@c @implementation
public func bdl_model_get_parameters(
  _ model: OpaquePointer!, _ outParameters: UnsafeMutablePointer<Double>!, _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let m = try modelHandle(model).model
    try Arguments.output(outParameters, capacity: capacity, needed: m.parameterCount, "out_parameters").write(m.parameters)
  }
}

@c @implementation
public func bdl_model_set_parameters(
  _ model: OpaquePointer!, _ parameters: UnsafePointer<Double>!, _ count: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let handle = try modelHandle(model)
    let n = try Arguments.size(count, "count", minimum: 0)
    guard n == handle.model.parameterCount else {
      throw .shapeMismatch("count = \(n); the model has \(handle.model.parameterCount) parameters")
    }
    try handle.model.setParameters(Arguments.array(parameters, count: n, "parameters"))
  }
}

@c @implementation
public func bdl_model_forward(
  _ model: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64,
  _ outOutputs: UnsafeMutablePointer<Double>!, _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let m = try modelHandle(model).model
    let x = try ModelArguments.batch(X, n, m)
    let out = try Arguments.output(outOutputs, capacity: capacity, needed: x.count * m.outputCount, "out_outputs")
    out.write(try m.forward(x).elements)
  }
}

@c @implementation
public func bdl_model_jacobian(
  _ model: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64,
  _ outJacobian: UnsafeMutablePointer<Double>!, _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let m = try modelHandle(model).model
    let x = try ModelArguments.batch(X, n, m)
    let needed = try Arguments.product([x.count, m.outputCount, m.parameterCount], "n·C·P")
    try Validation.requireAllocatable(needed, "Jacobian")
    let out = try Arguments.output(outJacobian, capacity: capacity, needed: needed, "out_jacobian")
    out.write(try m.jacobian(x).elements)
  }
}

@c @implementation
public func bdl_model_loss_gradient(
  _ model: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ y: UnsafePointer<Double>!,
  _ likelihood: Int32, _ sigma: Double, _ outLoss: UnsafeMutablePointer<Double>!,
  _ outGradient: UnsafeMutablePointer<Double>!, _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let m = try modelHandle(model).model
    let x = try ModelArguments.batch(X, n, m)
    let (lik, targets) = try ModelArguments.supervision(y, n: x.count, likelihood: likelihood, sigma: sigma, model: m)
    if outGradient != nil {
      _ = try Arguments.output(outGradient, capacity: capacity, needed: m.parameterCount, "out_gradient")
    }
    let (loss, gradient) = try m.lossGradient(x, targets, likelihood: lik)
    outLoss?.pointee = loss
    outGradient?.write(gradient)
  }
}

/// The batch and its K vectors per example of a C call (shared by the two entry points).
private func backwardArguments(
  _ m: Sequential, _ X: UnsafePointer<Double>?, _ n: Int64, _ V: UnsafePointer<Double>?, _ k: Int64
) throws(BDLError) -> (x: Tensor, v: Tensor) {
  let x = try ModelArguments.batch(X, n, m)
  let vectors = try Arguments.size(k, "k")
  let total = try Arguments.product([x.count, vectors, m.outputCount], "n·K·C")
  let v = try Tensor(shape: [x.count, vectors, m.outputCount], elements: Arguments.array(V, count: total, "V"))
  try m.validateInput(x)
  return (x, v)
}

@c @implementation
public func bdl_model_per_example_gradients(
  _ model: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ V: UnsafePointer<Double>!,
  _ k: Int64, _ outGradients: UnsafeMutablePointer<Double>!, _ capacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let m = try modelHandle(model).model
    let rows = try Arguments.product([Arguments.size(n, "n"), Arguments.size(k, "k"), m.parameterCount], "n·K·P")
    try Validation.requireAllocatable(rows, "per-example gradients")
    let out = try Arguments.output(outGradients, capacity: capacity, needed: rows, "out_gradients")
    let (x, v) = try backwardArguments(m, X, n, V, k)
    out.write(try m.perExampleGradients(m.backward(m.forwardPass(x), vectors: v)).elements)
  }
}

@c @implementation
public func bdl_model_backward_vectors(
  _ model: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ V: UnsafePointer<Double>!,
  _ k: Int64, _ outStatistics: UnsafeMutablePointer<OpaquePointer?>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outStatistics, "out_statistics")
    let m = try modelHandle(model).model
    let (x, v) = try backwardArguments(m, X, n, V, k)
    out.pointee = Handles.make(StatisticsHandle(try m.backward(m.forwardPass(x), vectors: v)), kind: .layerStatistics)
  }
}

@c @implementation
public func bdl_layer_statistics_free(_ statistics: OpaquePointer!) {
  Handles.free(statistics, kind: .layerStatistics, as: StatisticsHandle.self, "statistics")
}

@c @implementation
public func bdl_layer_statistics_count(_ statistics: OpaquePointer!, _ outCount: UnsafeMutablePointer<Int64>!) -> bdl_status {
  exported { () throws(BDLError) in
    let count = try statisticsHandle(statistics).statistics.count
    try Arguments.output(outCount, "out_count").pointee = Int64(count)
  }
}

/// Entry `index` of a statistics handle, checked.
private func layer(_ statistics: OpaquePointer?, _ index: Int64) throws(BDLError) -> Sequential.LayerStatistics {
  let s = try statisticsHandle(statistics).statistics
  guard index >= 0, index < Int64(s.count) else {
    throw .invalidArgument("index = \(index); the statistics hold \(s.count) layers")
  }
  return s[Int(index)]
}

@c @implementation
public func bdl_layer_statistics_shape(
  _ statistics: OpaquePointer!, _ index: Int64, _ outLayer: UnsafeMutablePointer<Int64>!,
  _ outN: UnsafeMutablePointer<Int64>!, _ outK: UnsafeMutablePointer<Int64>!,
  _ outPositions: UnsafeMutablePointer<Int64>!, _ outDIn: UnsafeMutablePointer<Int64>!,
  _ outDOut: UnsafeMutablePointer<Int64>!, _ outHasBias: UnsafeMutablePointer<Int32>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let s = try layer(statistics, index)
    let g = s.outputGradients.shape
    outLayer?.pointee = Int64(s.layerIndex)
    outN?.pointee = Int64(g[0])
    outK?.pointee = Int64(g[1])
    outPositions?.pointee = Int64(g[2])
    outDIn?.pointee = Int64(s.inputs.shape[2])
    outDOut?.pointee = Int64(g[3])
    outHasBias?.pointee = s.hasBias ? 1 : 0
  }
}

@c @implementation
public func bdl_layer_statistics_get(
  _ statistics: OpaquePointer!, _ index: Int64, _ outA: UnsafeMutablePointer<Double>!,
  _ aCapacity: Int64, _ outG: UnsafeMutablePointer<Double>!, _ gCapacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let s = try layer(statistics, index)
    let a = outA == nil ? nil : try Arguments.output(outA, capacity: aCapacity, needed: s.inputs.elements.count, "out_a")
    let g = outG == nil ? nil : try Arguments.output(outG, capacity: gCapacity, needed: s.outputGradients.elements.count, "out_g")
    a?.write(s.inputs.elements)
    g?.write(s.outputGradients.elements)
  }
}

@c @implementation
public func bdl_layer_statistics_data(
  _ statistics: OpaquePointer!, _ index: Int64, _ outA: UnsafeMutablePointer<UnsafePointer<Double>?>!,
  _ outG: UnsafeMutablePointer<UnsafePointer<Double>?>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let s = try layer(statistics, index)
    // The handle holds the arrays and never mutates them, so their storage stays where it is
    // until the handle is freed.
    outA?.pointee = s.inputs.elements.withUnsafeBufferPointer { $0.baseAddress }
    outG?.pointee = s.outputGradients.elements.withUnsafeBufferPointer { $0.baseAddress }
  }
}

@c @implementation
public func bdl_train_params_init(_ params: UnsafeMutablePointer<bdl_train_params>!) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(params, "params")
    let defaults = TrainingOptions()
    var p = bdl_train_params()
    p.struct_size = UInt32(MemoryLayout<bdl_train_params>.size)
    p.likelihood = Int32(BDL_LIKELIHOOD_CLASSIFICATION)
    p.sigma = 1
    p.optimizer = Int32(BDL_OPTIMIZER_ADAM)
    p.schedule = Int32(BDL_SCHEDULE_CONSTANT)
    p.learning_rate = defaults.learningRate
    p.momentum = 0.9
    (p.beta1, p.beta2, p.epsilon) = (0.9, 0.999, 1e-8)
    p.epochs = Int64(defaults.epochs)
    p.batch_size = Int64(defaults.batchSize)
    p.prior_precision = nil
    p.prior_precision_count = 0
    p.seed = defaults.seed
    p.mask = nil
    p.mask_count = 0
    out.pointee = p
  }
}

/// `TrainingOptions` from the C parameters.
func trainingOptions(_ p: bdl_train_params) throws(BDLError) -> TrainingOptions {
  guard Int(p.struct_size) == MemoryLayout<bdl_train_params>.size else {
    throw .invalidArgument("params->struct_size = \(p.struct_size); initialise params with bdl_train_params_init")
  }
  var options = TrainingOptions()
  switch Int(p.optimizer) {
  case BDL_OPTIMIZER_ADAM: options.optimizer = .adam(beta1: p.beta1, beta2: p.beta2, epsilon: p.epsilon)
  case BDL_OPTIMIZER_SGD: options.optimizer = .sgd(momentum: p.momentum)
  default: throw .invalidArgument("params->optimizer = \(p.optimizer) is not a BDL_OPTIMIZER_* value")
  }
  switch Int(p.schedule) {
  case BDL_SCHEDULE_CONSTANT: options.schedule = .constant
  case BDL_SCHEDULE_COSINE: options.schedule = .cosine
  default: throw .invalidArgument("params->schedule = \(p.schedule) is not a BDL_SCHEDULE_* value")
  }
  options.learningRate = p.learning_rate
  options.epochs = try Arguments.size(p.epochs, "params->epochs", minimum: 0)
  options.batchSize = try Arguments.size(p.batch_size, "params->batch_size")
  if p.prior_precision_count > 0 || p.prior_precision != nil {
    let count = try Arguments.size(p.prior_precision_count, "params->prior_precision_count")
    options.priorPrecision = try Arguments.array(p.prior_precision, count: count, "params->prior_precision")
  }
  options.seed = p.seed
  if p.mask != nil || p.mask_count != 0 {
    options.mask = try Arguments.array(p.mask, count: try Arguments.size(p.mask_count, "params->mask_count"), "params->mask")
  }
  return options
}

@c @implementation
public func bdl_model_train(
  _ model: OpaquePointer!, _ X: UnsafePointer<Double>!, _ n: Int64, _ y: UnsafePointer<Double>!,
  _ params: UnsafePointer<bdl_train_params>!, _ progress: bdl_progress_fn!,
  _ userData: UnsafeMutableRawPointer!, _ outLast: UnsafeMutablePointer<bdl_train_progress>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let handle = try modelHandle(model)
    var p = bdl_train_params()
    if let params { p = params.pointee } else { _ = bdl_train_params_init(&p) }
    let options = try trainingOptions(p)
    let x = try ModelArguments.batch(X, n, handle.model)
    let (lik, targets) = try ModelArguments.supervision(y, n: x.count, likelihood: p.likelihood, sigma: p.sigma, model: handle.model)
    let history = try handle.model.train(inputs: x, targets: targets, likelihood: lik, options: options) { report in
      guard let progress else { return true }
      var c = bdl_train_progress(
        epoch: Int64(report.epoch), epochs: Int64(report.epochs), objective: report.objective,
        mean_negative_log_likelihood: report.meanNegativeLogLikelihood)
      return progress(&c, userData) == 0
    }
    if let last = history.last, let outLast {
      outLast.pointee = bdl_train_progress(
        epoch: Int64(last.epoch), epochs: Int64(last.epochs), objective: last.objective,
        mean_negative_log_likelihood: last.meanNegativeLogLikelihood)
    }
  }
}
