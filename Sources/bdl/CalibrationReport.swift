import BDLCore

#if canImport(Glibc)
import Glibc
#endif

/// The data of the demo's calibration report: the evidence before and after optimising the prior,
/// the metrics of each predictive on the test split and their reliability bins. Everything in it
/// is measured by the demo; `html` only lays it out.
struct CalibrationReport {
  /// One parameter tensor's evidence-optimal prior precision.
  struct PriorTensor {
    let name: String
    let size: Int
    let precision: Double
  }

  /// One predictive on the test split.
  struct Method {
    let name: String
    let accuracy: Double
    let negativeLogLikelihood: Double
    let brierScore: Double
    let expectedCalibrationError: Double
    /// Equal-width confidence bins of (0, 1] (`CalibrationMetrics.reliability`).
    let bins: [CalibrationMetrics.ReliabilityBin]

    /// The mean confidence over all examples (from the bins): above the accuracy means
    /// overconfident, below underconfident.
    var meanConfidence: Double {
      let n = bins.reduce(0) { $0 + $1.count }
      return n == 0 ? 0 : bins.reduce(0.0) { $0 + Double($1.count) * $1.confidence } / Double(n)
    }
  }

  var title: String
  /// Lines of context (data, network, posterior), shown as given.
  var context: [String]
  /// The log evidence at the default prior δ = `defaultPriorPrecision` for every parameter.
  var defaultPriorPrecision: Double
  var defaultLogEvidence: Double
  /// The log evidence and prior after evidence maximisation.
  var optimizedLogEvidence: Double
  var priors: [PriorTensor]
  var iterations: Int
  var gradientNorm: Double
  var converged: Bool
  var testCount: Int
  var methods: [Method]
  /// The influence section, if the demo measured one.
  var influence: InfluenceReport? = nil
  /// Part 6: training by the evidence and equivariance selection.
  var modelSelection: ModelSelectionReport? = nil
  /// Part 7: sparsity curves.
  var pruning: PruningReport? = nil

  // The reliability diagram's layout (SVG user units).
  static let plotLeft = 56.0, plotTop = 36.0, plotWidth = 480.0, plotHeight = 320.0
  static let countTop = 400.0, countHeight = 80.0
  static let svgWidth = 560.0, svgHeight = 496.0
  static let colors = ["#d95f02", "#1b9e77", "#7570b3", "#e7298a"]

  /// The number of bins of the diagram (the largest over the methods).
  var binCount: Int { methods.map(\.bins.count).max() ?? 0 }

  /// The report as a self-contained HTML page (inline CSS and SVG, no scripts).
  func html() -> String {
    var out = """
      <!DOCTYPE html>
      <html lang="en">
      <head>
      <meta charset="utf-8">
      <title>\(escapeHTML(title))</title>
      <style>
      body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
      table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
      th, td { padding: 0.25rem 0.75rem; border-bottom: 1px solid #ddd; text-align: right; }
      th:first-child, td:first-child { text-align: left; }
      .context { color: #555; }
      svg text { font-family: system-ui, sans-serif; }
      \(influence == nil ? "" : InfluenceReport.css + "\n")</style>
      </head>
      <body>
      <h1>\(escapeHTML(title))</h1>

      """
    for line in context { out += "<p class=\"context\">\(escapeHTML(line))</p>\n" }

    out += "<h2>Evidence</h2>\n<table>\n<tr><th>prior precision</th><th>log evidence</th></tr>\n"
    out += "<tr><td>δ = \(number(defaultPriorPrecision)) for every parameter (default)</td><td>\(fmt(defaultLogEvidence))</td></tr>\n"
    out += "<tr><td>evidence-optimal, one δ per parameter tensor</td><td>\(fmt(optimizedLogEvidence))</td></tr>\n</table>\n"
    out += "<p>\(iterations) Newton iterations; final ‖∇ log evidence‖ = \(sci(gradientNorm))"
    out += converged ? " (converged).</p>\n" : " (not converged).</p>\n"
    out += "<table>\n<tr><th>parameter tensor</th><th>parameters</th><th>δ</th></tr>\n"
    for prior in priors {
      out += "<tr><td>\(escapeHTML(prior.name))</td><td>\(prior.size)</td><td>\(number(prior.precision))</td></tr>\n"
    }
    out += "</table>\n"

    out += "<h2>Test split (\(testCount) examples)</h2>\n" + Self.methodTable(methods, bins: binCount)

    out += "<h2>Reliability diagram</h2>\n"
    out += "<p>Accuracy against confidence (the largest class probability) in \(binCount) equal-width bins; "
    out += "a calibrated predictive follows the diagonal. Below: examples per bin.</p>\n"
    out += reliabilityDiagram()
    out += "\n"
    out += binTable()
    if let influence { out += influence.html() }
    if let modelSelection { out += modelSelection.html() }
    if let pruning { out += pruning.html() }
    out += "</body>\n</html>\n"
    return out
  }

  /// The metrics of each predictive as an HTML table.
  static func methodTable(_ methods: [Method], bins: Int) -> String {
    var out = "<table>\n<tr><th>predictive</th><th>accuracy</th><th>mean confidence</th><th>mean NLL</th><th>Brier</th><th>ECE (\(bins) bins)</th></tr>\n"
    for method in methods {
      out += "<tr><td>\(escapeHTML(method.name))</td><td>\(fmt(100 * method.accuracy))%</td><td>\(fmt(100 * method.meanConfidence))%</td>"
      out += "<td>\(fmt(method.negativeLogLikelihood))</td>"
      out += "<td>\(fmt(method.brierScore))</td><td>\(fmt(method.expectedCalibrationError))</td></tr>\n"
    }
    return out + "</table>\n"
  }

  /// The reliability diagram: per non-empty bin, one accuracy bar and one count bar per method.
  func reliabilityDiagram() -> String {
    let b = binCount, m = max(methods.count, 1)
    let (x0, y0, w, h) = (Self.plotLeft, Self.plotTop, Self.plotWidth, Self.plotHeight)
    let binWidth = b > 0 ? w / Double(b) : w
    let barWidth = binWidth / Double(m)
    let maxCount = max(methods.flatMap { $0.bins.map(\.count) }.max() ?? 0, 1)
    var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(fmt(Self.svgWidth))\" height=\"\(fmt(Self.svgHeight))\" "
    s += "viewBox=\"0 0 \(fmt(Self.svgWidth)) \(fmt(Self.svgHeight))\" role=\"img\" aria-label=\"reliability diagram\">\n"
    // Frames, grid and ticks.
    s += "<rect x=\"\(fmt(x0))\" y=\"\(fmt(y0))\" width=\"\(fmt(w))\" height=\"\(fmt(h))\" fill=\"none\" stroke=\"#888\"/>\n"
    s += "<rect x=\"\(fmt(x0))\" y=\"\(fmt(Self.countTop))\" width=\"\(fmt(w))\" height=\"\(fmt(Self.countHeight))\" fill=\"none\" stroke=\"#888\"/>\n"
    for tick in 0...5 {
      let v = Double(tick) / 5
      let x = x0 + v * w, y = y0 + h - v * h
      s += "<line x1=\"\(fmt(x0))\" y1=\"\(fmt(y))\" x2=\"\(fmt(x0 + w))\" y2=\"\(fmt(y))\" stroke=\"#eee\"/>\n"
      s += "<text x=\"\(fmt(x0 - 6))\" y=\"\(fmt(y + 4))\" font-size=\"11\" text-anchor=\"end\">\(fmt(v).prefix(3))</text>\n"
      s += "<text x=\"\(fmt(x))\" y=\"\(fmt(y0 + h + 16))\" font-size=\"11\" text-anchor=\"middle\">\(fmt(v).prefix(3))</text>\n"
    }
    s += "<text x=\"\(fmt(x0 + w / 2))\" y=\"\(fmt(y0 + h + 34))\" font-size=\"12\" text-anchor=\"middle\">confidence</text>\n"
    s += "<text x=\"16\" y=\"\(fmt(y0 + h / 2))\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(fmt(y0 + h / 2)))\">accuracy</text>\n"
    s += "<text x=\"16\" y=\"\(fmt(Self.countTop + Self.countHeight / 2))\" font-size=\"12\" text-anchor=\"middle\" "
    s += "transform=\"rotate(-90 16 \(fmt(Self.countTop + Self.countHeight / 2)))\">count</text>\n"
    s += "<text x=\"\(fmt(x0 - 6))\" y=\"\(fmt(Self.countTop + 10))\" font-size=\"11\" text-anchor=\"end\">\(maxCount)</text>\n"
    s += "<text x=\"\(fmt(x0 - 6))\" y=\"\(fmt(Self.countTop + Self.countHeight))\" font-size=\"11\" text-anchor=\"end\">0</text>\n"

    for (k, method) in methods.enumerated() {
      let color = Self.colors[k % Self.colors.count]
      let name = escapeHTML(method.name)
      for (i, bin) in method.bins.enumerated() where bin.count > 0 {
        let x = x0 + Double(i) * binWidth + Double(k) * barWidth
        let range = "(\(fmt(Double(i) / Double(b))), \(fmt(Double(i + 1) / Double(b)))]"
        let tip = "<title>\(name), confidence \(range): \(bin.count) examples, mean confidence \(fmt(bin.confidence)), accuracy \(fmt(bin.accuracy))</title>"
        let height = bin.accuracy * h
        s += "<rect class=\"accuracy-bar\" data-method=\"\(k)\" data-bin=\"\(i)\" x=\"\(fmt(x))\" y=\"\(fmt(y0 + h - height))\" "
        s += "width=\"\(fmt(barWidth))\" height=\"\(fmt(height))\" fill=\"\(color)\" fill-opacity=\"0.75\">\(tip)</rect>\n"
        let countHeight = Double(bin.count) / Double(maxCount) * Self.countHeight
        s += "<rect class=\"count-bar\" data-method=\"\(k)\" data-bin=\"\(i)\" x=\"\(fmt(x))\" y=\"\(fmt(Self.countTop + Self.countHeight - countHeight))\" "
        s += "width=\"\(fmt(barWidth))\" height=\"\(fmt(countHeight))\" fill=\"\(color)\" fill-opacity=\"0.75\">\(tip)</rect>\n"
        s += "<text class=\"count\" x=\"\(fmt(x + barWidth / 2))\" y=\"\(fmt(Self.countTop + Self.countHeight - countHeight - 2))\" "
        s += "font-size=\"8\" text-anchor=\"middle\">\(bin.count)</text>\n"
      }
      // Legend.
      let ly = y0 - 22, lx = x0 + Double(k) * 150
      s += "<rect x=\"\(fmt(lx))\" y=\"\(fmt(ly))\" width=\"12\" height=\"12\" fill=\"\(color)\" fill-opacity=\"0.75\"/>\n"
      s += "<text x=\"\(fmt(lx + 16))\" y=\"\(fmt(ly + 10))\" font-size=\"12\">\(name)</text>\n"
    }
    let lx = x0 + Double(methods.count) * 150
    s += "<line x1=\"\(fmt(lx))\" y1=\"\(fmt(y0 - 16))\" x2=\"\(fmt(lx + 12))\" y2=\"\(fmt(y0 - 16))\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n"
    s += "<text x=\"\(fmt(lx + 16))\" y=\"\(fmt(y0 - 12))\" font-size=\"12\">perfect calibration</text>\n"
    s += "<line class=\"diagonal\" x1=\"\(fmt(x0))\" y1=\"\(fmt(y0 + h))\" x2=\"\(fmt(x0 + w))\" y2=\"\(fmt(y0))\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n"
    s += "</svg>"
    return s
  }

  /// The bins as numbers: count, mean confidence and accuracy per method.
  func binTable() -> String {
    let b = binCount
    var s = "<table>\n<tr><th>confidence bin</th>"
    for method in methods { s += "<th>\(escapeHTML(method.name)): n</th><th>confidence</th><th>accuracy</th>" }
    s += "</tr>\n"
    for i in 0..<b where methods.contains(where: { i < $0.bins.count && $0.bins[i].count > 0 }) {
      s += "<tr><td>(\(fmt(Double(i) / Double(b))), \(fmt(Double(i + 1) / Double(b)))]</td>"
      for method in methods {
        if i < method.bins.count, method.bins[i].count > 0 {
          let bin = method.bins[i]
          s += "<td>\(bin.count)</td><td>\(fmt(bin.confidence))</td><td>\(fmt(bin.accuracy))</td>"
        } else {
          s += "<td>0</td><td></td><td></td>"
        }
      }
      s += "</tr>\n"
    }
    s += "</table>\n"
    return s
  }
}

/// `text` with the characters HTML gives meaning to replaced by entities (safe in element
/// content and in quoted attribute values).
func escapeHTML(_ text: String) -> String {
  var out = ""
  out.reserveCapacity(text.utf8.count)
  for c in text {
    switch c {
    case "&": out += "&amp;"
    case "<": out += "&lt;"
    case ">": out += "&gt;"
    case "\"": out += "&quot;"
    case "'": out += "&#39;"
    default: out.append(c)
    }
  }
  return out
}

/// A positive quantity spanning many orders of magnitude: fixed-point in [1e−3, 1e6), else
/// scientific.
func number(_ x: Double) -> String {
  abs(x) >= 1e-3 && abs(x) < 1e6 ? fmt(x) : sci(x)
}

/// Writes `text` (UTF-8) to `path` atomically (see `writeFileAtomically`).
func writeAtomically(_ text: String, to path: String) throws(BDLError) {
  try writeFileAtomically(Array(text.utf8), to: path)
}
