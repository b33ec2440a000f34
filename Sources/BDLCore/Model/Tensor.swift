/// A dense Float64 array with a shape, row-major (C order) like numpy and PyTorch.
/// Batches put the example index first: (N, features…); output vectors per example (N, K, …).
public struct Tensor: Equatable, Sendable {
  /// The dimensions, outermost first.
  public var shape: [Int]
  /// The Π shape entries, in row-major order.
  public var elements: [Double]

  /// A tensor of zeros (or `value`).
  public init(shape: [Int], repeating value: Double = 0) {
    precondition(shape.allSatisfy { $0 >= 0 }, "tensor dimensions must be non-negative")
    self.shape = shape
    self.elements = HugePages.doubles(shape.reduce(1, *)) { $0.initialize(repeating: value) }
  }

  /// A tensor whose entries the caller overwrites completely before reading any (`fill` gets the
  /// raw buffer): skips the zero-fill pass over memory that large activations would cost.
  init(shape: [Int], filling fill: (UnsafeMutableBufferPointer<Double>) throws(BDLError) -> Void) throws(BDLError) {
    let count = shape.reduce(1, *)
    var failure: BDLError?
    self.shape = shape
    self.elements = [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
      HugePages.advise(UnsafeMutableRawBufferPointer(buffer))
      do throws(BDLError) {
        try fill(buffer)
      } catch {
        buffer.initialize(repeating: 0)  // never leave uninitialised memory behind
        failure = error
      }
      initialized = count
    }
    if let failure { throw failure }
  }

  /// A tensor from row-major entries; `.shapeMismatch` unless there are Π shape of them.
  public init(shape: [Int], elements: [Double]) throws(BDLError) {
    guard shape.allSatisfy({ $0 >= 0 }) else { throw .invalidArgument("tensor shape \(shape) has a negative dimension") }
    var count = 1
    for d in shape { count = try Validation.product(count, d, "tensor size") }
    guard elements.count == count else {
      throw .shapeMismatch("a tensor of shape \(Tensor.describe(shape)) needs \(count) entries, got \(elements.count)")
    }
    self.shape = shape
    self.elements = elements
  }

  /// A batch from a matrix: (rows, columns).
  public init(_ matrix: Matrix) {
    shape = [matrix.rows, matrix.columns]
    elements = matrix.elements
  }

  /// The first dimension (the batch size for batches).
  public var count: Int { shape.first ?? 1 }

  /// Π of the dimensions after the first: the size of one example.
  public var exampleSize: Int { shape.dropFirst().reduce(1, *) }

  /// The examples in `range` (a copy), e.g. one shard of a batch.
  func examples(_ range: Range<Int>) -> Tensor {
    let size = exampleSize
    return try! Tensor(shape: [range.count] + shape.dropFirst(), elements: Array(elements[(range.lowerBound * size)..<(range.upperBound * size)]))
  }

  /// `count` examples cut into `parts` contiguous ranges whose sizes differ by at most one.
  static func shards(of count: Int, into parts: Int) -> [Range<Int>] {
    (0..<parts).map { w in (w * count / parts)..<((w + 1) * count / parts) }
  }

  /// The same entries with another shape of equal size.
  public func reshaped(_ newShape: [Int]) -> Tensor {
    precondition(newShape.reduce(1, *) == elements.count, "reshape must keep the size")
    var copy = self
    copy.shape = newShape
    return copy
  }

  /// "(2, 3, 4)".
  public static func describe(_ shape: [Int]) -> String {
    "(" + shape.map(String.init).joined(separator: ", ") + ")"
  }
}
