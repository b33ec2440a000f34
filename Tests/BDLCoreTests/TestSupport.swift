import BDLCore
import Testing

/// The one seeded generator of the test suite: the library's `RandomSource` (SplitMix64), with
/// helpers for random matrices.
typealias SeededGenerator = RandomSource

extension RandomSource {
  /// An m × n matrix of standard normal entries.
  mutating func matrix(_ m: Int, _ n: Int) -> Matrix {
    var result = Matrix(rows: m, columns: n)
    for i in result.elements.indices { result.elements[i] = normal() }
    return result
  }

  /// A symmetric PSD n × n matrix G·Gᵀ of rank min(n, rank), plus `ridge`·I.
  mutating func spd(_ n: Int, rank: Int? = nil, ridge: Double = 0) -> Matrix {
    let g = matrix(n, rank ?? n)
    var result = try! g.gram(outer: true)
    for i in 0..<n { result[i, i] += ridge }
    return result
  }

  /// n standard normal draws.
  mutating func vector(_ n: Int) -> [Double] { (0..<n).map { _ in normal() } }
}

/// Tolerances, each with its reason.
enum Tolerance {
  /// Backward-stable dense factorizations (Cholesky, dsyevd, dgesdd): residuals are
  /// O(n·ε·‖A‖·‖x‖); 100 leaves room for constant factors in the error bounds.
  static let scaledResidual = 100.0
  /// Results compared with an independent dense computation of the same quantity: both carry
  /// O(n·ε·κ) error; the matrices used are conditioned below 1e4.
  static let relativeDense = 1e-9
  /// Central finite differences with step 1e-5 in Float64: truncation O(h²) ≈ 1e-10 and
  /// cancellation O(ε/h) ≈ 1e-11, relative to the gradient scale.
  static let finiteDifference = 1e-6
}

/// The largest |a_i − b_i| / max(1, |b_i|), and where it is.
func worstRelativeError(_ a: [Double], _ b: [Double]) -> (error: Double, index: Int) {
  precondition(a.count == b.count, "compared arrays differ in length")
  var worst = (error: 0.0, index: -1)
  for i in a.indices {
    let error = abs(a[i] - b[i]) / max(1, abs(b[i]))
    if error > worst.error || error.isNaN { worst = (error, i) }
  }
  return worst
}

/// Expects `a ≈ b` entrywise to `tolerance` (relative to max(1, |b|)); the failure names the worst
/// entry and both values.
func expectClose(
  _ a: [Double], _ b: [Double], tolerance: Double, _ what: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(a.count == b.count, "\(what): lengths \(a.count) and \(b.count)", sourceLocation: sourceLocation)
  guard a.count == b.count else { return }
  let worst = worstRelativeError(a, b)
  #expect(
    worst.error <= tolerance,
    "\(what): worst entry \(worst.index): \(worst.index >= 0 ? a[worst.index] : 0) vs \(worst.index >= 0 ? b[worst.index] : 0), relative error \(worst.error) > \(tolerance)",
    sourceLocation: sourceLocation)
}

func expectClose(
  _ a: Double, _ b: Double, tolerance: Double, _ what: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  expectClose([a], [b], tolerance: tolerance, what, sourceLocation: sourceLocation)
}

/// A naive triple-loop product, the independent reference for BLAS results.
func naiveProduct(_ a: Matrix, _ b: Matrix) -> Matrix {
  var c = Matrix(rows: a.rows, columns: b.columns)
  for i in 0..<a.rows {
    for j in 0..<b.columns {
      var sum = 0.0
      for k in 0..<a.columns { sum += a[i, k] * b[k, j] }
      c[i, j] = sum
    }
  }
  return c
}

/// The root of the repository (for the shipped datasets), from this file's location.
let repositoryRoot: String = {
  var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
  parts.removeLast(3)  // Tests/BDLCoreTests/TestSupport.swift
  return parts.joined(separator: "/")
}()
