@testable import BDLCore
import Foundation
import Testing

/// The kernel form against the full-GGN Laplace: rounding differs only in the order of O((NC)³)
/// and O(P³) factorizations of matrices conditioned below 1e4, ≈ 1e-13 relative; 1e-8 is the
/// issue's contract and still catches any missing ½, h or log det P0 term by many orders.
private let kernelFormTolerance = 1e-8
/// Fischer's inequality holds exactly; the slack covers rounding of two log-determinants of
/// size ≈ 10² (a few ε·NC·|log det|).
private let fischerSlack = 1e-9
/// Averages of per-batch estimates vs the partitioned value: the same sums in another order.
private let averageTolerance = 1e-11

/// Every problem with the prior cases the kernel form supports (scalar, per-tensor, and a prior
/// mean with a temperature), without the per-parameter prior it refuses.
private func supportedCases(_ bound: NTKEvidenceBound, regression: Bool) -> [(String, LaplaceHyperparameters)] {
  hyperparameterCases(tensors: bound.tensorCount, parameters: bound.model.parameterCount, regression: regression)
    .filter { $0.1.priorPrecision.count != bound.model.parameterCount }
}

private func problems() throws -> [(String, LaplaceProblem)] {
  let sharing = try LaplaceProblem.weightSharing()
  return [
    ("mlp classification", try LaplaceProblem.classification()), ("mlp regression", try LaplaceProblem.regression()),
    ("cnn", sharing[0]), ("sequence", sharing[1]),
  ]
}

private func bound(_ problem: LaplaceProblem, _ options: NTKEvidenceBound.Options = .init()) throws -> NTKEvidenceBound {
  try NTKEvidenceBound(model: problem.model, inputs: problem.x, targets: problem.targets, likelihood: problem.likelihood, options: options)
}

/// Central differences of `value` in log δ_k (each prior entry) and log σ, step 1e-5.
private func finiteDifferences(
  _ hp: LaplaceHyperparameters, _ value: (LaplaceHyperparameters) throws -> Double
) throws -> (prior: [Double], sigma: Double) {
  let ε = 1e-5
  var prior: [Double] = []
  for k in hp.priorPrecision.indices {
    var up = hp, down = hp
    up.priorPrecision[k] *= exp(ε)
    down.priorPrecision[k] *= exp(-ε)
    prior.append((try value(up) - value(down)) / (2 * ε))
  }
  var up = hp, down = hp
  up.sigma *= exp(ε)
  down.sigma *= exp(-ε)
  return (prior, (try value(up) - value(down)) / (2 * ε))
}

@Suite("NTK evidence bound: kernel form, Fischer partition, stochastic estimates, independent outputs")
struct NTKEvidenceBoundTests {
  @Test("one batch holding all data equals the full-GGN Laplace evidence and its gradient")
  func oneBatchIsTheEvidence() throws {
    for (name, problem) in try problems() {
      let ntk = try bound(problem)
      #expect(ntk.batches.count == 1)
      let regression = problem.likelihood == .regression
      let laplace = try problem.fit(.full)
      for (prior, hp) in supportedCases(ntk, regression: regression) {
        let result = try ntk.evaluate(hp)
        let expected = try laplace.logMarginalLikelihoodGradient(hp)
        let what = "\(name) \(prior)"
        expectClose(result.value, expected.logMarginalLikelihood, tolerance: kernelFormTolerance, "\(what): value")
        expectClose(result.logPriorPrecision, expected.logPriorPrecision, tolerance: kernelFormTolerance, "\(what): ∂/∂log δ")
        expectClose(result.logSigma, expected.logSigma, tolerance: kernelFormTolerance, "\(what): ∂/∂log σ")
      }
    }
  }

  @Test("the per-tensor kernels are the Grams of the per-example gradients, by either route")
  func kernelsMatchGradients() throws {
    for (name, problem) in try problems() {
      let model = problem.model
      let pass = try model.forwardPass(problem.x)
      let v = try problem.likelihood == .classification
        ? CategoricalLikelihood().hessianSquareRoot(pass.output) : GaussianLikelihood().hessianSquareRoot(pass.output)
      let statistics = try model.backward(pass, vectors: v)
      let phi = try model.perExampleGradients(statistics)  // (N·C) × P: rows Sᵀ J
      for tensor in try bound(problem).tensors {
        var columns = Matrix(rows: phi.rows, columns: tensor.parameters.count)
        for i in 0..<phi.rows {
          for (j, p) in tensor.parameters.enumerated() { columns[i, j] = phi[i, p] }
        }
        let expected = try columns.gram(outer: true)
        let s = try #require(statistics.first { $0.layerIndex == tensor.layer })
        let what = "\(name) layer \(tensor.layer) \(tensor.isBias ? "bias" : "weight")"
        if tensor.isBias {
          expectClose(try s.biasKernel().elements, expected.elements, tolerance: Tolerance.relativeDense, what)
        } else {
          for route in [TangentKernelRoute.positionPairs, .perExampleGradients, .automatic] {
            expectClose(try s.weightKernel(route: route).elements, expected.elements, tolerance: Tolerance.relativeDense, "\(what) \(route)")
          }
        }
      }
    }
  }

  @Test("every partitioned value is at most the full evidence (Fischer), for random and class-grouped batches")
  func partitionIsALowerBound() throws {
    for (name, problem) in try problems() {
      let regression = problem.likelihood == .regression
      let full = try bound(problem)
      for (prior, hp) in supportedCases(full, regression: regression) {
        let evidence = try full.evaluate(hp).value
        for batchSize in 1..<problem.x.count {
          for seed: UInt64 in [0, 1] {
            for grouped in regression ? [false] : [false, true] {
              let partitioned = try bound(problem, .init(batchSize: batchSize, groupByClass: grouped, seed: seed)).evaluate(hp)
              #expect(
                partitioned.value <= evidence + fischerSlack * abs(evidence),
                "\(name) \(prior) B = \(batchSize) seed \(seed)\(grouped ? " grouped" : ""): \(partitioned.value) > \(evidence)")
            }
          }
        }
      }
    }
  }

  @Test("the partition: seeded order, class grouping, a smaller last batch")
  func partition() throws {
    let problem = try LaplaceProblem.classification()  // N = 12, labels n mod 3
    let random = try bound(problem, .init(batchSize: 5, seed: 4))
    #expect(random.batches.map(\.count) == [5, 5, 2])
    #expect(random.batches.flatMap { $0 }.sorted() == Array(0..<12))
    #expect(try bound(problem, .init(batchSize: 5, seed: 4)).batches == random.batches)
    #expect(try bound(problem, .init(batchSize: 5, seed: 5)).batches != random.batches)
    let grouped = try bound(problem, .init(batchSize: 4, groupByClass: true, seed: 4))
    guard case .classes(let labels) = problem.targets else { return }
    for batch in grouped.batches { #expect(Set(batch.map { labels[$0] }).count == 1, "batch \(batch) mixes classes") }
    #expect(try bound(problem, .init(batchSize: 100)).batches.count == 1)
  }

  @Test("averaging the stochastic estimates over all batches (and outputs) gives the partitioned value and gradient")
  func estimatesAreUnbiased() throws {
    for (name, problem) in try problems() {
      let regression = problem.likelihood == .regression
      let n = problem.x.count
      let sizes = (1..<n).filter { n % $0 == 0 } + [n - 1]  // equal batches, and a smaller last one
      for batchSize in sizes {
        for independent in [false, true] {
          let ntk = try bound(problem, .init(batchSize: batchSize, independentOutputs: independent, seed: 2))
          let hp = supportedCases(ntk, regression: regression)[1].1
          let exact = try ntk.evaluate(hp)
          let outputs: [Int?] = independent ? (0..<problem.model.outputCount).map { $0 } : [nil]
          var value = 0.0, sigma = 0.0
          var prior = [Double](repeating: 0, count: hp.priorPrecision.count)
          for b in ntk.batches.indices {
            for output in outputs {
              let estimate = try ntk.estimate(batch: b, output: output, hp)
              value += estimate.value
              sigma += estimate.logSigma
              for k in prior.indices { prior[k] += estimate.logPriorPrecision[k] }
            }
          }
          let count = Double(ntk.batches.count * outputs.count)
          let what = "\(name) B = \(batchSize)\(independent ? " independent" : "")"
          expectClose(value / count, exact.value, tolerance: averageTolerance, "\(what): value")
          expectClose(prior.map { $0 / count }, exact.logPriorPrecision, tolerance: averageTolerance, "\(what): ∂/∂log δ")
          expectClose(sigma / count, exact.logSigma, tolerance: averageTolerance, "\(what): ∂/∂log σ")
        }
      }
    }
  }

  @Test("gradients of the bound, the estimates and the independent variant equal central finite differences")
  func gradients() throws {
    for (name, problem) in try problems() {
      let regression = problem.likelihood == .regression
      for independent in [false, true] {
        let ntk = try bound(problem, .init(batchSize: 4, independentOutputs: independent, seed: 3))
        for (prior, hp) in supportedCases(ntk, regression: regression) {
          let what = "\(name)\(independent ? " independent" : "") \(prior)"
          let analytic = try ntk.evaluate(hp)
          let numeric = try finiteDifferences(hp) { try ntk.evaluate($0).value }
          expectClose(analytic.logPriorPrecision, numeric.prior, tolerance: Tolerance.finiteDifference, "\(what): ∂/∂log δ")
          expectClose(analytic.logSigma, regression ? numeric.sigma : 0, tolerance: Tolerance.finiteDifference, "\(what): ∂/∂log σ")
          let output: Int? = independent ? 1 : nil
          let estimate = try ntk.estimate(batch: 1, output: output, hp)
          let numericEstimate = try finiteDifferences(hp) { try ntk.estimate(batch: 1, output: output, $0).value }
          expectClose(estimate.logPriorPrecision, numericEstimate.prior, tolerance: Tolerance.finiteDifference, "\(what): estimate ∂/∂log δ")
          expectClose(estimate.logSigma, regression ? numericEstimate.sigma : 0, tolerance: Tolerance.finiteDifference, "\(what): estimate ∂/∂log σ")
        }
      }
    }
  }

  @Test("independent outputs: exact for one Gaussian output; the gap elsewhere is measured")
  func independentOutputs() throws {
    // One Gaussian output: Λ = 1 is its own diagonal and there are no cross-output blocks.
    var model = try Sequential([Linear(3, 5), Activation.tanh, Linear(5, 1)], inputShape: [3], seed: 21)
    try randomize(&model, seed: 22)
    let x = randomBatch(model, n: 9, seed: 23)
    var rng = SeededGenerator(seed: 24)
    let single = LaplaceProblem(model: model, x: x, targets: .values(try Tensor(shape: [9, 1], elements: rng.vector(9))), likelihood: .regression)
    for hp in [LaplaceHyperparameters(priorPrecision: [0.6], sigma: 0.4), LaplaceHyperparameters(priorPrecision: [0.5, 2, 1.5, 3], sigma: 1.7)] {
      for batchSize in [9, 4] {
        let exact = try bound(single, .init(batchSize: batchSize, seed: 1)).evaluate(hp)
        let independent = try bound(single, .init(batchSize: batchSize, independentOutputs: true, seed: 1)).evaluate(hp)
        expectClose(independent.value, exact.value, tolerance: kernelFormTolerance, "one output B = \(batchSize): value")
        expectClose(independent.logPriorPrecision, exact.logPriorPrecision, tolerance: kernelFormTolerance, "one output B = \(batchSize): ∂/∂log δ")
        expectClose(independent.logSigma, exact.logSigma, tolerance: kernelFormTolerance, "one output B = \(batchSize): ∂/∂log σ")
      }
    }
    // Several outputs: the gap (value − evidence) / |evidence| at one batch, the ratio of the
    // log-determinant terms, and the partitioned bound's gap at B = 4 for scale. These are the
    // numbers in the type's documentation: on these models the variant lies below the evidence.
    for (name, problem) in try problems() {
      for δ in [0.2, 1.3] {
        let hp = LaplaceHyperparameters(priorPrecision: [δ], sigma: problem.likelihood == .regression ? 0.7 : 1)
        let exact = try bound(problem).evaluate(hp)
        let independent = try bound(problem, .init(independentOutputs: true)).evaluate(hp)
        let partitioned = try bound(problem, .init(batchSize: 4, seed: 3)).evaluate(hp).value
        let evidence = exact.value
        let gap = (independent.value - evidence) / abs(evidence), partitionGap = (partitioned - evidence) / abs(evidence)
        let ratio = independent.logDeterminants[0] / exact.logDeterminants[0]
        print(
          "independent outputs, \(name), δ = \(δ): gap \(independent.value - evidence) nats = \(gap) relative; log det ratio \(ratio); evidence \(evidence); B = 4 partition gap \(partitionGap)")
        #expect(gap < 0 && gap > -0.3, "\(name) δ = \(δ): independent outputs \(independent.value) vs evidence \(evidence)")
      }
    }
  }

  @Test("bad input: a clear error naming the problem")
  func badInput() throws {
    let problem = try LaplaceProblem.classification()
    let regression = try LaplaceProblem.regression()
    let ntk = try bound(problem, .init(batchSize: 5))
    func expectError(_ what: String, _ body: () throws -> Void, where matches: (BDLError) -> Bool) {
      do {
        try body()
        Issue.record("\(what): no error")
      } catch let error as BDLError {
        #expect(matches(error), "\(what): \(error)")
      } catch {
        Issue.record("\(what): \(error)")
      }
    }
    func isInvalid(_ e: BDLError) -> Bool { if case .invalidArgument = e { true } else { false } }
    func isShape(_ e: BDLError) -> Bool { if case .shapeMismatch = e { true } else { false } }
    func isNonFinite(_ e: BDLError) -> Bool { if case .nonFiniteInput = e { true } else { false } }
    expectError("batch size 0", { _ = try bound(problem, .init(batchSize: 0)) }, where: isInvalid)
    expectError("prior of 3 values", { _ = try ntk.evaluate(.init(priorPrecision: [1, 2, 3])) }, where: isShape)
    expectError("per-parameter prior", {
      _ = try ntk.evaluate(.init(priorPrecision: [Double](repeating: 1, count: problem.model.parameterCount)))
    }, where: { if case .unsupported(let m) = $0 { m.contains("per parameter") } else { false } })
    expectError("δ = 0", { _ = try ntk.evaluate(.init(priorPrecision: [0])) }, where: isInvalid)
    expectError("δ = NaN", { _ = try ntk.evaluate(.init(priorPrecision: [.nan])) }, where: isNonFinite)
    expectError("σ = 0", { _ = try bound(regression).evaluate(.init(sigma: 0)) }, where: isInvalid)
    expectError("σ = ∞", { _ = try bound(regression).evaluate(.init(sigma: .infinity)) }, where: isNonFinite)
    expectError("T < 0", { _ = try ntk.evaluate(.init(temperature: -1)) }, where: isInvalid)
    expectError("prior mean of 2 values", { _ = try ntk.evaluate(.init(priorMean: [0, 1])) }, where: isShape)
    var x = problem.x
    x.elements[3] = .nan
    expectError("NaN input", { _ = try NTKEvidenceBound(model: problem.model, inputs: x, targets: problem.targets, likelihood: .classification) }, where: isNonFinite)
    expectError("wrong input shape", {
      _ = try NTKEvidenceBound(model: problem.model, inputs: regression.x, targets: problem.targets, likelihood: .classification)
    }, where: isShape)
    expectError("label out of range", {
      _ = try NTKEvidenceBound(model: problem.model, inputs: problem.x, targets: .classes([Int](repeating: 3, count: 12)), likelihood: .classification)
    }, where: isInvalid)
    expectError("too few labels", {
      _ = try NTKEvidenceBound(model: problem.model, inputs: problem.x, targets: .classes([0, 1]), likelihood: .classification)
    }, where: isShape)
    expectError("labels for regression", {
      _ = try NTKEvidenceBound(model: regression.model, inputs: regression.x, targets: .classes([Int](repeating: 0, count: 10)), likelihood: .regression)
    }, where: isInvalid)
    expectError("class grouping for regression", { _ = try bound(regression, .init(groupByClass: true)) }, where: isInvalid)
    expectError("batch index out of range", { _ = try ntk.estimate(batch: 3) }, where: isInvalid)
    expectError("negative batch index", { _ = try ntk.estimate(batch: -1) }, where: isInvalid)
    expectError("output without independent outputs", { _ = try ntk.estimate(batch: 0, output: 0) }, where: isInvalid)
    expectError("output out of range", { _ = try bound(problem, .init(independentOutputs: true)).estimate(batch: 0, output: 3) }, where: isInvalid)
    let parameterFree = try Sequential([Flatten()], inputShape: [3])
    expectError("no parameters", {
      _ = try NTKEvidenceBound(model: parameterFree, inputs: Tensor(shape: [2, 3]), targets: .classes([0, 1]), likelihood: .classification)
    }, where: isInvalid)
  }
}
