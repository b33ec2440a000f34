#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the network is fitted to: class labels (classification) or real targets (regression).
public enum Targets: Sendable, Equatable {
  /// Labels in 0..<C, one per example.
  case classes([Int])
  /// Targets shaped (N, C).
  case values(Tensor)

  /// Class labels from doubles that must be exact integers in 0..<classes (the C ABI's form).
  public static func classes(fromValues values: [Double], classes: Int) throws(BDLError) -> Targets {
    var labels: [Int] = []
    labels.reserveCapacity(values.count)
    for (i, value) in values.enumerated() {
      guard value == value.rounded(), value >= 0, value < Double(classes) else {
        throw .invalidArgument("label \(value) of example \(i) is not an integer in [0, \(classes))")
      }
      labels.append(Int(value))
    }
    return .classes(labels)
  }

  public var count: Int {
    switch self {
    case .classes(let labels): labels.count
    case .values(let t): t.count
    }
  }

  /// The targets of the examples at `indices` (a minibatch).
  public func subset(_ indices: some Collection<Int>) -> Targets {
    switch self {
    case .classes(let labels): return .classes(indices.map { labels[$0] })
    case .values(let t):
      let size = t.exampleSize
      var elements: [Double] = []
      elements.reserveCapacity(indices.count * size)
      for i in indices { elements += t.elements[(i * size)..<((i + 1) * size)] }
      return .values(try! Tensor(shape: [indices.count] + t.shape.dropFirst(), elements: elements))
    }
  }
}

/// p(y | f) for network outputs f (N, C), with what curvature needs (DESIGN.md §4):
/// the summed negative log-likelihood, its gradient, the output-Hessian square root
/// S with S·Sᵀ = Λ = ∂²(−log p)/∂f², and Monte-Carlo output vectors.
public protocol Likelihood: Sendable {
  /// Checks targets against outputs of shape (N, C); errors name the example.
  func validate(_ targets: Targets, outputs: Tensor) throws(BDLError)
  /// −Σ_n log p(y_n | f_n).
  func negativeLogLikelihood(_ outputs: Tensor, _ targets: Targets) throws(BDLError) -> Double
  /// ∂(−log p(y_n | f_n))/∂f_n as (N, 1, C): the one output vector whose backward is the gradient.
  func outputGradient(_ outputs: Tensor, _ targets: Targets) throws(BDLError) -> Tensor
  /// The columns of S_n as K = C vectors per example, (N, C, C): V[n, k, :] = S_n[:, k].
  func hessianSquareRoot(_ outputs: Tensor) -> Tensor
  /// A root R_n of Λ_n with only as many columns as Λ_n's rank needs, (N, K′, C) with
  /// Σ_k V[n, k, :] V[n, k, :]ᵀ = Λ_n: what the engine backpropagates for the exact curvature.
  /// Defaults to `hessianSquareRoot`.
  func reducedHessianSquareRoot(_ outputs: Tensor) -> Tensor
  /// K Monte-Carlo vectors per example, (N, K, C): ∂(−log p(ỹ|f))/∂f at labels ỹ ~ p(·|f), so that
  /// E[v vᵀ] = Λ (the MC Fisher). Scaled by 1/√K so that summing over k averages.
  func sampledOutputGradients(_ outputs: Tensor, samples k: Int, using random: inout RandomSource) -> Tensor
}

extension Likelihood {
  public func reducedHessianSquareRoot(_ outputs: Tensor) -> Tensor { hessianSquareRoot(outputs) }
}

/// Gaussian regression p(y | f) = N(y; f, σ²I).
public struct GaussianLikelihood: Likelihood {
  /// The observation noise σ > 0.
  public let sigma: Double

  public init(sigma: Double = 1) throws(BDLError) {
    guard sigma.isFinite, sigma > 0 else { throw .invalidArgument("sigma = \(sigma); it must be finite and > 0") }
    self.sigma = sigma
  }

  public func validate(_ targets: Targets, outputs: Tensor) throws(BDLError) {
    guard case .values(let y) = targets else { throw .invalidArgument("regression needs real-valued targets, got class labels") }
    guard y.shape == outputs.shape else {
      throw .shapeMismatch("targets have shape \(Tensor.describe(y.shape)), the outputs \(Tensor.describe(outputs.shape))")
    }
    try Validation.requireFinite(y.elements, "y")
  }

  /// Σ ½‖y − f‖²/σ² + N·C·log(σ√(2π)).
  public func negativeLogLikelihood(_ outputs: Tensor, _ targets: Targets) throws(BDLError) -> Double {
    try validate(targets, outputs: outputs)
    guard case .values(let y) = targets else { return .nan }
    var sse = 0.0
    for i in y.elements.indices { sse += (outputs.elements[i] - y.elements[i]) * (outputs.elements[i] - y.elements[i]) }
    return 0.5 * sse / (sigma * sigma) + Double(y.elements.count) * log(sigma * (2 * Double.pi).squareRoot())
  }

  /// (f − y)/σ².
  public func outputGradient(_ outputs: Tensor, _ targets: Targets) throws(BDLError) -> Tensor {
    try validate(targets, outputs: outputs)
    guard case .values(let y) = targets else { return outputs }
    var g = outputs.reshaped([outputs.count, 1, outputs.exampleSize])
    for i in g.elements.indices { g.elements[i] = (outputs.elements[i] - y.elements[i]) / (sigma * sigma) }
    return g
  }

  /// S = I/σ.
  public func hessianSquareRoot(_ outputs: Tensor) -> Tensor {
    let n = outputs.count, c = outputs.exampleSize
    var s = Tensor(shape: [n, c, c])
    for example in 0..<n {
      for i in 0..<c { s.elements[(example * c + i) * c + i] = 1 / sigma }
    }
    return s
  }

  /// ε/σ with ε ~ N(0, I), over √K: the gradient at ỹ = f + σε.
  public func sampledOutputGradients(_ outputs: Tensor, samples k: Int, using random: inout RandomSource) -> Tensor {
    let n = outputs.count, c = outputs.exampleSize
    var v = Tensor(shape: [n, k, c])
    let scale = 1 / (sigma * Double(k).squareRoot())
    for i in v.elements.indices { v.elements[i] = random.normal() * scale }
    return v
  }
}

/// Categorical classification p(y = c | f) = softmax(f)_c.
public struct CategoricalLikelihood: Likelihood {
  public init() {}

  public func validate(_ targets: Targets, outputs: Tensor) throws(BDLError) {
    guard case .classes(let labels) = targets else { throw .invalidArgument("classification needs class labels, got real-valued targets") }
    guard labels.count == outputs.count else {
      throw .shapeMismatch("\(labels.count) labels for \(outputs.count) examples")
    }
    let c = outputs.exampleSize
    if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= c }) {
      throw .invalidArgument("label \(labels[bad]) of example \(bad) is outside [0, \(c))")
    }
  }

  /// softmax of each row, computed stably (max subtracted).
  public func probabilities(_ outputs: Tensor) -> Tensor {
    var p = outputs
    let c = outputs.exampleSize
    for example in 0..<outputs.count {
      let base = example * c
      var largest = -Double.infinity
      for i in 0..<c { largest = max(largest, p.elements[base + i]) }
      var total = 0.0
      for i in 0..<c {
        let e = exp(p.elements[base + i] - largest)
        p.elements[base + i] = e
        total += e
      }
      for i in 0..<c { p.elements[base + i] /= total }
    }
    return p
  }

  /// Σ_n [logsumexp(f_n) − f_{n, y_n}] (the summed cross-entropy).
  public func negativeLogLikelihood(_ outputs: Tensor, _ targets: Targets) throws(BDLError) -> Double {
    try validate(targets, outputs: outputs)
    guard case .classes(let labels) = targets else { return .nan }
    let c = outputs.exampleSize
    var total = 0.0
    for example in 0..<outputs.count {
      let row = outputs.elements[(example * c)..<((example + 1) * c)]
      let largest = row.max()!
      let logSum = largest + log(row.reduce(0) { $0 + exp($1 - largest) })
      total += logSum - row[example * c + labels[example]]
    }
    return total
  }

  /// p − e_y.
  public func outputGradient(_ outputs: Tensor, _ targets: Targets) throws(BDLError) -> Tensor {
    try validate(targets, outputs: outputs)
    guard case .classes(let labels) = targets else { return outputs }
    let c = outputs.exampleSize
    var g = probabilities(outputs).reshaped([outputs.count, 1, c])
    for example in 0..<outputs.count { g.elements[example * c + labels[example]] -= 1 }
    return g
  }

  /// Column k of S_n is √p_k (e_k − p): S·Sᵀ = diag(p) − p·pᵀ.
  public func hessianSquareRoot(_ outputs: Tensor) -> Tensor {
    let n = outputs.count, c = outputs.exampleSize
    let p = probabilities(outputs)
    var s = Tensor(shape: [n, c, c])
    for example in 0..<n {
      for k in 0..<c {
        let root = p.elements[example * c + k].squareRoot()
        for i in 0..<c {
          s.elements[(example * c + k) * c + i] = root * ((i == k ? 1 : 0) - p.elements[example * c + i])
        }
      }
    }
    return s
  }

  /// Λ = diag(p) − p·pᵀ has rank C − 1 (Λ·1 = 0), so C − 1 columns suffice: with u = √p,
  /// S = diag(u)·(I − u·uᵀ), and H = I − w·wᵀ/(1 + u_L), w = u + e_L (L = C − 1), the Householder
  /// reflection with H·e_L = −u. The first C − 1 columns of H span u⊥, so R = diag(u)·H[:, 0..<L]
  /// has R·Rᵀ = diag(u)(I − u·uᵀ)diag(u) = Λ. Entry (i, k): u_i·(δ_ik − w_i·u_k/(1 + u_L)); the
  /// denominator is ≥ 1, so nothing cancels. For C = 1 (Λ = 0) it is S itself, one zero column.
  /// Backpropagating R instead of S is a tenth fewer rows for C = 10 and changes no curvature:
  /// each sums v·vᵀ (or squares of linear functions of v) over the columns.
  public func reducedHessianSquareRoot(_ outputs: Tensor) -> Tensor {
    let n = outputs.count, c = outputs.exampleSize
    guard c >= 2 else { return hessianSquareRoot(outputs) }
    let p = probabilities(outputs)
    let last = c - 1
    var r = Tensor(shape: [n, last, c])
    r.elements.withUnsafeMutableBufferPointer { rp in
      p.elements.withUnsafeBufferPointer { pp in
        var u = [Double](repeating: 0, count: c)
        for example in 0..<n {
          for i in 0..<c { u[i] = pp[example * c + i].squareRoot() }
          let scale = 1 / (1 + u[last])
          for k in 0..<last {
            let row = rp.baseAddress! + (example * last + k) * c
            let coefficient = u[k] * scale
            for i in 0..<c {
              let w = i == last ? u[i] + 1 : u[i]
              row[i] = u[i] * ((i == k ? 1 : 0) - w * coefficient)
            }
          }
        }
      }
    }
    return r
  }

  /// (p − e_ỹ)/√K with ỹ ~ Categorical(p).
  public func sampledOutputGradients(_ outputs: Tensor, samples k: Int, using random: inout RandomSource) -> Tensor {
    let n = outputs.count, c = outputs.exampleSize
    let p = probabilities(outputs)
    var v = Tensor(shape: [n, k, c])
    let scale = 1 / Double(k).squareRoot()
    for example in 0..<n {
      for sample in 0..<k {
        var u = random.uniform(), label = c - 1
        for i in 0..<c {
          u -= p.elements[example * c + i]
          if u < 0 { label = i; break }
        }
        for i in 0..<c {
          v.elements[(example * k + sample) * c + i] = scale * (p.elements[example * c + i] - (i == label ? 1 : 0))
        }
      }
    }
    return v
  }
}
