import BDLCore

/// Part 7 of the demo in the HTML report: test accuracy against sparsity, one SVG line chart per
/// architecture (color: criterion; solid: SpaM, dashed: MAP), and the numbers behind it.
struct PruningReport {
  var seeds: Int
  var curves: [SpaMExperiment.Curve]

  static let colors: [PruningCriterion: String] = [.opd: "#d95f02", .obd: "#7570b3", .magnitude: "#1b9e77", .random: "#999999"]
  static let left = 56.0, top = 40.0, width = 520.0, height = 300.0
  /// The tables under each chart: the whole curve of each metric.
  static let metrics: [(String, @Sendable (SparsityCurve.Point) -> Double)] = [
    ("test accuracy (%)", { 100 * $0.accuracy }), ("mean test NLL", { $0.meanNegativeLogLikelihood }),
    ("ECE (15 bins)", { $0.expectedCalibrationError }),
  ]

  func html() -> String {
    var out = "<h2>Pruning: SpaM against MAP</h2>\n"
    out += "<p>Each network trained twice with the same recipe (\(SpaMExperiment.epochs) epochs): by MAP with a hand-picked "
    out += "δ = \(number(SpaMExperiment.mapPriorPrecision)), and by the evidence with one δ per parameter (SpaM). Then pruned "
    out += "without fine-tuning to each sparsity (the weights with the smallest scores removed, globally) by optimal posterior "
    out += "damage (OPD, P_ii·θ_i²), optimal brain damage (OBD), magnitude and random scores. Means over \(seeds) seeds.</p>\n"
    for architecture in SpaMExperiment.Architecture.allCases {
      let lines = curves.filter { $0.architecture == architecture }
      guard !lines.isEmpty else { continue }
      out += "<h3>\(escapeHTML(architecture.rawValue))</h3>\n" + chart(lines, title: architecture.rawValue) + "\n"
      for (metric, value) in Self.metrics {
        out += "<table>\n<tr><th>\(metric)</th>"
        for p in lines[0].points { out += "<th>\(fmt(100 * p.sparsity).prefix(4))%</th>" }
        out += "</tr>\n"
        for line in lines {
          out += "<tr><td>\(escapeHTML(line.label))</td>"
          for p in line.points { out += "<td>\(fmt(value(p)).prefix(6))</td>" }
          out += "</tr>\n"
        }
        out += "</table>\n"
      }
    }
    return out
  }

  /// Accuracy (0–1) against the sparsities, which are placed at equal spacing (the paper's grid
  /// crowds at the high end, where the curves differ).
  func chart(_ lines: [SpaMExperiment.Curve], title: String) -> String {
    let (x0, y0, w, h) = (Self.left, Self.top, Self.width, Self.height)
    let n = lines[0].points.count
    func x(_ i: Int) -> Double { x0 + (n > 1 ? Double(i) / Double(n - 1) : 0.5) * w }
    func y(_ accuracy: Double) -> Double { y0 + h - min(max(accuracy, 0), 1) * h }
    var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(fmt(x0 + w + 170))\" height=\"\(fmt(y0 + h + 50))\" "
    s += "role=\"img\" aria-label=\"test accuracy against sparsity, \(escapeHTML(title))\">\n"
    s += "<rect x=\"\(fmt(x0))\" y=\"\(fmt(y0))\" width=\"\(fmt(w))\" height=\"\(fmt(h))\" fill=\"none\" stroke=\"#888\"/>\n"
    for tick in 0...5 {
      let v = Double(tick) / 5
      s += "<line x1=\"\(fmt(x0))\" y1=\"\(fmt(y(v)))\" x2=\"\(fmt(x0 + w))\" y2=\"\(fmt(y(v)))\" stroke=\"#eee\"/>\n"
      s += "<text x=\"\(fmt(x0 - 6))\" y=\"\(fmt(y(v) + 4))\" font-size=\"11\" text-anchor=\"end\">\(fmt(v).prefix(3))</text>\n"
    }
    for (i, p) in lines[0].points.enumerated() {
      s += "<text x=\"\(fmt(x(i)))\" y=\"\(fmt(y0 + h + 16))\" font-size=\"11\" text-anchor=\"middle\">\(fmt(100 * p.sparsity).prefix(4))%</text>\n"
    }
    s += "<text x=\"\(fmt(x0 + w / 2))\" y=\"\(fmt(y0 + h + 36))\" font-size=\"12\" text-anchor=\"middle\">sparsity (weights removed)</text>\n"
    s += "<text x=\"16\" y=\"\(fmt(y0 + h / 2))\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(fmt(y0 + h / 2)))\">test accuracy</text>\n"
    for (k, line) in lines.enumerated() {
      let color = Self.colors[line.criterion] ?? "#333"
      let dash = line.training == "MAP" ? " stroke-dasharray=\"5 3\"" : ""
      let points = line.points.enumerated().map { "\(fmt(x($0.offset))),\(fmt(y($0.element.accuracy)))" }.joined(separator: " ")
      s += "<polyline class=\"curve\" data-label=\"\(escapeHTML(line.label))\" points=\"\(points)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)>"
      s += "<title>\(escapeHTML(line.label))</title></polyline>\n"
      let ly = y0 + Double(k) * 18
      s += "<line x1=\"\(fmt(x0 + w + 12))\" y1=\"\(fmt(ly + 6))\" x2=\"\(fmt(x0 + w + 36))\" y2=\"\(fmt(ly + 6))\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>\n"
      s += "<text x=\"\(fmt(x0 + w + 40))\" y=\"\(fmt(ly + 10))\" font-size=\"12\">\(escapeHTML(line.label))</text>\n"
    }
    return s + "</svg>"
  }
}

extension Demo {
  /// 7. SpaM against MAP: sparsity curves of the digits MLP and a small CNN, in the report.
  static func pruning(_ data: DigitsClassification, seeds: Int = 3) throws(BDLError) -> PruningReport {
    print("\n7. Pruning: SpaM (evidence-trained, per-parameter prior) against MAP, \(seeds) seeds, no fine-tuning")
    var curves: [SpaMExperiment.Curve] = []
    for architecture in SpaMExperiment.Architecture.allCases {
      let clock = MonotonicClock()
      let lines = try SpaMExperiment.run(architecture, data: data, seeds: (0..<seeds).map(UInt64.init))
      print("  \(architecture.rawValue) (\(fmt(clock.seconds)) s): test accuracy at sparsity " + SparsityCurve.paperSparsities.map { "\(fmt(100 * $0).prefix(4))%" }.joined(separator: " "))
      for line in lines {
        print("    \(pad(line.label, 18))" + line.points.map { pad(String(fmt(100 * $0.accuracy).prefix(4)), 5) }.joined(separator: " "))
      }
      curves += lines
    }
    return PruningReport(seeds: seeds, curves: curves)
  }
}
