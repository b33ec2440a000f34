/// Σ_f(x) = J·P⁻¹·Jᵀ for posteriors whose precision is diagonal in a per-block basis (K-FAC in its
/// eigenbasis Q_B ⊗ Q_A; the diagonal structure with Q = I), computed from the layer statistics
/// of a backward of the C unit vectors — neither J nor P is formed.
///
/// For a weight block with eigenvalues d (nb × na) and example n, output c, the rotated weight
/// gradient is G̃_{n,c} = Σ_r (Q_Bᵀ g_{n,c,r})(Q_Aᵀ a_{n,r})ᵀ, and
///   Σ_f(x_n)_{c,c'} += Σ_ij G̃_{n,c,ij} G̃_{n,c',ij} / d_ij.
/// With one position (dense layers) G̃ = g̃ ãᵀ is an outer product, so this collapses to
///   Σ_i g̃_{n,c,i} g̃_{n,c',i} w_{n,i},  w_n = (1/d)·(ã_n ∘ ã_n),
/// one gemm for all examples: O(nb·na) per example instead of O(C·nb·na·(nb + na)) for P⁻¹Jᵀ.
/// A bias block adds Σ_i b̃_{n,c,i} b̃_{n,c',i} / d_i with b̃ = Q_Bᵀ Σ_r g_{n,c,r}.
struct VarianceBlock {
  /// The layer of the (head) network the block belongs to.
  let layerIndex: Int
  let isBias: Bool
  /// Q_B and Q_A; nil: no rotation (identity).
  let outputBasis: Matrix?
  let inputBasis: Matrix?
  /// 1/d (nb × na; nb × 1 for a bias).
  let inverseEigenvalues: Matrix
}

/// The C unit vectors per example, (N, C, C): backpropagated, they give the rows of J.
func unitOutputVectors(count n: Int, outputs c: Int) -> Tensor {
  var units = Tensor(shape: [n, c, c])
  for example in 0..<n {
    for i in 0..<c { units.elements[(example * c + i) * c + i] = 1 }
  }
  return units
}

extension Laplace {
  /// Σ_f for a batch through the blocks (see `VarianceBlock`); adds into `variance` at `start`.
  static func addBlockwiseVariance(
    head: Sequential, inputs x: Tensor, blocks: [VarianceBlock], into variance: inout Tensor, at start: Int
  ) throws(BDLError) {
    try addBlockwiseQuadraticForms(
      head: head, inputs: x, vectors: unitOutputVectors(count: x.count, outputs: head.outputCount), blocks: blocks,
      into: &variance, at: start)
  }

  /// The same for any K output vectors V (N, K, C) per example: adds (J_nᵀv_{n,k})ᵀ P⁻¹ (J_nᵀv_{n,k'})
  /// into `forms` (·, K, K) at row `start` — with the C unit vectors this is Σ_f; with one
  /// loss gradient per example, its self-influence.
  static func addBlockwiseQuadraticForms(
    head: Sequential, inputs x: Tensor, vectors: Tensor, blocks: [VarianceBlock], into variance: inout Tensor, at start: Int
  ) throws(BDLError) {
    let n = x.count, c = vectors.shape[1]
    let statistics = try head.backward(try head.forwardPass(x), vectors: vectors)
    for block in blocks {
      guard let s = statistics.first(where: { $0.layerIndex == block.layerIndex }) else {
        throw .internal("no statistics for layer \(block.layerIndex)")
      }
      let r = s.outputGradients.shape[2], dOut = s.outputGradients.shape[3], dIn = s.inputs.shape[2]
      let inverse = block.inverseEigenvalues
      var g = try Matrix(rows: n * c * r, columns: dOut, elements: s.outputGradients.elements)
      if let qb = block.outputBasis { g = try g.multiplied(by: qb) }
      let nb = g.columns
      if block.isBias || r == 1 {
        // Per (n, c) one vector v (nb): Σ_r g̃ for a bias, g̃ itself for a dense weight; and
        // per n the weights w (nb): 1/d for a bias, (1/d)·ã² for a dense weight.
        var v = g
        if r > 1 {
          v = Matrix(rows: n * c, columns: nb)
          for row in 0..<(n * c) {
            for position in 0..<r {
              for i in 0..<nb { v.elements[row * nb + i] += g.elements[(row * r + position) * nb + i] }
            }
          }
        }
        var w: Matrix
        if block.isBias {
          w = Matrix(rows: n, columns: nb)
          for example in 0..<n { for i in 0..<nb { w.elements[example * nb + i] = inverse.elements[i] } }
        } else {
          var a = try Matrix(rows: n, columns: dIn, elements: s.inputs.elements)
          if let qa = block.inputBasis { a = try a.multiplied(by: qa) }
          for i in a.elements.indices { a.elements[i] *= a.elements[i] }
          w = try a.multiplied(by: inverse, transposingOther: true)  // (N × na)·(na × nb)
        }
        for example in 0..<n {
          for p in 0..<c {
            for q in 0...p {
              var total = 0.0
              let vp = (example * c + p) * nb, vq = (example * c + q) * nb, wn = example * nb
              for i in 0..<nb { total += v.elements[vp + i] * v.elements[vq + i] * w.elements[wn + i] }
              variance.elements[((start + example) * c + p) * c + q] += total
              if q != p { variance.elements[((start + example) * c + q) * c + p] += total }
            }
          }
        }
        continue
      }
      // Several positions: the rotated gradient G̃_{n,c} (nb × na) per (n, c), one gemm each, then
      // Σ_f[c, c'] = ⟨G̃_c ∘ (1/d), G̃_c'⟩ as one (C × nb·na)·(nb·na × C) gemm per example.
      var a = try Matrix(rows: n * r, columns: dIn, elements: s.inputs.elements)
      if let qa = block.inputBasis { a = try a.multiplied(by: qa) }
      let na = a.columns, size = nb * na
      var rotated = Matrix(rows: c, columns: size)
      var weighted = Matrix(rows: c, columns: size)
      for example in 0..<n {
        try g.elements.withUnsafeBufferPointer { gp throws(BDLError) in
          try a.elements.withUnsafeBufferPointer { ap throws(BDLError) in
            try rotated.elements.withUnsafeMutableBufferPointer { out throws(BDLError) in
              for vector in 0..<c {
                try BLAS.gemm(
                  transposeA: true, transposeB: false, m: nb, n: na, k: r, alpha: 1,
                  a: gp.baseAddress! + (example * c + vector) * r * nb, lda: nb,
                  b: ap.baseAddress! + example * r * na, ldb: na, beta: 0, c: out.baseAddress! + vector * size, ldc: na)
              }
            }
          }
        }
        for vector in 0..<c {
          for i in 0..<size { weighted.elements[vector * size + i] = rotated.elements[vector * size + i] * inverse.elements[i] }
        }
        let products = try weighted.multiplied(by: rotated, transposingOther: true)
        for i in 0..<(c * c) { variance.elements[(start + example) * c * c + i] += products.elements[i] }
      }
    }
  }
}
