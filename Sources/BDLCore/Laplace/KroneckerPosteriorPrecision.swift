/// P = h·G_KFAC + P0 block by block in each block's eigenbasis Q = Q_B ⊗ Q_A, never formed:
/// P_block = Q·diag(d)·Qᵀ with
/// - a prior constant on the block (scalar or per-tensor δ), exactly: d_ij = h·λ_ij + δ, where
///   λ_ij = β_i·α_j (K-FAC) or the refit Λ_ij (EK-FAC);
/// - a per-parameter prior Δ, through its eigenbasis projection (an approximation, the SpaM
///   code's rule): d_ij = h·λ_ij + δ̃_ij, δ̃ = (Q_B ∘ Q_B)ᵀ·Δ·(Q_A ∘ Q_A);
/// - the damped form (weight blocks only, block-constant δ): d_ij = (√h·β_i + √δ)(√h·α_j + √δ),
///   the eigenvalues of (√h·B + √δ·I) ⊗ (√h·A + √δ·I); bias blocks (one factor) stay h·β + δ,
///   as laplace-torch's `KronDecomposed` treats single-factor blocks.
/// Then log det P = Σ log d, P^e = Q·diag(d^e)·Qᵀ, and ∂ log det P/∂Δ = (Q_B∘Q_B)·(1/d)·(Q_A∘Q_A)ᵀ,
/// which for a constant δ is diag(P⁻¹).
struct KroneckerPosteriorPrecision: PosteriorPrecision {
  struct Block: Sendable {
    let parameters: Range<Int>
    /// The K-FAC block's layer position and kind (to match it to a network's layer).
    let layerIndex: Int
    let isBias: Bool
    let factors: KroneckerEigendecomposition
    /// λ (nb × na): the curvature's eigenvalues in the block's eigenbasis.
    let curvature: Matrix
    /// d (nb × na): P's eigenvalues in the same basis.
    let values: Matrix
    /// ∂d_ij/∂δ and ∂d_ij/∂h when d is the damped product (nil: the exact forms 1 and λ_ij).
    let dampedDerivatives: (prior: Matrix, scale: Matrix)?
    /// Whether the prior entered through its eigenbasis projection (it varies inside the block).
    let projected: Bool

    /// Σ_ij (∂d_ij/∂δ)/d_ij: the block's ∂ log det P/∂δ for a prior constant on it
    /// (= Σ_ij 1/d_ij = tr(P_block⁻¹) in the exact form).
    var constantPriorSensitivity: Double {
      var total = CompensatedSum()
      if let (prior, _) = dampedDerivatives {
        for i in prior.elements.indices { total.add(prior.elements[i] / values.elements[i]) }
      } else {
        return values.elements.withUnsafeBufferPointer { compensatedSum($0, { 1 / $0 }, scalar: { 1 / $0 }) }
      }
      return total.value
    }
  }

  let blocks: [Block]
  let parameterCount: Int

  init(kfac: KFAC, scale h: Double, prior δ: [Double], damped: Bool) throws(BDLError) {
    var covered = 0
    var blocks: [Block] = []
    for block in kfac.blocks {
      guard block.parameters.lowerBound == covered else {
        throw .unsupported("the Kronecker posterior needs K-FAC blocks covering every parameter; parameters \(covered)..<\(block.parameters.lowerBound) have none")
      }
      covered = block.parameters.upperBound
      let factors = try block.factors.damped(.exact)
      let λ = try factors.spectrum(scale: 1, shift: 0)
      let prior = Array(δ[block.parameters])
      let constant = prior.allSatisfy { $0 == prior[0] }
      var values: Matrix
      var derivatives: (prior: Matrix, scale: Matrix)? = nil
      if damped && !block.isBias {
        guard constant else {
          throw .unsupported("the damped Kronecker form needs one prior precision per block (scalar or per tensor), not per parameter")
        }
        guard factors.correctedEigenvalues == nil else {
          throw .unsupported("the damped Kronecker form needs Kronecker factors; EK-FAC eigenvalues are not a product")
        }
        (values, derivatives) = try Self.dampedSpectrum(factors, scale: h, prior: prior[0])
      } else if constant {
        values = λ
        for i in values.elements.indices { values.elements[i] = h * λ.elements[i] + prior[0] }
      } else {
        let Δ = try Matrix(rows: factors.outputOrder, columns: factors.inputOrder, elements: prior)
        values = try factors.projectedDiagonal(Δ)
        for i in values.elements.indices { values.elements[i] += h * λ.elements[i] }
      }
      if let bad = values.elements.firstIndex(where: { !($0 > 0 && $0.isFinite) }) {
        throw singularPosterior("eigenvalue \(bad) of the block at parameters \(block.parameters) is \(values.elements[bad])")
      }
      blocks.append(Block(
        parameters: block.parameters, layerIndex: block.layerIndex, isBias: block.isBias, factors: factors,
        curvature: λ, values: values, dampedDerivatives: derivatives, projected: !constant && derivatives == nil))
    }
    guard covered == kfac.parameterCount, covered == δ.count else {
      throw .unsupported("the Kronecker posterior needs K-FAC blocks covering every parameter; \(covered) of \(δ.count) are covered")
    }
    self.blocks = blocks
    self.parameterCount = covered
  }

  /// d_ij = (√h·β_i + √δ)(√h·α_j + √δ) with its derivatives in δ and h:
  /// ∂d/∂δ = [(√h·β_i + √δ) + (√h·α_j + √δ)]/(2√δ), ∂d/∂h = [β_i(√h·α_j + √δ) + α_j(√h·β_i + √δ)]/(2√h).
  private static func dampedSpectrum(
    _ factors: KroneckerEigendecomposition, scale h: Double, prior δ: Double
  ) throws(BDLError) -> (Matrix, (prior: Matrix, scale: Matrix)) {
    guard h > 0 else { throw .invalidArgument("the damped Kronecker form needs h > 0") }
    let (nb, na) = (factors.outputOrder, factors.inputOrder)
    let (rh, rδ) = (h.squareRoot(), δ.squareRoot())
    var d = Matrix(rows: nb, columns: na), dδ = d, dh = d
    for i in 0..<nb {
      let β = factors.b.eigenvalues[i], left = rh * β + rδ
      for j in 0..<na {
        let α = factors.a.eigenvalues[j], right = rh * α + rδ
        d.elements[i * na + j] = left * right
        dδ.elements[i * na + j] = (left + right) / (2 * rδ)
        dh.elements[i * na + j] = (β * right + α * left) / (2 * rh)
      }
    }
    return (d, (dδ, dh))
  }

  var logDeterminant: Double {
    blocks.reduce(0) { total, block in
      total + block.values.elements.withUnsafeBufferPointer { sumOfLogarithms($0).sum }
    }
  }

  /// Per block Σ_ij 1/d_ij (no gemm) when every range is a union of whole blocks with a constant
  /// prior; otherwise the parameter-wise values summed.
  func priorSensitivity(summedOver ranges: [Range<Int>]) throws(BDLError) -> [Double] {
    var sums: [Double] = []
    var next = 0
    for range in ranges {
      var total = 0.0
      while next < blocks.count, blocks[next].parameters.upperBound <= range.upperBound, blocks[next].parameters.lowerBound >= range.lowerBound, !blocks[next].projected {
        total += blocks[next].constantPriorSensitivity
        next += 1
      }
      guard next > 0, blocks[next - 1].parameters.upperBound == range.upperBound else {
        let values = try priorSensitivity()
        return ranges.map { values[$0].reduce(0, +) }
      }
      sums.append(total)
    }
    return sums
  }

  /// Per range, over the whole blocks it holds (nil unless every range is a union of exact,
  /// unprojected blocks).
  func spectralSums(over ranges: [Range<Int>]) -> [SpectralSums]? {
    var result: [SpectralSums] = []
    var next = 0
    for range in ranges {
      var sums = SpectralSums()
      while next < blocks.count, blocks[next].parameters.lowerBound >= range.lowerBound, blocks[next].parameters.upperBound <= range.upperBound {
        let block = blocks[next]
        guard !block.projected, block.dampedDerivatives == nil else { return nil }
        block.curvature.elements.withUnsafeBufferPointer { λ in
          block.values.elements.withUnsafeBufferPointer { d in sums.add(curvatures: λ, eigenvalues: d) }
        }
        next += 1
      }
      guard next > 0, blocks[next - 1].parameters.upperBound == range.upperBound else { return nil }
      result.append(sums)
    }
    return result
  }

  func priorSensitivity() throws(BDLError) -> [Double] {
    var result = [Double](repeating: 0, count: parameterCount)
    for block in blocks {
      if block.dampedDerivatives != nil {
        // One δ per block: only the block's total is defined; spread it evenly.
        let share = block.constantPriorSensitivity / Double(block.parameters.count)
        for p in block.parameters { result[p] = share }
      } else {
        var inverse = block.values
        for i in inverse.elements.indices { inverse.elements[i] = 1 / inverse.elements[i] }
        result.replaceSubrange(block.parameters, with: try block.factors.diagonal(ofSpectrum: inverse).elements)
      }
    }
    return result
  }

  func scaleSensitivity() throws(BDLError) -> Double {
    var total = CompensatedSum()
    for block in blocks {
      let derivative = block.dampedDerivatives?.scale ?? block.curvature
      for i in derivative.elements.indices { total.add(derivative.elements[i] / block.values.elements[i]) }
    }
    return total.value
  }

  /// Each block in its eigenbasis with 1/d — when every block matches a linear map of `head` at
  /// its parameters (a posterior from a caller's accumulator may number its layers differently;
  /// then nil, and the Jacobian path is used).
  func varianceBlocks(head: Sequential) throws(BDLError) -> [VarianceBlock]? {
    for block in blocks {
      let (nb, na) = (block.factors.outputOrder, block.factors.inputOrder)
      guard head.linearMap(at: block.layerIndex, holds: block.parameters, outputs: nb, inputs: na, bias: block.isBias) else { return nil }
    }
    return try blocksInEigenbasis()
  }

  /// Every block with its eigenbasis and 1/d, labelled by its own layer index.
  func blocksInEigenbasis() throws(BDLError) -> [VarianceBlock] {
    try blocks.map { (block) throws(BDLError) in
      var inverse = block.values
      for i in inverse.elements.indices { inverse.elements[i] = 1 / inverse.elements[i] }
      return VarianceBlock(
        layerIndex: block.layerIndex, isBias: block.isBias, outputBasis: try block.factors.b.eigenvectors,
        inputBasis: block.isBias ? nil : try block.factors.a.eigenvectors, inverseEigenvalues: inverse)
    }
  }

  func applyPower(_ e: Double, toRows x: Matrix) throws(BDLError) -> Matrix {
    guard e == 1 || e == -1 else { throw .invalidArgument("exponent \(e): P and P⁻¹ only") }
    return try applySpectra(to: x) { e == 1 ? $0 : 1 / $0 }
  }

  func covarianceFactor(rows z: Matrix) throws(BDLError) -> Matrix {
    try applySpectra(to: z) { 1 / $0.squareRoot() }
  }

  /// Rows X ↦ rows of Q·diag(f(d))·Qᵀ applied block by block (each row's block slice is gathered
  /// into one contiguous nb × na matrix, transformed, and scattered back).
  private func applySpectra(to x: Matrix, _ f: (Double) -> Double) throws(BDLError) -> Matrix {
    guard x.columns == parameterCount else {
      throw .shapeMismatch("rows have \(x.columns) entries, the posterior has \(parameterCount) parameters")
    }
    var y = x
    for block in blocks {
      var weights = block.values
      for i in weights.elements.indices { weights.elements[i] = f(weights.elements[i]) }
      let size = block.parameters.count
      var slices = [Double](repeating: 0, count: x.rows * size)
      for r in 0..<x.rows {
        let start = r * x.columns + block.parameters.lowerBound
        slices.replaceSubrange((r * size)..<((r + 1) * size), with: x.elements[start..<(start + size)])
      }
      try slices.withUnsafeMutableBufferPointer { s throws(BDLError) in
        try block.factors.applySpectrum(weights, to: UnsafeBufferPointer(s), count: x.rows, into: s)
      }
      for r in 0..<x.rows {
        let start = r * x.columns + block.parameters.lowerBound
        y.elements.replaceSubrange(start..<(start + size), with: slices[(r * size)..<((r + 1) * size)])
      }
    }
    return y
  }
}
