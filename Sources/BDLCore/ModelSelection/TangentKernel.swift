/// How the weight kernel of a layer applied at R > 1 positions is formed (both give the same
/// matrix; `automatic` picks the one with fewer flops).
enum TangentKernelRoute: Sendable {
  case automatic
  /// Σ over position pairs (r, r') of (input Gram) ∘ (gradient Gram): R(R+1)/2 pairs of gemms.
  case positionPairs
  /// The per-example weight gradients Σ_r g_{i,r} a_{n,r}ᵀ, a block of output units at a time,
  /// and their Gram (a syrk per block).
  case perExampleGradients
}

/// The tangent kernel of one parameter tensor of a linear-map layer (y_r = W·a_r + b at R
/// positions) between backpropagated output vectors, from the layer's statistics alone — inputs
/// a (N, R, d_in) and output-gradients g (N, K, R, d_out), g_{n,k,r} = ∂⟨f(x_n), v_{n,k}⟩/∂y_r —
/// never from a Jacobian with a column per parameter:
///   weight: K_W[i, j] = ⟨∇_W⟨f(x_n), v_i⟩, ∇_W⟨f(x_m), v_j⟩⟩ = Σ_{r,r'} (a_{n,r}·a_{m,r'}) (g_{i,r}·g_{j,r'}),
///   bias:   K_b[i, j] = ĝ_i·ĝ_j,  ĝ_i = Σ_r g_{i,r},
/// row i = (n, k) an example and one of its output vectors. With v the columns of the
/// output-Hessian square root S this is the tensor's share of Sᵀ J P0⁻¹ Jᵀ S at δ = 1.
///
/// Rows are either all N·K vectors (row n·K + k: the full kernel) or the N rows of one vector
/// index k (row n: one output's kernel, for independent outputs).
extension Sequential.LayerStatistics {
  /// Where the kernel's rows live in g: row i, position r starts at `base + i·stride + r·d_out`,
  /// and row i belongs to example i / `rowsPerExample`.
  private struct RowLayout {
    let rows: Int
    let rowsPerExample: Int
    let base: Int
    let stride: Int
  }

  private var dimensions: (n: Int, k: Int, r: Int, dIn: Int, dOut: Int) {
    (outputGradients.shape[0], outputGradients.shape[1], outputGradients.shape[2], inputs.shape[2], outputGradients.shape[3])
  }

  private func layout(vector: Int?) throws(BDLError) -> RowLayout {
    let (n, k, r, _, dOut) = dimensions
    guard let vector else { return RowLayout(rows: n * k, rowsPerExample: k, base: 0, stride: r * dOut) }
    guard (0..<k).contains(vector) else { throw .invalidArgument("output vector \(vector) is outside 0..<\(k)") }
    return RowLayout(rows: n, rowsPerExample: 1, base: vector * r * dOut, stride: k * r * dOut)
  }

  /// The weight tensor's kernel over the rows of `vector` (nil: all vectors).
  func weightKernel(vector: Int? = nil, route: TangentKernelRoute = .automatic) throws(BDLError) -> Matrix {
    let rows = try layout(vector: vector)
    let (n, _, r, dIn, dOut) = dimensions
    var chosen = route
    if route == .automatic {
      // Flops of each route; for R = 1 the position pair is the Hadamard product of two Grams,
      // d_in + d_out per entry instead of d_in·d_out, so it always wins there.
      let pairs = Double(r * (r + 1) / 2) * (Double(n * n * dIn) + Double(rows.rows * rows.rows * (dOut + 2)))
      let gradients = Double(rows.rows * r * dOut * dIn) + Double(rows.rows * rows.rows) * Double(dOut * dIn) / 2
      chosen = pairs <= gradients ? .positionPairs : .perExampleGradients
    }
    var kernel = chosen == .positionPairs ? try positionPairKernel(rows) : try perExampleGradientKernel(rows)
    kernel.fillUpperFromLower()
    return kernel
  }

  /// The bias tensor's kernel over the rows of `vector` (nil: all vectors).
  func biasKernel(vector: Int? = nil) throws(BDLError) -> Matrix {
    let rows = try layout(vector: vector)
    let (_, _, r, _, dOut) = dimensions
    var summed = Matrix(rows: rows.rows, columns: dOut)
    outputGradients.elements.withUnsafeBufferPointer { g in
      for i in 0..<rows.rows {
        for position in 0..<r {
          let start = rows.base + i * rows.stride + position * dOut
          for o in 0..<dOut { summed.elements[i * dOut + o] += g[start + o] }
        }
      }
    }
    return try summed.gram(outer: true)
  }

  /// Lower triangle of Σ_{r,r'} A_{rr'}[n(i), n(j)]·G_{rr'}[i, j] with A_{rr'} = a_r a_{r'}ᵀ and
  /// G_{rr'} = g_r g_{r'}ᵀ: the pairs r' < r contribute X + Xᵀ, the diagonal pairs a syrk each.
  private func positionPairKernel(_ rows: RowLayout) throws(BDLError) -> Matrix {
    let (n, _, r, dIn, dOut) = dimensions
    let m = rows.rows, q = rows.rowsPerExample
    try Validation.requireAllocatable(try Validation.product(3, try Validation.product(m, m, "kernel size"), "kernel size"), "the tangent kernel of \(m) rows")
    var kernel = Matrix(rows: m, columns: m)
    var inputGram = Matrix(rows: n, columns: n)
    if r == 1 {  // one pair: the gradient Gram is formed in place and scaled, no second m × m buffer
      try inputs.elements.withUnsafeBufferPointer { a throws(BDLError) in
        try inputGram.elements.withUnsafeMutableBufferPointer { c throws(BDLError) in
          try BLAS.syrkLower(transpose: false, n: n, k: dIn, alpha: 1, a: a.baseAddress!, lda: dIn, beta: 0, c: c.baseAddress!, ldc: n)
        }
      }
      try outputGradients.elements.withUnsafeBufferPointer { g throws(BDLError) in
        try kernel.elements.withUnsafeMutableBufferPointer { k throws(BDLError) in
          try BLAS.syrkLower(transpose: false, n: m, k: dOut, alpha: 1, a: g.baseAddress! + rows.base, lda: rows.stride, beta: 0, c: k.baseAddress!, ldc: m)
        }
      }
      inputGram.elements.withUnsafeBufferPointer { ag in
        kernel.elements.withUnsafeMutableBufferPointer { k in
          for i in 0..<m {
            let row = (i / q) * n
            for j in 0...i { k[i * m + j] *= ag[row + j / q] }
          }
        }
      }
      return kernel
    }
    var gradientGram = Matrix(rows: m, columns: m)
    try inputs.elements.withUnsafeBufferPointer { a throws(BDLError) in
      try outputGradients.elements.withUnsafeBufferPointer { g throws(BDLError) in
        for r1 in 0..<r {
          for r2 in 0...r1 {
            let diagonal = r1 == r2
            try inputGram.elements.withUnsafeMutableBufferPointer { c throws(BDLError) in
              if diagonal {
                try BLAS.syrkLower(transpose: false, n: n, k: dIn, alpha: 1, a: a.baseAddress! + r1 * dIn, lda: r * dIn, beta: 0, c: c.baseAddress!, ldc: n)
              } else {
                try BLAS.gemm(
                  transposeA: false, transposeB: true, m: n, n: n, k: dIn, alpha: 1, a: a.baseAddress! + r1 * dIn, lda: r * dIn,
                  b: a.baseAddress! + r2 * dIn, ldb: r * dIn, beta: 0, c: c.baseAddress!, ldc: n)
              }
            }
            try gradientGram.elements.withUnsafeMutableBufferPointer { c throws(BDLError) in
              let first = g.baseAddress! + rows.base + r1 * dOut, second = g.baseAddress! + rows.base + r2 * dOut
              if diagonal {
                try BLAS.syrkLower(transpose: false, n: m, k: dOut, alpha: 1, a: first, lda: rows.stride, beta: 0, c: c.baseAddress!, ldc: m)
              } else {
                try BLAS.gemm(
                  transposeA: false, transposeB: true, m: m, n: m, k: dOut, alpha: 1, a: first, lda: rows.stride,
                  b: second, ldb: rows.stride, beta: 0, c: c.baseAddress!, ldc: m)
              }
            }
            inputGram.elements.withUnsafeBufferPointer { ag in
              gradientGram.elements.withUnsafeBufferPointer { gg in
                kernel.elements.withUnsafeMutableBufferPointer { k in
                  for i in 0..<m {
                    let ni = i / q
                    for j in 0...i {
                      let nj = j / q
                      var term = ag[ni * n + nj] * gg[i * m + j]
                      if !diagonal { term += ag[nj * n + ni] * gg[j * m + i] }
                      k[i * m + j] += term
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    return kernel
  }

  /// Doubles of per-example weight gradients held at once (32 MiB): the output units are taken in
  /// blocks so that rows × block × d_in stays below this, whatever the layer's size.
  private static var gradientBlockBudget: Int { 1 << 22 }

  /// Lower triangle of Φ Φᵀ, Φ_i = vec(Σ_r g_{i,r} a_{n(i),r}ᵀ), accumulated over blocks of
  /// output units (rows of W).
  private func perExampleGradientKernel(_ rows: RowLayout) throws(BDLError) -> Matrix {
    let (_, _, r, dIn, dOut) = dimensions
    let m = rows.rows, q = rows.rowsPerExample
    try Validation.requireAllocatable(try Validation.product(m, m, "kernel size"), "the tangent kernel of \(m) rows")
    let block = max(1, min(dOut, Self.gradientBlockBudget / max(m * dIn, 1)))
    var kernel = Matrix(rows: m, columns: m)
    var gradients = [Double](repeating: 0, count: try Validation.product(m, block * dIn, "gradient block"))
    try inputs.elements.withUnsafeBufferPointer { a throws(BDLError) in
      try outputGradients.elements.withUnsafeBufferPointer { g throws(BDLError) in
        try gradients.withUnsafeMutableBufferPointer { phi throws(BDLError) in
          try kernel.elements.withUnsafeMutableBufferPointer { k throws(BDLError) in
            for start in stride(from: 0, to: dOut, by: block) {
              let width = min(block, dOut - start)
              for i in 0..<m {
                // (width × d_in) = g_iᵀ (width × R) · a_n (R × d_in)
                try BLAS.gemm(
                  transposeA: true, transposeB: false, m: width, n: dIn, k: r, alpha: 1,
                  a: g.baseAddress! + rows.base + i * rows.stride + start, lda: dOut,
                  b: a.baseAddress! + (i / q) * r * dIn, ldb: dIn, beta: 0,
                  c: phi.baseAddress! + i * width * dIn, ldc: dIn)
              }
              try BLAS.syrkLower(
                transpose: false, n: m, k: width * dIn, alpha: 1, a: phi.baseAddress!, lda: width * dIn,
                beta: start == 0 ? 0 : 1, c: k.baseAddress!, ldc: m)
            }
          }
        }
      }
    }
    return kernel
  }
}
