#if canImport(Glibc)
import Glibc
#endif
@testable import BDLCore
import Testing

/// (nb, na, rank of B, rank of A, scale, delta): full-rank, 1×1, rank-deficient with δ > 0, and
/// negative δ that still leaves M positive definite.
private let cases: [(Int, Int, Int, Int, Double, Double)] = [
  (1, 1, 1, 1, 1, 0), (1, 4, 1, 4, 2, 0.1), (3, 2, 3, 2, 1, 0), (5, 7, 5, 7, 0.7, 0.3),
  (6, 5, 2, 3, 1.3, 0.5), (4, 4, 4, 4, 1, -0.05),
]

@Suite("Kronecker algebra against the dense (nb·na)² matrix")
struct KroneckerTests {
  /// Factors for one case; the ridge keeps the full-rank ones away from singular so that δ < 0
  /// still leaves M positive definite.
  private func factors(_ c: (Int, Int, Int, Int, Double, Double), seed: UInt64) -> (Matrix, Matrix) {
    var rng = SeededGenerator(seed: seed)
    let (nb, na, rb, ra, _, _) = c
    return (rng.spd(nb, rank: rb, ridge: rb == nb ? 0.5 : 0), rng.spd(na, rank: ra, ridge: ra == na ? 0.5 : 0))
  }

  /// The dense M = h·B⊗A + δI.
  private func denseM(_ b: Matrix, _ a: Matrix, _ h: Double, _ δ: Double) throws -> Matrix {
    var m = try Kronecker(b, a).dense()
    try m.scale(by: h)
    try m.add(Matrix.identity(m.rows), scaledBy: δ)
    return m
  }

  @Test("B⊗A·vec(X) = vec(B·X·Aᵀ)")
  func apply() throws {
    var rng = SeededGenerator(seed: 50)
    let b = rng.matrix(3, 3), a = rng.matrix(4, 4), x = rng.matrix(3, 4)
    let k = try Kronecker(b, a)
    let dense = try k.dense()
    expectClose(try k.apply(x).elements, try dense.multiplied(by: x.elements), tolerance: Tolerance.relativeDense, "row-major vec convention")
  }

  @Test("B⊗A applied to a batch equals the dense product block by block")
  func applyBatch() throws {
    var rng = SeededGenerator(seed: 51)
    let b = rng.matrix(3, 3), a = rng.matrix(5, 5)
    let x = rng.vector(4 * 15)
    let k = try Kronecker(b, a)
    let dense = try k.dense()
    var expected: [Double] = []
    for t in 0..<4 { expected += try dense.multiplied(by: Array(x[(t * 15)..<((t + 1) * 15)])) }
    expectClose(try k.apply(to: x, count: 4), expected, tolerance: Tolerance.relativeDense, "batched B⊗A")
    #expect(throws: BDLError.self) { try k.apply(to: x, count: 3) }
  }

  @Test("log det equals the Cholesky log det of the dense matrix", arguments: cases.indices)
  func logDeterminant(index: Int) throws {
    let c = cases[index]
    let (b, a) = factors(c, seed: 60 + UInt64(index))
    let (h, δ) = (c.4, c.5)
    let k = try KroneckerEigendecomposition(b: b, a: a)
    let reference = try Cholesky(denseM(b, a, h, δ)).logDeterminant
    expectClose(try k.logDeterminant(scale: h, shift: δ), reference, tolerance: 1e-11, "log det case \(index)")
  }

  @Test("M^e applied to k matrices equals the dense power", arguments: cases.indices)
  func powers(index: Int) throws {
    let c = cases[index]
    let (b, a) = factors(c, seed: 70 + UInt64(index))
    let (nb, na, h, δ) = (c.0, c.1, c.4, c.5)
    let k = try KroneckerEigendecomposition(b: b, a: a)
    let dense = try SymmetricEigendecomposition(denseM(b, a, h, δ))
    var rng = SeededGenerator(seed: 80 + UInt64(index))
    let count = 3
    let x = rng.vector(count * nb * na)
    for e in [1.0, -1.0, 0.5, -0.5] {
      let power = try dense.reconstructed { pow($0, e) }
      let got = try k.applyPower(e, scale: h, shift: δ, to: x, count: count)
      var expected: [Double] = []
      for t in 0..<count {
        expected += try power.multiplied(by: Array(x[(t * nb * na)..<((t + 1) * nb * na)]))
      }
      expectClose(got, expected, tolerance: 1e-9, "M^\(e)·X case \(index)")
      let diagonal = try k.diagonalOfPower(e, scale: h, shift: δ)
      expectClose(diagonal.elements, power.diagonalEntries, tolerance: 1e-9, "diag(M^\(e)) case \(index)")
    }
  }

  @Test("solve leaves a LAPACK-size scaled residual")
  func solveResidual() throws {
    var rng = SeededGenerator(seed: 90)
    let b = rng.spd(8, ridge: 0.1), a = rng.spd(6, ridge: 0.1)
    let k = try KroneckerEigendecomposition(b: b, a: a)
    let x = rng.vector(48)
    let y = try k.applyPower(-1, scale: 2, shift: 0.01, to: x, count: 1)
    let m = try denseM(b, a, 2, 0.01)
    let r = zip(try m.multiplied(by: y), x).map { $0 - $1 }
    let norm = { (v: [Double]) in v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
    let scaled = norm(r) / (m.maxAbsoluteEntry * 48 * norm(y) * Double(48) * Double.ulpOfOne)
    #expect(scaled < Tolerance.scaledResidual, "scaled residual \(scaled)")
  }

  @Test("singular M is an error for negative powers and log det, fine for positive powers")
  func singular() throws {
    var rng = SeededGenerator(seed: 100)
    let k = try KroneckerEigendecomposition(b: rng.spd(3, rank: 1), a: rng.spd(2))
    #expect(throws: BDLError.self) { try k.logDeterminant(scale: 1, shift: 0) }
    #expect(throws: BDLError.self) { try k.applyPower(-1, scale: 1, shift: 0, to: [Double](repeating: 1, count: 6), count: 1) }
    #expect(throws: BDLError.self) { try k.logDeterminant(scale: 1, shift: -0.1) }
    _ = try k.applyPower(1, scale: 1, shift: 0, to: [Double](repeating: 1, count: 6), count: 1)
    _ = try k.diagonalOfPower(0.5, scale: 1, shift: 0)
    #expect(throws: BDLError.self) { try k.logDeterminant(scale: -1, shift: 1) }
    #expect(throws: BDLError.self) { try k.logDeterminant(scale: 1, shift: .nan) }
    #expect(throws: BDLError.self) { try k.applyPower(.infinity, scale: 1, shift: 1, to: [Double](repeating: 1, count: 6), count: 1) }
    #expect(throws: BDLError.self) { try k.applyPower(1, scale: 1, shift: 1, to: [1, 2], count: 1) }
  }
}

@Suite("Sum of logarithms through the running product")
struct SumOfLogarithmsTests {
  @Test("equals the plain sum of logs, also for values near overflow and underflow")
  func matchesNaiveSum() {
    var rng = SeededGenerator(seed: 300)
    let cases: [[Double]] = [
      [1], [2, 0.5], (0..<1000).map { _ in exponential(3 * rng.normal()) },
      (0..<100).map { i in i % 2 == 0 ? 1e300 : 1e-300 }, [Double](repeating: 1.9999, count: 5000),
      [Double.leastNormalMagnitude, Double.greatestFiniteMagnitude],
      // Subnormals and lengths around the 8-lane blocks and 32-block renormalisation.
      (0..<21).map { i in i == 13 ? 1e-310 : exponential(rng.normal()) },
      (0..<(8 * 32 * 3 + 5)).map { _ in exponential(40 * rng.normal()) },
      (0..<7).map { _ in exponential(rng.normal()) },
    ]
    for values in cases {
      let naive = values.reduce(0) { $0 + logarithm($1) }
      let (fast, invalid) = values.withUnsafeBufferPointer { sumOfLogarithms($0) }
      #expect(invalid == nil)
      // Both carry O(N·ε) absolute error relative to the sum of |log x_i|.
      let scale = values.reduce(0) { $0 + abs(logarithm($1)) } + 1
      #expect(abs(fast - naive) <= Double(values.count) * 4 * Double.ulpOfOne * scale, "\(fast) vs \(naive)")
    }
  }

  @Test("eight-lane compensated sums equal the scalar ones, tails included; cancellation stays exact")
  func laneSums() {
    var rng = SeededGenerator(seed: 301)
    for count in [0, 1, 7, 8, 9, 23, 1000] {
      let d = (0..<count).map { _ in exponential(2 * rng.normal()) }
      let λ = (0..<count).map { _ in exponential(rng.normal()) }
      let lanes = d.withUnsafeBufferPointer { compensatedSum($0, { 1 / $0 }, scalar: { 1 / $0 }) }
      expectClose(lanes, CompensatedSum.of(d.map { 1 / $0 }), tolerance: 1e-15, "Σ 1/d over \(count)")
      var bulk = SpectralSums(), scalar = SpectralSums()
      λ.withUnsafeBufferPointer { l in d.withUnsafeBufferPointer { bulk.add(curvatures: l, eigenvalues: $0) } }
      for i in 0..<count { scalar.add(curvature: λ[i], eigenvalue: d[i]) }
      expectClose(
        [bulk.inverse.value, bulk.inverseSquare.value, bulk.curvatureOverSquare.value],
        [scalar.inverse.value, scalar.inverseSquare.value, scalar.curvatureOverSquare.value], tolerance: 1e-15, "spectral sums over \(count)")
    }
    // 1e16 + 1 − 1e16 in every lane: naive summation loses the 1s, Neumaier's keeps them.
    let cancelling = (0..<24).map { i in [1e16, 1, -1e16][i % 3] }
    #expect(cancelling.withUnsafeBufferPointer { compensatedSum($0, { $0 }, scalar: { $0 }) } == 8)
  }

  @Test("reports the first non-positive or non-finite entry")
  func invalid() {
    let long = [Double](repeating: 1.5, count: 40)
    var cases = [([1.0, 0, -1], 1), ([2.0, -3], 1), ([Double.nan], 0), ([1, .infinity], 1)]
    for (position, bad) in [(3, 0.0), (17, -2.0), (31, Double.nan), (39, Double.infinity)] {
      var values = long
      values[position] = bad
      cases.append((values, position))
    }
    for (values, index) in cases {
      let result = values.withUnsafeBufferPointer { sumOfLogarithms($0) }
      #expect(result.firstInvalid == index)
    }
  }
}

@Suite("Factored (π-)damping")
struct FactoredDampingTests {
  @Test("(√h·B + (√δ/π)·I) ⊗ (√h·A + π√δ·I) against its dense Kronecker product", arguments: [false, true])
  func factored(balanced: Bool) throws {
    var rng = SeededGenerator(seed: 800)
    let b = rng.spd(4, ridge: 0.2), a = rng.spd(3, rank: 2)
    let (h, δ) = (1.7, 0.3)
    let plain = try KroneckerEigendecomposition(b: b, a: a)
    let damped = try plain.damped(.factored(balanced: balanced))
    let pi = balanced ? (a.diagonalEntries.reduce(0, +) / 3 / (b.diagonalEntries.reduce(0, +) / 4)).squareRoot() : 1
    if balanced { expectClose(damped.pi, pi, tolerance: 1e-13, "π = √((tr A/n_A)/(tr B/n_B))") }
    var left = b, right = a
    try left.scale(by: h.squareRoot())
    try left.add(Matrix.identity(4), scaledBy: δ.squareRoot() / pi)
    try right.scale(by: h.squareRoot())
    try right.add(Matrix.identity(3), scaledBy: pi * δ.squareRoot())
    let dense = try Kronecker(left, right).dense()
    let cholesky = try Cholesky(dense)
    expectClose(try damped.logDeterminant(scale: h, shift: δ), cholesky.logDeterminant, tolerance: 1e-12, "log det")
    let x = rng.vector(12)
    expectClose(try damped.applyPower(-1, scale: h, shift: δ, to: x, count: 1), try cholesky.solve(x), tolerance: 1e-10, "solve")
    expectClose(try damped.diagonalOfPower(1, scale: h, shift: δ).elements, dense.diagonalEntries, tolerance: 1e-12, "diagonal")
    #expect(throws: BDLError.self) { try damped.logDeterminant(scale: h, shift: -0.1) }
    // Switching back restores exact damping.
    expectClose(try damped.damped(.exact).logDeterminant(scale: h, shift: δ), try plain.logDeterminant(scale: h, shift: δ), tolerance: 0, "exact again")
  }

  @Test("EK-FAC's refit eigenvalues refuse factored damping")
  func ekfacRefuses() throws {
    var rng = SeededGenerator(seed: 801)
    let basis = try KroneckerEigendecomposition(b: rng.spd(2), a: rng.spd(2))
    let corrected = try basis.correcting(eigenvalues: Matrix(rows: 2, columns: 2, repeating: 1))
    #expect(throws: BDLError.self) { try corrected.damped(.factored(balanced: true)) }
  }
}
