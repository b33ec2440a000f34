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

  /// (B ⊗ A)·vec(X_t) = vec(B·X_t·Aᵀ) for `count` nb × na matrices stored one after another:
  /// one gemm multiplies every block by Aᵀ at once, then one gemm per block applies B.
  public func apply(to x: [Double], count k: Int) throws(BDLError) -> [Double] {
    let nb = b.rows, na = a.rows
    let blockSize = try Validation.product(nb, na, "Kronecker order nb·na")
    guard k >= 0, try Validation.product(k, blockSize, "right-hand sides") == x.count else {
      throw .shapeMismatch("expected \(k) matrices of \(nb) × \(na), got \(x.count) entries")
    }
    if k == 0 || blockSize == 0 { return x }
    var right = [Double](repeating: 0, count: x.count)
    var output = [Double](repeating: 0, count: x.count)
    try x.withUnsafeBufferPointer { xp throws(BDLError) in
      try a.elements.withUnsafeBufferPointer { ap throws(BDLError) in
        try b.elements.withUnsafeBufferPointer { bp throws(BDLError) in
          try right.withUnsafeMutableBufferPointer { rp throws(BDLError) in
            try output.withUnsafeMutableBufferPointer { op throws(BDLError) in
              try BLAS.gemm(
                transposeA: false, transposeB: true, m: k * nb, n: na, k: na, alpha: 1,
                a: xp.baseAddress!, lda: na, b: ap.baseAddress!, ldb: na, beta: 0,
                c: rp.baseAddress!, ldc: na)
              for t in 0..<k {
                try BLAS.gemm(
                  transposeA: false, transposeB: false, m: nb, n: na, k: nb, alpha: 1,
                  a: bp.baseAddress!, lda: nb, b: rp.baseAddress! + t * blockSize, ldb: na,
                  beta: 0, c: op.baseAddress! + t * blockSize, ldc: na)
              }
            }
          }
        }
      }
    }
    return output
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

/// How a damping δ is added to a Kronecker-factored curvature h·B ⊗ A.
public enum KroneckerDamping: Sendable, Equatable {
  /// h·B ⊗ A + δ·I, exact through the eigenbasis (eigenvalues h·β_i·α_j + δ). The Laplace
  /// posterior precision and every bdlcore default.
  case exact
  /// (√h·B + (√δ/π)·I) ⊗ (√h·A + π·√δ·I): δ spread over the two factors, as K-FAC optimisers do
  /// (Martens & Grosse 2015, §6.3). With `balanced` π = √((tr A/n_A)/(tr B/n_B)) keeps each
  /// factor's added share proportional to its scale; without it π = 1 (laplace-torch's damped
  /// Kron form). It equals h·B⊗A + √(hδ)·(π·B⊗I + I⊗A/π) + δ·I: the middle term makes it a
  /// heuristic, not the posterior precision.
  case factored(balanced: Bool)
}
