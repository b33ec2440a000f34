#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A = L·Lᵀ for a symmetric positive-definite A (LAPACK dpotrf), with the operations a Gaussian
/// needs: log-determinant, solves and the inverse.
public struct Cholesky: Sendable {
  /// The lower-triangular factor L (upper triangle zero).
  public let lower: Matrix

  /// Factors `matrix` (its lower triangle is read; it is not checked for symmetry).
  /// - Throws: `.shapeMismatch` (not square), `.nonFiniteInput`, `.notPositiveDefinite` naming
  ///   the order of the first non-positive leading minor.
  public init(_ matrix: Matrix, name: String = "matrix") throws(BDLError) {
    guard matrix.isSquare else {
      throw .shapeMismatch("\(name): expected a square matrix, got \(matrix.rows) × \(matrix.columns)")
    }
    try Validation.requireFinite(matrix.elements, name)
    var l = matrix
    let n = matrix.rows
    if n > 0 {
      try l.elements.withUnsafeMutableBufferPointer { p throws(BDLError) in
        try BLAS.potrf(n: n, a: p.baseAddress!, name: name)
      }
    }
    for i in 0..<n {
      for j in (i + 1)..<n { l[i, j] = 0 }
    }
    self.lower = l
  }

  /// The order n.
  public var order: Int { lower.rows }

  /// log det A = 2·Σ log L_ii.
  public var logDeterminant: Double {
    (0..<order).reduce(0) { $0 + 2 * log(lower[$1, $1]) }
  }

  /// A⁻¹·B for B with n rows (dpotrs).
  public func solve(_ b: Matrix) throws(BDLError) -> Matrix {
    guard b.rows == order else {
      throw .shapeMismatch("Cholesky solve: right-hand side has \(b.rows) rows, expected \(order)")
    }
    var x = b
    if order == 0 || b.columns == 0 { return x }
    try lower.elements.withUnsafeBufferPointer { l throws(BDLError) in
      try x.elements.withUnsafeMutableBufferPointer { p throws(BDLError) in
        try BLAS.potrs(n: order, nrhs: b.columns, l: l.baseAddress!, b: p.baseAddress!)
      }
    }
    return x
  }

  /// A⁻¹·b for a vector b.
  public func solve(_ b: [Double]) throws(BDLError) -> [Double] {
    try solve(Matrix(rows: b.count, columns: 1, elements: b)).elements
  }

  /// L⁻¹·B (forward substitution, dtrsm): whitening, since (L⁻¹B)ᵀ(L⁻¹B) = Bᵀ A⁻¹ B.
  public func solveLower(_ b: Matrix) throws(BDLError) -> Matrix {
    try triangularSolve(b, transposed: false)
  }

  /// L⁻ᵀ·B (back substitution): with B's columns standard normal, the columns of the result
  /// have covariance (L·Lᵀ)⁻¹ = A⁻¹ — how a Gaussian with precision A is sampled.
  public func solveLowerTransposed(_ b: Matrix) throws(BDLError) -> Matrix {
    try triangularSolve(b, transposed: true)
  }

  private func triangularSolve(_ b: Matrix, transposed: Bool) throws(BDLError) -> Matrix {
    guard b.rows == order else {
      throw .shapeMismatch("triangular solve: right-hand side has \(b.rows) rows, expected \(order)")
    }
    var x = b
    if order == 0 || b.columns == 0 { return x }
    try lower.elements.withUnsafeBufferPointer { l throws(BDLError) in
      try x.elements.withUnsafeMutableBufferPointer { p throws(BDLError) in
        try BLAS.trsmLowerLeft(
          transpose: transposed, n: order, nrhs: b.columns, alpha: 1, l: l.baseAddress!, ldl: order,
          b: p.baseAddress!, ldb: b.columns)
      }
    }
    return x
  }

  /// A⁻¹ (dpotri), symmetric.
  public func inverse() throws(BDLError) -> Matrix {
    var inv = lower
    if order == 0 { return inv }
    try inv.elements.withUnsafeMutableBufferPointer { p throws(BDLError) in
      try BLAS.potri(n: order, a: p.baseAddress!)
    }
    inv.fillUpperFromLower()
    return inv
  }
}
