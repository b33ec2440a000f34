import CBLASLAPACK

/// The one wrapper around OpenBLAS (CBLAS) and LAPACKE. Every BLAS/LAPACK call of bdlcore goes
/// through here, so that:
/// - sizes are converted `Int → Int32` with a check (the LP64 interface), never truncated;
/// - the libraries are loaded lazily, on first use, after the OpenBLAS kernel has been chosen
///   (see `cblaslapack.h`); a missing library is `BDLError.unsupported`, not a crash;
/// - LAPACK's `info < 0` (an illegal argument: our bug) becomes `.internal`, and `info > 0` the
///   numerical failure it names (`.notPositiveDefinite` for potrf, `.notConverged` for sterf/stedc/gesdd).
///
/// All matrices are row-major. Leading dimensions are the row strides.
enum BLAS {
  /// The loaded function table.
  static func api() throws(BDLError) -> UnsafePointer<cbl_api> {
    guard let api = cbl_load() else {
      throw .unsupported(String(cString: cbl_load_error()))
    }
    return api
  }

  /// `n` as a BLAS integer, or `.unsupported` if the 32-bit interface cannot express it.
  static func int32(_ n: Int, _ name: String) throws(BDLError) -> Int32 {
    guard let value = Int32(exactly: n) else {
      throw .unsupported("\(name) = \(n) exceeds the 32-bit BLAS/LAPACK interface (at most \(Int32.max))")
    }
    return value
  }

  /// C ← α·op(A)·op(B) + β·C with op(A) m × k, op(B) k × n.
  static func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Double,
    a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
    beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
  ) throws(BDLError) {
    let f = try api().pointee.dgemm!
    f(
      Int32(CBL_ROW_MAJOR), Int32(transposeA ? CBL_TRANS : CBL_NO_TRANS),
      Int32(transposeB ? CBL_TRANS : CBL_NO_TRANS), try int32(m, "m"), try int32(n, "n"),
      try int32(k, "k"), alpha, a, try int32(max(lda, 1), "lda"), b, try int32(max(ldb, 1), "ldb"),
      beta, c, try int32(max(ldc, 1), "ldc"))
  }

  /// Lower triangle of C ← α·op(A)·op(A)ᵀ + β·C; op(A) is n × k (`transpose`: A is k × n).
  static func syrkLower(
    transpose: Bool, n: Int, k: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
    beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
  ) throws(BDLError) {
    let f = try api().pointee.dsyrk!
    f(
      Int32(CBL_ROW_MAJOR), Int32(CBL_LOWER), Int32(transpose ? CBL_TRANS : CBL_NO_TRANS),
      try int32(n, "n"), try int32(k, "k"), alpha, a, try int32(max(lda, 1), "lda"), beta, c,
      try int32(max(ldc, 1), "ldc"))
  }

  /// y ← α·op(A)·x + β·y with A m × n.
  static func gemv(
    transpose: Bool, m: Int, n: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
    x: UnsafePointer<Double>, beta: Double, y: UnsafeMutablePointer<Double>
  ) throws(BDLError) {
    let f = try api().pointee.dgemv!
    f(
      Int32(CBL_ROW_MAJOR), Int32(transpose ? CBL_TRANS : CBL_NO_TRANS), try int32(m, "m"),
      try int32(n, "n"), alpha, a, try int32(max(lda, 1), "lda"), x, 1, beta, y, 1)
  }

  /// Solves op(L)·X = α·B in place for lower-triangular L (n × n), B n × nrhs.
  static func trsmLowerLeft(
    transpose: Bool, n: Int, nrhs: Int, alpha: Double, l: UnsafePointer<Double>, ldl: Int,
    b: UnsafeMutablePointer<Double>, ldb: Int
  ) throws(BDLError) {
    let f = try api().pointee.dtrsm!
    f(
      Int32(CBL_ROW_MAJOR), Int32(CBL_LEFT), Int32(CBL_LOWER),
      Int32(transpose ? CBL_TRANS : CBL_NO_TRANS), Int32(CBL_NON_UNIT), try int32(n, "n"),
      try int32(nrhs, "nrhs"), alpha, l, try int32(max(ldl, 1), "ldl"), b,
      try int32(max(ldb, 1), "ldb"))
  }

  /// xᵀy.
  static func dot(_ n: Int, _ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>) throws(BDLError) -> Double {
    let f = try api().pointee.ddot!
    return f(try int32(n, "n"), x, 1, y, 1)
  }

  /// y ← α·x + y.
  static func axpy(_ n: Int, _ alpha: Double, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>) throws(BDLError) {
    let f = try api().pointee.daxpy!
    f(try int32(n, "n"), alpha, x, 1, y, 1)
  }

  /// x ← α·x.
  static func scal(_ n: Int, _ alpha: Double, _ x: UnsafeMutablePointer<Double>) throws(BDLError) {
    let f = try api().pointee.dscal!
    f(try int32(n, "n"), alpha, x, 1)
  }

  /// A = Q₁·T·Q₁ᵀ with T tridiagonal (diagonal `d`, n entries; off-diagonal `e`, n − 1) and Q₁
  /// kept as Householder reflectors in `a` and `tau` (n − 1): the first step of every symmetric
  /// eigensolver (`sterf` for the eigenvalues, `stedc` and `ormtr` for the vectors).
  ///
  /// Called in LAPACK's native column-major layout: a symmetric matrix reads the same either way,
  /// and the row-major LAPACKE path would transpose the matrix in and out (30% slower at n = 1024).
  static func sytrd(
    n: Int, a: UnsafeMutablePointer<Double>, d: UnsafeMutablePointer<Double>, e: UnsafeMutablePointer<Double>,
    tau: UnsafeMutablePointer<Double>
  ) throws(BDLError) {
    let f = try api().pointee.dsytrd!
    let info = f(Int32(CBL_COL_MAJOR), CChar(UInt8(ascii: "L")), try int32(n, "n"), a, try int32(max(n, 1), "lda"), d, e, tau)
    try check(info, "dsytrd") { .internal("dsytrd returned \($0)") }
  }

  /// Eigenvalues (ascending, into `d`) of the tridiagonal (d, e) by the root-free QR method;
  /// `e` is destroyed.
  static func sterf(n: Int, d: UnsafeMutablePointer<Double>, e: UnsafeMutablePointer<Double>) throws(BDLError) {
    let f = try api().pointee.dsterf!
    let info = f(try int32(n, "n"), d, e)
    try check(info, "dsterf") { .notConverged("symmetric eigenvalues: \($0) off-diagonal elements did not converge") }
  }

  /// Eigenvalues (into `d`, ascending) and eigenvectors (`z`, n × n column-major: column j is
  /// the eigenvector of d[j]) of the tridiagonal (d, e), by divide and conquer; `e` is destroyed.
  static func stedc(n: Int, d: UnsafeMutablePointer<Double>, e: UnsafeMutablePointer<Double>, z: UnsafeMutablePointer<Double>) throws(BDLError) {
    let f = try api().pointee.dstedc!
    let info = f(Int32(CBL_COL_MAJOR), CChar(UInt8(ascii: "I")), try int32(n, "n"), d, e, z, try int32(max(n, 1), "ldz"))
    try check(info, "dstedc") { .notConverged("symmetric eigenvectors: divide and conquer failed (\($0))") }
  }

  /// C ← Q₁·C for the reflectors `sytrd` left in `a`/`tau`; C is n × n column-major.
  static func ormtr(n: Int, a: UnsafePointer<Double>, tau: UnsafePointer<Double>, c: UnsafeMutablePointer<Double>) throws(BDLError) {
    let f = try api().pointee.dormtr!
    let order = try int32(max(n, 1), "n")
    let info = f(
      Int32(CBL_COL_MAJOR), CChar(UInt8(ascii: "L")), CChar(UInt8(ascii: "L")), CChar(UInt8(ascii: "N")),
      try int32(n, "n"), try int32(n, "n"), a, order, tau, c, order)
    try check(info, "dormtr") { .internal("dormtr returned \($0)") }
  }

  /// Cholesky factor L (lower, A = L·Lᵀ) of the n × n matrix in `a`, in place (lower triangle
  /// read and written). Column-major upper Cholesky (A = UᵀU) on the same memory is exactly the
  /// row-major lower one, without LAPACKE's transposition.
  static func potrf(n: Int, a: UnsafeMutablePointer<Double>, name: String) throws(BDLError) {
    let f = try api().pointee.dpotrf!
    let info = f(Int32(CBL_COL_MAJOR), CChar(UInt8(ascii: "U")), try int32(n, "n"), a, try int32(max(n, 1), "lda"))
    try check(info, "dpotrf") { .notPositiveDefinite("\(name): not positive definite (leading minor of order \($0) is not positive)") }
  }

  /// Solves A·X = B given the lower Cholesky factor of A; B is n × nrhs, overwritten by X.
  static func potrs(n: Int, nrhs: Int, l: UnsafePointer<Double>, b: UnsafeMutablePointer<Double>) throws(BDLError) {
    let f = try api().pointee.dpotrs!
    let info = f(Int32(CBL_ROW_MAJOR), CChar(UInt8(ascii: "L")), try int32(n, "n"), try int32(nrhs, "nrhs"), l, try int32(max(n, 1), "lda"), b, try int32(max(nrhs, 1), "ldb"))
    try check(info, "dpotrs") { .internal("dpotrs returned \($0)") }
  }

  /// A⁻¹ from the lower Cholesky factor in `a` (as `potrf` left it), in place: the lower triangle
  /// of the inverse. Column-major upper, for the same reason as `potrf`.
  static func potri(n: Int, a: UnsafeMutablePointer<Double>) throws(BDLError) {
    let f = try api().pointee.dpotri!
    let info = f(Int32(CBL_COL_MAJOR), CChar(UInt8(ascii: "U")), try int32(n, "n"), a, try int32(max(n, 1), "lda"))
    try check(info, "dpotri") { .notPositiveDefinite("Cholesky factor is singular (diagonal entry \($0) is zero)") }
  }

  /// Thin SVD A = U·diag(s)·Vᵀ of the m × n matrix in `a` (destroyed): U m × r, s r, Vᵀ r × n,
  /// r = min(m, n).
  static func gesdd(
    m: Int, n: Int, a: UnsafeMutablePointer<Double>, s: UnsafeMutablePointer<Double>,
    u: UnsafeMutablePointer<Double>, vt: UnsafeMutablePointer<Double>
  ) throws(BDLError) {
    let f = try api().pointee.dgesdd!
    let r = min(m, n)
    let info = f(Int32(CBL_ROW_MAJOR), CChar(UInt8(ascii: "S")), try int32(m, "m"), try int32(n, "n"), a, try int32(max(n, 1), "lda"), s, u, try int32(max(r, 1), "ldu"), vt, try int32(max(n, 1), "ldvt"))
    try check(info, "dgesdd") { _ in .notConverged("singular value decomposition did not converge") }
  }

  /// Maps a LAPACK info code: < 0 is an illegal argument (our bug), > 0 the numerical failure.
  private static func check(
    _ info: Int32, _ routine: String, _ failure: (Int) -> BDLError
  ) throws(BDLError) {
    // LAPACKE_WORK_MEMORY_ERROR and LAPACKE_TRANSPOSE_MEMORY_ERROR: its workspace allocation failed.
    if info == -1010 || info == -1011 { throw .outOfMemory("\(routine): LAPACKE could not allocate its workspace") }
    if info < 0 { throw .internal("\(routine): argument \(-info) had an illegal value") }
    if info > 0 { throw failure(Int(info)) }
  }
}
