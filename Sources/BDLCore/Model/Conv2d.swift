/// 2-D convolution on NCHW images, as `torch.nn.Conv2d` (square kernel, equal stride and zero
/// padding on both axes, no dilation or groups): (N, C_in, H, W) → (N, C_out, H_out, W_out) with
/// H_out = ⌊(H + 2p − k)/s⌋ + 1. Weight shape (C_out, C_in, k, k).
///
/// Computed by im2col: each output position r = (h, w) reads a patch a_r of C_in·k·k inputs,
/// ordered (c, i, j) like the flattened weight, so y_r = W·a_r + b is one row of a single gemm
/// over all N·R positions. The patches are also exactly K-FAC's layer inputs for convolutions.
public struct Conv2d: LinearMapLayer {
  public let inChannels: Int
  public let outChannels: Int
  public let kernelSize: Int
  public let stride: Int
  public let padding: Int
  public let hasBias: Bool

  public init(
    _ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
    bias: Bool = true
  ) throws(BDLError) {
    guard inChannels >= 1, outChannels >= 1, kernelSize >= 1, stride >= 1, padding >= 0 else {
      throw .invalidArgument(
        "Conv2d(\(inChannels), \(outChannels), kernel_size=\(kernelSize), stride=\(stride), padding=\(padding)): channels, kernel and stride must be ≥ 1, padding ≥ 0")
    }
    _ = try Validation.product(try Validation.product(inChannels, outChannels, "Conv2d weight size"), kernelSize * kernelSize, "Conv2d weight size")
    self.inChannels = inChannels
    self.outChannels = outChannels
    self.kernelSize = kernelSize
    self.stride = stride
    self.padding = padding
    self.hasBias = bias
  }

  public var description: String {
    "Conv2d(\(inChannels), \(outChannels), kernel_size=\(kernelSize), stride=\(stride), padding=\(padding)\(hasBias ? "" : ", bias=False"))"
  }
  public var parameterShapes: [[Int]] {
    let weight = [outChannels, inChannels, kernelSize, kernelSize]
    return hasBias ? [weight, [outChannels]] : [weight]
  }
  public var inputDimension: Int { inChannels * kernelSize * kernelSize }
  public var outputDimension: Int { outChannels }

  public func outputShape(forInput shape: [Int]) throws(BDLError) -> [Int] {
    guard shape.count == 3, shape[0] == inChannels else {
      throw unexpectedInput(self, expected: "(\(inChannels), H, W)", got: shape)
    }
    let (h, w) = (outputSize(shape[1]), outputSize(shape[2]))
    guard h >= 1, w >= 1 else {
      throw .shapeMismatch("\(self): input \(Tensor.describe(shape)) is smaller than the kernel")
    }
    return [outChannels, h, w]
  }

  private func outputSize(_ n: Int) -> Int { (n + 2 * padding - kernelSize) / stride + 1 }

  public func initialize(_ parameters: UnsafeMutableBufferPointer<Double>, using random: inout RandomSource) {
    initializeUniform(parameters, fanIn: inputDimension, using: &random)
  }

  /// Geometry of one input image.
  private struct Geometry {
    let height, width, outHeight, outWidth: Int
    var positions: Int { outHeight * outWidth }
  }

  private func geometry(_ inputShape: ArraySlice<Int>) -> Geometry {
    let h = inputShape[inputShape.startIndex + 1], w = inputShape[inputShape.startIndex + 2]
    return Geometry(height: h, width: w, outHeight: outputSize(h), outWidth: outputSize(w))
  }

  /// Calls `body(r, column, inputIndex)` for every patch entry that reads the image (padding
  /// entries are skipped): the index map shared by im2col and its transpose col2im.
  private func forEachPatchEntry(_ g: Geometry, _ body: (Int, Int, Int) -> Void) {
    let k = kernelSize
    for oh in 0..<g.outHeight {
      for ow in 0..<g.outWidth {
        let r = oh * g.outWidth + ow
        for c in 0..<inChannels {
          for i in 0..<k {
            let h = oh * stride - padding + i
            if h < 0 || h >= g.height { continue }
            for j in 0..<k {
              let w = ow * stride - padding + j
              if w < 0 || w >= g.width { continue }
              body(r, (c * k + i) * k + j, (c * g.height + h) * g.width + w)
            }
          }
        }
      }
    }
  }

  public func forward(_ x: Tensor, parameters: UnsafeBufferPointer<Double>) throws(BDLError) -> (output: Tensor, cache: Tensor) {
    let n = x.count, g = geometry(x.shape.dropFirst())
    let patch = inputDimension, rows = n * g.positions
    var cols = Tensor(shape: [n, g.positions, patch])
    let imageSize = x.exampleSize
    x.elements.withUnsafeBufferPointer { xp in
      cols.elements.withUnsafeMutableBufferPointer { cp in
        for example in 0..<n {
          let image = xp.baseAddress! + example * imageSize
          let target = cp.baseAddress! + example * g.positions * patch
          forEachPatchEntry(g) { r, column, index in target[r * patch + column] = image[index] }
        }
      }
    }
    // Per example, y_n = W·cols_nᵀ: (C_out × patch)·(patch × R) lands directly in NCHW order.
    var y = Tensor(shape: [n, outChannels, g.outHeight, g.outWidth])
    if rows == 0 { return (y, cols) }
    try cols.elements.withUnsafeBufferPointer { cp throws(BDLError) in
      try y.elements.withUnsafeMutableBufferPointer { yp throws(BDLError) in
        for example in 0..<n {
          let target = yp.baseAddress! + example * outChannels * g.positions
          if hasBias {
            let bias = parameters.baseAddress! + outChannels * patch
            for c in 0..<outChannels { (target + c * g.positions).update(repeating: bias[c], count: g.positions) }
          }
          try BLAS.gemm(
            transposeA: false, transposeB: true, m: outChannels, n: g.positions, k: patch, alpha: 1,
            a: parameters.baseAddress!, lda: patch, b: cp.baseAddress! + example * g.positions * patch,
            ldb: patch, beta: hasBias ? 1 : 0, c: target, ldc: g.positions)
        }
      }
    }
    return (y, cols)
  }

  /// (N, K, C_out, H_out, W_out) → (N·K·R × C_out) rows: the output-gradients g_r.
  public func outputGradients(_ g: Tensor) -> Tensor {
    let n = g.shape[0], k = g.shape[1], positions = g.shape[3] * g.shape[4]
    var out = Tensor(shape: [n, k, positions, outChannels])
    let tile = 32  // both the rows read and the rows written stay in L1 cache
    g.elements.withUnsafeBufferPointer { gp in
      out.elements.withUnsafeMutableBufferPointer { op in
        for block in 0..<(n * k) {
          let source = gp.baseAddress! + block * outChannels * positions
          let target = op.baseAddress! + block * outChannels * positions
          for c0 in Swift.stride(from: 0, to: outChannels, by: tile) {
            for r0 in Swift.stride(from: 0, to: positions, by: tile) {
              for c in c0..<min(c0 + tile, outChannels) {
                for r in r0..<min(r0 + tile, positions) { target[r * outChannels + c] = source[c * positions + r] }
              }
            }
          }
        }
      }
    }
    return out
  }

  public func layerInputs(cache: Tensor) -> Tensor { cache }

  public func backward(
    _ g: Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>
  ) throws(BDLError) -> Tensor {
    let n = g.shape[0], k = g.shape[1]
    let geo = geometry(inputShape[...])
    let patch = inputDimension, positions = geo.positions
    // Per (example, vector) block: ∂/∂patches = g_blockᵀ·W, (R × C_out)·(C_out × patch), read
    // straight from the NCHW gradient, then col2im adds each patch entry back to its pixel.
    var dx = Tensor(shape: [n, k] + inputShape)
    if n * k * positions == 0 { return dx }
    var scratch = [Double](repeating: 0, count: positions * patch)
    let imageSize = inputShape.reduce(1, *)
    try g.elements.withUnsafeBufferPointer { gp throws(BDLError) in
      try scratch.withUnsafeMutableBufferPointer { sp throws(BDLError) in
        try dx.elements.withUnsafeMutableBufferPointer { xp throws(BDLError) in
          for block in 0..<(n * k) {
            try BLAS.gemm(
              transposeA: true, transposeB: false, m: positions, n: patch, k: outChannels, alpha: 1,
              a: gp.baseAddress! + block * outChannels * positions, lda: positions,
              b: parameters.baseAddress!, ldb: patch, beta: 0, c: sp.baseAddress!, ldc: patch)
            let image = xp.baseAddress! + block * imageSize
            let source = sp.baseAddress!
            forEachPatchEntry(geo) { r, column, index in image[index] += source[r * patch + column] }
          }
        }
      }
    }
    return dx
  }
}
