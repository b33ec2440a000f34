/// A layer that averages a convolution and a fully-connected map of the same image (van der
/// Ouderaa et al. 2023, layer-wise equivariance selection):
///   y = ½·(Conv2d(x) + reshape(W·vec(x) + b)),   (N, C_in, H, W) → (N, C_out, H_out, W_out).
/// The convolution is translation-equivariant, the fully-connected path is not. Each path has its
/// own parameters — in parameter-vector order the conv weight and bias, then the FC weight
/// (C_out·H_out·W_out × C_in·H·W) and bias — so each gets its own K-FAC blocks and its own
/// per-tensor prior precision. Training by the evidence then decides per layer how much of the
/// non-equivariant path the data support: a large FC prior precision switches it off.
///
/// In the engine the mixture is two consecutive layers, each one linear map (so every curvature,
/// Laplace, influence and pruning path applies unchanged): `MixtureConvolution` computes the
/// convolution and passes the input along, `MixtureFullyConnected` applies the FC map to the
/// passed input and averages. `ConvolutionFullyConnectedMixture.layers` builds the pair.
public enum ConvolutionFullyConnectedMixture {
  /// The two engine layers of a mixture on images of `inputShape` (C_in, H, W).
  public static func layers(
    _ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true,
    inputShape: [Int]
  ) throws(BDLError) -> [any Layer] {
    let conv = try Conv2d(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding, bias: bias)
    let first = try MixtureConvolution(conv, inputShape: inputShape)
    return [first, try MixtureFullyConnected(convolutionOutput: first.convolutionOutputShape, inputSize: first.inputSize, bias: bias)]
  }
}

/// The first half of a `ConvolutionFullyConnectedMixture`: (N, C_in, H, W) → (N, U + D), the
/// convolution's output flattened (U = C_out·H_out·W_out) followed by the input itself (D = C_in·H·W).
/// Its linear map, patches and K-FAC statistics are the convolution's.
public struct MixtureConvolution: LinearMapLayer {
  public let convolution: Conv2d
  /// (C_in, H, W) of the images it takes.
  public let inputShape: [Int]
  /// (C_out, H_out, W_out).
  public let convolutionOutputShape: [Int]

  public init(_ convolution: Conv2d, inputShape: [Int]) throws(BDLError) {
    self.convolution = convolution
    self.inputShape = inputShape
    self.convolutionOutputShape = try convolution.outputShape(forInput: inputShape)
  }

  /// U = C_out·H_out·W_out.
  public var convolutionSize: Int { convolutionOutputShape.reduce(1, *) }
  /// D = C_in·H·W.
  public var inputSize: Int { inputShape.reduce(1, *) }

  public var description: String { "MixtureConvolution(\(convolution))" }
  public var parameterShapes: [[Int]] { convolution.parameterShapes }
  public var inputDimension: Int { convolution.inputDimension }
  public var outputDimension: Int { convolution.outputDimension }
  public var hasBias: Bool { convolution.hasBias }

  public func outputShape(forInput shape: [Int]) throws(BDLError) -> [Int] {
    guard shape == inputShape else { throw unexpectedInput(self, expected: Tensor.describe(inputShape), got: shape) }
    return [convolutionSize + inputSize]
  }

  public func cacheSize(forInput shape: [Int]) -> Int { convolution.cacheSize(forInput: shape) }

  public func initialize(_ parameters: UnsafeMutableBufferPointer<Double>, using random: inout RandomSource) {
    convolution.initialize(parameters, using: &random)
  }

  public func forward(_ x: Tensor, parameters: UnsafeBufferPointer<Double>) throws(BDLError) -> (output: Tensor, cache: Tensor) {
    let (y, cache) = try convolution.forward(x, parameters: parameters)
    let u = y.exampleSize, d = x.exampleSize
    var out = Tensor(shape: [x.count, u + d])
    for example in 0..<x.count {
      out.elements.replaceSubrange((example * (u + d))..<(example * (u + d) + u), with: y.elements[(example * u)..<((example + 1) * u)])
      out.elements.replaceSubrange((example * (u + d) + u)..<((example + 1) * (u + d)), with: x.elements[(example * d)..<((example + 1) * d)])
    }
    return (out, cache)
  }

  /// The gradient's convolution part through the convolution, plus its input part unchanged.
  public func backward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>
  ) throws(BDLError) -> Tensor {
    let (n, k, u, d) = (g.shape[0], g.shape[1], convolutionSize, inputSize)
    var dx = try convolution.backward(convolutionPart(g), cache: cache, inputShape: inputShape, parameters: parameters)
    for block in 0..<(n * k) {
      for i in 0..<d { dx.elements[block * d + i] += g.elements[block * (u + d) + u + i] }
    }
    return dx
  }

  public func layerInputs(cache: Tensor) -> Tensor { convolution.layerInputs(cache: cache) }

  /// The convolution's output-gradients, from the first U entries of each vector.
  public func outputGradients(_ g: Tensor) -> Tensor {
    convolution.outputGradients(convolutionPart(g))
  }

  /// (N, K, U + D) → (N, K, C_out, H_out, W_out): the part of a gradient on the convolution's output.
  private func convolutionPart(_ g: Tensor) -> Tensor {
    let blocks = g.shape[0] * g.shape[1], u = convolutionSize, d = inputSize
    var out = Tensor(shape: [g.shape[0], g.shape[1]] + convolutionOutputShape)
    out.elements.withUnsafeMutableBufferPointer { op in
      g.elements.withUnsafeBufferPointer { gp in
        for block in 0..<blocks {
          (op.baseAddress! + block * u).update(from: gp.baseAddress! + block * (u + d), count: u)
        }
      }
    }
    return out
  }
}

/// The second half of a `ConvolutionFullyConnectedMixture`: (N, U + D) → (N, C_out, H_out, W_out),
///   y = ½·(u + W·x + b)   for the input [u; x] (u the convolution's output, x the image),
/// W of shape (U, D). Its linear map is the fully-connected path: K-FAC inputs a = x (R = 1), and
/// output-gradients ½·g.
public struct MixtureFullyConnected: LinearMapLayer {
  /// The fully-connected map x ↦ W·x + b, U outputs from D inputs.
  public let map: Linear
  /// (C_out, H_out, W_out), the shape of u and of the output.
  public let outputShape: [Int]

  public init(convolutionOutput shape: [Int], inputSize: Int, bias: Bool = true) throws(BDLError) {
    guard shape.count == 3, shape.allSatisfy({ $0 >= 1 }) else {
      throw .invalidArgument("MixtureFullyConnected: the convolution's output shape \(shape) must be (C_out, H_out, W_out) ≥ 1")
    }
    map = try Linear(inputSize, try Validation.product(try Validation.product(shape[0], shape[1], "U"), shape[2], "U"), bias: bias)
    outputShape = shape
  }

  public var description: String { "MixtureFullyConnected(\(map.inFeatures) → \(Tensor.describe(outputShape)))" }
  public var parameterShapes: [[Int]] { map.parameterShapes }
  public var inputDimension: Int { map.inFeatures }
  public var outputDimension: Int { map.outFeatures }
  public var hasBias: Bool { map.hasBias }

  public func outputShape(forInput shape: [Int]) throws(BDLError) -> [Int] {
    guard shape == [map.outFeatures + map.inFeatures] else {
      throw unexpectedInput(self, expected: "(\(map.outFeatures + map.inFeatures)) from a MixtureConvolution", got: shape)
    }
    return outputShape
  }

  /// The cache is the image part x (what the FC map's backward and statistics need).
  public func cacheSize(forInput shape: [Int]) -> Int { map.inFeatures }

  public func initialize(_ parameters: UnsafeMutableBufferPointer<Double>, using random: inout RandomSource) {
    map.initialize(parameters, using: &random)
  }

  public func forward(_ input: Tensor, parameters: UnsafeBufferPointer<Double>) throws(BDLError) -> (output: Tensor, cache: Tensor) {
    let (n, u, d) = (input.count, map.outFeatures, map.inFeatures)
    var x = Tensor(shape: [n, d])
    for example in 0..<n {
      x.elements.replaceSubrange((example * d)..<((example + 1) * d), with: input.elements[(example * (u + d) + u)..<((example + 1) * (u + d))])
    }
    var (y, cache) = try map.forward(x, parameters: parameters)
    for example in 0..<n {
      for i in 0..<u { y.elements[example * u + i] = 0.5 * (y.elements[example * u + i] + input.elements[example * (u + d) + i]) }
    }
    return (y.reshaped([n] + outputShape), cache)
  }

  /// (N, K, C_out, H_out, W_out) → (N, K, U + D): [½·g; Wᵀ·½g].
  public func backward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>
  ) throws(BDLError) -> Tensor {
    let (n, k, u, d) = (g.shape[0], g.shape[1], map.outFeatures, map.inFeatures)
    var half = g.reshaped([n, k, u])
    for i in half.elements.indices { half.elements[i] *= 0.5 }
    let dx = try map.backward(half, cache: cache, inputShape: [d], parameters: parameters)
    return try Tensor(shape: [n, k, u + d]) { out throws(BDLError) in
      for block in 0..<(n * k) {
        for i in 0..<u { out[block * (u + d) + i] = half.elements[block * u + i] }
        for i in 0..<d { out[block * (u + d) + u + i] = dx.elements[block * d + i] }
      }
    }
  }

  public func layerInputs(cache: Tensor) -> Tensor { map.layerInputs(cache: cache) }

  /// ½·g as (N, K, 1, U): the output of the FC map enters y with weight ½.
  public func outputGradients(_ g: Tensor) -> Tensor {
    var half = map.outputGradients(g.reshaped([g.shape[0], g.shape[1], map.outFeatures]))
    for i in half.elements.indices { half.elements[i] *= 0.5 }
    return half
  }
}
