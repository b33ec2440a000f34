/// Layers without parameters that reshape or average: Flatten, AvgPool2d, GlobalAvgPool2d and
/// MeanOverSequence. Each backward is the transpose of its forward map.

/// (N, d₁, d₂, …) → (N, d₁·d₂·…), as `torch.nn.Flatten()`.
public struct Flatten: Layer {
  public init() {}
  public var description: String { "Flatten()" }

  public func outputShape(forInput shape: [Int]) throws(BDLError) -> [Int] { [shape.reduce(1, *)] }

  public func forward(_ x: Tensor, parameters: UnsafeBufferPointer<Double>) throws(BDLError) -> (output: Tensor, cache: Tensor) {
    (x.reshaped([x.count, x.exampleSize]), Tensor(shape: [0]))
  }

  public func backward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>
  ) throws(BDLError) -> Tensor {
    g.reshaped(Array(g.shape.prefix(2)) + inputShape)
  }
}

/// Mean over non-overlapping k × k windows of NCHW images (stride k, no padding), as
/// `torch.nn.AvgPool2d(k)`: (N, C, H, W) → (N, C, ⌊H/k⌋, ⌊W/k⌋); rows and columns left over at the
/// border are dropped, as in PyTorch.
public struct AvgPool2d: Layer {
  public let kernelSize: Int

  public init(_ kernelSize: Int) throws(BDLError) {
    guard kernelSize >= 1 else { throw .invalidArgument("AvgPool2d(\(kernelSize)): kernel size must be ≥ 1") }
    self.kernelSize = kernelSize
  }

  public var description: String { "AvgPool2d(\(kernelSize))" }

  public func outputShape(forInput shape: [Int]) throws(BDLError) -> [Int] {
    guard shape.count == 3, shape[1] >= kernelSize, shape[2] >= kernelSize else {
      throw unexpectedInput(self, expected: "(C, H, W) with H, W ≥ \(kernelSize)", got: shape)
    }
    return [shape[0], shape[1] / kernelSize, shape[2] / kernelSize]
  }

  public func forward(_ x: Tensor, parameters: UnsafeBufferPointer<Double>) throws(BDLError) -> (output: Tensor, cache: Tensor) {
    let inputShape = Array(x.shape.dropFirst())
    let outputShape = try outputShape(forInput: inputShape)
    var y = Tensor(shape: [x.count] + outputShape)
    let (k, scale) = (kernelSize, 1 / Double(kernelSize * kernelSize))
    let (h, w, oh, ow) = (inputShape[1], inputShape[2], outputShape[1], outputShape[2])
    let planes = x.count * inputShape[0]
    x.elements.withUnsafeBufferPointer { xp in
      y.elements.withUnsafeMutableBufferPointer { yp in
        for plane in 0..<planes {
          let source = xp.baseAddress! + plane * h * w, target = yp.baseAddress! + plane * oh * ow
          for i in 0..<oh {
            let out = target + i * ow
            for a in 0..<k {
              var read = source + (i * k + a) * w
              for j in 0..<ow {
                var sum = 0.0
                for _ in 0..<k {
                  sum += read.pointee
                  read += 1
                }
                out[j] += scale * sum
              }
            }
          }
        }
      }
    }
    return (y, Tensor(shape: [0]))
  }

  public func backward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>
  ) throws(BDLError) -> Tensor {
    let (k, scale) = (kernelSize, 1 / Double(kernelSize * kernelSize))
    let (h, w) = (inputShape[1], inputShape[2])
    // Zeros only where border rows and columns left over by ⌊H/k⌋ get no gradient; otherwise the
    // loop below writes every entry.
    let dxShape = Array(g.shape.prefix(2)) + inputShape
    var dx = h % k == 0 && w % k == 0 ? try Tensor(shape: dxShape) { _ throws(BDLError) in } : Tensor(shape: dxShape)
    let (oh, ow) = (h / k, w / k)
    let planes = g.shape[0] * g.shape[1] * inputShape[0]
    g.elements.withUnsafeBufferPointer { gp in
      dx.elements.withUnsafeMutableBufferPointer { dp in
        // The output is k² times the input: for K vectors through a CNN, gigabytes of fresh memory.
        BLASThreads.forEachPiece(of: planes, entries: planes * h * w) { piece in
          for plane in piece {
            let source = gp.baseAddress! + plane * oh * ow, target = dp.baseAddress! + plane * h * w
            for i in 0..<oh {
              for a in 0..<k {
                var write = target + (i * k + a) * w, read = source + i * ow
                for _ in 0..<ow {
                  let value = scale * read.pointee
                  for _ in 0..<k {
                    write.pointee = value
                    write += 1
                  }
                  read += 1
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

/// Mean over the spatial axes: (N, C, H, W) → (N, C), i.e. `AdaptiveAvgPool2d(1)` then `Flatten()`.
public struct GlobalAvgPool2d: Layer {
  public init() {}
  public var description: String { "GlobalAvgPool2d()" }

  public func outputShape(forInput shape: [Int]) throws(BDLError) -> [Int] {
    guard shape.count == 3 else { throw unexpectedInput(self, expected: "(C, H, W)", got: shape) }
    return [shape[0]]
  }

  public func forward(_ x: Tensor, parameters: UnsafeBufferPointer<Double>) throws(BDLError) -> (output: Tensor, cache: Tensor) {
    try meanOverMiddle(x, groups: x.shape[1], members: x.shape[2] * x.shape[3], stride: 1)
  }

  public func backward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>
  ) throws(BDLError) -> Tensor {
    spreadMean(g, inputShape: inputShape, groups: inputShape[0], members: inputShape[1] * inputShape[2], stride: 1)
  }
}

/// Mean over the sequence axis: (N, T, D) → (N, D) — the pooling of K-FAC's "reduce" setting.
public struct MeanOverSequence: Layer {
  public init() {}
  public var description: String { "MeanOverSequence()" }

  public func outputShape(forInput shape: [Int]) throws(BDLError) -> [Int] {
    guard shape.count == 2 else { throw unexpectedInput(self, expected: "(T, D)", got: shape) }
    return [shape[1]]
  }

  public func forward(_ x: Tensor, parameters: UnsafeBufferPointer<Double>) throws(BDLError) -> (output: Tensor, cache: Tensor) {
    // Entry (t, d) of an example sits at t·D + d: group d, members t, member stride D.
    try meanOverMiddle(x, groups: x.shape[2], members: x.shape[1], stride: x.shape[2])
  }

  public func backward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>
  ) throws(BDLError) -> Tensor {
    spreadMean(g, inputShape: inputShape, groups: inputShape[1], members: inputShape[0], stride: inputShape[1])
  }
}

/// Index of member m of group j inside one example: contiguous groups (stride 1: j·members + m)
/// or interleaved ones (stride = groups: m·groups + j).
@inline(__always)
private func memberIndex(group j: Int, member m: Int, groups: Int, members: Int, stride: Int) -> Int {
  stride == 1 ? j * members + m : m * groups + j
}

/// y[n, j] = mean over the members of group j of example n.
private func meanOverMiddle(_ x: Tensor, groups: Int, members: Int, stride: Int) throws(BDLError) -> (output: Tensor, cache: Tensor) {
  var y = Tensor(shape: [x.count, groups])
  let size = x.exampleSize, scale = 1 / Double(members)
  for example in 0..<x.count {
    for j in 0..<groups {
      var sum = 0.0
      for m in 0..<members {
        sum += x.elements[example * size + memberIndex(group: j, member: m, groups: groups, members: members, stride: stride)]
      }
      y.elements[example * groups + j] = sum * scale
    }
  }
  return (y, Tensor(shape: [0]))
}

/// The transpose of `meanOverMiddle` for (N, K, groups) gradients.
private func spreadMean(_ g: Tensor, inputShape: [Int], groups: Int, members: Int, stride: Int) -> Tensor {
  let blocks = g.shape[0] * g.shape[1]
  var dx = Tensor(shape: Array(g.shape.prefix(2)) + inputShape)
  let size = inputShape.reduce(1, *), scale = 1 / Double(members)
  for block in 0..<blocks {
    for j in 0..<groups {
      let value = g.elements[block * groups + j] * scale
      for m in 0..<members {
        dx.elements[block * size + memberIndex(group: j, member: m, groups: groups, members: members, stride: stride)] = value
      }
    }
  }
  return dx
}
