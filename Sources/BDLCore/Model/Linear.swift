/// y = W·x + b on the last axis: (N, in) → (N, out), or (N, T, in) → (N, T, out) with the weight
/// shared over the T positions (a sequence model). Weight shape (out, in), as `torch.nn.Linear`.
public struct Linear: LinearMapLayer {
  public let inFeatures: Int
  public let outFeatures: Int
  public let hasBias: Bool

  public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) throws(BDLError) {
    guard inFeatures >= 1, outFeatures >= 1 else {
      throw .invalidArgument("Linear(\(inFeatures), \(outFeatures)): feature counts must be ≥ 1")
    }
    _ = try Validation.product(inFeatures, outFeatures, "Linear weight size")
    self.inFeatures = inFeatures
    self.outFeatures = outFeatures
    self.hasBias = bias
  }

  public var description: String { "Linear(\(inFeatures), \(outFeatures)\(hasBias ? "" : ", bias=False"))" }
  public var parameterShapes: [[Int]] { hasBias ? [[outFeatures, inFeatures], [outFeatures]] : [[outFeatures, inFeatures]] }
  public var inputDimension: Int { inFeatures }
  public var outputDimension: Int { outFeatures }

  public func outputShape(forInput shape: [Int]) throws(BDLError) -> [Int] {
    guard (shape.count == 1 || shape.count == 2), shape.last == inFeatures else {
      throw unexpectedInput(self, expected: "(\(inFeatures)) or (T, \(inFeatures))", got: shape)
    }
    return shape.dropLast() + [outFeatures]
  }

  public func initialize(_ parameters: UnsafeMutableBufferPointer<Double>, using random: inout RandomSource) {
    initializeUniform(parameters, fanIn: inFeatures, using: &random)
  }

  public func forward(_ x: Tensor, parameters: UnsafeBufferPointer<Double>) throws(BDLError) -> (output: Tensor, cache: Tensor) {
    let rows = x.elements.count / inFeatures  // N·R
    var y = Tensor(shape: x.shape.dropLast() + [outFeatures])
    if rows == 0 { return (y, x) }
    try x.elements.withUnsafeBufferPointer { xp throws(BDLError) in
      try y.elements.withUnsafeMutableBufferPointer { yp throws(BDLError) in
        if hasBias {  // start from the bias in every row, then add X·Wᵀ
          let bias = parameters.baseAddress! + inFeatures * outFeatures
          for r in 0..<rows { (yp.baseAddress! + r * outFeatures).update(from: bias, count: outFeatures) }
        }
        try BLAS.gemm(
          transposeA: false, transposeB: true, m: rows, n: outFeatures, k: inFeatures, alpha: 1,
          a: xp.baseAddress!, lda: inFeatures, b: parameters.baseAddress!, ldb: inFeatures,
          beta: hasBias ? 1 : 0, c: yp.baseAddress!, ldc: outFeatures)
      }
    }
    return (y, x)
  }

  public func backward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>
  ) throws(BDLError) -> Tensor {
    let rows = g.elements.count / outFeatures  // N·K·R
    if rows == 0 { return Tensor(shape: Array(g.shape.prefix(2)) + inputShape) }
    return try Tensor(shape: Array(g.shape.prefix(2)) + inputShape) { dp throws(BDLError) in
      try g.elements.withUnsafeBufferPointer { gp throws(BDLError) in
        try BLAS.gemm(
          transposeA: false, transposeB: false, m: rows, n: inFeatures, k: outFeatures, alpha: 1,
          a: gp.baseAddress!, lda: outFeatures, b: parameters.baseAddress!, ldb: inFeatures,
          beta: 0, c: dp.baseAddress!, ldc: inFeatures)
      }
    }
  }

  public func layerInputs(cache: Tensor) -> Tensor {
    cache.reshaped([cache.count, cache.elements.count / max(cache.count * inFeatures, 1), inFeatures])
  }

  public func outputGradients(_ g: Tensor) -> Tensor {
    let n = g.shape[0], k = g.shape[1]
    return g.reshaped([n, k, g.elements.count / max(n * k * outFeatures, 1), outFeatures])
  }
}
