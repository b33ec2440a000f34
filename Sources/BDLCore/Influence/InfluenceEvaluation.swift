/// How well influence scores predict what retraining does.
public enum InfluenceEvaluation {
  /// The linear datamodeling score (Park et al. 2023, TRAK; dattri's and the diffusion-influence
  /// paper's protocol): M random subsets S_m of ⌊αN⌋ training examples, a model retrained on each
  /// (from the same initial parameters, with the subset's own recorded seed), and per query the
  /// Spearman correlation over m between the measurement m_q(θ_{S_m}) and the prediction from the
  /// scores. With our sign (τ is the change of m when an example is removed), the prediction for
  /// training on S is Σ_{j∉S} τ(z_q, z_j) (up to a constant).
  public struct LinearDatamodelingScore: Sendable, Equatable {
    /// Per query Spearman ρ (NaN where either side is constant over the subsets).
    public let perQuery: [Double]
    /// The mean over queries with a defined ρ.
    public let mean: Double
    /// The seed of each subset (subset choice and training shuffling): rerunnable one by one.
    public let subsetSeeds: [UInt64]
  }

  /// Retrains `model` (its current parameters are the common initialisation) on each subset
  /// with `training` (its seed is replaced by the subset's; regression with noise `sigma`) and
  /// compares with `scores` (N_q × N). Defaults M = 100, α = ½ as dattri. `progress(done, M)`
  /// follows each retraining.
  public static func linearDatamodelingScore(
    model: Sequential, trainInputs x: Tensor, trainTargets y: Targets, likelihood: LaplaceLikelihood,
    queries: Tensor, queryTargets: Targets?, measurement: InfluenceMeasurement = .loss, scores: Matrix,
    subsets: Int = 100, fraction: Double = 0.5, training: TrainingOptions, sigma: Double = 1, seed: UInt64 = 0,
    progress: ((Int, Int) -> Void)? = nil
  ) throws(BDLError) -> LinearDatamodelingScore {
    try linearDatamodelingScores(
      model: model, trainInputs: x, trainTargets: y, likelihood: likelihood, queries: queries, queryTargets: queryTargets,
      measurement: measurement, scores: [scores], subsets: subsets, fraction: fraction, training: training, sigma: sigma,
      seed: seed, progress: progress)[0]
  }

  /// The LDS of several score matrices (e.g. two curvatures) from one set of retrainings: the
  /// retrained models do not depend on the scores, so comparing methods costs M trainings, not
  /// M per method.
  public static func linearDatamodelingScores(
    model: Sequential, trainInputs x: Tensor, trainTargets y: Targets, likelihood: LaplaceLikelihood,
    queries: Tensor, queryTargets: Targets?, measurement: InfluenceMeasurement = .loss, scores: [Matrix],
    subsets: Int = 100, fraction: Double = 0.5, training: TrainingOptions, sigma: Double = 1, seed: UInt64 = 0,
    progress: ((Int, Int) -> Void)? = nil
  ) throws(BDLError) -> [LinearDatamodelingScore] {
    let n = x.count
    for s in scores where s.rows != queries.count || s.columns != n {
      throw .shapeMismatch("scores are \(s.rows) × \(s.columns); expected \(queries.count) queries × \(n) training examples")
    }
    guard subsets >= 2 else { throw .invalidArgument("subsets = \(subsets); a rank correlation needs at least 2") }
    guard fraction > 0, fraction < 1 else { throw .invalidArgument("fraction = \(fraction); it must be in (0, 1)") }
    let size = Int((fraction * Double(n)).rounded(.down))
    guard size >= 1 else { throw .invalidArgument("fraction \(fraction) of \(n) examples keeps none") }
    try model.validateInput(queries)
    var seeds: [UInt64] = []
    var splitter = RandomSource(seed: seed)
    var actual = Matrix(rows: queries.count, columns: subsets)
    var predicted = scores.map { _ in Matrix(rows: queries.count, columns: subsets) }
    for m in 0..<subsets {
      let subsetSeed = splitter.next()
      seeds.append(subsetSeed)
      var random = RandomSource(seed: subsetSeed)
      let kept = Array(random.permutation(n).prefix(size)).sorted()
      let values = try retrainedValues(model, x, y, kept, likelihood, sigma, queries, queryTargets, measurement, training, seed: subsetSeed)
      var inSubset = [Bool](repeating: false, count: n)
      for j in kept { inSubset[j] = true }
      for q in 0..<queries.count {
        actual[q, m] = values[q]
        for (method, s) in scores.enumerated() {
          predicted[method][q, m] = CompensatedSum.of((0..<n).lazy.filter { !inSubset[$0] }.map { s[q, $0] })
        }
      }
      progress?(m + 1, subsets)
    }
    return predicted.map { prediction in
      let perQuery = (0..<queries.count).map { q in
        spearman(Array(actual.elements[(q * subsets)..<((q + 1) * subsets)]), Array(prediction.elements[(q * subsets)..<((q + 1) * subsets)]))
      }
      let defined = perQuery.filter { !$0.isNaN }
      return LinearDatamodelingScore(
        perQuery: perQuery, mean: defined.isEmpty ? .nan : defined.reduce(0, +) / Double(defined.count), subsetSeeds: seeds)
    }
  }

  /// Per query: the change of its measurement when its k most helpful training examples (largest
  /// scores) are removed and the model retrained, and the same for k examples drawn at random
  /// (seeded) — both relative to the model retrained on all data from the same initialisation.
  public struct RetrainingWithoutTopK: Sendable, Equatable {
    public let withoutTopK: [Double]
    public let withoutRandom: [Double]
  }

  public static func retrainWithoutTopK(
    model: Sequential, trainInputs x: Tensor, trainTargets y: Targets, likelihood: LaplaceLikelihood,
    queries: Tensor, queryTargets: Targets?, measurement: InfluenceMeasurement = .loss, scores: Matrix, k: Int,
    training: TrainingOptions, sigma: Double = 1, seed: UInt64 = 0, progress: ((Int, Int) -> Void)? = nil
  ) throws(BDLError) -> RetrainingWithoutTopK {
    let n = x.count
    guard scores.rows == queries.count, scores.columns == n else {
      throw .shapeMismatch("scores are \(scores.rows) × \(scores.columns); expected \(queries.count) queries × \(n) training examples")
    }
    guard k >= 1, k < n else { throw .invalidArgument("k = \(k); it must be in 1..<\(n)") }
    let top = try Influence.topK(scores, k: k).helpful
    let all = try retrainedValues(model, x, y, Array(0..<n), likelihood, sigma, queries, queryTargets, measurement, training, seed: training.seed)
    var random = RandomSource(seed: seed)
    var withoutTop: [Double] = [], withoutRandom: [Double] = []
    for q in 0..<queries.count {
      let removed = Set(top[q])
      let kept = (0..<n).filter { !removed.contains($0) }
      withoutTop.append(try retrainedValues(model, x, y, kept, likelihood, sigma, queries, queryTargets, measurement, training, seed: training.seed)[q] - all[q])
      let dropped = Set(random.permutation(n).prefix(k))
      let keptRandom = (0..<n).filter { !dropped.contains($0) }
      withoutRandom.append(try retrainedValues(model, x, y, keptRandom, likelihood, sigma, queries, queryTargets, measurement, training, seed: training.seed)[q] - all[q])
      progress?(q + 1, queries.count)
    }
    return RetrainingWithoutTopK(withoutTopK: withoutTop, withoutRandom: withoutRandom)
  }

  /// The measurement of every query after training a copy of `model` on the examples `kept`.
  static func retrainedValues(
    _ model: Sequential, _ x: Tensor, _ y: Targets, _ kept: [Int], _ likelihood: LaplaceLikelihood, _ sigma: Double, _ queries: Tensor,
    _ queryTargets: Targets?, _ measurement: InfluenceMeasurement, _ training: TrainingOptions, seed: UInt64
  ) throws(BDLError) -> [Double] {
    let size = x.exampleSize
    var elements: [Double] = []
    elements.reserveCapacity(kept.count * size)
    for j in kept { elements += x.elements[(j * size)..<((j + 1) * size)] }
    let xs = try Tensor(shape: [kept.count] + Array(x.shape.dropFirst()), elements: elements)
    var options = training
    options.seed = seed
    var retrained = model
    switch likelihood {
    case .classification: try retrained.train(inputs: xs, targets: y.subset(kept), likelihood: CategoricalLikelihood(), options: options)
    case .regression: try retrained.train(inputs: xs, targets: y.subset(kept), likelihood: GaussianLikelihood(sigma: sigma), options: options)
    }
    return try measurement.values(try retrained.forward(queries), targets: queryTargets, likelihood: likelihood)
  }

  /// Spearman's ρ: Pearson's correlation of the ranks (ties get their average rank); NaN if
  /// either side is constant.
  public static func spearman(_ a: [Double], _ b: [Double]) -> Double {
    pearson(ranks(a), ranks(b))
  }

  /// Pearson's correlation; NaN if either side is constant.
  public static func pearson(_ a: [Double], _ b: [Double]) -> Double {
    let n = Double(a.count)
    let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
    var sab = 0.0, saa = 0.0, sbb = 0.0
    for i in a.indices {
      sab += (a[i] - ma) * (b[i] - mb)
      saa += (a[i] - ma) * (a[i] - ma)
      sbb += (b[i] - mb) * (b[i] - mb)
    }
    return saa > 0 && sbb > 0 ? sab / (saa * sbb).squareRoot() : .nan
  }

  /// 1-based ranks, ties averaged.
  static func ranks(_ values: [Double]) -> [Double] {
    let order = values.indices.sorted { values[$0] < values[$1] }
    var result = [Double](repeating: 0, count: values.count)
    var i = 0
    while i < order.count {
      var j = i
      while j + 1 < order.count && values[order[j + 1]] == values[order[i]] { j += 1 }
      let rank = Double(i + j) / 2 + 1
      for t in i...j { result[order[t]] = rank }
      i = j + 1
    }
    return result
  }
}
