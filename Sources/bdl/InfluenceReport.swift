/// The influence part of the demo's report: for a few misclassified test images, the training
/// images whose removal would change the image's loss most, and how well two curvatures' scores
/// predict retraining (the linear datamodeling score). Everything in it is measured by the demo;
/// `html` only lays it out, as a fragment of the calibration report's page.
struct InfluenceReport {
  /// One training image and its influence score on a query.
  struct TrainingImage {
    let index: Int
    let label: Int
    let score: Double
    /// The 8×8 pixels in [0, 1] (1 = ink), row by row.
    let pixels: [Double]
  }

  /// One misclassified test image with its most helpful and most harmful training images.
  struct Query {
    let testIndex: Int
    let label: Int
    let predicted: Int
    let pixels: [Double]
    let helpful: [TrainingImage]
    let harmful: [TrainingImage]
  }

  /// One method's linear datamodeling score.
  struct DatamodelingScore {
    let method: String
    /// Per query Spearman ρ (NaN where undefined).
    let perQuery: [Double]
    let mean: Double
  }

  /// Lines of context (curvature, damping, sign), shown as given.
  var context: [String]
  /// The test images misclassified in all, and the test split's size.
  var misclassifiedCount: Int
  var testCount: Int
  var queries: [Query]
  /// The LDS protocol: subsets, fraction kept, queries compared.
  var subsets: Int
  var fraction: Double
  var ldsQueryCount: Int
  var scores: [DatamodelingScore]

  /// Pixels per image side, and the drawn size of one pixel of a query and of a training image.
  static let side = 8
  static let queryCell = 10.0, trainingCell = 6.0

  /// The page's extra CSS for the fragment.
  static let css = """
    .influence .row { display: flex; flex-wrap: wrap; align-items: flex-end; gap: 0.5rem; margin: 0.25rem 0; }
    .influence .row-label { width: 7rem; color: #555; align-self: center; }
    figure.digit { margin: 0; text-align: center; font-size: 0.75rem; }
    figure.digit svg { border: 1px solid #ccc; display: block; margin: 0 auto 0.2rem; }
    """

  /// The gray level (0 black … 255 white) of a pixel value in [0, 1] (1 = ink, drawn black);
  /// values outside [0, 1] are clamped, NaN drawn white.
  static func grayLevel(_ value: Double) -> Int {
    guard !value.isNaN else { return 255 }
    return Int((255 * (1 - min(max(value, 0), 1))).rounded())
  }

  /// `#rrggbb` of a gray level.
  static func grayColor(_ level: Int) -> String {
    let digits = Array("0123456789abcdef")
    let l = min(max(level, 0), 255)
    let pair = String([digits[l / 16], digits[l % 16]])
    return "#" + pair + pair + pair
  }

  /// A `side × side` image as an SVG grid of rects (row by row, `cell` units each, one per
  /// line), titled `title` (escaped).
  static func imageSVG(_ pixels: [Double], cell: Double, title: String) -> String {
    let size = Double(side) * cell
    var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(fmt(size))\" height=\"\(fmt(size))\" "
    s += "viewBox=\"0 0 \(fmt(size)) \(fmt(size))\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"\(escapeHTML(title))\">"
    s += "<title>\(escapeHTML(title))</title>\n"
    for row in 0..<side {
      for column in 0..<side {
        let i = row * side + column
        let fill = grayColor(grayLevel(i < pixels.count ? pixels[i] : 0))
        s += "<rect class=\"pixel\" x=\"\(fmt(Double(column) * cell))\" y=\"\(fmt(Double(row) * cell))\" width=\"\(fmt(cell))\" height=\"\(fmt(cell))\" fill=\"\(fill)\"/>\n"
      }
    }
    s += "</svg>"
    return s
  }

  /// An image with its caption (escaped) below.
  static func figure(_ pixels: [Double], cell: Double, caption: String, className: String) -> String {
    "<figure class=\"digit \(className)\">\(imageSVG(pixels, cell: cell, title: caption))<figcaption>\(escapeHTML(caption))</figcaption></figure>"
  }

  static func caption(_ image: TrainingImage) -> String {
    "training #\(image.index), label \(image.label), τ = \(sci(image.score))"
  }

  static func caption(_ query: Query) -> String {
    "test #\(query.testIndex): label \(query.label), predicted \(query.predicted)"
  }

  /// The fragment: a `<section class="influence">`.
  func html() -> String {
    var out = "<section class=\"influence\">\n<h2>Which training images moved a prediction</h2>\n"
    for line in context { out += "<p class=\"context\">\(escapeHTML(line))</p>\n" }
    out += "<p>\(misclassifiedCount) of \(testCount) test images are misclassified"
    out += queries.isEmpty ? ".</p>\n" : "; the first \(queries.count):</p>\n"
    for query in queries {
      out += "<div class=\"query\" data-test=\"\(query.testIndex)\">\n<h3>\(escapeHTML(Self.caption(query)))</h3>\n"
      out += "<div class=\"row\">\(Self.figure(query.pixels, cell: Self.queryCell, caption: Self.caption(query), className: "query-image"))</div>\n"
      for (name, className, images) in [("most helpful", "helpful", query.helpful), ("most harmful", "harmful", query.harmful)] {
        out += "<div class=\"row\"><span class=\"row-label\">\(name)</span>"
        for image in images { out += Self.figure(image.pixels, cell: Self.trainingCell, caption: Self.caption(image), className: className) }
        out += "</div>\n"
      }
      out += "</div>\n"
    }
    out += "<h3>Linear datamodeling score</h3>\n"
    out += "<p>\(subsets) networks retrained from the demo network's initial parameters, each on a random \(fmt(fraction)) of the training set; "
    out += "per query (\(ldsQueryCount) test images) the Spearman correlation over the subsets between the retrained loss and the loss the scores predict, "
    out += "then the mean over queries (higher is better).</p>\n"
    out += "<table class=\"lds\">\n<tr><th>scores</th><th>mean LDS</th><th>lowest</th><th>highest</th><th>queries</th></tr>\n"
    for score in scores {
      let defined = score.perQuery.filter { !$0.isNaN }
      let low = defined.min().map(fmt) ?? "", high = defined.max().map(fmt) ?? ""
      out += "<tr><td>\(escapeHTML(score.method))</td><td>\(score.mean.isNaN ? "undefined" : fmt(score.mean))</td>"
      out += "<td>\(low)</td><td>\(high)</td><td>\(defined.count)</td></tr>\n"
    }
    out += "</table>\n</section>\n"
    return out
  }
}
