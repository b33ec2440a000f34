#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// M = h·B ⊗ A + δ·I through the eigendecompositions of its factors.
///
/// With B = Q_B·diag(β)·Q_Bᵀ and A = Q_A·diag(α)·Q_Aᵀ,
///   M = (Q_B ⊗ Q_A)·diag(d)·(Q_B ⊗ Q_A)ᵀ,  d_ij = h·β_i·α_j + δ,
/// so every function of M is exact for any δ and never forms the (nb·na)² matrix:
/// - log det M = Σ_ij log d_ij (laplace-torch's `KronDecomposed.logdet`);
/// - M^e·vec(X) = vec(Q_B·[(Q_Bᵀ·X·Q_A) ∘ d^e]·Q_Aᵀ), four gemms per right-hand side;
/// - diag(M^e) = (Q_B ∘ Q_B)·d^e·(Q_A ∘ Q_A)ᵀ, two gemms.
/// The factors are decomposed once; h, δ and e can then vary freely (a Laplace posterior's prior
/// precision and temperature are exactly such parameters).
public struct KroneckerEigendecomposition: Sendable {
  /// Eigendecomposition of the output-side factor B (nb × nb).
  public let b: SymmetricEigendecomposition
  /// Eigendecomposition of the input-side factor A (na × na).
  public let a: SymmetricEigendecomposition

  /// Decomposes B and A, which must be symmetric positive semi-definite (see
  /// `SymmetricEigendecomposition.positiveSemidefinite`); errors name them "B" and "A".
  public init(b: Matrix, a: Matrix) throws(BDLError) {
    _ = try Validation.product(b.rows, a.rows, "Kronecker order nb·na")
    self.b = try .positiveSemidefinite(b, name: "B")
    self.a = try .positiveSemidefinite(a, name: "A")
    self.correctedEigenvalues = nil
  }

  /// How δ enters: exactly (h·B⊗A + δ·I, the default) or factored onto the two factors.
  public private(set) var damping: KroneckerDamping = .exact

  /// The same factors with another damping form; `.unsupported` for refit (EK-FAC) eigenvalues,
  /// which are not a product of factor eigenvalues.
  public func damped(_ mode: KroneckerDamping) throws(BDLError) -> KroneckerEigendecomposition {
    if mode != .exact, correctedEigenvalues != nil {
      throw .unsupported("factored damping needs Kronecker factors; EK-FAC's refit eigenvalues only support exact damping")
    }
    var copy = self
    copy.damping = mode
    return copy
  }

  /// π = √((tr A/n_A)/(tr B/n_B)) (1 if either trace is 0): Martens & Grosse's balance between
  /// the factors' average eigenvalues.
  public var pi: Double {
    let meanA = a.eigenvalues.reduce(0, +) / Double(inputOrder)
    let meanB = b.eigenvalues.reduce(0, +) / Double(outputOrder)
    return meanA > 0 && meanB > 0 ? (meanA / meanB).squareRoot() : 1
  }

  /// Eigenvalues that replace β_i·α_j in the eigenbasis Q_B ⊗ Q_A (nb × na), or nil for the plain
  /// Kronecker product. Set by EK-FAC, which keeps K-FAC's eigenbasis but refits the eigenvalues
  /// (George et al. 2018); every operation below then uses d_ij = h·Λ_ij + δ.
  public let correctedEigenvalues: Matrix?

  /// From decompositions already made (e.g. a K-FAC bias block B ⊗ [1] reusing the weight's B).
  public init(b: SymmetricEigendecomposition, a: SymmetricEigendecomposition) {
    self.b = b
    self.a = a
    self.correctedEigenvalues = nil
  }

  /// The same eigenbasis with eigenvalues Λ (nb × na, entries ≥ 0 and finite).
  public func correcting(eigenvalues: Matrix) throws(BDLError) -> KroneckerEigendecomposition {
    guard eigenvalues.rows == outputOrder, eigenvalues.columns == inputOrder else {
      throw .shapeMismatch("corrected eigenvalues are \(eigenvalues.rows) × \(eigenvalues.columns), the basis is \(outputOrder) × \(inputOrder)")
    }
    try Validation.requireFinite(eigenvalues.elements, "eigenvalues")
    guard eigenvalues.elements.allSatisfy({ $0 >= 0 }) else {
      throw .notPositiveDefinite("corrected eigenvalues must be ≥ 0")
    }
    return KroneckerEigendecomposition(b: b, a: a, corrected: eigenvalues)
  }

  private init(b: SymmetricEigendecomposition, a: SymmetricEigendecomposition, corrected: Matrix) {
    self.b = b
    self.a = a
    self.correctedEigenvalues = corrected
  }

  /// nb, the order of B.
  public var outputOrder: Int { b.eigenvalues.count }
  /// na, the order of A.
  public var inputOrder: Int { a.eigenvalues.count }

  /// The eigenvalues of M as an nb × na matrix: d_ij = h·β_i·α_j + δ.
  /// - Throws: `.invalidArgument` for a negative or non-finite h, or a non-finite δ.
  public func spectrum(scale h: Double, shift δ: Double) throws(BDLError) -> Matrix {
    guard h.isFinite, h >= 0 else { throw .invalidArgument("scale = \(h); it must be finite and ≥ 0") }
    try Validation.requireFinite(δ, "delta")
    let nb = outputOrder, na = inputOrder
    if var d = correctedEigenvalues {
      for i in d.elements.indices { d.elements[i] = h * d.elements[i] + δ }
      return d
    }
    if case .factored(let balanced) = damping {
      // (√h·β_i + √δ/π)(√h·α_j + π·√δ): the eigenvalues of (√h·B + (√δ/π)·I) ⊗ (√h·A + π·√δ·I).
      guard δ >= 0 else { throw .invalidArgument("delta = \(δ); factored damping needs delta ≥ 0") }
      let (root, rootH, p) = (δ.squareRoot(), h.squareRoot(), balanced ? pi : 1)
      var d = Matrix(rows: nb, columns: na)
      for i in 0..<nb {
        let left = rootH * b.eigenvalues[i] + root / p
        for j in 0..<na { d.elements[i * na + j] = left * (rootH * a.eigenvalues[j] + p * root) }
      }
      return d
    }
    var d = Matrix(rows: nb, columns: na)
    for i in 0..<nb {
      let hb = h * b.eigenvalues[i]
      for j in 0..<na { d.elements[i * na + j] = hb * a.eigenvalues[j] + δ }
    }
    return d
  }

  /// log det(h·B ⊗ A + δ·I) = Σ_ij log(h·β_i·α_j + δ).
  /// - Throws: `.notPositiveDefinite` if some d_ij ≤ 0 (e.g. rank-deficient factors with δ ≤ 0).
  public func logDeterminant(scale h: Double, shift δ: Double) throws(BDLError) -> Double {
    let d = try spectrum(scale: h, shift: δ)
    let (total, invalid) = d.elements.withUnsafeBufferPointer { sumOfLogarithms($0) }
    if let index = invalid {
      throw nonPositive(d.elements[index], at: index, scale: h, shift: δ, exponent: 0)
    }
    return total
  }

  /// d^e elementwise: e ≤ 0 needs d > 0; e > 0 needs d ≥ 0. The common exponents ±1, ±½ are
  /// computed exactly rather than through `pow`.
  public func poweredSpectrum(_ e: Double, scale h: Double, shift δ: Double) throws(BDLError) -> Matrix {
    try Validation.requireFinite(e, "exponent")
    var d = try spectrum(scale: h, shift: δ)
    for index in d.elements.indices {
      let value = d.elements[index]
      guard value > 0 || (e > 0 && value == 0) else {
        throw nonPositive(value, at: index, scale: h, shift: δ, exponent: e)
      }
      switch e {
      case 1: break
      case -1: d.elements[index] = 1 / value
      case 0.5: d.elements[index] = value.squareRoot()
      case -0.5: d.elements[index] = 1 / value.squareRoot()
      default: d.elements[index] = pow(value, e)
      }
    }
    return d
  }

  /// Y_t = (h·B ⊗ A + δ·I)^e·X_t for `count` nb × na matrices stored one after another in `x`.
  /// e = −1 solves, −½ whitens, ½ and 1 multiply.
  public func applyPower(
    _ e: Double, scale h: Double, shift δ: Double, to x: [Double], count k: Int
  ) throws(BDLError) -> [Double] {
    var y = [Double](repeating: 0, count: x.count)
    try x.withUnsafeBufferPointer { xp throws(BDLError) in
      try y.withUnsafeMutableBufferPointer { yp throws(BDLError) in
        try applyPower(e, scale: h, shift: δ, to: xp, count: k, into: yp)
      }
    }
    return y
  }

  /// The same into caller memory: `y` may be the very buffer `x` (each block is read completely
  /// before its result is written). Every check (sizes, finite X, the spectrum's sign) happens
  /// before the first write, so on a thrown error `y` is untouched.
  ///
  /// Per block, four gemms on two nb × na scratch matrices:
  /// X_t·Q_A, then Q_Bᵀ·(…), scaled by d^e, then Q_B·(…), then (…)·Q_Aᵀ into Y_t.
  public func applyPower(
    _ e: Double, scale h: Double, shift δ: Double, to x: UnsafeBufferPointer<Double>, count k: Int,
    into y: UnsafeMutableBufferPointer<Double>
  ) throws(BDLError) {
    let nb = outputOrder, na = inputOrder
    let blockSize = nb * na
    guard k >= 0, try Validation.product(k, blockSize, "right-hand sides") == x.count else {
      throw .shapeMismatch("expected \(k) right-hand sides of \(nb) × \(na) = \(k * blockSize) entries, got \(x.count)")
    }
    guard y.count >= x.count else {
      throw .shapeMismatch("output has room for \(y.count) entries, \(x.count) are needed")
    }
    try Validation.requireFinite(x, "X")
    try applySpectrum(try poweredSpectrum(e, scale: h, shift: δ), to: x, count: k, into: y)
  }

  /// Y_t = (Q_B ⊗ Q_A)·diag(w)·(Q_B ⊗ Q_A)ᵀ·X_t for any weights w (nb × na): the functions of M
  /// whose spectrum is not h·β·α + δ, such as a posterior with the eigenbasis-projected
  /// per-parameter prior. Sizes are the caller's to check; `y` may be `x`.
  func applySpectrum(
    _ weights: Matrix, to x: UnsafeBufferPointer<Double>, count k: Int, into y: UnsafeMutableBufferPointer<Double>
  ) throws(BDLError) {
    let nb = outputOrder, na = inputOrder
    let blockSize = nb * na
    _ = try BLAS.int32(k * nb, "k·nb")
    if k == 0 { return }
    var first = [Double](repeating: 0, count: blockSize)
    var second = [Double](repeating: 0, count: blockSize)
    let (qB, qA) = (try b.eigenvectors, try a.eigenvectors)
    try qB.elements.withUnsafeBufferPointer { qb throws(BDLError) in
      try qA.elements.withUnsafeBufferPointer { qa throws(BDLError) in
        try first.withUnsafeMutableBufferPointer { s1 throws(BDLError) in
          try second.withUnsafeMutableBufferPointer { s2 throws(BDLError) in
            for t in 0..<k {
              let xt = x.baseAddress! + t * blockSize, yt = y.baseAddress! + t * blockSize
              try BLAS.gemm(
                transposeA: false, transposeB: false, m: nb, n: na, k: na, alpha: 1,
                a: xt, lda: na, b: qa.baseAddress!, ldb: na, beta: 0, c: s1.baseAddress!, ldc: na)
              try BLAS.gemm(
                transposeA: true, transposeB: false, m: nb, n: na, k: nb, alpha: 1,
                a: qb.baseAddress!, lda: nb, b: s1.baseAddress!, ldb: na, beta: 0,
                c: s2.baseAddress!, ldc: na)
              for index in 0..<blockSize { s2[index] *= weights.elements[index] }
              try BLAS.gemm(
                transposeA: false, transposeB: false, m: nb, n: na, k: nb, alpha: 1,
                a: qb.baseAddress!, lda: nb, b: s2.baseAddress!, ldb: na, beta: 0,
                c: s1.baseAddress!, ldc: na)
              try BLAS.gemm(
                transposeA: false, transposeB: true, m: nb, n: na, k: na, alpha: 1,
                a: s1.baseAddress!, lda: na, b: qa.baseAddress!, ldb: na, beta: 0, c: yt, ldc: na)
            }
          }
        }
      }
    }
  }

  /// diag((h·B ⊗ A + δ·I)^e) as an nb × na matrix: (Q_B ∘ Q_B)·d^e·(Q_A ∘ Q_A)ᵀ.
  public func diagonalOfPower(_ e: Double, scale h: Double, shift δ: Double) throws(BDLError) -> Matrix {
    try diagonal(ofSpectrum: try poweredSpectrum(e, scale: h, shift: δ))
  }

  /// diag((Q_B ⊗ Q_A)·diag(w)·(Q_B ⊗ Q_A)ᵀ) = (Q_B ∘ Q_B)·w·(Q_A ∘ Q_A)ᵀ for weights w (nb × na).
  func diagonal(ofSpectrum w: Matrix) throws(BDLError) -> Matrix {
    let (qb2, qa2) = try squaredEigenvectors()
    return try qb2.multiplied(by: w).multiplied(by: qa2, transposingOther: true)
  }

  /// The eigenbasis projection of a diagonal Δ (nb × na, one value per entry of the block):
  /// (Q_B ∘ Q_B)ᵀ·Δ·(Q_A ∘ Q_A), the diagonal of (Q_B ⊗ Q_A)ᵀ·diag(Δ)·(Q_B ⊗ Q_A). This is how
  /// a per-parameter prior enters a Kronecker posterior while keeping its eigenbasis (the SpaM
  /// code's rule); for a constant Δ = δ it is exactly δ, because the rows of Q ∘ Q sum to 1.
  func projectedDiagonal(_ Δ: Matrix) throws(BDLError) -> Matrix {
    let (qb2, qa2) = try squaredEigenvectors()
    return try qb2.multiplied(by: Δ, transposingSelf: true).multiplied(by: qa2)
  }

  /// (Q_B ∘ Q_B, Q_A ∘ Q_A).
  private func squaredEigenvectors() throws(BDLError) -> (Matrix, Matrix) {
    var qb2 = try b.eigenvectors
    var qa2 = try a.eigenvectors
    for i in qb2.elements.indices { qb2.elements[i] *= qb2.elements[i] }
    for i in qa2.elements.indices { qa2.elements[i] *= qa2.elements[i] }
    return (qb2, qa2)
  }

  private func nonPositive(
    _ value: Double, at index: Int, scale h: Double, shift δ: Double, exponent e: Double
  ) -> BDLError {
    let i = index / inputOrder, j = index % inputOrder
    let need = e > 0 ? "≥ 0" : "> 0"
    if let corrected = correctedEigenvalues {
      return .notPositiveDefinite(
        "scale·Λ_\(i),\(j) + delta = \(h)·\(corrected[i, j]) + \(δ) = \(value); every eigenvalue must be \(need) here (use delta > 0)")
    }
    return .notPositiveDefinite(
      "scale·β_\(i)·α_\(j) + delta = \(h)·\(b.eigenvalues[i])·\(a.eigenvalues[j]) + \(δ) = \(value); "
        + "every eigenvalue of scale·B⊗A + delta·I must be \(need) here (a singular factor needs delta > 0)")
  }
}
