/// What a query measures: m(θ; z_q), a function of the network's outputs f(x_q; θ). Its gradient
/// is ∇_θ m = J(x_q)ᵀ·∂m/∂f, so each measurement is defined by its output cotangent ∂m/∂f.
public enum InfluenceMeasurement: Sendable, Equatable {
  /// The query's loss ℓ(θ; z_q) at its label (the training NLL): ∂m/∂f = p − e_y
  /// (classification) or f − y (regression, σ = 1).
  case loss
  /// log p(y_q | x_q), the log-probability of the query's label: ∂m/∂f = e_y − p (= −∂ℓ/∂f).
  case logProbability
  /// The margin f_y − max_{c≠y} f_c (classification): ∂m/∂f = e_y − e_{c*}.
  case margin
  /// Any differentiable function of the outputs, given by its cotangent ∂m/∂f per query (N_q, C).
  case cotangent(Tensor)

  /// The values m(θ; z_q) from the outputs f (N_q, C): what retraining experiments measure.
  /// A cotangent measurement is the linear functional ⟨v_q, f⟩.
  func values(_ f: Tensor, targets: Targets?, likelihood: LaplaceLikelihood) throws(BDLError) -> [Double] {
    let n = f.count, c = f.exampleSize
    switch self {
    case .cotangent(let v):
      _ = try outputVectors(f, targets: targets, likelihood: likelihood)  // checks v's shape
      return (0..<n).map { q in (0..<c).reduce(0.0) { $0 + v.elements[q * c + $1] * f.elements[q * c + $1] } }
    case .loss, .logProbability:
      guard let targets else { throw .invalidArgument("this measurement needs the queries' labels or targets") }
      var losses: [Double] = []
      for q in 0..<n {
        let fq = try Tensor(shape: [1, c], elements: Array(f.elements[(q * c)..<((q + 1) * c)]))
        let loss = likelihood == .classification
          ? try CategoricalLikelihood().negativeLogLikelihood(fq, targets.subset(q..<(q + 1)))
          : try GaussianLikelihood().negativeLogLikelihood(fq, targets.subset(q..<(q + 1)))
        losses.append(loss)
      }
      if self == .logProbability {
        guard likelihood == .classification else { throw .unsupported("log_prob is a classification measurement; use loss or a cotangent") }
        return losses.map { -$0 }
      }
      return losses
    case .margin:
      let v = try outputVectors(f, targets: targets, likelihood: likelihood)  // e_y − e_{c*}
      return (0..<n).map { q in (0..<c).reduce(0.0) { $0 + v.elements[q * c + $1] * f.elements[q * c + $1] } }
    }
  }

  /// The cotangents ∂m/∂f as K = 1 output vector per query, (N_q, 1, C).
  func outputVectors(_ f: Tensor, targets: Targets?, likelihood: LaplaceLikelihood) throws(BDLError) -> Tensor {
    let n = f.count, c = f.exampleSize
    switch self {
    case .cotangent(let v):
      guard v.shape == [n, c] else {
        throw .shapeMismatch("cotangents have shape \(Tensor.describe(v.shape)); expected (\(n), \(c))")
      }
      try Validation.requireFinite(v.elements, "cotangent")
      return v.reshaped([n, 1, c])
    case .loss, .logProbability:
      guard let targets else { throw .invalidArgument("this measurement needs the queries' labels or targets") }
      var gradient = likelihood == .classification
        ? try CategoricalLikelihood().outputGradient(f, targets)
        : try GaussianLikelihood().outputGradient(f, targets)
      if self == .logProbability {
        guard likelihood == .classification else { throw .unsupported("log_prob is a classification measurement; use loss or a cotangent") }
        for i in gradient.elements.indices { gradient.elements[i] = -gradient.elements[i] }
      }
      return gradient
    case .margin:
      guard likelihood == .classification else { throw .unsupported("margin is a classification measurement") }
      guard case .classes(let labels) = targets else { throw .invalidArgument("margin needs the queries' labels") }
      try CategoricalLikelihood().validate(.classes(labels), outputs: f)
      guard c >= 2 else { throw .invalidArgument("margin needs at least two classes") }
      var v = Tensor(shape: [n, 1, c])
      for q in 0..<n {
        let y = labels[q]
        var best = y == 0 ? 1 : 0
        for k in 0..<c where k != y && f.elements[q * c + k] > f.elements[q * c + best] { best = k }
        v.elements[q * c + y] = 1
        v.elements[q * c + best] = -1
      }
      return v
    }
  }
}
