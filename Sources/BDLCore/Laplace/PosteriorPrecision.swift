/// The posterior precision P = h·G + diag(δ) of one curvature structure, factored once at fixed
/// hyperparameters (h, δ per parameter). It supplies what the Laplace evidence, its gradients,
/// the linearised predictive and sampling need, each exactly for its structure:
/// - `logDeterminant`: log det P;
/// - `priorSensitivity()`: ∂ log det P/∂δ_p for every parameter p — diag(P⁻¹) when the prior enters
///   P exactly (full, diagonal, Kronecker with a prior constant on each block);
/// - `scaleSensitivity()`: ∂ log det P/∂h — tr(P⁻¹·G) for the exact forms;
/// - `applyPower(e, toRows:)`: X ↦ X·P^e for e ∈ {1, −1} (P is symmetric, so also (P^e·Xᵀ)ᵀ);
/// - `covarianceFactor(rows:)`: Z ↦ rows with covariance P⁻¹ when Z's rows are standard normal;
/// - `varianceBlocks(head:)`: for structures diagonal in a per-layer basis, the blocks through which
///   the functional variance is computed from layer statistics (nil: use the Jacobian).
protocol PosteriorPrecision: Sendable {
  var logDeterminant: Double { get }
  func priorSensitivity() throws(BDLError) -> [Double]
  func scaleSensitivity() throws(BDLError) -> Double
  func applyPower(_ e: Double, toRows x: Matrix) throws(BDLError) -> Matrix
  func covarianceFactor(rows z: Matrix) throws(BDLError) -> Matrix
  func varianceBlocks(head: Sequential) throws(BDLError) -> [VarianceBlock]?
  /// Σ_{p∈range} ∂ log det P/∂δ_p for each range: all a scalar or per-tensor prior's gradient
  /// needs. The default sums `priorSensitivity()`; structures override it where the sums are
  /// cheaper than the parameter-wise values.
  func priorSensitivity(summedOver ranges: [Range<Int>]) throws(BDLError) -> [Double]
  /// For P = h·G + P0 with eigenvalues d = h·λ + δ_k in a basis shared with the prior (δ_k
  /// constant on each range): per range Σ 1/d, Σ 1/d² and Σ λ/d² — what the evidence's exact
  /// Hessian in (log δ, log σ) needs. nil where P0 does not enter that way (full, damped or
  /// projected forms).
  func spectralSums(over ranges: [Range<Int>]) -> [SpectralSums]?
}

/// Σ 1/d, Σ 1/d², Σ λ/d² over a group of P's eigenvalues d = h·λ + δ.
struct SpectralSums {
  var inverse = CompensatedSum()
  var inverseSquare = CompensatedSum()
  var curvatureOverSquare = CompensatedSum()

  mutating func add(curvature λ: Double, eigenvalue d: Double) {
    inverse.add(1 / d)
    inverseSquare.add(1 / (d * d))
    curvatureOverSquare.add(λ / (d * d))
  }

  /// Adds every pair (λ_i, d_i), eight lanes at a time.
  mutating func add(curvatures λ: UnsafeBufferPointer<Double>, eigenvalues d: UnsafeBufferPointer<Double>) {
    precondition(λ.count == d.count, "internal: spectra of different sizes")
    var lanes = (inverse: CompensatedLanes(), inverseSquare: CompensatedLanes(), curvatureOverSquare: CompensatedLanes())
    let whole = d.count - d.count % 8
    for start in stride(from: 0, to: whole, by: 8) {
      let dv = UnsafeRawPointer(d.baseAddress! + start).loadUnaligned(as: SIMD8<Double>.self)
      let λv = UnsafeRawPointer(λ.baseAddress! + start).loadUnaligned(as: SIMD8<Double>.self)
      let inverseSquare = 1 / (dv * dv)
      lanes.inverse.add(1 / dv)
      lanes.inverseSquare.add(inverseSquare)
      lanes.curvatureOverSquare.add(λv * inverseSquare)
    }
    inverse.add(lanes.inverse.value)
    inverseSquare.add(lanes.inverseSquare.value)
    curvatureOverSquare.add(lanes.curvatureOverSquare.value)
    for i in whole..<d.count { add(curvature: λ[i], eigenvalue: d[i]) }
  }
}

extension PosteriorPrecision {
  func varianceBlocks(head: Sequential) throws(BDLError) -> [VarianceBlock]? { nil }
  func spectralSums(over ranges: [Range<Int>]) -> [SpectralSums]? { nil }

  func priorSensitivity(summedOver ranges: [Range<Int>]) throws(BDLError) -> [Double] {
    let values = try priorSensitivity()
    return ranges.map { CompensatedSum.of(values[$0]) }
  }
}

extension Sequential {
  /// Whether layer `index` is a linear map whose weight (d_out × d_in) starts at parameter `start`
  /// — or, for a bias, whose bias (d_out) does: how a curvature block is matched to a layer.
  func linearMap(at index: Int, holds parameters: Range<Int>, outputs dOut: Int, inputs dIn: Int, bias: Bool) -> Bool {
    guard layers.indices.contains(index), let map = layers[index] as? any LinearMapLayer,
      map.outputDimension == dOut, map.inputDimension == dIn || bias
    else { return false }
    let start = parameterOffsets[index] + (bias ? map.outputDimension * map.inputDimension : 0)
    return parameters == start..<(start + (bias ? dOut : dOut * dIn)) && (!bias || map.hasBias)
  }
}

/// The error for a posterior precision that is not positive definite.
func singularPosterior(_ detail: String) -> BDLError {
  .notPositiveDefinite(
    "the posterior precision h·G + P0 is not positive definite (\(detail)); every prior precision must be > 0 and finite")
}
