/// P = h·G + diag(δ) as a dense matrix with its Cholesky factor L (P = L·Lᵀ): O(P³) once, then
/// log det P = 2 Σ log L_ii, P⁻¹ by dpotri, solves by dpotrs and samples L⁻ᵀ·z (covariance
/// (L·Lᵀ)⁻¹ = P⁻¹). For small networks and last layers, where P² doubles fit.
struct FullPosteriorPrecision: PosteriorPrecision {
  let curvature: Matrix
  let precision: Matrix
  let cholesky: Cholesky

  init(curvature g: Matrix, scale h: Double, prior δ: [Double]) throws(BDLError) {
    var p = g
    try p.scale(by: h)
    for i in 0..<p.rows { p[i, i] += δ[i] }
    do {
      cholesky = try Cholesky(p, name: "posterior precision")
    } catch .notPositiveDefinite(let reason) {
      throw singularPosterior(reason)
    }
    curvature = g
    precision = p
  }

  var logDeterminant: Double { cholesky.logDeterminant }

  func priorSensitivity() throws(BDLError) -> [Double] { try cholesky.inverse().diagonalEntries }

  /// tr(P⁻¹·G) = Σ_ij (P⁻¹)_ij·G_ij (both symmetric).
  func scaleSensitivity() throws(BDLError) -> Double {
    try dot(cholesky.inverse().elements, curvature.elements)
  }

  func applyPower(_ e: Double, toRows x: Matrix) throws(BDLError) -> Matrix {
    switch e {
    case 1: return try x.multiplied(by: precision)
    case -1: return try cholesky.solve(x.transposed).transposed
    default: throw .invalidArgument("exponent \(e): the full posterior applies P and P⁻¹ only")
    }
  }

  func covarianceFactor(rows z: Matrix) throws(BDLError) -> Matrix {
    try cholesky.solveLowerTransposed(z.transposed).transposed
  }
}
