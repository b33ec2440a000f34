/// One layer of a `Sequential` network.
///
/// Layers are stateless descriptions: their parameters live in the network's parameter vector, in
/// PyTorch's order and shapes (DESIGN.md §4), and each call receives this layer's slice. Batches
/// put the example first: forward maps (N, input…) to (N, output…); backward maps K vectors per
/// example, (N, K, output…), to (N, K, input…) — the vectors may be loss gradients (K = 1),
/// columns of the output-Hessian square root (K = C) or Monte-Carlo samples.
public protocol Layer: Sendable, CustomStringConvertible {
  /// Shapes of this layer's parameter tensors in parameter-vector order (weight, then bias).
  var parameterShapes: [[Int]] { get }

  /// The output shape of one example for an input shape, or `.shapeMismatch` saying what the
  /// layer expects.
  func outputShape(forInput shape: [Int]) throws(BDLError) -> [Int]

  /// y = layer(x) for a batch, and what `backward` needs from this pass (layer-specific: the input,
  /// im2col patches, …).
  func forward(_ x: Tensor, parameters: UnsafeBufferPointer<Double>) throws(BDLError) -> (output: Tensor, cache: Tensor)

  /// ∂/∂x of ⟨layer(x_n), g_{n,k}⟩ for each example n and vector k: (N, K, output…) → (N, K, input…).
  func backward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>
  ) throws(BDLError) -> Tensor

  /// Doubles the forward cache holds per example (for the working-memory estimate).
  func cacheSize(forInput shape: [Int]) -> Int

  /// `init` parameters like PyTorch's defaults, into this layer's slice of θ.
  func initialize(_ parameters: UnsafeMutableBufferPointer<Double>, using random: inout RandomSource)
}

extension Layer {
  public var parameterShapes: [[Int]] { [] }
  public func initialize(_ parameters: UnsafeMutableBufferPointer<Double>, using random: inout RandomSource) {}

  /// Number of parameters.
  public var parameterCount: Int { parameterShapes.reduce(0) { $0 + $1.reduce(1, *) } }

  /// Doubles the forward cache holds per example: by default the input itself.
  public func cacheSize(forInput shape: [Int]) -> Int { shape.reduce(1, *) }
}

/// A layer computing y_r = W·a_r + b at R positions per example — the structure K-FAC
/// factorises. R = 1 for a dense layer on (N, in), R = T for a dense layer on sequences (N, T, in),
/// R = H_out·W_out for a convolution (a_r the im2col patch).
public protocol LinearMapLayer: Layer {
  /// d_in, the length of a_r (in_features, or in_channels·kh·kw).
  var inputDimension: Int { get }
  /// d_out, the length of y_r (out_features, or out_channels).
  var outputDimension: Int { get }
  var hasBias: Bool { get }
  /// The layer inputs a, shaped (N, R, d_in), from the forward cache.
  func layerInputs(cache: Tensor) -> Tensor
  /// The output-gradients g, shaped (N, K, R, d_out), from the gradient with respect to the
  /// layer's output (N, K, output…).
  func outputGradients(_ g: Tensor) -> Tensor
  /// `outputGradients(g)` and, when `inputGradient`, `backward(g, …)` in one step: what a
  /// network's backward pass records for this layer and passes on. The default calls the two; a
  /// layer whose g needs rearranging (a convolution) rearranges it in place and computes the
  /// input gradient from the rearranged copy, so no second buffer of g's size is allocated.
  func recordingBackward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>,
    inputGradient: Bool
  ) throws(BDLError) -> (outputGradients: Tensor, inputGradient: Tensor?)
}

extension LinearMapLayer {
  public func recordingBackward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>,
    inputGradient: Bool
  ) throws(BDLError) -> (outputGradients: Tensor, inputGradient: Tensor?) {
    let recorded = outputGradients(g)
    guard inputGradient else { return (recorded, nil) }
    return (recorded, try backward(g, cache: cache, inputShape: inputShape, parameters: parameters))
  }
}

/// PyTorch's default initialisation of a linear map: W and b ~ U(−1/√fan_in, 1/√fan_in)
/// (kaiming_uniform with a = √5, which reduces to this bound).
func initializeUniform(_ parameters: UnsafeMutableBufferPointer<Double>, fanIn: Int, using random: inout RandomSource) {
  let bound = 1 / Double(max(fanIn, 1)).squareRoot()
  for i in parameters.indices { parameters[i] = (2 * random.uniform() - 1) * bound }
}

/// The error for an input shape a layer cannot take.
func unexpectedInput(_ layer: some Layer, expected: String, got shape: [Int]) -> BDLError {
  .shapeMismatch("\(layer): expects input \(expected), got \(Tensor.describe(shape))")
}
