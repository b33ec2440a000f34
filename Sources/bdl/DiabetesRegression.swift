import BDLCore

#if canImport(Glibc)
import Glibc
#endif

/// The main job at this stage: Bayesian linear regression on the diabetes data (Efron et al.
/// 2004; 442 patients, 10 baseline variables, disease progression after one year), with the prior
/// precision and noise chosen by maximising the exact evidence, compared with least squares.
///
/// Split: `DatasetSplit`'s fixed rule (rows 4, 9, 14, … are the test patients). Features are standardised and the target centred
/// with training statistics only, so the test set informs nothing.
struct DiabetesRegression {
  struct Split {
    let inputs: Matrix
    let targets: [Double]
  }

  let featureNames: [String]
  let train: Split
  let test: Split
  /// Training mean of the target, added back to predictions.
  let targetMean: Double

  init(table: NumericTable) throws(BDLError) {
    let split = try DatasetSplit(table)
    let d = split.featureNames.count
    let n = split.trainInputs.rows
    var means = [Double](repeating: 0, count: d), scales = [Double](repeating: 0, count: d)
    for j in 0..<d {
      let column = (0..<n).map { split.trainInputs[$0, j] }
      means[j] = column.reduce(0, +) / Double(n)
      let variance = column.reduce(0) { $0 + ($1 - means[j]) * ($1 - means[j]) } / Double(n)
      scales[j] = variance > 0 ? variance.squareRoot() : 1
    }
    let targetMean = split.trainTargets.reduce(0, +) / Double(n)
    func standardised(_ x: Matrix, _ y: [Double]) -> Split {
      var z = x
      for i in 0..<z.rows {
        for j in 0..<d { z[i, j] = (z[i, j] - means[j]) / scales[j] }
      }
      return Split(inputs: z, targets: y.map { $0 - targetMean })
    }
    self.featureNames = split.featureNames
    self.train = standardised(split.trainInputs, split.trainTargets)
    self.test = standardised(split.testInputs, split.testTargets)
    self.targetMean = targetMean
  }

  struct Result {
    /// The evidence at laplace-torch's defaults δ = 1, σ = 1, for comparison.
    let initial: BayesianLinearRegression.Posterior
    let optimum: BayesianLinearRegression.Posterior
    let iterations: Int
    let bayesianTestRMSE: Double
    let leastSquaresTestRMSE: Double
    /// Mean test log predictive density under N(mean, f_var + σ²).
    let testLogPredictiveDensity: Double
    /// Mean test log density of least squares with its unbiased noise estimate.
    let leastSquaresTestLogDensity: Double
    let leastSquaresWeights: [Double]
  }

  func fit() throws(BDLError) -> Result {
    let model = try BayesianLinearRegression(inputs: train.inputs, targets: train.targets)
    let initial = try model.posterior(priorPrecision: 1, sigma: 1)
    let (optimum, iterations) = try model.optimizeHyperparameters()
    let prediction = try optimum.predict(test.inputs)

    let leastSquares = try SingularValueDecomposition(train.inputs).leastSquaresSolution(train.targets)
    let trainFit = try train.inputs.multiplied(by: leastSquares)
    let trainRSS = zip(trainFit, train.targets).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
    let leastSquaresVariance = trainRSS / Double(train.inputs.rows - train.inputs.columns)
    let leastSquaresTest = try test.inputs.multiplied(by: leastSquares)

    return Result(
      initial: initial, optimum: optimum, iterations: iterations,
      bayesianTestRMSE: rmse(prediction.mean, test.targets),
      leastSquaresTestRMSE: rmse(leastSquaresTest, test.targets),
      testLogPredictiveDensity: meanLogDensity(prediction.mean, prediction.predictiveVariance, test.targets),
      leastSquaresTestLogDensity: meanLogDensity(
        leastSquaresTest, [Double](repeating: leastSquaresVariance, count: test.targets.count), test.targets),
      leastSquaresWeights: leastSquares)
  }

  private func rmse(_ prediction: [Double], _ target: [Double]) -> Double {
    (zip(prediction, target).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(target.count)).squareRoot()
  }

  private func meanLogDensity(_ mean: [Double], _ variance: [Double], _ target: [Double]) -> Double {
    var total = 0.0
    for i in target.indices {
      let r = target[i] - mean[i]
      total += -0.5 * (log(2 * Double.pi * variance[i]) + r * r / variance[i])
    }
    return total / Double(target.count)
  }
}
