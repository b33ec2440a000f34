/// Dense products of `Matrix` values, all through BLAS level 2/3.
extension Matrix {
  /// op(self) · op(other), with op the transpose where asked (dgemm).
  public func multiplied(
    by other: Matrix, transposingSelf: Bool = false, transposingOther: Bool = false
  ) throws(BDLError) -> Matrix {
    let m = transposingSelf ? columns : rows
    let k = transposingSelf ? rows : columns
    let k2 = transposingOther ? other.columns : other.rows
    let n = transposingOther ? other.rows : other.columns
    guard k == k2 else {
      throw .shapeMismatch("matrix product: inner dimensions \(k) and \(k2) differ")
    }
    var result = Matrix(rows: m, columns: n)
    if m == 0 || n == 0 { return result }
    if k == 0 { return result }
    try elements.withUnsafeBufferPointer { a throws(BDLError) in
      try other.elements.withUnsafeBufferPointer { b throws(BDLError) in
        try result.elements.withUnsafeMutableBufferPointer { c throws(BDLError) in
          try BLAS.gemm(
            transposeA: transposingSelf, transposeB: transposingOther, m: m, n: n, k: k,
            alpha: 1, a: a.baseAddress!, lda: columns, b: b.baseAddress!, ldb: other.columns,
            beta: 0, c: c.baseAddress!, ldc: n)
        }
      }
    }
    return result
  }

  /// selfᵀ · self (or self · selfᵀ with `outer`), symmetric, by dsyrk (half the flops of gemm).
  public func gram(outer: Bool = false) throws(BDLError) -> Matrix {
    let n = outer ? rows : columns
    let k = outer ? columns : rows
    var result = Matrix(rows: n, columns: n)
    if n == 0 || k == 0 { return result }
    try elements.withUnsafeBufferPointer { a throws(BDLError) in
      try result.elements.withUnsafeMutableBufferPointer { c throws(BDLError) in
        try BLAS.syrkLower(
          transpose: !outer, n: n, k: k, alpha: 1, a: a.baseAddress!, lda: columns, beta: 0,
          c: c.baseAddress!, ldc: n)
      }
    }
    result.fillUpperFromLower()
    return result
  }

  /// self · x (or selfᵀ · x).
  public func multiplied(by x: [Double], transposingSelf: Bool = false) throws(BDLError) -> [Double] {
    let (m, n) = transposingSelf ? (columns, rows) : (rows, columns)
    guard x.count == n else {
      throw .shapeMismatch("matrix-vector product: vector has \(x.count) entries, expected \(n)")
    }
    var y = [Double](repeating: 0, count: m)
    if m == 0 || n == 0 { return y }
    try elements.withUnsafeBufferPointer { a throws(BDLError) in
      try x.withUnsafeBufferPointer { xp throws(BDLError) in
        try y.withUnsafeMutableBufferPointer { yp throws(BDLError) in
          try BLAS.gemv(
            transpose: transposingSelf, m: rows, n: columns, alpha: 1, a: a.baseAddress!,
            lda: columns, x: xp.baseAddress!, beta: 0, y: yp.baseAddress!)
        }
      }
    }
    return y
  }

  /// self ← self + α·other (daxpy), for matrices of equal shape.
  public mutating func add(_ other: Matrix, scaledBy alpha: Double = 1) throws(BDLError) {
    guard rows == other.rows, columns == other.columns else {
      throw .shapeMismatch("matrix sum: \(rows) × \(columns) and \(other.rows) × \(other.columns)")
    }
    if elements.isEmpty { return }
    try other.elements.withUnsafeBufferPointer { x throws(BDLError) in
      try elements.withUnsafeMutableBufferPointer { y throws(BDLError) in
        try BLAS.axpy(x.count, alpha, x.baseAddress!, y.baseAddress!)
      }
    }
  }

  /// self ← α·self (dscal).
  public mutating func scale(by alpha: Double) throws(BDLError) {
    if elements.isEmpty { return }
    try elements.withUnsafeMutableBufferPointer { x throws(BDLError) in
      try BLAS.scal(x.count, alpha, x.baseAddress!)
    }
  }

  /// Copies the lower triangle onto the upper one.
  mutating func fillUpperFromLower() {
    let n = columns
    elements.withUnsafeMutableBufferPointer { m in
      forEachUpperEntryInTiles(order: n) { i, j in m[i * n + j] = m[j * n + i] }
    }
  }
}

/// xᵀy for equal-length vectors.
public func dot(_ x: [Double], _ y: [Double]) throws(BDLError) -> Double {
  guard x.count == y.count else {
    throw .shapeMismatch("dot product of vectors of lengths \(x.count) and \(y.count)")
  }
  if x.isEmpty { return 0 }
  return try x.withUnsafeBufferPointer { xp throws(BDLError) in
    try y.withUnsafeBufferPointer { yp throws(BDLError) in
      try BLAS.dot(x.count, xp.baseAddress!, yp.baseAddress!)
    }
  }
}

/// Calls `body(i, j)` for every entry above the diagonal (i < j) of an n × n matrix, in 32 × 32
/// tiles, so that its mirror (j, i) is still in cache when visited: a plain column walk over a
/// matrix larger than the cache (a 784² K-FAC factor is 4.9 MB) would miss on every access.
@inline(__always)
func forEachUpperEntryInTiles(order n: Int, _ body: (Int, Int) -> Void) {
  let tile = 32
  for rowStart in stride(from: 0, to: n, by: tile) {
    for columnStart in stride(from: rowStart, to: n, by: tile) {
      for i in rowStart..<min(rowStart + tile, n) {
        for j in max(columnStart, i + 1)..<max(min(columnStart + tile, n), i + 1) { body(i, j) }
      }
    }
  }
}
