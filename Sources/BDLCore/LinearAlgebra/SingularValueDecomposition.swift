/// Thin SVD A = U·diag(s)·Vᵀ of an m × n matrix (LAPACK dgesdd), r = min(m, n).
public struct SingularValueDecomposition: Sendable {
  /// U, m × r, orthonormal columns.
  public let u: Matrix
  /// Singular values, descending, r of them.
  public let singularValues: [Double]
  /// Vᵀ, r × n, orthonormal rows.
  public let vTransposed: Matrix

  public init(_ matrix: Matrix, name: String = "matrix") throws(BDLError) {
    try Validation.requireFinite(matrix.elements, name)
    let m = matrix.rows, n = matrix.columns, r = min(m, n)
    var a = matrix
    var s = [Double](repeating: 0, count: r)
    var u = Matrix(rows: m, columns: r)
    var vt = Matrix(rows: r, columns: n)
    if r > 0 {
      try a.elements.withUnsafeMutableBufferPointer { ap throws(BDLError) in
        try s.withUnsafeMutableBufferPointer { sp throws(BDLError) in
          try u.elements.withUnsafeMutableBufferPointer { up throws(BDLError) in
            try vt.elements.withUnsafeMutableBufferPointer { vp throws(BDLError) in
              try BLAS.gesdd(
                m: m, n: n, a: ap.baseAddress!, s: sp.baseAddress!, u: up.baseAddress!,
                vt: vp.baseAddress!)
            }
          }
        }
      }
    }
    self.u = u
    self.singularValues = s
    self.vTransposed = vt
  }

  /// The relative cutoff below which a singular value counts as zero, numpy's `lstsq` default
  /// (max(m, n)·ε·s_max): smaller ones are indistinguishable from rounding in A.
  public func cutoff() -> Double {
    Double(max(u.rows, vTransposed.columns)) * Double.ulpOfOne * (singularValues.first ?? 0)
  }

  /// The minimum-norm least-squares solution of A·x ≈ b: V·diag(1/s)·Uᵀ·b over s > cutoff.
  public func leastSquaresSolution(_ b: [Double]) throws(BDLError) -> [Double] {
    var coefficients = try u.multiplied(by: b, transposingSelf: true)
    let limit = cutoff()
    for i in coefficients.indices {
      coefficients[i] = singularValues[i] > limit ? coefficients[i] / singularValues[i] : 0
    }
    return try vTransposed.multiplied(by: coefficients, transposingSelf: true)
  }
}
