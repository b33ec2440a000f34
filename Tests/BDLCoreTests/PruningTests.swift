@testable import BDLCore
import Foundation
import Testing

/// Pruning scores are diagonal functions of dense matrices that are small here: OPD·θ⁻² is the
/// diagonal of the dense posterior precision and K-FAC-OBS·θ⁻² the reciprocal of the dense inverse's
/// diagonal; both are O(n·ε·κ) apart from the structured route with κ < 1e4 here, so
/// `Tolerance.relativeDense` (1e-9) applies.
private let denseTolerance = Tolerance.relativeDense
/// Two formulas for the same sum of a few products (OPD = 2·OBD + δθ², group sums): rounding only.
private let roundingTolerance = 1e-13

/// The inverse of a small symmetric positive definite matrix by Gauss–Jordan elimination with
/// partial pivoting: a reference independent of the library's Cholesky.
private func gaussJordanInverse(_ m: Matrix) -> Matrix {
  let n = m.rows
  var a = m, inverse = Matrix.identity(n)
  for column in 0..<n {
    let pivot = (column..<n).max { abs(a[$0, column]) < abs(a[$1, column]) }!
    for j in 0..<n {
      (a[column, j], a[pivot, j]) = (a[pivot, j], a[column, j])
      (inverse[column, j], inverse[pivot, j]) = (inverse[pivot, j], inverse[column, j])
    }
    let d = a[column, column]
    for j in 0..<n {
      a[column, j] /= d
      inverse[column, j] /= d
    }
    for i in 0..<n where i != column {
      let f = a[i, column]
      if f == 0 { continue }
      for j in 0..<n {
        a[i, j] -= f * a[column, j]
        inverse[i, j] -= f * inverse[column, j]
      }
    }
  }
  return inverse
}

/// θ_i²·w_i.
private func weightedSquares(_ weights: [Double], _ theta: [Double]) -> [Double] {
  zip(weights, theta).map { $0 * $1 * $1 }
}

private func expectError(
  _ kind: (BDLError) -> Bool, _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
  #expect(Comment(rawValue: what), sourceLocation: sourceLocation) {
    try body()
  } throws: { error in
    guard let error = error as? BDLError else { return false }
    return kind(error)
  }
}

private func isInvalidArgument(_ e: BDLError) -> Bool { if case .invalidArgument = e { true } else { false } }
private func isShapeMismatch(_ e: BDLError) -> Bool { if case .shapeMismatch = e { true } else { false } }
private func isNonFinite(_ e: BDLError) -> Bool { if case .nonFiniteInput = e { true } else { false } }
private func isCorrupt(_ e: BDLError) -> Bool { if case .corruptData = e { true } else { false } }

/// Scores, masks, sparsity reports and model files (`swift test --filter PruningTests`).
@Suite("Pruning")
struct PruningTests {}

extension PruningTests {
  @Suite("Pruning scores")
  struct Scores {
    @Test("OPD(diag) = 2·OBD + δθ² elementwise, for every prior shape, σ and T", arguments: [false, true])
    func opdIsObdPlusPrior(regression: Bool) throws {
      let problem = try regression ? LaplaceProblem.regression() : LaplaceProblem.classification()
      var laplace = try problem.fit(.diagonal)
      for (name, hp) in hyperparameterCases(tensors: laplace.tensorSizes.count, parameters: laplace.parameterCount, regression: regression) {
        try laplace.setHyperparameters(hp)
        let δ = perParameter(hp.priorPrecision, tensorSizes: laplace.tensorSizes)
        let opd = try PruningScores.optimalPosteriorDamage(laplace)
        let obd = try PruningScores.optimalBrainDamage(laplace)
        let expected = zip(obd, weightedSquares(δ, laplace.mean)).map { 2 * $0 + $1 }
        expectClose(opd, expected, tolerance: roundingTolerance, "\(name)")
      }
    }

    @Test("OPD and K-FAC-OBS equal the diagonals of the dense posterior precision and its inverse, every structure and prior", arguments: [false, true])
    func scoresMatchDense(regression: Bool) throws {
      let problem = try regression ? LaplaceProblem.regression() : LaplaceProblem.classification()
      for structure in [Laplace.Structure.full, .diagonal, .kron] {
        var laplace = try problem.fit(structure)
        for (name, hp) in hyperparameterCases(tensors: laplace.tensorSizes.count, parameters: laplace.parameterCount, regression: regression) {
          try laplace.setHyperparameters(hp)
          let h = Laplace.likelihoodScale(hp, problem.likelihood)
          let precision = try densePrecision(laplace, scale: h, prior: perParameter(hp.priorPrecision, tensorSizes: laplace.tensorSizes))
          let θ = problem.model.parameters
          expectClose(
            try PruningScores.optimalPosteriorDamage(laplace), weightedSquares(precision.diagonalEntries, θ),
            tolerance: denseTolerance, "OPD \(structure) \(name)")
          let inverse = gaussJordanInverse(precision).diagonalEntries
          expectClose(
            try PruningScores.optimalBrainSurgeon(laplace), weightedSquares(inverse.map { 1 / $0 }, θ),
            tolerance: denseTolerance, "K-FAC-OBS \(structure) \(name)")
        }
      }
    }

    @Test("OBD uses the exact GGN diagonal for full and diag posteriors, K-FAC's diagonal for kron")
    func obdCurvature() throws {
      let problem = try LaplaceProblem.regression()
      let hp = LaplaceHyperparameters(priorPrecision: [0.4], sigma: 0.6, temperature: 1.5)
      let h = 1 / (0.6 * 0.6 * 1.5)
      let ggn = try problem.ggn().diagonalEntries
      let θ = problem.model.parameters
      let exact = weightedSquares(ggn.map { 0.5 * h * $0 }, θ)
      expectClose(try PruningScores.optimalBrainDamage(problem.fit(.full, hp: hp)), exact, tolerance: denseTolerance, "full")
      expectClose(try PruningScores.optimalBrainDamage(problem.fit(.diagonal, hp: hp)), exact, tolerance: denseTolerance, "diag")
      let kron = try problem.fit(.kron, hp: hp)
      guard case .kron(let kfac) = kron.curvature else { Issue.record("not K-FAC"); return }
      let kfacDiagonal = try kfac.dense().diagonalEntries
      expectClose(try PruningScores.optimalBrainDamage(kron), weightedSquares(kfacDiagonal.map { 0.5 * h * $0 }, θ), tolerance: denseTolerance, "kron")
    }

    @Test("K-FAC scores follow the posterior's own form: EK-FAC eigenvalues and the damped product")
    func kroneckerVariants() throws {
      let problem = try LaplaceProblem.classification()
      let hp = LaplaceHyperparameters(priorPrecision: [0.9, 1.4, 0.6, 2.0], temperature: 1.3)
      let h = 1 / 1.3
      let θ = problem.model.parameters
      let ekfac = try KFAC.fitEigenvalueCorrected(model: problem.model, inputs: problem.x, targets: problem.targets, likelihood: CategoricalLikelihood())
      let laplace = try Laplace(
        curvature: .kron(ekfac), mean: θ, tensorSizes: problem.model.tensorSizes, loss: 1, dataCount: problem.x.count,
        outputCount: 3, likelihood: .classification, hyperparameters: hp)
      let δ = perParameter(hp.priorPrecision, tensorSizes: laplace.tensorSizes)
      let precision = try densePrecision(laplace, scale: h, prior: δ)
      expectClose(try PruningScores.optimalPosteriorDamage(laplace), weightedSquares(precision.diagonalEntries, θ), tolerance: denseTolerance, "EK-FAC OPD")

      // Damped weight blocks: P = (√h·B + √δ·I) ⊗ (√h·A + √δ·I), diagonal (√h·B + √δ·I)_mm·(√h·A + √δ·I)_nn.
      let damped = try problem.fit(.kron, damped: true, hp: hp)
      guard case .kron(let kfac) = damped.curvature else { Issue.record("not K-FAC"); return }
      var expected = [Double](repeating: 0, count: θ.count)
      var tensor = 0
      for block in kfac.blocks {
        let b = try reconstruct(block.factors.b), a = try reconstruct(block.factors.a)
        let rootδ = hp.priorPrecision[tensor].squareRoot()
        for m in 0..<b.rows {
          for n in 0..<a.rows {
            let value = block.isBias
              ? h * b[m, m] + hp.priorPrecision[tensor]
              : (h.squareRoot() * b[m, m] + rootδ) * (h.squareRoot() * a[n, n] + rootδ)
            expected[block.parameters.lowerBound + m * a.rows + n] = value
          }
        }
        tensor += 1
      }
      expectClose(try PruningScores.optimalPosteriorDamage(damped), weightedSquares(expected, θ), tolerance: denseTolerance, "damped OPD")
    }

    /// Q·diag(λ)·Qᵀ.
    private func reconstruct(_ e: SymmetricEigendecomposition) throws -> Matrix {
      let n = e.eigenvalues.count
      let q = try e.eigenvectors
      var m = Matrix(rows: n, columns: n)
      for i in 0..<n {
        for j in 0..<n {
          for k in 0..<n { m[i, j] += q[i, k] * e.eigenvalues[k] * q[j, k] }
        }
      }
      return m
    }

    @Test("compute dispatches every criterion; magnitude and random need only θ and are seeded")
    func compute() throws {
      let problem = try LaplaceProblem.classification()
      let laplace = try problem.fit(.kron)
      let θ = problem.model.parameters
      #expect(try PruningScores.compute(.opd, laplace: laplace) == PruningScores.optimalPosteriorDamage(laplace))
      #expect(try PruningScores.compute(.obd, laplace: laplace, model: problem.model) == PruningScores.optimalBrainDamage(laplace))
      #expect(try PruningScores.compute(.kfacOBS, laplace: laplace) == PruningScores.optimalBrainSurgeon(laplace))
      #expect(try PruningScores.compute(.magnitude, model: problem.model) == θ.map { abs($0) })
      #expect(try PruningScores.compute(.magnitude, laplace: laplace) == θ.map { abs($0) })
      let first = try PruningScores.compute(.random, model: problem.model, seed: 9)
      #expect(first == (try PruningScores.compute(.random, model: problem.model, seed: 9)))
      #expect(first != (try PruningScores.compute(.random, model: problem.model, seed: 10)))
      #expect(first.count == θ.count && first.allSatisfy { $0 >= 0 && $0 < 1 })
    }

    @Test("structured scores are the sums over each unit's weights and bias; the output layer has no units")
    func structuredSums() throws {
      for problem in try LaplaceProblem.weightSharing() + [LaplaceProblem.classification()] {
        let model = problem.model
        let laplace = try problem.fit(.kron)
        let scores = try PruningScores.compute(.opd, laplace: laplace)
        let structured = try PruningScores.compute(.opd, laplace: laplace, model: model, structured: true)
        // Independently from the tensor shapes: a weight (out, …) has `out` rows of ∏(…) entries.
        var expected: [Double] = []
        let mapLayers = model.layers.indices.filter { model.layers[$0].parameterShapes.count > 0 }
        for index in mapLayers.dropLast() {
          let shapes = model.layers[index].parameterShapes
          let out = shapes[0][0], row = shapes[0].dropFirst().reduce(1, *)
          let start = model.parameterOffsets[index]
          for j in 0..<out {
            var total = scores[(start + j * row)..<(start + (j + 1) * row)].reduce(0, +)
            if shapes.count == 2 { total += scores[start + out * row + j] }
            expected.append(total)
          }
        }
        expectClose(structured, expected, tolerance: roundingTolerance, "group sums")
      }
    }
  }

  @Suite("Pruning masks")
  struct Masks {
    func problem() throws -> (Sequential, [Double]) {
      var model = try TestNetworks.cnn()
      try randomize(&model, seed: 41)
      return (model, model.parameters.map { abs($0) })
    }

    @Test("0% sparsity changes no bit of θ, structured or not")
    func zeroSparsityIsIdentity() throws {
      let (model, scores) = try problem()
      for mask in [
        try PruningMask.unstructured(scores: scores, sparsity: 0, model: model, includeBiases: true),
        try PruningMask.structured(groupScores: try PruningGroups(model: model).sums(scores), fractions: [0], model: model),
      ] {
        #expect(mask == PruningMask.keepingAll(of: model))
        var pruned = model
        try pruned.applyMask(mask)
        #expect(pruned.parameters.map(\.bitPattern) == model.parameters.map(\.bitPattern))
      }
    }

    @Test("global unstructured masks reach round(s·n) pruned weights, the smallest scores, biases kept", arguments: [0.1, 0.5, 0.9, 0.99])
    func unstructured(sparsity: Double) throws {
      let (model, scores) = try problem()
      let mask = try PruningMask.unstructured(scores: scores, sparsity: sparsity, model: model)
      let weights = PruningMask.weightIndices(model)
      let isWeight = Set(weights)
      let pruned = mask.values.indices.filter { mask.values[$0] == 0 }
      #expect(pruned.count == Int((sparsity * Double(weights.count)).rounded()))
      #expect(pruned.allSatisfy { isWeight.contains($0) }, "a bias was pruned")
      let largestPruned = pruned.map { scores[$0] }.max() ?? -.infinity
      let smallestKept = weights.filter { mask.values[$0] == 1 }.map { scores[$0] }.min() ?? .infinity
      #expect(largestPruned <= smallestKept)
      let report = try model.sparsityReport(mask: mask)
      #expect(abs(report.weightSparsity - sparsity) <= 0.5 / Double(weights.count))
      #expect(report.layers.allSatisfy { $0.keptBiases == $0.biases })

      let withBiases = try PruningMask.unstructured(scores: scores, sparsity: sparsity, model: model, includeBiases: true)
      #expect(withBiases.prunedCount == Int((sparsity * Double(model.parameterCount)).rounded()))
    }

    @Test("ties are broken by position: equal scores prune the earliest parameters")
    func ties() throws {
      let (model, _) = try problem()
      let mask = try PruningMask.unstructured(scores: [Double](repeating: 2, count: model.parameterCount), sparsity: 0.25, model: model, includeBiases: true)
      let k = Int((0.25 * Double(model.parameterCount)).rounded())
      #expect(mask.values == [Double](repeating: 0, count: k) + [Double](repeating: 1, count: model.parameterCount - k))
    }

    @Test("structured masks remove round(f·n) whole units per layer, never in the output layer")
    func structured() throws {
      let (model, scores) = try problem()
      let units = try PruningGroups(model: model)
      #expect(units.layers.map(\.layerIndex) == [0, 3])  // the two convolutions; Linear(16, 3) is the output
      let groupScores = try units.sums(scores)
      let fractions = [0.34, 0.5]
      let mask = try PruningMask.structured(groupScores: groupScores, fractions: fractions, model: model)
      for (l, layer) in units.layers.enumerated() {
        let removed = layer.groups.filter { g in units.groups[g].weights.allSatisfy { mask.values[$0] == 0 } }
        #expect(removed.count == Int((fractions[l] * Double(layer.unitCount)).rounded()))
        for g in layer.groups {
          let group = units.groups[g]
          let kept = group.weights.map { mask.values[$0] } + (group.bias.map { [mask.values[$0]] } ?? [])
          #expect(Set(kept).count == 1, "unit \(g) is partly pruned")
        }
        let worstRemoved = removed.map { groupScores[$0] }.max() ?? -.infinity
        let bestKept = layer.groups.filter { !removed.contains($0) }.map { groupScores[$0] }.min() ?? .infinity
        #expect(worstRemoved <= bestKept)
      }
      let output = model.parameterRange(ofLayer: 6)
      #expect(output.allSatisfy { mask.values[$0] == 1 })
      let report = try model.sparsityReport(mask: mask)
      #expect(report.layers.map(\.keptUnits) == [2, 2, 3])
    }

    @Test("applying a mask zeroes exactly the pruned parameters; the report counts weights and MACs")
    func applyAndReport() throws {
      let (model, scores) = try problem()
      let mask = try PruningMask.unstructured(scores: scores, sparsity: 0.6, model: model)
      var pruned = model
      try pruned.applyMask(mask)
      for i in mask.values.indices {
        if mask.values[i] == 0 { #expect(pruned.parameters[i].bitPattern == 0) } else { #expect(pruned.parameters[i].bitPattern == model.parameters[i].bitPattern) }
      }
      #expect(try pruned.sparsityReport() == model.sparsityReport(mask: mask))
      let dense = try model.sparsityReport()
      // cnn: Conv2d(2, 3, k3, p1) on 9×8 → 72 positions; Conv2d(3, 4, k2, s2) on 4×4 → 4 positions; Linear(16, 3).
      #expect(dense.layers.map(\.multiplyAccumulates) == [72 * 3 * 18, 4 * 4 * 12, 3 * 16])
      #expect(dense.layers.map(\.weights) == [54, 48, 48])
      #expect(dense.keptMultiplyAccumulates == dense.multiplyAccumulates)
      // sequence: Linear(3, 5) and Linear(5, 4) at T = 4 positions, then Linear(4, 3) once.
      let sequence = try TestNetworks.sequence().sparsityReport()
      #expect(sequence.layers.map(\.multiplyAccumulates) == [4 * 15, 4 * 20, 12])
      let sparse = try model.sparsityReport(mask: mask)
      for (layer, positions) in zip(sparse.layers, [72, 4, 1]) {
        let range = model.parameterOffsets[layer.layerIndex]..<(model.parameterOffsets[layer.layerIndex] + layer.weights)
        #expect(layer.keptWeights == range.filter { mask.values[$0] == 1 }.count)
        #expect(layer.keptMultiplyAccumulates == positions * layer.keptWeights)
      }
    }

    @Test("bad input is a clear error, never a trap")
    func badInput() throws {
      let (model, scores) = try problem()
      for s in [-0.1, 1, 1.5, .nan, .infinity] {
        expectError(isInvalidArgument, "sparsity \(s)") { _ = try PruningMask.unstructured(scores: scores, sparsity: s, model: model) }
        expectError(isInvalidArgument, "fraction \(s)") {
          _ = try PruningMask.structured(groupScores: try PruningGroups(model: model).sums(scores), fractions: [s], model: model)
        }
      }
      expectError(isShapeMismatch, "short scores") { _ = try PruningMask.unstructured(scores: Array(scores.dropLast()), sparsity: 0.5, model: model) }
      expectError(isNonFinite, "NaN score") { _ = try PruningMask.unstructured(scores: [.nan] + scores.dropFirst(), sparsity: 0.5, model: model) }
      expectError(isShapeMismatch, "group scores") { _ = try PruningMask.structured(groupScores: [1, 2], fractions: [0.5], model: model) }
      expectError(isShapeMismatch, "fractions") { _ = try PruningMask.structured(groupScores: [Double](repeating: 1, count: 7), fractions: [0.1, 0.2, 0.3], model: model) }
      // Conv2d(2, 3): 0.9 of 3 units rounds to 3 — all of them.
      expectError(isInvalidArgument, "all units") { _ = try PruningMask.structured(groupScores: [Double](repeating: 1, count: 7), fractions: [0.9, 0], model: model) }
      expectError(isInvalidArgument, "one linear layer") { _ = try PruningGroups(model: Sequential([Linear(3, 2)], inputShape: [3])) }
      expectError(isInvalidArgument, "a mask is 0 or 1") { _ = try PruningMask(values: [Double](repeating: 0.5, count: model.parameterCount), model: model) }
      expectError(isShapeMismatch, "mask length") { _ = try PruningMask(values: [1, 0], model: model) }

      // Same P (13), different layers: the mask is refused.
      let a = try Sequential([Linear(1, 2), Activation.relu, Linear(2, 3)], inputShape: [1])
      var b = try Sequential([Linear(2, 1), Activation.relu, Linear(1, 5)], inputShape: [2])
      #expect(a.parameterCount == b.parameterCount)
      let mask = try PruningMask(values: [Double](repeating: 1, count: 13), model: a)
      let before = b.parameters
      expectError(isShapeMismatch, "another network") { try b.applyMask(mask) }
      #expect(b.parameters == before)
      expectError(isShapeMismatch, "report for another network") { _ = try b.sparsityReport(mask: mask) }
    }

    @Test("score bad input: missing posterior, structured without a model or over a last-layer posterior, another network")
    func scoreBadInput() throws {
      let problem = try LaplaceProblem.classification()
      expectError(isInvalidArgument, "nothing") { _ = try PruningScores.compute(.magnitude) }
      expectError(isInvalidArgument, "OPD without a posterior") { _ = try PruningScores.compute(.opd, model: problem.model) }
      let laplace = try problem.fit(.diagonal)
      expectError(isInvalidArgument, "structured without a model") { _ = try PruningScores.compute(.opd, laplace: laplace, structured: true) }
      let last = try problem.fit(.diagonal, subset: .lastLayer)
      #expect(try PruningScores.compute(.opd, laplace: last).count == 6 * 3 + 3)
      expectError(isInvalidArgument, "structured last layer") { _ = try PruningScores.compute(.opd, laplace: last, model: problem.model, structured: true) }
      let other = try Sequential([Linear(4, 2), Activation.tanh, Linear(2, 3)], inputShape: [4])
      expectError(isShapeMismatch, "another network") { _ = try PruningScores.compute(.opd, laplace: laplace, model: other) }
    }
  }

  @Suite("Model files")
  struct Files {
    func pruned() throws -> (Sequential, PruningMask) {
      var model = try TestNetworks.cnn()
      try randomize(&model, seed: 51)
      let mask = try PruningMask.unstructured(scores: model.parameters.map { abs($0) }, sparsity: 0.7, model: model)
      try model.applyMask(mask)
      return (model, mask)
    }

    @Test("a model and its mask round-trip bit for bit; every layer kind is described", arguments: [false, true])
    func roundTrip(withMask: Bool) throws {
      let (model, mask) = try pruned()
      let path = temporaryDirectory() + "/model.bdl"
      try ModelFile.save(model, mask: withMask ? mask : nil, to: path)
      let (loaded, loadedMask) = try ModelFile.load(from: path)
      #expect(loaded.parameters.map(\.bitPattern) == model.parameters.map(\.bitPattern))
      #expect(loaded.layers.map(\.description) == model.layers.map(\.description))
      #expect(loaded.inputShape == model.inputShape)
      #expect(loadedMask == (withMask ? mask : nil))
      let x = randomBatch(model, n: 3, seed: 52)
      #expect(try loaded.forward(x) == model.forward(x))
      for (_, make) in TestNetworks.all {
        let network = try make()
        let back = try ModelFile.decode(ModelFile.encode(network)).model
        #expect(back.layers.map(\.description) == network.layers.map(\.description))
        #expect(back.parameters == network.parameters)
      }
    }

    @Test("every truncation and a flipped byte are corrupt data; I/O failures are I/O errors")
    func corruption() throws {
      let (model, mask) = try pruned()
      let bytes = try ModelFile.encode(model, mask: mask)
      for length in stride(from: 0, to: bytes.count, by: 7) {
        expectError(isCorrupt, "length \(length)") { _ = try ModelFile.decode(Array(bytes[0..<length])) }
      }
      for position in stride(from: 0, to: bytes.count, by: 5) {
        var damaged = bytes
        damaged[position] ^= 0x10
        expectError(isCorrupt, "byte \(position)") { _ = try ModelFile.decode(damaged) }
      }
      expectError(isCorrupt, "trailing byte") { _ = try ModelFile.decode(bytes + [0]) }
      expectError({ if case .ioError = $0 { true } else { false } }, "missing") { _ = try ModelFile.load(from: temporaryDirectory() + "/missing.bdl") }
      let other = try Sequential([Linear(2, 1), Activation.relu, Linear(1, 5)], inputShape: [2])
      expectError(isShapeMismatch, "a mask of another network") { _ = try ModelFile.encode(other, mask: mask) }
    }
  }
}
