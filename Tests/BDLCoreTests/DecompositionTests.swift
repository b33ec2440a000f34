import BDLCore
import Testing

@Suite("Eigen, Cholesky and SVD factorizations")
struct DecompositionTests {
  @Test("symmetric eigendecomposition reconstructs A with orthonormal Q", arguments: [1, 2, 9, 40])
  func eigen(n: Int) throws {
    var rng = SeededGenerator(seed: 10 + UInt64(n))
    let a = rng.spd(n, ridge: 0.5)
    let e = try SymmetricEigendecomposition(a)
    #expect(e.eigenvalues == e.eigenvalues.sorted(), "eigenvalues ascend")
    let scale = Double(n) * Double.ulpOfOne * a.maxAbsoluteEntry * Tolerance.scaledResidual
    let rebuilt = try e.reconstructed()
    #expect(zip(rebuilt.elements, a.elements).allSatisfy { abs($0 - $1) <= scale }, "Q·Λ·Qᵀ = A")
    let qtq = try e.eigenvectors.multiplied(by: e.eigenvectors, transposingSelf: true)
    expectClose(qtq.elements, Matrix.identity(n).elements, tolerance: Double(n) * 1e-13, "QᵀQ = I")
  }

  @Test("PSD decomposition clips rounding negatives and rejects real ones")
  func semidefinite() throws {
    var rng = SeededGenerator(seed: 20)
    let lowRank = rng.spd(6, rank: 2)
    let e = try SymmetricEigendecomposition.positiveSemidefinite(lowRank, name: "B")
    #expect(e.eigenvalues.allSatisfy { $0 >= 0 })
    #expect(e.eigenvalues.filter { $0 == 0 }.count == 4, "the four null-space eigenvalues are exactly 0: \(e.eigenvalues)")
    var indefinite = rng.spd(4, ridge: 0.1)
    indefinite[0, 0] = -5
    #expect {
      try SymmetricEigendecomposition.positiveSemidefinite(indefinite, name: "B")
    } throws: { error in
      guard case .notPositiveDefinite(let message) = error as? BDLError else { return false }
      return message.hasPrefix("B:")
    }
  }

  @Test("non-symmetric and non-finite inputs are named errors")
  func badInputs() throws {
    let asymmetric = try Matrix([[1, 2], [3, 1]])
    #expect {
      try SymmetricEigendecomposition(asymmetric, name: "A")
    } throws: { error in
      guard case .notPositiveDefinite(let message) = error as? BDLError else { return false }
      return message.contains("A: entry (1, 0)")
    }
    let withNaN = try Matrix([[1, .nan], [.nan, 1]])
    #expect(throws: BDLError.nonFiniteInput("A: entry 1 is nan; all entries must be finite")) {
      try SymmetricEigendecomposition(withNaN, name: "A")
    }
    #expect(throws: BDLError.self) { try SymmetricEigendecomposition(Matrix(rows: 2, columns: 3)) }
  }

  @Test("Cholesky log-determinant, solve and inverse agree with the eigendecomposition", arguments: [1, 5, 30])
  func cholesky(n: Int) throws {
    var rng = SeededGenerator(seed: 30 + UInt64(n))
    let a = rng.spd(n, ridge: 1)
    let c = try Cholesky(a)
    let e = try SymmetricEigendecomposition(a)
    expectClose(c.logDeterminant, e.eigenvalues.reduce(0) { $0 + logarithm($1) }, tolerance: 1e-12, "log det")
    let b = rng.matrix(n, 3)
    let x = try c.solve(b)
    let residual = try a.multiplied(by: x)
    expectClose(residual.elements, b.elements, tolerance: 1e-10, "A·(A⁻¹B) = B")
    let inverse = try c.inverse()
    expectClose(try a.multiplied(by: inverse).elements, Matrix.identity(n).elements, tolerance: 1e-10, "A·A⁻¹ = I")
    // L⁻¹B whitening: (L⁻¹B)ᵀ(L⁻¹B) = Bᵀ A⁻¹ B.
    let w = try c.solveLower(b)
    expectClose(
      try w.gram().elements, try b.multiplied(by: x, transposingSelf: true).elements,
      tolerance: 1e-10, "whitening")
  }

  @Test("Cholesky reports the failing minor of an indefinite matrix")
  func choleskyIndefinite() throws {
    let a = try Matrix([[4, 2, 0], [2, 1, 0], [0, 0, 1]])
    #expect {
      try Cholesky(a, name: "P")
    } throws: { error in
      guard case .notPositiveDefinite(let message) = error as? BDLError else { return false }
      return message.contains("P:") && message.contains("order 2")
    }
  }

  @Test("SVD reconstructs A; least squares matches the normal equations")
  func svd() throws {
    var rng = SeededGenerator(seed: 40)
    let a = rng.matrix(12, 5)
    let s = try SingularValueDecomposition(a)
    #expect(s.singularValues == s.singularValues.sorted(by: >))
    var us = s.u
    for i in 0..<us.rows { for j in 0..<us.columns { us[i, j] *= s.singularValues[j] } }
    expectClose(try us.multiplied(by: s.vTransposed).elements, a.elements, tolerance: 1e-12, "U·S·Vᵀ = A")
    let y = rng.vector(12)
    let normal = try Cholesky(a.gram()).solve(try a.multiplied(by: y, transposingSelf: true))
    expectClose(try s.leastSquaresSolution(y), normal, tolerance: 1e-10, "least squares")
  }

  @Test("eigenvectors are formed on first use, once, shared by copies, and pair with the eigenvalues")
  func deferredEigenvectors() async throws {
    var rng = SeededGenerator(seed: 50)
    let a = rng.spd(60, rank: 45)  // a repeated zero eigenvalue, as rank-deficient K-FAC factors have
    let e = try SymmetricEigendecomposition.positiveSemidefinite(a, name: "A")
    #expect(!e.hasEigenvectors, "the eigenvalues alone do not form Q")
    let copies = Array(repeating: e, count: 8)
    let formed = await withTaskGroup(of: Matrix?.self) { group in
      for copy in copies { group.addTask { try? copy.eigenvectors } }
      return await group.reduce(into: [Matrix?]()) { $0.append($1) }
    }
    #expect(e.hasEigenvectors, "a copy's access forms Q for the original too")
    let q = try e.eigenvectors
    #expect(formed.allSatisfy { $0 == q }, "every concurrent reader gets the one Q")
    // A·q_j = λ_j·q_j for the eigenvalues computed before Q (dsterf) and Q from divide and conquer.
    let aq = try a.multiplied(by: q)
    let scale = 60 * Double.ulpOfOne * a.maxAbsoluteEntry * Tolerance.scaledResidual
    for i in 0..<60 {
      for j in 0..<60 { #expect(abs(aq[i, j] - e.eigenvalues[j] * q[i, j]) <= scale, "A·q_\(j) = λ_\(j)·q_\(j)") }
    }
    expectClose(try q.multiplied(by: q, transposingSelf: true).elements, Matrix.identity(60).elements, tolerance: 1e-12, "QᵀQ = I")
  }

  @Test("a K-FAC Laplace posterior's evidence and its prior optimisation never form eigenvectors; predictions do")
  func evidenceNeedsOnlyEigenvalues() throws {
    var model = try Sequential([Linear(5, 7), Activation.tanh, Linear(7, 3)], inputShape: [5], seed: 4)
    var rng = SeededGenerator(seed: 51)
    let x = try Tensor(shape: [20, 5], elements: rng.vector(100))
    try model.setParameters(rng.vector(model.parameterCount))
    var options = Laplace.FitOptions()
    options.structure = .kron
    var laplace = try Laplace.fit(
      model: model, inputs: x, targets: .classes((0..<20).map { $0 % 3 }), likelihood: .classification, options: options)
    guard case .kron(let kfac) = laplace.curvature else { Issue.record("not a Kronecker posterior"); return }
    func formed() -> [Bool] { kfac.blocks.flatMap { [$0.factors.b.hasEigenvectors, $0.factors.a.hasEigenvectors] } }
    _ = try laplace.optimizePriorPrecision(structure: .layerwise)
    _ = try laplace.logMarginalLikelihoodGradient()
    // Bias blocks share B with their weight and use the shared 1 × 1 unit factor.
    #expect(kfac.blocks.filter { !$0.isBias }.allSatisfy { !$0.factors.b.hasEigenvectors && !$0.factors.a.hasEigenvectors }, "\(formed())")
    _ = try laplace.predictProbabilities(model: model, inputs: x)
    #expect(kfac.blocks.allSatisfy { $0.factors.b.hasEigenvectors && $0.factors.a.hasEigenvectors }, "\(formed())")
  }
}
