import BDLCore
import Testing
@testable import bdl

@Suite("Demo model-selection and pruning reports")
struct PruningReportTests {
  static func curves() -> [SpaMExperiment.Curve] {
    var curves: [SpaMExperiment.Curve] = []
    for training in ["MAP", "SpaM"] {
      for (k, criterion) in SpaMExperiment.criteria.enumerated() {
        let points = SparsityCurve.paperSparsities.map {
          SparsityCurve.Point(sparsity: $0, accuracy: 1 - $0 * Double(k + 1) / 4, meanNegativeLogLikelihood: 0.5, expectedCalibrationError: 0.1)
        }
        curves.append(.init(architecture: .mlp, training: training, criterion: criterion, points: points))
      }
    }
    return curves
  }

  @Test("one polyline per curve, MAP dashed, points at the accuracies; tables hold every value")
  func chart() {
    let html = PruningReport(seeds: 3, curves: Self.curves()).html()
    #expect(html.ranges(of: "<polyline class=\"curve\"").count == 8)
    #expect(html.ranges(of: "stroke-dasharray=\"5 3\"").count == 8)  // 4 MAP lines + 4 legend marks
    #expect(html.contains("data-label=\"SpaM + opd\"") && html.contains("data-label=\"MAP + magnitude\""))
    // Accuracy 1 − 0.2·1/4 = 0.95 at the first sparsity of the first curve: y = top + h·(1 − 0.95).
    let y = PruningReport.top + PruningReport.height * 0.05
    #expect(html.contains("\(fmt(PruningReport.left)),\(fmt(y))"))
    #expect(html.contains("<h3>MLP 64-128-10</h3>") && !html.contains("<h3>CNN"))
    #expect(html.ranges(of: "<svg").count == 1 && html.ranges(of: "</svg>").count == 1)
    // The whole curve of every metric: 8 lines × 10 sparsities of NLL 0.5 and ECE 0.1.
    #expect(html.contains("<th>mean test NLL</th>") && html.contains("<th>ECE (15 bins)</th>"))
    #expect(html.ranges(of: "<td>0.5000</td>").count == 80 && html.ranges(of: "<td>0.1000</td>").count == 80)
  }

  @Test("the model-selection section lists the rows, learned priors and both equivariance tasks, escaped")
  func modelSelection() {
    let report = ModelSelectionReport(
      mapPriorPrecision: 1e-4, epochs: 30, learned: [("layer <0> weight", 2.5)], logEvidence: -600,
      rows: [.init(name: "MAP & co", accuracy: 0.96, negativeLogLikelihood: 0.11, brierScore: 0.05, expectedCalibrationError: 0.02, bins: [])],
      equivariance: [
        .init(task: .shape, priorPrecision: [0.03, 1, 2.5, 1, 1, 1], trainAccuracy: 0.9, testAccuracy: 0.85, logMarginalLikelihood: -1),
        .init(task: .position, priorPrecision: [30, 1, 0.1, 1, 1, 1], trainAccuracy: 1, testAccuracy: 0.99, logMarginalLikelihood: -1),
      ])
    let html = report.html()
    #expect(html.contains("MAP &amp; co") && html.contains("layer &lt;0&gt; weight"))
    #expect(html.contains("<td>shape</td><td>0.0300</td><td>2.5000</td>") && html.contains("<td>position</td><td>30.0000</td><td>0.1000</td>"))
  }
}
