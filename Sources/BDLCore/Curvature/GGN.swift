/// The exact GGN G = Σ_n J_nᵀ Λ_n J_n as a dense P × P matrix (or the MC/empirical Fisher with
/// another source), accumulated as Σ of per-example gradient outer products (a syrk per batch)
/// without forming J. For small models and as the reference every approximation is tested
/// against; eigendecomposed once so that any damping and power is exact.
public struct DenseGGN: CurvatureOperator {
  public let matrix: Matrix
  let eigen: SymmetricEigendecomposition

  public init(matrix: Matrix) throws(BDLError) {
    self.matrix = matrix
    self.eigen = try .positiveSemidefinite(matrix, name: "GGN")
  }

  public static func fit(
    model: Sequential, inputs x: Tensor, targets: Targets, likelihood: some Likelihood,
    fisher: FisherSource = .exact, batchSize: Int = 256, progress: ((Int, Int) -> Void)? = nil,
    outputs: BatchOutputsObserver? = nil
  ) throws(BDLError) -> DenseGGN {
    try Validation.requireAllocatable(try Validation.product(model.parameterCount, model.parameterCount, "P²"), "the dense GGN")
    var g = Matrix(rows: model.parameterCount, columns: model.parameterCount)
    try forEachGradientBatch(model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, batchSize: batchSize, progress: progress, outputs: outputs) { rows throws(BDLError) in
      try g.addGram(of: rows.elements, rows: rows.rows, columns: rows.columns)
    }
    return try DenseGGN(matrix: g)
  }

  public var parameterCount: Int { matrix.rows }

  private func spectrum(_ e: Double, _ h: Double, _ δ: Double) throws(BDLError) -> [Double] {
    try dampedPowers(eigen.eigenvalues, scale: h, damping: δ, exponent: e, what: "eigenvalue")
  }

  public func logDeterminant(scale h: Double, damping δ: Double) throws(BDLError) -> Double {
    let d = try spectrum(1, h, δ)
    let (sum, invalid) = d.withUnsafeBufferPointer { sumOfLogarithms($0) }
    if let invalid { throw .notPositiveDefinite("eigenvalue \(invalid) of scale·G + damping·I is \(d[invalid]); use damping > 0") }
    return sum
  }

  public func applyPower(_ e: Double, to v: [Double], scale h: Double, damping δ: Double) throws(BDLError) -> [Double] {
    guard v.count == parameterCount else { throw .shapeMismatch("vector has \(v.count) entries, expected \(parameterCount)") }
    try Validation.requireFinite(v, "V")
    let d = try spectrum(e, h, δ)
    let q = try eigen.eigenvectors
    var rotated = try q.multiplied(by: v, transposingSelf: true)
    for i in rotated.indices { rotated[i] *= d[i] }
    return try q.multiplied(by: rotated)
  }

  public func diagonal(exponent e: Double = 1, scale h: Double = 1, damping δ: Double = 0) throws(BDLError) -> [Double] {
    try requireDamping(scale: h, damping: δ)
    if e == 1 { return matrix.diagonalEntries.map { h * $0 + δ } }
    let d = try spectrum(e, h, δ)
    let q = try eigen.eigenvectors
    return (0..<parameterCount).map { i in (0..<parameterCount).reduce(0.0) { $0 + q[i, $1] * q[i, $1] * d[$1] } }
  }

  public func dense(scale h: Double = 1, damping δ: Double = 0) throws(BDLError) -> Matrix {
    try requireDamping(scale: h, damping: δ)
    var m = matrix
    try m.scale(by: h)
    for i in 0..<parameterCount { m[i, i] += δ }
    return m
  }
}

/// The diagonal of the GGN (or of a Fisher estimate): diag(G)_p = Σ_{n,k} (∂⟨f(x_n), v_{n,k}⟩/∂θ_p)²,
/// the sum over output vectors of squared per-example gradients — exact with the C columns of
/// the output-Hessian square root, without forming J: layer by layer from the statistics, for a
/// dense layer one gemm Σ_n (Σ_k g²_{n,k}) (a²_n)ᵀ. laplace-torch's "diag" Laplace uses this
/// exact diagonal.
public struct DiagonalGGN: CurvatureOperator {
  public let values: [Double]

  public init(values: [Double]) throws(BDLError) {
    try Validation.requireFinite(values, "diagonal")
    guard values.allSatisfy({ $0 >= 0 }) else { throw .notPositiveDefinite("a GGN diagonal is ≥ 0") }
    self.values = values
  }

  public static func fit(
    model: Sequential, inputs x: Tensor, targets: Targets, likelihood: some Likelihood,
    fisher: FisherSource = .exact, batchSize: Int = 256, progress: ((Int, Int) -> Void)? = nil,
    outputs: BatchOutputsObserver? = nil
  ) throws(BDLError) -> DiagonalGGN {
    let d = try sumOverStatistics(
      model: model, inputs: x, targets: targets, likelihood: likelihood, fisher: fisher, batchSize: batchSize,
      progress: progress, outputs: outputs, initial: [Double](repeating: 0, count: model.parameterCount),
      add: { d, statistics throws(BDLError) in
        for s in statistics {
          let offset = model.parameterOffsets[s.layerIndex]
          let weight = try s.rotatedGradientSquares(in: nil, bias: false)
          for i in weight.elements.indices { d[offset + i] += weight.elements[i] }
          if s.hasBias {
            let bias = try s.rotatedGradientSquares(in: nil, bias: true)
            for i in bias.elements.indices { d[offset + weight.elements.count + i] += bias.elements[i] }
          }
        }
      },
      combine: { total, other in for i in total.indices { total[i] += other[i] } })
    return try DiagonalGGN(values: d)
  }

  public var parameterCount: Int { values.count }

  private func damped(_ h: Double, _ δ: Double, exponent e: Double) throws(BDLError) -> [Double] {
    try dampedPowers(values, scale: h, damping: δ, exponent: e, what: "diagonal entry")
  }

  public func logDeterminant(scale h: Double, damping δ: Double) throws(BDLError) -> Double {
    let d = try damped(h, δ, exponent: 1)
    let (sum, invalid) = d.withUnsafeBufferPointer { sumOfLogarithms($0) }
    if let invalid { throw .notPositiveDefinite("entry \(invalid) of scale·diag(G) + damping is \(d[invalid]); use damping > 0") }
    return sum
  }

  public func applyPower(_ e: Double, to v: [Double], scale h: Double, damping δ: Double) throws(BDLError) -> [Double] {
    guard v.count == parameterCount else { throw .shapeMismatch("vector has \(v.count) entries, expected \(parameterCount)") }
    try Validation.requireFinite(v, "V")
    return zip(try damped(h, δ, exponent: e), v).map { $0 * $1 }
  }

  public func diagonal(exponent e: Double = 1, scale h: Double = 1, damping δ: Double = 0) throws(BDLError) -> [Double] {
    try damped(h, δ, exponent: e)
  }

  public func dense(scale h: Double = 1, damping δ: Double = 0) throws(BDLError) -> Matrix {
    Matrix.diagonal(try damped(h, δ, exponent: 1))
  }
}
