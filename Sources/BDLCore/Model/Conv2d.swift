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

  /// The im2col patches: R positions × C_in·k·k.
  public func cacheSize(forInput shape: [Int]) -> Int {
    (try? outputShape(forInput: shape)).map { $0[1] * $0[2] * inputDimension } ?? 0
  }
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

  /// For every patch column (c, i, j) and output row h_out, the run of output columns w_out whose
  /// tap reads inside the image: body(column, firstPosition, inputIndex, count) covers positions
  /// r = firstPosition + t and input pixels inputIndex + t·stride for t in 0..<count. Padding taps
  /// are never visited. This is the index map shared by im2col and its transpose col2im, with the
  /// bounds worked out once per run instead of per entry.
  @inline(__always)
  private func forEachPatchRun(_ g: Geometry, _ body: (_ column: Int, _ position: Int, _ input: Int, _ count: Int) -> Void) {
    let k = kernelSize
    for c in 0..<inChannels {
      for i in 0..<k {
        for j in 0..<k {
          let column = (c * k + i) * k + j
          // w = ow·s − p + j ∈ [0, W)  ⇔  ow ∈ [⌈(p − j)/s⌉, ⌊(W − 1 + p − j)/s⌋]
          let first = max(0, (padding - j + stride - 1) / stride)
          let last = min(g.outWidth - 1, (g.width - 1 + padding - j) >= 0 ? (g.width - 1 + padding - j) / stride : -1)
          if last < first { continue }
          for oh in 0..<g.outHeight {
            let h = oh * stride - padding + i
            if h < 0 || h >= g.height { continue }
            body(column, oh * g.outWidth + first, (c * g.height + h) * g.width + first * stride - padding + j, last - first + 1)
          }
        }
      }
    }
  }

  public func forward(_ x: Tensor, parameters: UnsafeBufferPointer<Double>) throws(BDLError) -> (output: Tensor, cache: Tensor) {
    let n = x.count, g = geometry(x.shape.dropFirst())
    let patch = inputDimension, rows = n * g.positions
    let imageSize = x.exampleSize, exampleSize = g.positions * patch
    // Each piece of examples zeroes its rows only where padding taps leave entries unwritten
    // (otherwise im2col writes every entry), so the fresh buffer is first touched in parallel.
    let cols = try Tensor(shape: [n, g.positions, patch]) { cp throws(BDLError) in
      x.elements.withUnsafeBufferPointer { xp in
        BLASThreads.forEachPiece(of: n, entries: cp.count) { examples in
          if padding > 0 {
            (cp.baseAddress! + examples.lowerBound * exampleSize).initialize(repeating: 0, count: examples.count * exampleSize)
          }
          for example in examples {
            let image = xp.baseAddress! + example * imageSize
            let target = cp.baseAddress! + example * exampleSize
            let step = stride
            forEachPatchRun(g) { column, position, input, count in
              var read = image + input, write = target + position * patch + column
              for _ in 0..<count {
                write.pointee = read.pointee
                read += step
                write += patch
              }
            }
          }
        }
      }
    }
    if rows == 0 { return (Tensor(shape: [n, outChannels, g.outHeight, g.outWidth]), cols) }
    // In chunks of examples (a scratch of a few MB, per piece of the batch): one gemm
    // W·colsᵀ: (C_out × patch)·(patch × m·R) → (C_out, m, R), then each (c, n) run of R outputs
    // copied to its NCHW place, plus the bias. Every output entry is written: no zero fill.
    let chunk = max(1, min(n, (1 << 19) / max(outChannels * g.positions, 1)))
    let y = try Tensor(shape: [n, outChannels, g.outHeight, g.outWidth]) { yp throws(BDLError) in
      try cols.elements.withUnsafeBufferPointer { cp throws(BDLError) in
        try BLASThreads.forEachPiece(of: n, entries: yp.count) { examples throws(BDLError) in
          let scratchCount = outChannels * chunk * g.positions
          var channelMajor = [Double](unsafeUninitializedCapacity: scratchCount) { _, n in n = scratchCount }  // gemm overwrites it (β = 0)
          try channelMajor.withUnsafeMutableBufferPointer { op throws(BDLError) in
            for start in Swift.stride(from: examples.lowerBound, to: examples.upperBound, by: chunk) {
              let count = min(chunk, examples.upperBound - start), width = count * g.positions
              try BLAS.gemm(
                transposeA: false, transposeB: true, m: outChannels, n: width, k: patch, alpha: 1,
                a: parameters.baseAddress!, lda: patch, b: cp.baseAddress! + start * exampleSize, ldb: patch, beta: 0,
                c: op.baseAddress!, ldc: width)
              for c in 0..<outChannels {
                let bias = hasBias ? parameters[outChannels * patch + c] : 0
                for example in 0..<count {
                  let source = op.baseAddress! + c * width + example * g.positions
                  let target = yp.baseAddress! + ((start + example) * outChannels + c) * g.positions
                  for r in 0..<g.positions { target[r] = source[r] + bias }
                }
              }
            }
          }
        }
      }
    }
    return (y, cols)
  }

  /// (N, K, C_out, H_out, W_out) → (N, K, R, C_out): the output-gradients g_r as rows.
  public func outputGradients(_ g: Tensor) -> Tensor {
    let n = g.shape[0], k = g.shape[1], positions = g.shape[3] * g.shape[4], channels = outChannels
    return try! Tensor(shape: [n, k, positions, channels]) { out throws(BDLError) in
      g.elements.withUnsafeBufferPointer { gp in
        for block in 0..<(n * k) {
          Self.positionsAsRows(gp.baseAddress! + block * channels * positions, into: out.baseAddress! + block * channels * positions, channels: channels, positions: positions)
        }
      }
    }
  }

  /// One (example, vector) block of g, C_out × R channel-major, written as R rows of C_out: row by
  /// row (contiguous writes), reading C_out sequential streams. Source and target must not overlap.
  private static func positionsAsRows(
    _ source: UnsafePointer<Double>, into target: UnsafeMutablePointer<Double>, channels: Int, positions: Int
  ) {
    var write = target
    for r in 0..<positions {  // wrapping index arithmetic: in bounds by construction
      var read = source + r
      for _ in 0..<channels {
        write.pointee = read.pointee
        write += 1
        read += positions
      }
    }
  }

  public func layerInputs(cache: Tensor) -> Tensor { cache }

  /// Records g as `outputGradients` does but in place — each (C_out × R) block of the consumed
  /// gradient transposed to (R × C_out) through a block-sized scratch — and computes the input
  /// gradient from those rows: for the backward of K vectors through a CNN, g runs to gigabytes
  /// of which this saves a second copy.
  public func recordingBackward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>,
    inputGradient: Bool
  ) throws(BDLError) -> (outputGradients: Tensor, inputGradient: Tensor?) {
    let n = g.shape[0], k = g.shape[1], positions = g.shape[3] * g.shape[4], channels = outChannels
    var rows = consume g
    rows.elements.withUnsafeMutableBufferPointer { gp in
      BLASThreads.forEachPiece(of: n * k, entries: gp.count) { blocks in
        var scratch = [Double](repeating: 0, count: channels * positions)
        scratch.withUnsafeMutableBufferPointer { block in
          for index in blocks {
            let base = gp.baseAddress! + index * channels * positions
            block.baseAddress!.update(from: base, count: channels * positions)
            Self.positionsAsRows(block.baseAddress!, into: base, channels: channels, positions: positions)
          }
        }
      }
    }
    let recorded = rows.reshaped([n, k, positions, channels])
    guard inputGradient else { return (recorded, nil) }
    let dx = try recorded.elements.withUnsafeBufferPointer { gp throws(BDLError) in
      try self.inputGradient(gp.baseAddress!, examples: n, vectors: k, positionMajor: true, inputShape: inputShape, parameters: parameters)
    }
    return (recorded, dx)
  }

  public func backward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>
  ) throws(BDLError) -> Tensor {
    let (n, k) = (g.shape[0], g.shape[1])
    return try g.elements.withUnsafeBufferPointer { gp throws(BDLError) in
      try inputGradient(gp.baseAddress!, examples: n, vectors: k, positionMajor: false, inputShape: inputShape, parameters: parameters)
    }
  }

  /// ∂/∂x from the output gradient of N·K blocks (example, vector), each C_out × R channel-major
  /// (NCHW) or, with `positionMajor`, R × C_out. In chunks of blocks: G (C_out × chunk·R), one
  /// gemm Wᵀ·G gives ∂/∂patches transposed (patch × chunk·R), and col2im adds every patch entry
  /// back to its pixel. Channel-major blocks are first gathered into G; position-major ones are
  /// Gᵀ already, which the gemm reads transposed. Chunks bound the scratch to a few MB.
  private func inputGradient(
    _ gp: UnsafePointer<Double>?, examples n: Int, vectors k: Int, positionMajor: Bool, inputShape: [Int],
    parameters: UnsafeBufferPointer<Double>
  ) throws(BDLError) -> Tensor {
    let geo = geometry(inputShape[...])
    let patch = inputDimension, positions = geo.positions, blocks = n * k
    guard blocks * positions > 0, let gp else { return Tensor(shape: [n, k] + inputShape) }
    let chunk = max(1, min(blocks, (1 << 19) / max(positions * max(patch, outChannels), 1)))
    let imageSize = inputShape.reduce(1, *)
    let dx = try Tensor(shape: [n, k] + inputShape) { xp throws(BDLError) in
      // Pieces of whole blocks, each with its own scratch, zero and then accumulate disjoint
      // parts of dx (so the fresh buffer is also first touched in parallel).
      try BLASThreads.forEachPiece(of: blocks, entries: xp.count) { piece throws(BDLError) in
        (xp.baseAddress! + piece.lowerBound * imageSize).initialize(repeating: 0, count: piece.count * imageSize)
        // Both fully overwritten before being read (copies, then gemm with β = 0).
        let gatheredCount = positionMajor ? 0 : outChannels * chunk * positions
        var gathered = [Double](unsafeUninitializedCapacity: gatheredCount) { _, n in n = gatheredCount }
        var patches = [Double](unsafeUninitializedCapacity: patch * chunk * positions) { _, n in n = patch * chunk * positions }
        try gathered.withUnsafeMutableBufferPointer { gb throws(BDLError) in
          try patches.withUnsafeMutableBufferPointer { pb throws(BDLError) in
            for start in Swift.stride(from: piece.lowerBound, to: piece.upperBound, by: chunk) {
              let count = min(chunk, piece.upperBound - start), width = count * positions
              let chunkRows = gp + start * outChannels * positions
              if positionMajor {
                try BLAS.gemm(
                  transposeA: true, transposeB: true, m: patch, n: width, k: outChannels, alpha: 1,
                  a: parameters.baseAddress!, lda: patch, b: chunkRows, ldb: outChannels, beta: 0,
                  c: pb.baseAddress!, ldc: width)
              } else {
                for b in 0..<count {
                  for c in 0..<outChannels {
                    (gb.baseAddress! + c * width + b * positions).update(
                      from: chunkRows + (b * outChannels + c) * positions, count: positions)
                  }
                }
                try BLAS.gemm(
                  transposeA: true, transposeB: false, m: patch, n: width, k: outChannels, alpha: 1,
                  a: parameters.baseAddress!, lda: patch, b: gb.baseAddress!, ldb: width, beta: 0,
                  c: pb.baseAddress!, ldc: width)
              }
              for b in 0..<count {
                let image = xp.baseAddress! + (start + b) * imageSize
                let source = pb.baseAddress! + b * positions
                let step = stride
                forEachPatchRun(geo) { column, position, input, runLength in
                  var read = source + column * width + position, write = image + input
                  for _ in 0..<runLength {
                    write.pointee += read.pointee
                    read += 1
                    write += step
                  }
                }
              }
            }
          }
        }
      }
    }
    return dx
  }
}
