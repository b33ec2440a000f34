import BDLCore
@testable import bdl
import Testing

/// log N(y; 0, σ²I + δ⁻¹XXᵀ): the closed-form evidence of Bayesian linear regression, computed
/// in data space (N × N) — independent of the Laplace form (D × D, eigenbasis) under test.
func closedFormEvidence(_ x: Matrix, _ y: [Double], priorPrecision δ: Double, sigma σ: Double) throws -> Double {
  var covariance = try x.gram(outer: true)
  for i in covariance.elements.indices { covariance.elements[i] /= δ }
  for i in 0..<x.rows { covariance[i, i] += σ * σ }
  let c = try Cholesky(covariance)
  let alpha = try c.solve(y)
  return -0.5 * (try dot(y, alpha)) - 0.5 * c.logDeterminant - 0.5 * Double(x.rows) * logarithm(2 * Double.pi)
}

/// The diabetes dataset as the demo uses it (see `DiabetesRegression`).
func diabetes() throws -> DiabetesRegression {
  try DiabetesRegression(table: NumericTable(contentsOf: repositoryRoot + "/data/diabetes.csv"))
}

@Suite("Bayesian linear regression: exact evidence, gradients and optimum")
struct BayesianLinearRegressionTests {
  private func problem(seed: UInt64, n: Int = 40, d: Int = 6) -> (Matrix, [Double]) {
    var rng = SeededGenerator(seed: seed)
    let x = rng.matrix(n, d)
    let w = rng.vector(d)
    let y = try! x.multiplied(by: w).map { $0 + 0.3 * rng.normal() }
    return (x, y)
  }

  @Test("the Laplace-form evidence equals the closed form", arguments: [(0.5, 0.3), (2.0, 1.0), (1e-3, 5.0)])
  func evidence(hyper: (Double, Double)) throws {
    let (x, y) = problem(seed: 200)
    let model = try BayesianLinearRegression(inputs: x, targets: y)
    let posterior = try model.posterior(priorPrecision: hyper.0, sigma: hyper.1)
    let reference = try closedFormEvidence(x, y, priorPrecision: hyper.0, sigma: hyper.1)
    expectClose(posterior.logMarginalLikelihood, reference, tolerance: 1e-11, "evidence at \(hyper)")
  }

  @Test("analytic log-hyperparameter gradients match central finite differences")
  func gradients() throws {
    let (x, y) = problem(seed: 201)
    let model = try BayesianLinearRegression(inputs: x, targets: y)
    let (δ, σ, step) = (0.7, 0.4, 1e-5)
    let p = try model.posterior(priorPrecision: δ, sigma: σ)
    let evidence = { (logδ: Double, logσ: Double) throws -> Double in
      try model.posterior(priorPrecision: exponential(logδ), sigma: exponential(logσ)).logMarginalLikelihood
    }
    let (u, v) = (logarithm(δ), logarithm(σ))
    let du = (try evidence(u + step, v) - evidence(u - step, v)) / (2 * step)
    let dv = (try evidence(u, v + step) - evidence(u, v - step)) / (2 * step)
    let scale = max(1, abs(p.gradientLogSigma), abs(p.gradientLogPriorPrecision))
    #expect(abs(du - p.gradientLogPriorPrecision) / scale < Tolerance.finiteDifference, "∂/∂log δ: \(du) vs \(p.gradientLogPriorPrecision)")
    #expect(abs(dv - p.gradientLogSigma) / scale < Tolerance.finiteDifference, "∂/∂log σ: \(dv) vs \(p.gradientLogSigma)")
  }

  @Test("the optimum is stationary and no point of a grid around it is better")
  func optimum() throws {
    let (x, y) = problem(seed: 202)
    let model = try BayesianLinearRegression(inputs: x, targets: y)
    let (best, iterations) = try model.optimizeHyperparameters()
    #expect(best.gradientNorm < 1e-8, "gradient norm \(best.gradientNorm) after \(iterations) iterations")
    for a in stride(from: -0.5, through: 0.5, by: 0.1) {
      for b in stride(from: -0.5, through: 0.5, by: 0.1) {
        let other = try model.posterior(priorPrecision: best.priorPrecision * exponential(a), sigma: best.sigma * exponential(b))
        #expect(other.logMarginalLikelihood <= best.logMarginalLikelihood + 1e-9)
      }
    }
    // The true noise is 0.3: the evidence-optimal σ recovers it to sampling accuracy.
    #expect(abs(best.sigma - 0.3) < 0.1, "σ* = \(best.sigma)")
  }

  @Test("predictive variance equals xᵀP⁻¹x from a dense inverse, plus σ²")
  func predictive() throws {
    let (x, y) = problem(seed: 203)
    let model = try BayesianLinearRegression(inputs: x, targets: y)
    let p = try model.posterior(priorPrecision: 0.9, sigma: 0.5)
    var precision = try x.gram()
    for i in precision.elements.indices { precision.elements[i] /= 0.25 }
    for i in 0..<precision.rows { precision[i, i] += 0.9 }
    let covariance = try Cholesky(precision).inverse()
    var rng = SeededGenerator(seed: 204)
    let test = rng.matrix(5, 6)
    let prediction = try p.predict(test)
    let expected = try (0..<5).map { i throws in
      let row = Array(test.elements[(i * 6)..<(i * 6 + 6)])
      return try dot(row, covariance.multiplied(by: row))
    }
    expectClose(prediction.functionalVariance, expected, tolerance: 1e-10, "f_var")
    expectClose(prediction.predictiveVariance, expected.map { $0 + 0.25 }, tolerance: 1e-10, "f_var + σ²")
    expectClose(prediction.mean, try test.multiplied(by: p.mean), tolerance: 1e-12, "mean")
  }

  @Test("bad hyperparameters and shapes are errors")
  func errors() throws {
    let (x, y) = problem(seed: 205)
    #expect(throws: BDLError.self) { try BayesianLinearRegression(inputs: x, targets: Array(y.dropLast())) }
    let model = try BayesianLinearRegression(inputs: x, targets: y)
    #expect(throws: BDLError.self) { try model.posterior(priorPrecision: 0, sigma: 1) }
    #expect(throws: BDLError.self) { try model.posterior(priorPrecision: 1, sigma: .nan) }
    var withNaN = y
    withNaN[3] = .nan
    #expect(throws: BDLError.self) { try BayesianLinearRegression(inputs: x, targets: withNaN) }
  }

  @Test("the demo's diabetes evidence equals the closed form at the optimum")
  func diabetesDemo() throws {
    let data = try diabetes()
    #expect(data.train.inputs.rows + data.test.inputs.rows == 442)
    let result = try data.fit()
    #expect(result.optimum.gradientNorm < 1e-8)
    let reference = try closedFormEvidence(
      data.train.inputs, data.train.targets, priorPrecision: result.optimum.priorPrecision,
      sigma: result.optimum.sigma)
    expectClose(result.optimum.logMarginalLikelihood, reference, tolerance: 1e-10, "diabetes evidence")
    // The evidence-optimal prior shrinks towards 0 and so cannot beat least squares by much on
    // test data, nor lose by much: the two RMSEs agree to a few percent.
    #expect(abs(result.bayesianTestRMSE / result.leastSquaresTestRMSE - 1) < 0.05)
  }
}
