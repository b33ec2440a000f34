import BDLCore
import Testing
@testable import bdl

@Suite("Demo influence report and query selection")
struct InfluenceReportTests {
  /// Pixel i of the ramp image is i/63: white (0) at the top left to black (1) at the bottom right.
  static let ramp = (0..<64).map { Double($0) / 63 }

  static func image(_ index: Int, label: Int, score: Double) -> InfluenceReport.TrainingImage {
    InfluenceReport.TrainingImage(index: index, label: label, score: score, pixels: ramp)
  }

  /// Two misclassified queries with 5 helpful and 5 harmful training images each, and two LDS rows.
  static func report(queries count: Int = 2) -> InfluenceReport {
    let queries = (0..<count).map { q in
      InfluenceReport.Query(
        testIndex: 10 * q + 7, label: 3, predicted: 8, pixels: ramp,
        helpful: (0..<5).map { image(100 + $0, label: 3, score: 2.5 - Double($0) * 0.5) },
        harmful: (0..<5).map { image(200 + $0, label: 8, score: -1.25 + Double($0) * 0.25) })
    }
    return InfluenceReport(
      context: ["curvature <EK-FAC> & \"damping\""], misclassifiedCount: 13, testCount: 359, queries: queries,
      subsets: 40, fraction: 0.5, ldsQueryCount: 16,
      scores: [
        .init(method: "EK-FAC <x>", perQuery: [0.5, .nan, 0.75], mean: 0.625),
        .init(method: "identity", perQuery: [.nan, .nan], mean: .nan),
      ])
  }

  static func count(_ needle: String, in text: String) -> Int { text.ranges(of: needle).count }

  @Test("pixel values map to gray levels: 0 white, 1 black, clamped, rounded")
  func grayLevels() {
    #expect(InfluenceReport.grayLevel(0) == 255)
    #expect(InfluenceReport.grayLevel(1) == 0)
    #expect(InfluenceReport.grayLevel(0.5) == 128)  // 127.5 rounds up
    #expect(InfluenceReport.grayLevel(0.25) == 191)  // 191.25
    #expect(InfluenceReport.grayLevel(-3) == 255 && InfluenceReport.grayLevel(7) == 0)
    #expect(InfluenceReport.grayLevel(.nan) == 255)
    #expect(InfluenceReport.grayColor(255) == "#ffffff")
    #expect(InfluenceReport.grayColor(0) == "#000000")
    #expect(InfluenceReport.grayColor(128) == "#808080")
    #expect(InfluenceReport.grayColor(191) == "#bfbfbf")
  }

  @Test("an 8×8 image is 64 rects, row by row, with the gray of each pixel")
  func imageGrid() {
    let svg = InfluenceReport.imageSVG(Self.ramp, cell: 6, title: "ramp")
    #expect(svg.hasPrefix("<svg ") && svg.hasSuffix("</svg>"))
    #expect(svg.contains("width=\"48.0000\" height=\"48.0000\" viewBox=\"0 0 48.0000 48.0000\""))
    let rects = DemoReportTests.elements(svg, tag: "rect", className: "pixel")
    #expect(rects.count == 64)
    #expect(Self.count("<rect", in: svg) == 64)
    for (i, rect) in rects.enumerated() {
      let level = Int((255 * (1 - Double(i) / 63)).rounded())
      let hex = String(level, radix: 16)
      let pair = hex.count == 1 ? "0" + hex : hex
      #expect(rect["fill"] == "#" + pair + pair + pair, "pixel \(i): \(rect)")
      #expect(rect["x"] == fmt(Double(i % 8) * 6) && rect["y"] == fmt(Double(i / 8) * 6), "pixel \(i)")
      #expect(rect["width"] == "6.0000" && rect["height"] == "6.0000")
    }
    #expect(rects.first?["fill"] == "#ffffff" && rects.last?["fill"] == "#000000")
    // A pixel row of a digit: background, half ink, full ink.
    var row = [Double](repeating: 0, count: 64)
    row[1] = 0.5
    row[2] = 1
    let fills = DemoReportTests.elements(InfluenceReport.imageSVG(row, cell: 1, title: ""), tag: "rect", className: "pixel").map { $0["fill"] ?? "" }
    #expect(Array(fills.prefix(3)) == ["#ffffff", "#808080", "#000000"])
    #expect(fills.dropFirst(3).allSatisfy { $0 == "#ffffff" })
  }

  @Test("captions and all other text are escaped")
  func escaping() {
    let figure = InfluenceReport.figure(Self.ramp, cell: 6, caption: "label <3> & \"8\"", className: "helpful")
    #expect(figure.contains("<figcaption>label &lt;3&gt; &amp; &quot;8&quot;</figcaption>"))
    #expect(figure.contains("<title>label &lt;3&gt; &amp; &quot;8&quot;</title>"))
    #expect(figure.contains("aria-label=\"label &lt;3&gt; &amp; &quot;8&quot;\""))
    #expect(!figure.contains("<3>") && !figure.contains("\"8\""))
    let html = Self.report().html()
    #expect(html.contains("curvature &lt;EK-FAC&gt; &amp; &quot;damping&quot;"))
    #expect(html.contains("<td>EK-FAC &lt;x&gt;</td>"))
    for raw in ["<EK-FAC>", "<x>", "\"damping\""] { #expect(!html.contains(raw), "\(raw)") }
    #expect(InfluenceReport.caption(Self.image(42, label: 7, score: -0.0123)) == "training #42, label 7, τ = -1.23e-02")
  }

  @Test("the fragment: one section, per query the query image and 5 helpful and 5 harmful images, the LDS table")
  func fragment() {
    let report = Self.report()
    let html = report.html()
    #expect(html.hasPrefix("<section class=\"influence\">") && html.hasSuffix("</section>\n"))
    #expect(Self.count("<div class=\"query\"", in: html) == 2)
    #expect(html.contains("data-test=\"7\"") && html.contains("data-test=\"17\""))
    #expect(html.contains("<h3>test #7: label 3, predicted 8</h3>"))
    #expect(Self.count("class=\"digit query-image\"", in: html) == 2)
    #expect(Self.count("class=\"digit helpful\"", in: html) == 10)
    #expect(Self.count("class=\"digit harmful\"", in: html) == 10)
    #expect(Self.count("<svg", in: html) == 22 && Self.count("</svg>", in: html) == 22)
    #expect(Self.count("<rect class=\"pixel\"", in: html) == 22 * 64)
    // The query image is drawn larger than the training images.
    #expect(Self.count("width=\"80.0000\"", in: html) == 2)
    // Helpful before harmful within a query, the helpful in the given (descending) order.
    let first = html.ranges(of: "training #100").first!.lowerBound, harmful = html.ranges(of: "training #200").first!.lowerBound
    #expect(first < harmful)
    #expect(html.contains("τ = 2.50e+00") && html.contains("τ = -1.25e+00"))
    #expect(html.contains("13 of 359 test images are misclassified; the first 2:"))
    // LDS: mean and range over defined queries; an undefined mean says so.
    #expect(html.contains("<td>EK-FAC &lt;x&gt;</td><td>0.6250</td><td>0.5000</td><td>0.7500</td><td>2</td>"))
    #expect(html.contains("<td>identity</td><td>undefined</td><td></td><td></td><td>0</td>"))
    #expect(html.contains("40 networks retrained") && html.contains("(16 test images)"))
    for tag in ["section", "div", "figure", "figcaption", "svg", "title", "table", "tr", "p", "h2", "h3", "span"] {
      let opened = Self.count("<\(tag)>", in: html) + Self.count("<\(tag) ", in: html)
      #expect(opened == Self.count("</\(tag)>", in: html), "<\(tag)>: \(opened) opened")
    }
    for line in html.split(separator: "\n") where line.contains("<rect") { #expect(line.hasSuffix("/>"), "\(line)") }
    for needle in ["<script", "src=", "href=", "<link"] { #expect(!html.lowercased().contains(needle), "\(needle)") }
  }

  @Test("no misclassified image: the fragment says so and still shows the LDS")
  func noQueries() {
    var report = Self.report(queries: 0)
    report.misclassifiedCount = 0
    let html = report.html()
    #expect(html.contains("0 of 359 test images are misclassified.</p>"))
    #expect(!html.contains("<div class=\"query\"") && !html.contains("<svg"))
    #expect(html.contains("<table class=\"lds\">"))
  }

  @Test("the calibration page embeds the fragment and its CSS once, and stays balanced")
  func page() throws {
    var calibration = try DemoReportTests.report()
    #expect(!calibration.html().contains("influence"))
    calibration.influence = Self.report()
    let html = calibration.html()
    #expect(Self.count("<section class=\"influence\">", in: html) == 1)
    #expect(Self.count("figure.digit {", in: html) == 1)
    #expect(html.ranges(of: "figure.digit {").first!.lowerBound < html.ranges(of: "</style>").first!.lowerBound)
    #expect(html.ranges(of: "</section>").first!.lowerBound < html.ranges(of: "</body>").first!.lowerBound)
    for tag in ["html", "head", "body", "style", "section", "svg", "title", "table", "figure"] {
      let opened = Self.count("<\(tag)>", in: html) + Self.count("<\(tag) ", in: html)
      #expect(opened == Self.count("</\(tag)>", in: html), "<\(tag)>: \(opened) opened")
    }
  }

  @Test("predictions are row argmaxes, ties to the lower class")
  func predictions() {
    let outputs: [Double] = [0.1, 0.7, 0.2, 5, 5, -1, -2, -3, -1.5]
    #expect(InfluenceQueries.predictedClasses(outputs, classes: 3) == [1, 0, 2])
    #expect(InfluenceQueries.predictedClasses([], classes: 3).isEmpty)
  }

  @Test("the queries are the misclassified test images in index order, then the first others")
  func querySelection() {
    let labels = [0, 1, 2, 3, 4, 5, 6, 7]
    let predicted = [0, 2, 2, 3, 1, 5, 0, 7]
    let wrong = InfluenceQueries.misclassified(predicted: predicted, labels: labels)
    #expect(wrong == [1, 4, 6])
    #expect(wrong.allSatisfy { predicted[$0] != labels[$0] })
    // Shown: the first 2; evaluation set of 5: those, then 0, 2, 3.
    let shown = Array(wrong.prefix(2))
    #expect(InfluenceQueries.evaluationSet(first: shown, count: 5, available: labels.count) == [1, 4, 0, 2, 3])
    // Fewer available than asked: all of them, no repeats.
    #expect(InfluenceQueries.evaluationSet(first: wrong, count: 20, available: labels.count) == [1, 4, 6, 0, 2, 3, 5, 7])
    // Nothing misclassified: the first test images; the demo shows none.
    #expect(InfluenceQueries.misclassified(predicted: labels, labels: labels).isEmpty)
    #expect(InfluenceQueries.evaluationSet(first: [], count: 3, available: labels.count) == [0, 1, 2])
    #expect(InfluenceQueries.evaluationSet(first: [5, 6], count: 1, available: labels.count) == [5])
  }

  @Test("on the demo network, every selected query is misclassified by it")
  func demoNetworkSelection() throws {
    // An untrained network on random inputs misclassifies most of them.
    let model = try DigitsClassification.network(seed: 1)
    var random = RandomSource(seed: 2)
    let x = try Tensor(shape: [30, 64], elements: (0..<(30 * 64)).map { _ in Double(random.next() % 17) / 16 })
    let labels = (0..<30).map { $0 % 10 }
    let predicted = InfluenceQueries.predictedClasses(try model.forward(x).elements, classes: 10)
    let wrong = InfluenceQueries.misclassified(predicted: predicted, labels: labels)
    #expect(wrong.count >= 3)
    #expect(wrong == wrong.sorted())
    for i in wrong { #expect(predicted[i] != labels[i]) }
    for i in 0..<30 where !wrong.contains(i) { #expect(predicted[i] == labels[i]) }
  }
}
