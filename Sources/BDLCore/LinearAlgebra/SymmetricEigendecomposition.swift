/// A = Q·diag(λ)·Qᵀ for a real symmetric A (LAPACK dsyevd, divide and conquer).
///
/// The input is checked for symmetry and then symmetrised, (A + Aᵀ)/2, so that rounding noise in a
/// matrix accumulated as a sum of outer products cannot bias the result.
public struct SymmetricEigendecomposition: Sendable {
  /// Eigenvalues in ascending order.
  public let eigenvalues: [Double]
  /// Q: column j is the unit eigenvector of `eigenvalues[j]`.
  public let eigenvectors: Matrix

  /// Entries may differ from their mirror image by this much relative to the largest entry before
  /// the matrix counts as non-symmetric. Loose enough for any sum of outer products accumulated in
  /// Float64 (whose asymmetry is O(ε·terms)), tight enough to catch a transposed or wrong argument.
  public static let symmetryTolerance = 1e-10

  /// Decomposes `matrix`, named `name` in error messages.
  /// - Throws: `.shapeMismatch` (not square), `.nonFiniteInput`, `.notPositiveDefinite` naming the
  ///   most asymmetric entry pair (the C API's status for "not symmetric PSD"), `.notConverged`.
  public init(_ matrix: Matrix, name: String = "matrix") throws(BDLError) {
    guard matrix.isSquare else {
      throw .shapeMismatch("\(name): expected a square matrix, got \(matrix.rows) × \(matrix.columns)")
    }
    try Validation.requireFinite(matrix.elements, name)
    let n = matrix.rows
    var a = matrix
    let tolerance = Self.symmetryTolerance * matrix.maxAbsoluteEntry
    for i in 0..<n {
      for j in 0..<i {
        let upper = matrix[j, i], lower = matrix[i, j]
        if abs(upper - lower) > tolerance {
          throw .notPositiveDefinite(
            "\(name): entry (\(i), \(j)) = \(lower) differs from (\(j), \(i)) = \(upper); the matrix must be symmetric")
        }
        let mean = 0.5 * (upper + lower)
        a[i, j] = mean
        a[j, i] = mean
      }
    }
    var w = [Double](repeating: 0, count: n)
    if n > 0 {
      try a.elements.withUnsafeMutableBufferPointer { ap throws(BDLError) in
        try w.withUnsafeMutableBufferPointer { wp throws(BDLError) in
          try BLAS.syevd(n: n, a: ap.baseAddress!, w: wp.baseAddress!)
        }
      }
    }
    self.eigenvalues = w
    self.eigenvectors = a.transposed  // syevd leaves Qᵀ in row-major memory
  }

  /// The 1 × 1 identity's decomposition (λ = 1, Q = [1]): the input factor of a bias block.
  public static let unit = SymmetricEigendecomposition(eigenvalues: [1], eigenvectors: Matrix.identity(1))

  private init(eigenvalues: [Double], eigenvectors: Matrix) {
    self.eigenvalues = eigenvalues
    self.eigenvectors = eigenvectors
  }

  /// Eigenvalues within ±(n·100·ε)·max|λ| of zero are what dsyevd's backward error
  /// (‖ΔA‖ = O(n·ε·‖A‖)) allows for an exact zero: rounding, neither indefiniteness nor curvature.
  public static func roundingFloor(order n: Int, largest: Double) -> Double {
    Double(max(n, 1)) * 100 * Double.ulpOfOne * largest
  }

  /// The decomposition of a matrix required to be positive semi-definite: eigenvalues within
  /// rounding of zero (either sign) are set to exactly 0, so that a rank-deficient factor is
  /// singular rather than "positive" by 1e-17; clearly negative ones throw `.notPositiveDefinite`.
  public static func positiveSemidefinite(_ matrix: Matrix, name: String) throws(BDLError) -> Self {
    let raw = try Self(matrix, name: name)
    let largest = raw.eigenvalues.reduce(0) { max($0, abs($1)) }
    let floor = roundingFloor(order: matrix.rows, largest: largest)
    if let smallest = raw.eigenvalues.first, smallest < -floor {
      throw .notPositiveDefinite(
        "\(name): eigenvalue \(smallest) is negative (largest |eigenvalue| \(largest)); the matrix must be positive semi-definite")
    }
    return Self(eigenvalues: raw.eigenvalues.map { $0 > floor ? $0 : 0 }, eigenvectors: raw.eigenvectors)
  }

  /// Q·diag(f(λ))·Qᵀ.
  public func reconstructed(applying f: (Double) -> Double = { $0 }) throws(BDLError) -> Matrix {
    var scaled = eigenvectors
    let n = eigenvectors.rows
    for i in 0..<n {
      for j in 0..<n { scaled[i, j] *= f(eigenvalues[j]) }
    }
    return try scaled.multiplied(by: eigenvectors, transposingOther: true)
  }
}
