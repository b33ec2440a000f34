import BDLCore
import Testing

@Suite("Matrix products through BLAS")
struct MatrixTests {
  @Test("gemm with and without transposes equals the naive product", arguments: [(1, 1, 1), (3, 5, 2), (17, 9, 31)])
  func gemm(shape: (Int, Int, Int)) throws {
    var rng = SeededGenerator(seed: 1)
    let (m, k, n) = shape
    let a = rng.matrix(m, k), b = rng.matrix(k, n)
    let reference = naiveProduct(a, b).elements
    expectClose(try a.multiplied(by: b).elements, reference, tolerance: Tolerance.relativeDense, "A·B")
    expectClose(
      try a.transposed.multiplied(by: b, transposingSelf: true).elements, reference,
      tolerance: Tolerance.relativeDense, "(Aᵀ)ᵀ·B")
    expectClose(
      try a.multiplied(by: b.transposed, transposingOther: true).elements, reference,
      tolerance: Tolerance.relativeDense, "A·(Bᵀ)ᵀ")
  }

  @Test("syrk Gram matrices equal AᵀA and AAᵀ")
  func gram() throws {
    var rng = SeededGenerator(seed: 2)
    let a = rng.matrix(7, 4)
    expectClose(try a.gram().elements, naiveProduct(a.transposed, a).elements, tolerance: Tolerance.relativeDense, "AᵀA")
    expectClose(try a.gram(outer: true).elements, naiveProduct(a, a.transposed).elements, tolerance: Tolerance.relativeDense, "AAᵀ")
  }

  @Test("gemv and dot")
  func matrixVector() throws {
    var rng = SeededGenerator(seed: 3)
    let a = rng.matrix(6, 4), x = rng.vector(4), z = rng.vector(6)
    let column = try Matrix(rows: 4, columns: 1, elements: x)
    expectClose(try a.multiplied(by: x), naiveProduct(a, column).elements, tolerance: Tolerance.relativeDense, "A·x")
    let zColumn = try Matrix(rows: 6, columns: 1, elements: z)
    expectClose(
      try a.multiplied(by: z, transposingSelf: true), naiveProduct(a.transposed, zColumn).elements,
      tolerance: Tolerance.relativeDense, "Aᵀ·z")
    expectClose(try dot(x, x), x.reduce(0) { $0 + $1 * $1 }, tolerance: Tolerance.relativeDense, "xᵀx")
  }

  @Test("axpy and scal")
  func axpyScal() throws {
    var rng = SeededGenerator(seed: 4)
    let a = rng.matrix(3, 4), b = rng.matrix(3, 4)
    var c = a
    try c.add(b, scaledBy: -2)
    expectClose(c.elements, zip(a.elements, b.elements).map { $0 - 2 * $1 }, tolerance: 1e-15, "A − 2B")
    try c.scale(by: 0.5)
    expectClose(c.elements, zip(a.elements, b.elements).map { 0.5 * $0 - $1 }, tolerance: 1e-15, "½(A − 2B)")
    #expect(throws: BDLError.self) { try c.add(Matrix(rows: 4, columns: 3)) }
  }

  @Test("shape errors are thrown, not trapped")
  func shapeErrors() throws {
    let a = Matrix(rows: 2, columns: 3), b = Matrix(rows: 2, columns: 3)
    #expect(throws: BDLError.self) { try a.multiplied(by: b) }
    #expect(throws: BDLError.self) { try a.multiplied(by: [1, 2]) }
    #expect(throws: BDLError.self) { try Matrix(rows: 2, columns: 2, elements: [1, 2, 3]) }
    #expect(throws: BDLError.self) { try dot([1], [1, 2]) }
  }
}
