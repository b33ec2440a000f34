import BDLCore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Calibration metrics")
struct CalibrationMetricsTests {
  /// Four examples, three classes: predictions 0, 1, 0 (a tie of 0 and 1: the first index), 2
  /// against labels 0, 2, 1, 2 — examples 0 and 3 right.
  let p = try! Matrix([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.4, 0.4, 0.2], [0.25, 0.25, 0.5]])
  let labels = [0, 2, 1, 2]

  @Test("accuracy, NLL and Brier equal their closed forms; a tie in argmax goes to the first index")
  func closedForms() throws {
    #expect(try CalibrationMetrics.accuracy(p, labels: labels) == 0.5)
    let nll = -(log(0.7) + log(0.3) + log(0.4) + log(0.5)) / 4
    #expect(abs(try CalibrationMetrics.negativeLogLikelihood(p, labels: labels) - nll) < 1e-15)
    // Σ_c (p_c − 1[c = y])² per example: 0.09 + 0.04 + 0.01, 0.01 + 0.36 + 0.49,
    // 0.16 + 0.36 + 0.04, 0.0625 + 0.0625 + 0.25.
    let brier = (0.14 + 0.86 + 0.56 + 0.375) / 4
    #expect(abs(try CalibrationMetrics.brierScore(p, labels: labels) - brier) < 1e-14)
    // The tie [0.4, 0.4, 0.2] counts as class 0: right for label 0, wrong for label 1.
    let tie = try Matrix([[0.4, 0.4, 0.2]])
    #expect(try CalibrationMetrics.accuracy(tie, labels: [0]) == 1)
    #expect(try CalibrationMetrics.accuracy(tie, labels: [1]) == 0)
    // A label of probability 0 has infinite NLL.
    #expect(try CalibrationMetrics.negativeLogLikelihood(try Matrix([[1, 0]]), labels: [1]) == .infinity)
    // Brier's extremes: 0 for a certain right answer, 2 for a certain wrong one.
    #expect(try CalibrationMetrics.brierScore(try Matrix([[1, 0], [0, 1]]), labels: [0, 1]) == 0)
    #expect(try CalibrationMetrics.brierScore(try Matrix([[1, 0], [0, 1]]), labels: [1, 0]) == 2)
  }

  @Test("reliability and ECE by hand: a confidence of exactly 0.5 falls in (0.25, 0.5]; empty bins are zero")
  func reliabilityByHand() throws {
    // Confidences 0.7, 0.6, 0.4, 0.5 in 4 bins: (0.25, 0.5] holds examples 2 (wrong) and 3
    // (right), (0.5, 0.75] examples 0 (right) and 1 (wrong).
    let table = try CalibrationMetrics.reliability(p, labels: labels, bins: 4)
    #expect(table.map(\.count) == [0, 2, 2, 0])
    #expect(table[0] == table[3])
    #expect(table[0].confidence == 0 && table[0].accuracy == 0)
    #expect(abs(table[1].confidence - 0.45) < 1e-15 && table[1].accuracy == 0.5)
    #expect(abs(table[2].confidence - 0.65) < 1e-15 && table[2].accuracy == 0.5)
    // ECE = ½·|0.5 − 0.45| + ½·|0.5 − 0.65| = 0.1.
    #expect(abs(try CalibrationMetrics.expectedCalibrationError(p, labels: labels, bins: 4) - 0.1) < 1e-15)
    // With the default 15 bins each example is alone in its bin (0.4 and 0.6 sit on the edges
    // 6/15 and 9/15 but are not exactly representable, so which side they land on is not pinned
    // here; it does not change the ECE); the other 11 bins are empty.
    let fine = try CalibrationMetrics.reliability(p, labels: labels)
    #expect(fine.count == 15)
    #expect(fine.filter { $0.count == 1 }.count == 4 && fine.filter { $0.count == 0 }.count == 11)
    #expect(fine[7].count == 1 && fine[7].confidence == 0.5 && fine[7].accuracy == 1)
    #expect(fine[10].count == 1 && fine[10].confidence == 0.7 && fine[10].accuracy == 1)
    let ece = (0.4 + 0.5 + 0.6 + 0.3) / 4  // |0 − 0.4|, |1 − 0.5|, |0 − 0.6|, |1 − 0.7|
    #expect(abs(try CalibrationMetrics.expectedCalibrationError(p, labels: labels) - ece) < 1e-15)
    // One bin: |accuracy − mean confidence| over everything.
    #expect(abs(try CalibrationMetrics.expectedCalibrationError(p, labels: labels, bins: 1) - abs(0.5 - 0.55)) < 1e-15)
  }

  @Test("a confidence of exactly i/B falls in bin i − 1: bins are (i/B, (i+1)/B]")
  func binEdges() throws {
    let edges = try Matrix([
      [0.25, 0.25, 0.25, 0.25],  // 1/4: the first bin (and a four-way tie: class 0)
      [0.5, 0.5, 0, 0],  // 2/4
      [0.75, 0.25, 0, 0],  // 3/4
      [1, 0, 0, 0],  // 4/4: the last bin
      [0.26, 0.25, 0.25, 0.24],  // just above 1/4: the second bin
    ])
    let table = try CalibrationMetrics.reliability(edges, labels: [0, 1, 0, 0, 3], bins: 4)
    #expect(table.map(\.count) == [1, 2, 1, 1])
    #expect(table[0].accuracy == 1 && table[0].confidence == 0.25)
    #expect(table[1].accuracy == 0 && abs(table[1].confidence - 0.38) < 1e-15)
    #expect(table[2].accuracy == 1 && table[2].confidence == 0.75)
    #expect(table[3].accuracy == 1 && table[3].confidence == 1)
    // Every confidence is at most 1, so 8 bins put 1/4 in bin 1 and 1 in bin 7.
    #expect(try CalibrationMetrics.reliability(edges, labels: [0, 1, 0, 0, 3], bins: 8).map(\.count) == [0, 1, 1, 1, 0, 1, 0, 1])
  }

  @Test("ECE is 0 when each bin's accuracy equals its mean confidence")
  func perfectlyCalibrated() throws {
    // Four examples at 0.75 with three right, two at 0.5 with one right.
    let q = try Matrix([[0.75, 0.25], [0.75, 0.25], [0.25, 0.75], [0.25, 0.75], [0.5, 0.5], [0.5, 0.5]])
    let y = [0, 0, 1, 0, 0, 1]
    let table = try CalibrationMetrics.reliability(q, labels: y, bins: 2)
    #expect(table.map(\.count) == [2, 4])
    #expect(table[0].accuracy == 0.5 && table[1].accuracy == 0.75)
    #expect(try CalibrationMetrics.expectedCalibrationError(q, labels: y, bins: 2) == 0)
    #expect(try CalibrationMetrics.expectedCalibrationError(q, labels: y, bins: 15) == 0)
    // Certain and right: calibrated for any number of bins.
    #expect(try CalibrationMetrics.expectedCalibrationError(try Matrix([[0, 1, 0]]), labels: [1], bins: 7) == 0)
  }

  @Test("rows within 1e−6 of summing to 1 are accepted")
  func tolerance() throws {
    let nearly = try Matrix([[0.5 + 5e-7, 0.5]])
    #expect(try CalibrationMetrics.accuracy(nearly, labels: [0]) == 1)
  }

  @Test("bad input throws BDLError: rows not summing to 1, negative, NaN, labels out of range, counts, bins < 1")
  func badInput() throws {
    func kind(_ error: BDLError?) -> String {
      switch error {
      case .invalidArgument?: "invalidArgument"
      case .shapeMismatch?: "shapeMismatch"
      case .nonFiniteInput?: "nonFiniteInput"
      case nil: "nothing thrown"
      default: "\(error!)"
      }
    }
    let good = try Matrix([[0.5, 0.5]])
    let cases: [(String, Matrix, [Int], String)] = [
      ("row sums to 0.9", try Matrix([[0.5, 0.4]]), [0], "invalidArgument"),
      ("row sums to 1 + 1e−5", try Matrix([[0.5 + 1e-5, 0.5]]), [0], "invalidArgument"),
      ("negative entry", try Matrix([[1.2, -0.2]]), [0], "invalidArgument"),
      ("NaN", try Matrix([[.nan, 1]]), [1], "nonFiniteInput"),
      ("infinity", try Matrix([[.infinity, 0]]), [1], "nonFiniteInput"),
      ("label = C", good, [2], "invalidArgument"),
      ("label < 0", good, [-1], "invalidArgument"),
      ("fewer labels than rows", try Matrix([[0.5, 0.5], [1, 0]]), [0], "shapeMismatch"),
      ("more labels than rows", good, [0, 1], "shapeMismatch"),
      ("no examples", Matrix(rows: 0, columns: 2), [], "invalidArgument"),
    ]
    for (what, q, y, expected) in cases {
      let metrics: [(String, () throws(BDLError) -> Double)] = [
        ("accuracy", { () throws(BDLError) -> Double in try CalibrationMetrics.accuracy(q, labels: y) }),
        ("NLL", { () throws(BDLError) -> Double in try CalibrationMetrics.negativeLogLikelihood(q, labels: y) }),
        ("Brier", { () throws(BDLError) -> Double in try CalibrationMetrics.brierScore(q, labels: y) }),
        ("ECE", { () throws(BDLError) -> Double in try CalibrationMetrics.expectedCalibrationError(q, labels: y) }),
        ("reliability", { () throws(BDLError) -> Double in Double(try CalibrationMetrics.reliability(q, labels: y).count) }),
      ]
      for (name, metric) in metrics {
        var thrown: BDLError?
        do { _ = try metric() } catch { thrown = error }
        #expect(kind(thrown) == expected, "\(name), \(what)")
      }
    }
    for bins in [0, -1] {
      #expect(throws: BDLError.self) { try CalibrationMetrics.reliability(good, labels: [0], bins: bins) }
      #expect(throws: BDLError.self) { try CalibrationMetrics.expectedCalibrationError(good, labels: [0], bins: bins) }
      let error = #expect(throws: BDLError.self) { try CalibrationMetrics.reliability(good, labels: [0], bins: bins) }
      #expect(kind(error) == "invalidArgument")
    }
  }
}
