/// The posterior precision P = h·G + diag(δ) of one curvature structure, factored once at fixed
/// hyperparameters (h, δ per parameter). It supplies what the Laplace evidence, its gradients,
/// the linearised predictive and sampling need, each exactly for its structure:
/// - `logDeterminant`: log det P;
/// - `priorSensitivity()`: ∂ log det P/∂δ_p for every parameter p — diag(P⁻¹) when the prior enters
///   P exactly (full, diagonal, Kronecker with a prior constant on each block);
/// - `scaleSensitivity()`: ∂ log det P/∂h — tr(P⁻¹·G) for the exact forms;
/// - `applyPower(e, toRows:)`: X ↦ X·P^e for e ∈ {1, −1} (P is symmetric, so also (P^e·Xᵀ)ᵀ);
/// - `covarianceFactor(rows:)`: Z ↦ rows with covariance P⁻¹ when Z's rows are standard normal.
protocol PosteriorPrecision: Sendable {
  var logDeterminant: Double { get }
  func priorSensitivity() throws(BDLError) -> [Double]
  func scaleSensitivity() throws(BDLError) -> Double
  func applyPower(_ e: Double, toRows x: Matrix) throws(BDLError) -> Matrix
  func covarianceFactor(rows z: Matrix) throws(BDLError) -> Matrix
}

/// The error for a posterior precision that is not positive definite.
func singularPosterior(_ detail: String) -> BDLError {
  .notPositiveDefinite(
    "the posterior precision h·G + P0 is not positive definite (\(detail)); every prior precision must be > 0 and finite")
}
