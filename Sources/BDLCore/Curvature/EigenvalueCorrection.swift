extension Sequential.LayerStatistics {
  /// Σ_{n,k} ((Q_Bᵀ ∇W_{n,k} Q_A)_ij)² with ∇W_{n,k} = Σ_r g_{n,k,r} a_{n,r}ᵀ — EK-FAC's eigenvalues
  /// for this batch — or, for the bias block, Σ_{n,k} ((Q_Bᵀ Σ_r g_{n,k,r})_i)² as a d_out × 1 matrix.
  /// Without a basis (nil) the gradients are not rotated: the exact GGN diagonal of the layer.
  /// Both rotations are one gemm over all rows; then one gemm for R = 1, or one
  /// (d_out × R)·(R × d_in) gemm per (n, k).
  func rotatedGradientSquares(in basis: KroneckerEigendecomposition?, bias: Bool) throws(BDLError) -> Matrix {
    let (n, k, r, dOut) = (outputGradients.shape[0], outputGradients.shape[1], outputGradients.shape[2], outputGradients.shape[3])
    let dIn = inputs.shape[2]
    var gRotated = Matrix(unchecked: n * k * r, columns: dOut, elements: outputGradients.elements)
    if let basis { gRotated = try gRotated.multiplied(by: basis.b.eigenvectors) }
    if bias {
      var squares = Matrix(rows: dOut, columns: 1)
      for row in 0..<(n * k) {
        for i in 0..<dOut {
          var sum = 0.0
          for position in 0..<r { sum += gRotated.elements[(row * r + position) * dOut + i] }
          squares.elements[i] += sum * sum
        }
      }
      return squares
    }
    var aRotated = Matrix(unchecked: n * r, columns: dIn, elements: inputs.elements)
    if let basis { aRotated = try aRotated.multiplied(by: basis.a.eigenvectors) }
    if r == 1 {
      // One position: ∇W_{n,k} = g̃_{n,k} ã_nᵀ, so Σ_{n,k} (∇W_{n,k})² = Σ_n (Σ_k g̃²_{n,k}) (ã²_n)ᵀ,
      // one gemm (dOut × N)·(N × dIn) instead of N·K outer products.
      var gSquares = Matrix(rows: n, columns: dOut)
      for example in 0..<n {
        for vector in 0..<k {
          let base = (example * k + vector) * dOut
          for i in 0..<dOut { gSquares.elements[example * dOut + i] += gRotated.elements[base + i] * gRotated.elements[base + i] }
        }
      }
      for i in aRotated.elements.indices { aRotated.elements[i] *= aRotated.elements[i] }
      return try gSquares.multiplied(by: aRotated, transposingSelf: true)
    }
    var squares = Matrix(rows: dOut, columns: dIn)
    var gradient = [Double](repeating: 0, count: dOut * dIn)
    try gRotated.elements.withUnsafeBufferPointer { gp throws(BDLError) in
      try aRotated.elements.withUnsafeBufferPointer { ap throws(BDLError) in
        try gradient.withUnsafeMutableBufferPointer { wp throws(BDLError) in
          for example in 0..<n {
            for vector in 0..<k {
              try BLAS.gemm(
                transposeA: true, transposeB: false, m: dOut, n: dIn, k: r, alpha: 1,
                a: gp.baseAddress! + (example * k + vector) * r * dOut, lda: dOut,
                b: ap.baseAddress! + example * r * dIn, ldb: dIn, beta: 0, c: wp.baseAddress!, ldc: dIn)
              for i in 0..<(dOut * dIn) { squares.elements[i] += wp[i] * wp[i] }
            }
          }
        }
      }
    }
    return squares
  }
}
