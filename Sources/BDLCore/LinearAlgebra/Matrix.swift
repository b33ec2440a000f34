/// A dense Float64 matrix with explicit shape, stored row-major (C order), the layout of the C API
/// and of numpy/PyTorch tensors. A value type: copies are cheap until written (copy-on-write array).
public struct Matrix: Equatable, Sendable, CustomStringConvertible {
  /// Number of rows.
  public let rows: Int
  /// Number of columns.
  public let columns: Int
  /// The `rows · columns` entries, row after row.
  public var elements: [Double]

  /// A `rows × columns` matrix with every entry equal to `value`.
  public init(rows: Int, columns: Int, repeating value: Double = 0) {
    precondition(rows >= 0 && columns >= 0, "matrix dimensions must be non-negative")
    self.rows = rows
    self.columns = columns
    self.elements = [Double](repeating: value, count: rows * columns)
  }

  /// A matrix from row-major entries; throws `.shapeMismatch` unless there are `rows · columns`.
  public init(rows: Int, columns: Int, elements: [Double]) throws(BDLError) {
    guard rows >= 0, columns >= 0 else {
      throw .invalidArgument("matrix dimensions \(rows) × \(columns) must be non-negative")
    }
    let count = try Validation.product(rows, columns, "matrix size")
    guard elements.count == count else {
      throw .shapeMismatch("a \(rows) × \(columns) matrix needs \(count) entries, got \(elements.count)")
    }
    self.rows = rows
    self.columns = columns
    self.elements = elements
  }

  /// A matrix from entries whose count the caller guarantees (internal invariant, not input).
  init(unchecked rows: Int, columns: Int, elements: [Double]) {
    precondition(elements.count == rows * columns, "internal: matrix entry count")
    self.rows = rows
    self.columns = columns
    self.elements = elements
  }

  /// A matrix from nested rows (for tests and small literals); all rows must have equal length.
  public init(_ nestedRows: [[Double]]) throws(BDLError) {
    let columns = nestedRows.first?.count ?? 0
    guard nestedRows.allSatisfy({ $0.count == columns }) else {
      throw .shapeMismatch("rows of unequal length")
    }
    try self.init(rows: nestedRows.count, columns: columns, elements: nestedRows.flatMap { $0 })
  }

  /// The n × n identity.
  public static func identity(_ n: Int) -> Matrix {
    var m = Matrix(rows: n, columns: n)
    for i in 0..<n { m.elements[i * n + i] = 1 }
    return m
  }

  /// A diagonal matrix with `diagonal` on its diagonal.
  public static func diagonal(_ diagonal: [Double]) -> Matrix {
    let n = diagonal.count
    var m = Matrix(rows: n, columns: n)
    for i in 0..<n { m.elements[i * n + i] = diagonal[i] }
    return m
  }

  /// Entry (i, j).
  @inlinable
  public subscript(i: Int, j: Int) -> Double {
    get { elements[i * columns + j] }
    set { elements[i * columns + j] = newValue }
  }

  /// Whether rows == columns.
  public var isSquare: Bool { rows == columns }

  /// The diagonal entries (min(rows, columns) of them).
  public var diagonalEntries: [Double] {
    (0..<Swift.min(rows, columns)).map { self[$0, $0] }
  }

  /// The transpose.
  public var transposed: Matrix {
    var t = Matrix(rows: columns, columns: rows)
    let (m, n) = (rows, columns)
    let tile = 32  // keeps both the rows read and the rows written in L1 cache
    elements.withUnsafeBufferPointer { source in
      t.elements.withUnsafeMutableBufferPointer { target in
        for i0 in stride(from: 0, to: m, by: tile) {
          for j0 in stride(from: 0, to: n, by: tile) {
            for i in i0..<Swift.min(i0 + tile, m) {
              for j in j0..<Swift.min(j0 + tile, n) { target[j * m + i] = source[i * n + j] }
            }
          }
        }
      }
    }
    return t
  }

  /// The largest absolute entry (0 for an empty matrix).
  public var maxAbsoluteEntry: Double {
    elements.reduce(0) { Swift.max($0, abs($1)) }
  }

  public var description: String {
    var text = "Matrix(\(rows) × \(columns))"
    for i in 0..<Swift.min(rows, 8) {
      text += "\n  " + (0..<Swift.min(columns, 8)).map { "\(self[i, $0])" }.joined(separator: " ")
    }
    return text
  }
}
