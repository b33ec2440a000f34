import BDLCore
import Testing
@testable import bdl

#if canImport(Glibc)
import Glibc
#endif

@Suite("Demo calibration report")
struct DemoReportTests {
  /// Two predictives over 4 bins of four-class probabilities:
  /// "MAP <&>": (0.25, 0.5] 2 examples, 1 right; (0.5, 0.75] 3 examples, 2 right.
  /// "Laplace": (0, 0.25] 1 wrong (a four-way tie read as class 0); (0.5, 0.75] 2 right;
  /// (0.75, 1] 5 examples, 4 right.
  static func report() throws -> CalibrationReport {
    let map = try Matrix([
      [0.4, 0.2, 0.2, 0.2], [0.5, 0.5, 0, 0],
      [0.7, 0.1, 0.1, 0.1], [0.7, 0.1, 0.1, 0.1], [0.7, 0.1, 0.1, 0.1],
    ])
    let laplace = try Matrix([
      [0.25, 0.25, 0.25, 0.25],
      [0.6, 0.2, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1],
      [0.9, 0.1, 0, 0], [0.9, 0.1, 0, 0], [0.9, 0.1, 0, 0], [0.9, 0.1, 0, 0], [0.9, 0.1, 0, 0],
    ])
    func method(_ name: String, _ p: Matrix, _ labels: [Int]) throws -> CalibrationReport.Method {
      CalibrationReport.Method(
        name: name, accuracy: try CalibrationMetrics.accuracy(p, labels: labels),
        negativeLogLikelihood: try CalibrationMetrics.negativeLogLikelihood(p, labels: labels),
        brierScore: try CalibrationMetrics.brierScore(p, labels: labels),
        expectedCalibrationError: try CalibrationMetrics.expectedCalibrationError(p, labels: labels, bins: 4),
        bins: try CalibrationMetrics.reliability(p, labels: labels, bins: 4))
    }
    return CalibrationReport(
      title: "Report <&> \"title\"", context: ["a < b & c > d"],
      defaultPriorPrecision: 1, defaultLogEvidence: -1234.5, optimizedLogEvidence: -1000.25,
      priors: [
        .init(name: "layer 0 weight <W>", size: 6, precision: 12.5),
        .init(name: "layer 0 bias", size: 2, precision: 3e-7),
      ],
      iterations: 7, gradientNorm: 1.5e-9, converged: true, testCount: 5,
      methods: [
        try method("MAP <&>", map, [0, 1, 0, 0, 1]),
        try method("Laplace", laplace, [3, 0, 0, 0, 0, 0, 0, 1]),
      ])
  }

  /// The elements `<tag class="name" …>` of `html` as attribute dictionaries.
  static func elements(_ html: String, tag: String, className: String) -> [[String: String]] {
    func trimmed(_ s: Substring, _ characters: Set<Character>) -> String {
      String(s.drop { characters.contains($0) }.reversed().drop { characters.contains($0) }.reversed())
    }
    return html.split(separator: "<\(tag) class=\"\(className)\"").dropFirst().map { rest in
      let body = rest.prefix { $0 != ">" }
      var attributes: [String: String] = [:]
      for part in body.split(separator: "\" ") {
        let pair = part.split(separator: "=", maxSplits: 1)
        guard pair.count == 2 else { continue }
        attributes[trimmed(pair[0], [" "])] = trimmed(pair[1], ["\"", "/", " "])
      }
      return attributes
    }
  }

  static func count(_ needle: String, in text: String) -> Int {
    text.ranges(of: needle).count
  }

  @Test("one accuracy bar and one count bar per non-empty bin and method, with heights accuracy·H and count/max·H")
  func bars() throws {
    let html = try Self.report().html()
    let h = CalibrationReport.plotHeight, bottom = CalibrationReport.plotTop + CalibrationReport.plotHeight
    // (method, bin) → accuracy and count.
    let expected: [String: (accuracy: Double, count: Int)] = [
      "0,1": (0.5, 2), "0,2": (2.0 / 3, 3), "1,0": (0, 1), "1,2": (1, 2), "1,3": (0.8, 5),
    ]
    let accuracyBars = Self.elements(html, tag: "rect", className: "accuracy-bar")
    let countBars = Self.elements(html, tag: "rect", className: "count-bar")
    #expect(accuracyBars.count == expected.count)
    #expect(countBars.count == expected.count)
    let binWidth = CalibrationReport.plotWidth / 4, barWidth = binWidth / 2
    for bar in accuracyBars {
      let key = "\(bar["data-method"] ?? "?"),\(bar["data-bin"] ?? "?")"
      guard let want = expected[key], let height = Double(bar["height"] ?? ""), let y = Double(bar["y"] ?? ""),
        let x = Double(bar["x"] ?? ""), let width = Double(bar["width"] ?? "")
      else {
        Issue.record("unexpected accuracy bar \(bar)")
        continue
      }
      #expect(abs(height - want.accuracy * h) < 1e-4, "bar \(key): height \(height)")
      #expect(abs(y + height - bottom) < 1e-4, "bar \(key) stands on the axis")
      let (method, bin) = (Double(bar["data-method"]!)!, Double(bar["data-bin"]!)!)
      #expect(abs(x - (CalibrationReport.plotLeft + bin * binWidth + method * barWidth)) < 1e-4)
      #expect(abs(width - barWidth) < 1e-4)
    }
    // The tallest count bar (5 examples) fills the panel.
    for bar in countBars {
      let key = "\(bar["data-method"] ?? "?"),\(bar["data-bin"] ?? "?")"
      guard let want = expected[key], let height = Double(bar["height"] ?? "") else {
        Issue.record("unexpected count bar \(bar)")
        continue
      }
      #expect(abs(height - Double(want.count) / 5 * CalibrationReport.countHeight) < 1e-4, "count bar \(key): height \(height)")
    }
    // Heights spelled out: 0.5·320, (2/3)·320, 0, 320, 0.8·320.
    for height in ["160.0000", "213.3333", "0.0000", "320.0000", "256.0000"] {
      #expect(html.contains("height=\"\(height)\""), "height \(height)")
    }
    #expect(html.contains("class=\"diagonal\""))
  }

  @Test("text is escaped: no raw <&> from the data reaches the page")
  func escaping() throws {
    let html = try Self.report().html()
    #expect(html.contains("MAP &lt;&amp;&gt;"))
    #expect(html.contains("Report &lt;&amp;&gt; &quot;title&quot;"))
    #expect(html.contains("a &lt; b &amp; c &gt; d"))
    #expect(html.contains("layer 0 weight &lt;W&gt;"))
    for raw in ["MAP <&>", "<W>", "a < b", "\"title\""] { #expect(!html.contains(raw), "\(raw)") }
    #expect(escapeHTML("<a href='x'>\"&amp;\"</a>") == "&lt;a href=&#39;x&#39;&gt;&quot;&amp;amp;&quot;&lt;/a&gt;")
    #expect(escapeHTML("δ ≥ 1 → ok") == "δ ≥ 1 → ok")
  }

  @Test("the page is self-contained and balanced, and shows the evidence, δ values and metrics")
  func structure() throws {
    let report = try Self.report()
    let html = report.html()
    #expect(html.hasPrefix("<!DOCTYPE html>"))
    #expect(Self.count("<svg", in: html) == 1 && Self.count("</svg>", in: html) == 1)
    #expect(html.ranges(of: "<svg").first!.lowerBound < html.ranges(of: "</svg>").first!.lowerBound)
    for tag in ["html", "head", "body", "table", "tr", "title", "text", "p", "h1", "h2", "style"] {
      let opened = Self.count("<\(tag)>", in: html) + Self.count("<\(tag) ", in: html)
      #expect(opened == Self.count("</\(tag)>", in: html), "<\(tag)>: \(opened) opened")
    }
    // Every rect (one per line) is either self-closing or closed on its line.
    for line in html.split(separator: "\n") where line.contains("<rect") {
      #expect(line.hasSuffix("/>") || line.hasSuffix("</rect>"), "\(line)")
    }
    // Nothing to run or fetch.
    for needle in ["<script", "src=", "href=", "<link", "<iframe"] { #expect(!html.lowercased().contains(needle), "\(needle)") }
    for text in ["-1234.5000", "-1000.2500", "12.5000", "3.00e-07", "1.50e-09", "7 Newton iterations"] {
      #expect(html.contains(text), "\(text)")
    }
    let map = report.methods[0]
    #expect(map.accuracy == 0.6)
    #expect(html.contains("60.0000%"))
    #expect(html.contains(fmt(map.expectedCalibrationError)))
  }

  @Test("the demo network's parameter tensors are named in parameter order")
  func tensorNames() throws {
    let model = try DigitsClassification.network()
    let names = Demo.tensorNames(model, sizes: [8192, 128, 1280, 10])
    #expect(names == ["layer 0 weight (128 × 64)", "layer 0 bias (128)", "layer 2 weight (10 × 128)", "layer 2 bias (10)"])
    #expect(Demo.tensorNames(model, sizes: [1280, 10]) == ["tensor 0 (1280)", "tensor 1 (10)"])
  }

  @Test("the report is written atomically: the whole text, no temporary file left")
  func atomicWrite() throws {
    let directory = temporaryDirectory()
    let path = directory + "/report.html"
    try writeAtomically("old", to: path)
    try writeAtomically("<p>new</p>\n", to: path)
    let bytes = try readText(path)
    #expect(bytes == "<p>new</p>\n")
    #expect(access(path + ".tmp-\(getpid())", F_OK) != 0)
    #expect(throws: BDLError.self) { try writeAtomically("x", to: directory + "/missing/report.html") }
    unlink(path)
    rmdir(directory)
  }
}

/// A small text file's contents.
private func readText(_ path: String) throws -> String {
  guard let file = fopen(path, "rb") else { throw BDLError.ioError("cannot open \(path)") }
  defer { fclose(file) }
  var bytes: [UInt8] = []
  var buffer = [UInt8](repeating: 0, count: 4096)
  while true {
    let n = fread(&buffer, 1, buffer.count, file)
    bytes += buffer[0..<n]
    if n < buffer.count { break }
  }
  return String(decoding: bytes, as: UTF8.self)
}
