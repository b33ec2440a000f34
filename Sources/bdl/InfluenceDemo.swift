import BDLCore

extension Demo {
  /// The influence fit of part 5: `Influence.fit`'s defaults (EK-FAC, exact Fisher, expand,
  /// λ = 0.1 × the mean eigenvalue per parameter tensor), spelled out so that the demo prints what
  /// it uses.
  static let influenceCurvature = Influence.Curvature.ekfac
  static let influenceFisher = FisherSource.exact
  static let influenceApproximation = KFACApproximation.expand
  static let influenceDamping = Influence.Damping.relative(0.1)
  /// Misclassified test images shown, and training images per side.
  static let influenceShown = 3, influenceTopK = 5
  /// Test images whose LDS is measured: the shown ones, then the first others.
  static let ldsQueryCount = 16
  /// Retrainings of the LDS, each on half the training set. One retraining of the demo network
  /// on 719 images takes 0.12 s in release on an idle two-core machine (up to 0.18 s under other
  /// load): ~120 would fit this part's ~15 s budget at best, so the API's default M = 100
  /// (dattri's protocol) is kept, with room for load.
  static let ldsSubsets = 100, ldsFraction = 0.5

  /// 5. Influence of the training images on misclassified test images (EK-FAC and gradient dot
  /// products), and the linear datamodeling score of both from one set of retrainings.
  static func influence(_ model: Sequential, _ data: DigitsClassification) throws(BDLError) -> InfluenceReport {
    print("\n5. Which training images moved a prediction")
    let start = MonotonicClock()
    let train = Targets.classes(data.trainLabels)
    var clock = MonotonicClock()
    let ekfac = try Influence.fit(
      model: model, inputs: data.trainInputs, targets: train, likelihood: .classification, curvature: influenceCurvature,
      fisher: influenceFisher, approximation: influenceApproximation, damping: influenceDamping)
    let fitSeconds = clock.seconds
    let identity = try Influence.fit(
      model: model, inputs: data.trainInputs, targets: train, likelihood: .classification, curvature: .identity)
    let curvature = "EK-FAC (\(describe(influenceFisher)) Fisher, \(influenceApproximation.rawValue))"
    let damping = describe(influenceDamping)
    print("influence: τ(test, train) = ∇ℓ_testᵀ (G + λI)⁻¹ ∇ℓ_train at the trained parameters, G over the \(data.trainLabels.count) training images")
    print("  τ > 0: the training image lowered the test image's loss (helpful); τ < 0: raised it (harmful)")
    print("curvature: \(curvature), damping \(damping) (Influence.fit's defaults), fitted in \(fmt(fitSeconds)) s")
    let sizes = model.layers.flatMap { $0.parameterShapes.map { $0.reduce(1, *) } }
    let names = tensorNames(model, sizes: sizes)
    let width = names.map(\.count).max() ?? 0
    var offset = 0
    for (name, size) in zip(names, sizes) {
      print("    \(pad(name, width))  λ = \(number(ekfac.damping[offset]))")
      offset += size
    }
    print("baseline: identity curvature (G + λI replaced by I: plain gradient dot products)")

    let outputs = try model.forward(data.testInputs)
    let predicted = InfluenceQueries.predictedClasses(outputs.elements, classes: DigitsClassification.classes)
    let wrong = InfluenceQueries.misclassified(predicted: predicted, labels: data.testLabels)
    let shown = Array(wrong.prefix(influenceShown))
    let queries = InfluenceQueries.evaluationSet(first: shown, count: ldsQueryCount, available: data.testLabels.count)
    let queryInputs = try rows(data.testInputs, queries)
    let queryTargets = Targets.classes(queries.map { data.testLabels[$0] })
    clock = MonotonicClock()
    let ekfacScores = try ekfac.scores(model: model, queries: queryInputs, targets: queryTargets, measurement: .loss)
    let identityScores = try identity.scores(model: model, queries: queryInputs, targets: queryTargets, measurement: .loss)
    let scoreSeconds = clock.seconds
    print("scores (test loss): \(queries.count) test images × \(data.trainLabels.count) training images, both methods, in \(fmt(scoreSeconds)) s")

    var shownQueries: [InfluenceReport.Query] = []
    print("misclassified test images: \(wrong.count) of \(data.testLabels.count)" + (shown.isEmpty ? "" : "; the first \(shown.count), with their top \(influenceTopK) training images by EK-FAC τ (index:label τ):"))
    if !shown.isEmpty {
      let shownScores = try Matrix(rows: shown.count, columns: ekfacScores.columns, elements: Array(ekfacScores.elements.prefix(shown.count * ekfacScores.columns)))
      let top = try Influence.topK(shownScores, k: min(influenceTopK, data.trainLabels.count))
      let size = data.trainInputs.exampleSize
      func image(_ j: Int, _ q: Int) -> InfluenceReport.TrainingImage {
        InfluenceReport.TrainingImage(
          index: j, label: data.trainLabels[j], score: ekfacScores[q, j],
          pixels: Array(data.trainInputs.elements[(j * size)..<((j + 1) * size)]))
      }
      func line(_ images: [InfluenceReport.TrainingImage]) -> String {
        images.map { "\($0.index):\($0.label) \(sci($0.score))" }.joined(separator: "  ")
      }
      for (q, t) in shown.enumerated() {
        let query = InfluenceReport.Query(
          testIndex: t, label: data.testLabels[t], predicted: predicted[t],
          pixels: Array(data.testInputs.elements[(t * size)..<((t + 1) * size)]),
          helpful: top.helpful[q].map { image($0, q) }, harmful: top.harmful[q].map { image($0, q) })
        shownQueries.append(query)
        print("  test #\(t): label \(query.label), predicted \(query.predicted)")
        print("    helpful  \(line(query.helpful))")
        print("    harmful  \(line(query.harmful))")
      }
    }

    clock = MonotonicClock()
    let initial = try DigitsClassification.network()
    let lds = try InfluenceEvaluation.linearDatamodelingScores(
      model: initial, trainInputs: data.trainInputs, trainTargets: train, likelihood: .classification,
      queries: queryInputs, queryTargets: queryTargets, measurement: .loss, scores: [ekfacScores, identityScores],
      subsets: ldsSubsets, fraction: ldsFraction, training: DigitsClassification.options())
    let ldsSeconds = clock.seconds
    let kept = Int((ldsFraction * Double(data.trainLabels.count)).rounded(.down))
    let others = shown.isEmpty ? "the first \(queries.count)" : "the \(shown.count) above and the first \(queries.count - shown.count) others"
    print("linear datamodeling score on \(queries.count) test images (\(others)):")
    print("  M = \(ldsSubsets) retrainings, the API's default: it fits this part's ~15 s budget on two cores (time per retraining below)")
    print("  each from the demo network's initial parameters, on \(kept) random training images, with the demo's training options")
    print("  retrained in \(fmt(ldsSeconds)) s (\(fmt(ldsSeconds / Double(ldsSubsets))) s each)")
    let methods = ["EK-FAC", "identity (gradient dot products)"]
    let scores = zip(methods, lds).map { InfluenceReport.DatamodelingScore(method: $0.0, perQuery: $0.1.perQuery, mean: $0.1.mean) }
    let methodWidth = methods.map(\.count).max()!
    print("  \(pad("scores", methodWidth))  mean LDS   lowest    highest")
    for score in scores {
      let defined = score.perQuery.filter { !$0.isNaN }
      let columns = [score.mean.isNaN ? "undefined" : fmt(score.mean), defined.min().map(fmt) ?? "", defined.max().map(fmt) ?? ""]
      print("  \(pad(score.method, methodWidth))  " + pad(columns[0], 9) + " " + pad(columns[1], 9) + " " + columns[2])
    }
    print("  (part 5 in \(fmt(start.seconds)) s)")

    return InfluenceReport(
      context: [
        "Influence τ(test, train) = ∇ℓ_testᵀ (G + λI)⁻¹ ∇ℓ_train at the trained parameters (loss of the test image's true label): "
          + "τ > 0 means the training image lowered the test loss (helpful), τ < 0 that it raised it (harmful).",
        "Curvature: \(curvature) over the \(data.trainLabels.count) training images, damping \(damping); baseline: gradient dot products (G + λI replaced by I).",
      ],
      misclassifiedCount: wrong.count, testCount: data.testLabels.count, queries: shownQueries, subsets: ldsSubsets,
      fraction: ldsFraction, ldsQueryCount: queries.count, scores: scores)
  }

  static func describe(_ damping: Influence.Damping) -> String {
    switch damping {
    case .absolute(let λ): "λ = \(number(λ)) for every parameter"
    case .relative(let r): "λ = \(number(r)) × the mean eigenvalue of each parameter tensor"
    }
  }

  /// The examples at `indices` of a batch.
  static func rows(_ x: Tensor, _ indices: [Int]) throws(BDLError) -> Tensor {
    let size = x.exampleSize
    var elements: [Double] = []
    elements.reserveCapacity(indices.count * size)
    for i in indices { elements += x.elements[(i * size)..<((i + 1) * size)] }
    return try Tensor(shape: [indices.count] + Array(x.shape.dropFirst()), elements: elements)
  }
}

/// Which test images part 5 looks at (pure, so that it can be tested).
enum InfluenceQueries {
  /// The argmax of each row of `outputs` (N × classes, row-major); ties go to the lower class.
  static func predictedClasses(_ outputs: [Double], classes: Int) -> [Int] {
    guard classes > 0 else { return [] }
    return (0..<(outputs.count / classes)).map { i in
      var best = 0
      for c in 1..<classes where outputs[i * classes + c] > outputs[i * classes + best] { best = c }
      return best
    }
  }

  /// The indices where the prediction differs from the label, in increasing order.
  static func misclassified(predicted: [Int], labels: [Int]) -> [Int] {
    (0..<min(predicted.count, labels.count)).filter { predicted[$0] != labels[$0] }
  }

  /// `first` (in its order), then the lowest indices in 0..<available not in it, up to `count`
  /// indices in all (fewer if there are not enough).
  static func evaluationSet(first: [Int], count: Int, available: Int) -> [Int] {
    var result = Array(first.prefix(max(count, 0)))
    var taken = Set(result)
    var i = 0
    while result.count < count && i < available {
      if !taken.contains(i) {
        result.append(i)
        taken.insert(i)
      }
      i += 1
    }
    return result
  }
}
