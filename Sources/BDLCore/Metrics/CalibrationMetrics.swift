#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How well predicted class probabilities fit labels: the numbers every calibration table
/// reports. Inputs: probabilities (N, C), rows non-negative and summing to 1 (within 1e−6, so
/// float32 predictions pass), and labels in 0..<C.
public enum CalibrationMetrics {
  /// Rows must sum to 1 within this: float32 softmax outputs carry ~1e−7 relative error.
  static let rowSumTolerance = 1e-6

  static func validate(_ p: Matrix, _ labels: [Int]) throws(BDLError) {
    guard p.rows == labels.count else { throw .shapeMismatch("\(p.rows) probability rows for \(labels.count) labels") }
    guard p.rows >= 1, p.columns >= 1 else { throw .invalidArgument("metrics need at least one example and one class") }
    try Validation.requireFinite(p.elements, "probabilities")
    for n in 0..<p.rows {
      var total = 0.0
      for c in 0..<p.columns {
        guard p[n, c] >= 0 else { throw .invalidArgument("probability [\(n), \(c)] = \(p[n, c]) is negative") }
        total += p[n, c]
      }
      guard abs(total - 1) <= rowSumTolerance else { throw .invalidArgument("probabilities of example \(n) sum to \(total), not 1") }
      guard labels[n] >= 0, labels[n] < p.columns else { throw .invalidArgument("label \(labels[n]) of example \(n) is not in [0, \(p.columns))") }
    }
  }

  /// The predicted class: the first index of the row's maximum (numpy's argmax).
  static func predictedClass(_ p: Matrix, _ n: Int) -> Int {
    var best = 0
    for c in 1..<p.columns where p[n, c] > p[n, best] { best = c }
    return best
  }

  /// The fraction of examples whose most probable class is the label.
  public static func accuracy(_ p: Matrix, labels: [Int]) throws(BDLError) -> Double {
    try validate(p, labels)
    return Double((0..<p.rows).filter { predictedClass(p, $0) == labels[$0] }.count) / Double(p.rows)
  }

  /// The mean negative log-likelihood −(1/N) Σ log p_{n, y_n} (+∞ if a label has probability 0).
  public static func negativeLogLikelihood(_ p: Matrix, labels: [Int]) throws(BDLError) -> Double {
    try validate(p, labels)
    return (0..<p.rows).reduce(0.0) { $0 - log(p[$1, labels[$1]]) } / Double(p.rows)
  }

  /// The Brier score (1/N) Σ_n Σ_c (p_nc − 1[c = y_n])², between 0 and 2 (the multi-class form,
  /// summed over classes as in Brier 1950 and most BDL benchmarks).
  public static func brierScore(_ p: Matrix, labels: [Int]) throws(BDLError) -> Double {
    try validate(p, labels)
    var total = 0.0
    for n in 0..<p.rows {
      for c in 0..<p.columns {
        let target = c == labels[n] ? 1.0 : 0.0
        total += (p[n, c] - target) * (p[n, c] - target)
      }
    }
    return total / Double(p.rows)
  }

  /// One bin of a reliability diagram.
  public struct ReliabilityBin: Sendable, Equatable {
    /// Examples whose confidence falls in the bin.
    public let count: Int
    /// Their mean confidence (max_c p_nc) and accuracy (0 for an empty bin).
    public let confidence: Double
    public let accuracy: Double
  }

  /// Confidence max_c p_nc split into `bins` equal-width bins of (0, 1] — (i/B, (i+1)/B], the
  /// first also holding 0 — with the mean confidence and accuracy of each.
  public static func reliability(_ p: Matrix, labels: [Int], bins: Int = 15) throws(BDLError) -> [ReliabilityBin] {
    try validate(p, labels)
    guard bins >= 1 else { throw .invalidArgument("bins = \(bins); it must be ≥ 1") }
    var counts = [Int](repeating: 0, count: bins)
    var confidence = [Double](repeating: 0, count: bins), correct = [Double](repeating: 0, count: bins)
    for n in 0..<p.rows {
      let predicted = predictedClass(p, n)
      let value = p[n, predicted]
      let bin = min(max(Int((value * Double(bins)).rounded(.up)) - 1, 0), bins - 1)
      counts[bin] += 1
      confidence[bin] += value
      correct[bin] += predicted == labels[n] ? 1 : 0
    }
    return (0..<bins).map { b in
      counts[b] == 0
        ? ReliabilityBin(count: 0, confidence: 0, accuracy: 0)
        : ReliabilityBin(count: counts[b], confidence: confidence[b] / Double(counts[b]), accuracy: correct[b] / Double(counts[b]))
    }
  }

  /// The expected calibration error Σ_b (n_b/N)·|accuracy_b − confidence_b| over `bins` equal-width
  /// confidence bins. Default 15 bins: Guo et al. (2017), and torchmetrics' default.
  public static func expectedCalibrationError(_ p: Matrix, labels: [Int], bins: Int = 15) throws(BDLError) -> Double {
    let table = try reliability(p, labels: labels, bins: bins)
    return table.reduce(0.0) { $0 + Double($1.count) / Double(p.rows) * abs($1.accuracy - $1.confidence) }
  }
}
