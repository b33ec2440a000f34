import Synchronization

/// A = Q·diag(λ)·Qᵀ for a real symmetric A, by LAPACK's route: a Householder reduction to
/// tridiagonal form (dsytrd), then the eigenvalues at once (dsterf) and Q only on first use
/// (divide and conquer, dstedc, and the reflectors applied back, dormtr).
///
/// Why Q waits: the Laplace evidence, its gradients and the evidence-optimal prior of a K-FAC
/// posterior need only the factors' eigenvalues, and marginal-likelihood training refits the
/// factors at every hyperparameter step; Q is needed only for predictions, solves, samples and
/// per-parameter priors. Forming Q costs about twice the eigenvalues (n = 784: about 0.03 s for λ,
/// 0.06 s more for Q, two threads). The reduction is kept, so λ now and Q later together cost
/// what one dsyevd costs. Copies of a decomposition share Q: it is formed at most once, under a
/// lock, whichever copy or thread asks first.
///
/// The input is checked for symmetry and then symmetrised, (A + Aᵀ)/2, so that rounding noise in a
/// matrix accumulated as a sum of outer products cannot bias the result.
public struct SymmetricEigendecomposition: Sendable {
  /// Eigenvalues in ascending order.
  public let eigenvalues: [Double]
  private let basis: Eigenbasis

  /// Q: column j is the unit eigenvector of `eigenvalues[j]`. Formed on first access.
  /// - Throws: `.notConverged` if divide and conquer fails (then on every access).
  public var eigenvectors: Matrix {
    get throws(BDLError) { try basis.matrix }
  }

  /// Whether Q has been formed (it is on the first access to `eigenvectors`).
  public var hasEigenvectors: Bool { basis.isFormed }

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
    if n <= 1 {
      self.eigenvalues = a.elements
      self.basis = Eigenbasis(formed: .identity(n))
      return
    }
    let reduction = try Tridiagonalization(reducing: &a.elements, order: n)
    var d = reduction.diagonal, e = reduction.offDiagonal
    try d.withUnsafeMutableBufferPointer { dp throws(BDLError) in
      try e.withUnsafeMutableBufferPointer { ep throws(BDLError) in try BLAS.sterf(n: n, d: dp.baseAddress!, e: ep.baseAddress!) }
    }
    self.eigenvalues = d
    self.basis = Eigenbasis(reduction)
  }

  /// The 1 × 1 identity's decomposition (λ = 1, Q = [1]): the input factor of a bias block.
  public static let unit = SymmetricEigendecomposition(eigenvalues: [1], basis: Eigenbasis(formed: .identity(1)))

  private init(eigenvalues: [Double], basis: Eigenbasis) {
    self.eigenvalues = eigenvalues
    self.basis = basis
  }

  /// Eigenvalues within ±(n·100·ε)·max|λ| of zero are what the reduction's backward error
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
    return Self(eigenvalues: raw.eigenvalues.map { $0 > floor ? $0 : 0 }, basis: raw.basis)
  }

  /// Q·diag(f(λ))·Qᵀ.
  public func reconstructed(applying f: (Double) -> Double = { $0 }) throws(BDLError) -> Matrix {
    let q = try eigenvectors
    var scaled = q
    let n = q.rows
    for i in 0..<n {
      for j in 0..<n { scaled[i, j] *= f(eigenvalues[j]) }
    }
    return try scaled.multiplied(by: q, transposingOther: true)
  }
}

/// A = Q₁·T·Q₁ᵀ (dsytrd): T's diagonal and off-diagonal, and Q₁ as the Householder reflectors
/// LAPACK leaves in the lower triangle of the (column-major) matrix plus their scalars τ.
private struct Tridiagonalization: Sendable {
  let order: Int
  let reflectors: [Double]
  let tau: [Double]
  let diagonal: [Double]
  let offDiagonal: [Double]

  /// Reduces the symmetric n × n matrix in `a` (n ≥ 2) in place; the reflectors keep its storage
  /// (a factor of a large layer is megabytes: no copy).
  init(reducing a: inout [Double], order n: Int) throws(BDLError) {
    var d = [Double](repeating: 0, count: n), e = [Double](repeating: 0, count: n - 1), tau = [Double](repeating: 0, count: n - 1)
    try a.withUnsafeMutableBufferPointer { ap throws(BDLError) in
      try d.withUnsafeMutableBufferPointer { dp throws(BDLError) in
        try e.withUnsafeMutableBufferPointer { ep throws(BDLError) in
          try tau.withUnsafeMutableBufferPointer { tp throws(BDLError) in
            try BLAS.sytrd(n: n, a: ap.baseAddress!, d: dp.baseAddress!, e: ep.baseAddress!, tau: tp.baseAddress!)
          }
        }
      }
    }
    self.order = n
    self.reflectors = a
    self.tau = tau
    self.diagonal = d
    self.offDiagonal = e
  }

  /// Q = Q₁·Z with T = Z·diag(λ)·Zᵀ (dstedc, then dormtr), row-major.
  func eigenvectors() throws(BDLError) -> Matrix {
    let n = order
    var d = diagonal, e = offDiagonal
    var z = [Double](repeating: 0, count: n * n)
    try d.withUnsafeMutableBufferPointer { dp throws(BDLError) in
      try e.withUnsafeMutableBufferPointer { ep throws(BDLError) in
        try z.withUnsafeMutableBufferPointer { zp throws(BDLError) in
          try BLAS.stedc(n: n, d: dp.baseAddress!, e: ep.baseAddress!, z: zp.baseAddress!)
          try reflectors.withUnsafeBufferPointer { ap throws(BDLError) in
            try tau.withUnsafeBufferPointer { tp throws(BDLError) in
              try BLAS.ormtr(n: n, a: ap.baseAddress!, tau: tp.baseAddress!, c: zp.baseAddress!)
            }
          }
        }
      }
    }
    // Column-major Q read row-major is Qᵀ: transposed in place.
    z.withUnsafeMutableBufferPointer { q in
      forEachUpperEntryInTiles(order: n) { i, j in q.swapAt(i * n + j, j * n + i) }
    }
    return try Matrix(rows: n, columns: n, elements: z)
  }
}

/// Q of a decomposition, formed at most once and shared by all copies of it.
private final class Eigenbasis: Sendable {
  private enum State: Sendable {
    case reduced(Tridiagonalization)
    case formed(Matrix)
    case failed(BDLError)
  }

  private let state: Mutex<State>

  init(_ reduction: Tridiagonalization) { state = Mutex(.reduced(reduction)) }
  init(formed q: Matrix) { state = Mutex(.formed(q)) }

  var isFormed: Bool {
    state.withLock { if case .formed = $0 { return true } else { return false } }
  }

  /// Q, forming it on the first call (the reduction is then released).
  var matrix: Matrix {
    get throws(BDLError) {
      let result: Result<Matrix, BDLError> = state.withLock { state in
        switch state {
        case .formed(let q): return .success(q)
        case .failed(let error): return .failure(error)
        case .reduced(let reduction):
          let formed = Result { () throws(BDLError) in try reduction.eigenvectors() }
          switch formed {
          case .success(let q): state = .formed(q)
          case .failure(let error): state = .failed(error)
          }
          return formed
        }
      }
      return try result.get()
    }
  }
}
