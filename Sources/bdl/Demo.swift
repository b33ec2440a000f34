import BDLCore

#if canImport(Glibc)
import Glibc
#endif

/// `bdl demo`: the main job, printed for a person to read.
enum Demo {
  static func run(dataDirectory: String, reportPath: String) throws(BDLError) {
    let blas = try BLASInfo.current()
    print("bdlcore demo")
    print("1. Bayesian linear regression by the evidence")
    print("BLAS: OpenBLAS core \(blas.core) (\(describe(blas.coreSource))), \(blas.threads) threads, \(blas.openBLASLibrary)")
    if !blas.usesBestKernelForCPU {
      print("warning: this CPU supports faster kernels than \(blas.core); see OPENBLAS_CORETYPE in include/bdlcore.h")
    }
    let path = dataDirectory + "/diabetes.csv"
    let data = try DiabetesRegression(table: NumericTable(contentsOf: path))
    print("data: \(path): \(data.train.inputs.rows) training and \(data.test.inputs.rows) test patients, \(data.featureNames.count) features (\(data.featureNames.joined(separator: ", ")))")
    print("model: y = Xθ + ε, ε ~ N(0, σ²), θ ~ N(0, δ⁻¹I); features standardised, target centred\n")

    let result = try data.fit()
    let o = result.optimum, i = result.initial
    print("                                  δ (prior precision)   σ (noise)   log evidence")
    print("  defaults (δ = 1, σ = 1)         \(pad(fmt(i.priorPrecision), 20))  \(pad(fmt(i.sigma), 10))  \(fmt(i.logMarginalLikelihood))")
    print("  evidence-optimal                \(pad(fmt(o.priorPrecision), 20))  \(pad(fmt(o.sigma), 10))  \(fmt(o.logMarginalLikelihood))")
    print("  (\(result.iterations) fixed-point iterations; ‖∇ log evidence‖ = \(sci(o.gradientNorm)); effective parameters γ = \(fmt(o.effectiveParameterCount)) of \(o.mean.count))\n")
    print("test set (\(data.test.inputs.rows) patients)              RMSE    mean log predictive density")
    print("  Bayesian, evidence-optimal       \(pad(fmt(result.bayesianTestRMSE), 8))  \(fmt(result.testLogPredictiveDensity))")
    print("  ordinary least squares           \(pad(fmt(result.leastSquaresTestRMSE), 8))  \(fmt(result.leastSquaresTestLogDensity))")
    print("\nposterior mean vs least squares (per standardised feature):")
    for (j, name) in data.featureNames.enumerated() {
      print("  \(pad(name, 4))  \(pad(fmt(o.mean[j]), 9))  \(fmt(result.leastSquaresWeights[j]))")
    }
    try digits(dataDirectory: dataDirectory, reportPath: reportPath)
  }

  static func digits(dataDirectory: String, reportPath: String) throws(BDLError) {
    let path = dataDirectory + "/digits.csv"
    let data = try DigitsClassification(table: NumericTable(contentsOf: path))
    print("\n2. A network on the digits")
    print("digits: \(path): \(data.trainLabels.count) training and \(data.testLabels.count) test images (8×8), 10 classes")
    let network = try DigitsClassification.network()
    let options = DigitsClassification.options()
    print("network: \(network.layers.map(\.description).joined(separator: " → ")), \(network.parameterCount) parameters")
    print("training: Adam, learning rate \(options.learningRate) with cosine decay, \(options.epochs) epochs of batches of \(options.batchSize), prior precision \(options.priorPrecision[0]), seed \(options.seed)")
    let clock = MonotonicClock()
    let model = try data.train { report in
      if report.epoch == 1 || report.epoch % 10 == 0 {
        print("  epoch \(pad(String(report.epoch), 3)) objective \(fmt(report.objective))  mean NLL \(fmt(report.meanNegativeLogLikelihood))")
      }
      return true
    }
    let seconds = clock.seconds
    let evaluation = try data.evaluate(model)
    print("  trained in \(fmt(seconds)) s: test accuracy \(fmt(100 * evaluation.accuracy))%, test mean NLL \(fmt(evaluation.meanNegativeLogLikelihood))")
    try curvature(model, data)
    var report = try laplace(model, data)
    report.influence = try influence(model, data)
    report.modelSelection = try modelSelection(model, data)
    report.pruning = try pruning(data)
    try writeAtomically(report.html(), to: reportPath)
    print("\nreport: \(reportPath)")
  }

  /// 3. K-FAC of the trained network (exact type-2 Fisher, expand) and its factor spectra.
  static func curvature(_ model: Sequential, _ data: DigitsClassification) throws(BDLError) {
    print("\n3. K-FAC curvature of the trained network (exact Fisher, \(data.trainLabels.count) images)")
    let clock = MonotonicClock()
    let kfac = try KFAC.fit(
      model: model, inputs: data.trainInputs, targets: .classes(data.trainLabels),
      likelihood: CategoricalLikelihood())
    let seconds = clock.seconds
    for block in kfac.blocks where !block.isBias {
      for (name, values) in [("A", block.factors.a.eigenvalues), ("B", block.factors.b.eigenvalues)] {
        let top = values.suffix(3).reversed().map(sci).joined(separator: ", ")
        let positive = values.filter { $0 > 0 }
        let condition = positive.count == values.count ? sci(values.last! / values.first!) : "∞ (\(values.count - positive.count) zero)"
        print("  layer \(block.layerIndex) \(name) (\(values.count) × \(values.count)): top eigenvalues \(top); condition number \(condition)")
      }
    }
    print("  fitted and eigendecomposed in \(fmt(seconds)) s")
  }

  private static func describe(_ source: BLASInfo.CoreSource) -> String {
    switch source {
    case .bdlcore: "chosen by bdlcore from the CPU features"
    case .user: "OPENBLAS_CORETYPE set by you"
    case .openBLAS: "OpenBLAS's own detection"
    case .preloaded: "OpenBLAS was already loaded"
    }
  }
}

/// Fixed-point text with 4 decimals (no Foundation formatting in this binary).
func fmt(_ x: Double) -> String {
  let negative = x < 0
  let scaled = (abs(x) * 10_000).rounded()
  guard scaled < 1e17 else { return sci(x) }
  let whole = Int(scaled / 10_000), fraction = Int(scaled) % 10_000
  let digits = String(fraction)
  return (negative ? "-" : "") + "\(whole)." + String(repeating: "0", count: 4 - digits.count) + digits
}

/// Scientific notation with 2 significant decimals.
func sci(_ x: Double) -> String {
  var buffer = [UInt8](repeating: 0, count: 32)
  let length = buffer.withUnsafeMutableBufferPointer { p in
    p.withMemoryRebound(to: CChar.self) { c in withVaList([x]) { vsnprintf(c.baseAddress, 32, "%.2e", $0) } }
  }
  return String(decoding: buffer[0..<Int(max(0, min(length, 31)))], as: UTF8.self)
}

func pad(_ text: String, _ width: Int) -> String {
  text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

/// Wall-clock seconds since creation (CLOCK_MONOTONIC).
struct MonotonicClock {
  private let start: timespec

  init() {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    start = now
  }

  var seconds: Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec - start.tv_sec) + Double(now.tv_nsec - start.tv_nsec) * 1e-9
  }
}
