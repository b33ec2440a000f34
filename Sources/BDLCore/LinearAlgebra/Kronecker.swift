/// The Kronecker product B ⊗ A in bdlcore's (row-major vec) convention.
///
/// A vector of length nb·na is read as an nb × na row-major matrix X, and
/// (B ⊗ A)·vec(X) = vec(B·X·Aᵀ). This is the layout of a Linear layer's weight (out × in) in
/// PyTorch, which is why K-FAC blocks are written B ⊗ A with B the output-gradient factor.
public struct Kronecker: Sendable {
  /// The output-side (left) factor, nb × nb.
  public let b: Matrix
  /// The input-side (right) factor, na × na.
  public let a: Matrix

  public init(_ b: Matrix, _ a: Matrix) throws(BDLError) {
    guard b.isSquare else { throw .shapeMismatch("B: expected a square matrix, got \(b.rows) × \(b.columns)") }
    guard a.isSquare else { throw .shapeMismatch("A: expected a square matrix, got \(a.rows) × \(a.columns)") }
    self.b = b
    self.a = a
  }

  /// (B ⊗ A)·vec(X) = vec(B·X·Aᵀ) for an nb × na matrix X, in O(nb·na·(nb + na)) flops.
  public func apply(_ x: Matrix) throws(BDLError) -> Matrix {
    guard x.rows == b.rows, x.columns == a.rows else {
      throw .shapeMismatch("Kronecker apply: X is \(x.rows) × \(x.columns), expected \(b.rows) × \(a.rows)")
    }
    return try b.multiplied(by: x).multiplied(by: a, transposingOther: true)
  }

  /// The dense (nb·na) × (nb·na) matrix: entry ((i, j), (k, l)) = B_ik·A_jl. For tests and small
  /// sizes only — it has (nb·na)² entries.
  public func dense() throws(BDLError) -> Matrix {
    let nb = b.rows, na = a.rows
    let n = try Validation.product(nb, na, "Kronecker order")
    _ = try Validation.product(n, n, "dense Kronecker size")
    var m = Matrix(rows: n, columns: n)
    for i in 0..<nb {
      for k in 0..<nb {
        let bik = b[i, k]
        for j in 0..<na {
          for l in 0..<na { m[i * na + j, k * na + l] = bik * a[j, l] }
        }
      }
    }
    return m
  }
}
