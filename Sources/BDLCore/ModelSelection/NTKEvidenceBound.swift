#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The stochastic NTK lower bound on the linearised-Laplace log marginal likelihood (Immer,
/// van der Ouderaa, van der Wilk, Rätsch & Schölkopf 2023, "Stochastic marginal likelihood
/// gradients using neural tangent kernels"): the full-GGN Laplace evidence written with an
/// NC × NC kernel instead of the P × P posterior precision, then cut into batches.
///
/// Evidence in kernel form. The full-GGN Laplace evidence (DESIGN.md §4)
///   E = log p(D|θ*) − ½[log det P − log det P0] − ½(θ* − μ0)ᵀP0(θ* − μ0),
///   P = h·G + P0,  G = Σ_n J_nᵀ Λ_n J_n,  h = 1/(σ²T) (regression) or 1/T (classification),
/// has, by Sylvester's determinant identity with Λ = S Sᵀ (S block-diagonal, S_n the output-Hessian
/// square root at σ = 1: I for Gaussian, column c √p_c(e_c − p) for categorical),
///   log det P − log det P0 = log det(I_{NC} + h·Sᵀ K S),  K = J P0⁻¹ Jᵀ.
/// With P0 = diag(δ_t) constant on each parameter tensor t (W₀, b₀, W₁, b₁, …), K = Σ_t K_t/δ_t,
/// and each Sᵀ K_t S is built from one linear-map layer's statistics with the columns of S
/// backpropagated (see `TangentKernel.swift`): for a dense layer the Hadamard product of the
/// input Gram and the output-gradient Gram, never a P-sized Jacobian. A per-parameter prior does
/// not factor this way and is refused (`.unsupported`).
///
/// Partitioned bound. The N examples are put in a random order drawn from `Options.seed` (with
/// `groupByClass`, sorted by label, random within a class) and cut into consecutive batches of B;
/// the last batch holds the N − B·⌊N/B⌋ remaining examples when B does not divide N. Keeping
/// only the diagonal blocks of the positive-definite M = I + h·SᵀKS can only raise its
/// log-determinant (Fischer's inequality), so
///   E_B = log p(D|θ*) − ½ Σ_b log det(I + h·S_bᵀ K_bb S_b) − ½(θ* − μ0)ᵀP0(θ* − μ0) ≤ E,
/// with equality when one batch holds all the data (B ≥ N, the default): then E_B is exactly the
/// full-GGN Laplace evidence, at O((NC)³) instead of O(P³). Grouping by class is the paper's way
/// to tighten the bound: the kernel's large off-diagonal entries tend to join examples of a class.
/// Measured on 400 digits with a trained 64-32-10 tanh MLP at δ = 1 (exact evidence −377.4):
/// B = 50 gives −668 with random batches and −540 grouped; B = 200 gives −459 and −430.
///
/// Stochastic estimate (`estimate(batch:output:)`). From batch b alone, with n_B batches:
///   Ê_b = n_B·[log p(D_b|θ*) − ½ log det(I + h·S_bᵀ K_bb S_b)] − ½(θ* − μ0)ᵀP0(θ* − μ0).
/// For b drawn uniformly, E[Ê_b] = E_B exactly: the average over all batches is the partitioned
/// value. With equal batches n_B = N/B, the paper's scaling; with a smaller last batch the
/// factor n_B (not N/B_b) is the one that keeps the estimate unbiased.
///
/// Independent outputs (the paper's cheaper variant). Λ_n is replaced by its diagonal
/// λ_{n,c} = p_{nc}(1 − p_{nc}) (1 for Gaussian) and the kernel's cross-output blocks are dropped:
/// per batch Σ_c log det(I_B + h·diag(λ_c)^{½} K_c diag(λ_c)^{½}) with K_c[n, m] = J_{n,c}P0⁻¹J_{m,c}ᵀ,
/// C kernels of B × B instead of one of BC × BC; the single-output estimate uses output c alone,
/// its log-determinant scaled by C (and by n_B). This is an approximation, not a bound:
/// the diagonal of Λ is not an upper bound of Λ (for C = 2, Λ = p₁p₂[[1, −1], [−1, 1]] has the
/// eigenvalue 2p₁p₂ > p₁p₂), so the log-determinant can move either way. It is exact for one
/// Gaussian output. For C > 1 outputs sharing hidden layers, Gaussian ones included, dropping
/// the cross-output blocks is Fischer's inequality again and lowers the value. Measured on the
/// test models at one batch, as value − full evidence (relative to |evidence|; log det ratio
/// independent/full), at a scalar δ = 0.2 and 1.3:
///   classification MLP 4-6-3, N = 12:      −4.95 nats (−15 %; 1.26),  −1.46 (−4.9 %; 1.17);
///   CNN (two Conv2d, C = 3, N = 7):         −7.06 nats (−24 %; 1.41),  −2.38 (−6.8 %; 1.31);
///   sequence model (C = 3, N = 7):          −1.00 nats (−5.7 %; 1.13), −0.16 (−0.9 %; 1.06);
///   regression MLP 3-5-2, σ = 0.7, N = 10:  −1.98 nats (−3.1 %; 1.09), −0.75 (−1.3 %; 1.06).
/// It lay below the evidence every time, by more than the B = 4 partition for the CNN, by less
/// for the others: the gap grows as δ falls (the kernel, hence the dropped blocks, grows as 1/δ).
///
/// Gradients. With M = I + h·SᵀKS, ∂M/∂log δ_t = −h·SᵀK_tS/δ_t, so
///   ∂E_B/∂log δ_t = ½ h Σ_b tr(M_b⁻¹ S_bᵀK_{t,bb}S_b)/δ_t − ½ δ_t‖θ*_t − μ0_t‖²
/// (log det P0 cancels in the kernel form); a scalar δ sums over t. For regression
/// (∂h/∂log σ = −2h) ∂E_B/∂log σ = 2h·L − N·C + h Σ_b tr(M_b⁻¹ S_bᵀK_bbS_b), L = ½Σ‖y − f‖².
/// The traces come from one Cholesky factorisation and inverse of each M_b.
public struct NTKEvidenceBound: Sendable {
  /// How the data are partitioned and which variant is computed.
  public struct Options: Sendable, Equatable {
    /// B, the examples per batch; nil (the default): all N in one batch, where the value is the
    /// exact full-GGN Laplace evidence. B ≥ N is the same single batch. Memory per batch is
    /// about (tensors + 3)·(B·C)² doubles, so B bounds the cost: O(B²C²·P/T + B³C³) per batch.
    public var batchSize: Int?
    /// Treat outputs independently with Λ's diagonal (see above); default false (the bound).
    public var independentOutputs: Bool
    /// Sort the examples by class label before partitioning (classification only); default
    /// false, so that batches are random, as for a minibatch estimate.
    public var groupByClass: Bool
    /// Seeds the random order of the examples before partitioning (irrelevant with one batch).
    public var seed: UInt64

    public init(batchSize: Int? = nil, independentOutputs: Bool = false, groupByClass: Bool = false, seed: UInt64 = 0) {
      self.batchSize = batchSize
      self.independentOutputs = independentOutputs
      self.groupByClass = groupByClass
      self.seed = seed
    }
  }

  /// A value and its gradient with respect to the log hyperparameters.
  public struct Result: Sendable, Equatable {
    /// E_B (`evaluate`) or the estimate Ê_b (`estimate`).
    public let value: Double
    /// ∂value/∂log δ_k for each entry of the prior-precision vector (its length).
    public let logPriorPrecision: [Double]
    /// ∂value/∂log σ (0 for classification).
    public let logSigma: Double
    /// log det(I + h·S_bᵀK_bbS_b) of each batch evaluated (summed over outputs for independent
    /// outputs), unscaled: all batches for `evaluate`, the one batch (or output) for `estimate`.
    public let logDeterminants: [Double]
  }

  public let model: Sequential
  public let inputs: Tensor
  public let targets: Targets
  public let likelihood: LaplaceLikelihood
  public let options: Options
  /// The partition: the example indices of each batch, in order.
  public let batches: [[Int]]
  /// The parameter tensors (weight, bias, … in θ order) and the layers their kernels come from.
  let tensors: [KernelTensor]
  let groups: ParameterGroups
  /// How weight kernels of layers at R > 1 positions are formed (tests compare the routes).
  var route: TangentKernelRoute = .automatic

  /// One parameter tensor: the linear-map layer it belongs to and its slice of θ.
  struct KernelTensor: Sendable {
    let layer: Int
    let isBias: Bool
    let parameters: Range<Int>
  }

  /// Checks the data and options and draws the partition.
  /// - Throws: `.shapeMismatch` (input shape, N = 0, target count or shape), `.nonFiniteInput`,
  ///   `.invalidArgument` (B < 1, labels outside [0, C), wrong target kind, class grouping
  ///   for regression, a network without parameters), `.unsupported` (a parametric layer that
  ///   is not Linear or Conv2d).
  public init(
    model: Sequential, inputs: Tensor, targets: Targets, likelihood: LaplaceLikelihood, options: Options = .init()
  ) throws(BDLError) {
    try model.validateInput(inputs)
    let n = inputs.count
    guard targets.count == n else { throw .shapeMismatch("\(targets.count) targets for \(n) examples") }
    let outputs = Tensor(shape: [n, model.outputCount])
    switch likelihood {
    case .classification: try CategoricalLikelihood().validate(targets, outputs: outputs)
    case .regression: try GaussianLikelihood().validate(targets, outputs: outputs)
    }
    if let b = options.batchSize, b < 1 { throw .invalidArgument("batch_size = \(b); it must be ≥ 1") }
    var tensors: [KernelTensor] = []
    for (index, layer) in model.layers.enumerated() where layer.parameterCount > 0 {
      guard let map = layer as? any LinearMapLayer else {
        throw .unsupported("layer \(index + 1) (\(layer)) has parameters but is not a Linear or Conv2d layer; the NTK bound builds its kernels from linear-map statistics")
      }
      let start = model.parameterOffsets[index], weight = map.inputDimension * map.outputDimension
      tensors.append(KernelTensor(layer: index, isBias: false, parameters: start..<(start + weight)))
      if map.hasBias {
        tensors.append(KernelTensor(layer: index, isBias: true, parameters: (start + weight)..<(start + weight + map.outputDimension)))
      }
    }
    guard !tensors.isEmpty else { throw .invalidArgument("the network has no parameters, so no evidence to bound") }
    var random = RandomSource(seed: options.seed)
    var order = random.permutation(n)
    if options.groupByClass {
      guard case .classes(let labels) = targets else {
        throw .invalidArgument("group_by_class needs class labels (classification)")
      }
      order = order.enumerated().sorted { (labels[$0.element], $0.offset) < (labels[$1.element], $1.offset) }.map(\.element)
    }
    let size = min(options.batchSize ?? n, n)
    self.model = model
    self.inputs = inputs
    self.targets = targets
    self.likelihood = likelihood
    self.options = options
    self.batches = stride(from: 0, to: n, by: size).map { Array(order[$0..<min($0 + size, n)]) }
    self.tensors = tensors
    self.groups = ParameterGroups(ranges: tensors.map(\.parameters))
  }

  /// E_B with its gradient at `hyperparameters` (see `evaluate(_:)`), in one call.
  public static func evaluate(
    model: Sequential, inputs: Tensor, targets: Targets, likelihood: LaplaceLikelihood,
    hyperparameters: LaplaceHyperparameters = .init(), options: Options = .init()
  ) throws(BDLError) -> Result {
    try NTKEvidenceBound(model: model, inputs: inputs, targets: targets, likelihood: likelihood, options: options)
      .evaluate(hyperparameters)
  }

  /// The number of parameter tensors: the length of a "layerwise" prior.
  public var tensorCount: Int { tensors.count }

  /// The partitioned value E_B over all batches (the exact evidence for one batch) and its
  /// gradient. Kernels are rebuilt from the network on every call: one batch in memory at a time.
  /// - Throws: `.shapeMismatch` (a prior of neither 1 nor one value per tensor, a prior mean of
  ///   neither 1 nor P values), `.unsupported` (one prior value per parameter),
  ///   `.invalidArgument` / `.nonFiniteInput` (δ ≤ 0, σ ≤ 0, T ≤ 0, NaN/Inf), `.outOfMemory`.
  public func evaluate(_ hyperparameters: LaplaceHyperparameters = .init()) throws(BDLError) -> Result {
    try evaluate(hyperparameters, kernels: nil)
  }

  /// Every batch's kernels, which do not depend on the hyperparameters: computed once, they make
  /// each further evaluation at the same θ cost only the batches' Cholesky factorisations (what
  /// maximising the bound over δ needs). Memory: about tensors·B·C²·N doubles in all.
  public struct Kernels: Sendable {
    let batches: [BatchKernels]
  }

  public func kernels() throws(BDLError) -> Kernels {
    var all: [BatchKernels] = []
    for batch in batches { all.append(try batchKernels(batch, output: nil)) }
    return Kernels(batches: all)
  }

  /// `evaluate` from kernels computed earlier by `kernels()` for this bound.
  public func evaluate(_ hyperparameters: LaplaceHyperparameters, kernels cache: Kernels?) throws(BDLError) -> Result {
    let point = try EvaluationPoint(hyperparameters, self)
    var loss = CompensatedSum()
    var traces = [CompensatedSum](repeating: CompensatedSum(), count: tensors.count)
    var logDeterminants: [Double] = []
    for (index, batch) in batches.enumerated() {
      let kernels: BatchKernels
      if let cache { kernels = cache.batches[index] } else { kernels = try batchKernels(batch, output: nil) }
      loss.add(kernels.loss)
      var logDeterminant = CompensatedSum()
      for block in kernels.blocks {
        let terms = try point.logDeterminantTerms(block)
        logDeterminant.add(terms.logDeterminant)
        for t in tensors.indices { traces[t].add(terms.traces[t]) }
      }
      logDeterminants.append(logDeterminant.value)
    }
    return point.result(
      loss: loss.value, count: inputs.count, logDeterminants: logDeterminants, traces: traces.map(\.value),
      dataScale: 1, determinantScale: 1)
  }

  /// The stochastic estimate Ê_b from batch `batch` alone (0 ≤ batch < `batches.count`) and its
  /// gradient; with `output` (independent outputs only) from that output's kernel alone, its
  /// log-determinant scaled by C as well. Averaged over every batch (and output) it equals
  /// `evaluate`'s value and gradient.
  /// - Throws: `.invalidArgument` for a batch or output out of range, or `output` without
  ///   independent outputs; otherwise as `evaluate`.
  public func estimate(batch: Int, output: Int? = nil, _ hyperparameters: LaplaceHyperparameters = .init()) throws(BDLError) -> Result {
    guard batches.indices.contains(batch) else {
      throw .invalidArgument("batch_index = \(batch); it must be in [0, \(batches.count)) (the number of batches)")
    }
    let c = model.outputCount
    if let output {
      guard options.independentOutputs else {
        throw .invalidArgument("output_index = \(output): a single-output estimate needs independent outputs")
      }
      guard (0..<c).contains(output) else { throw .invalidArgument("output_index = \(output); it must be in [0, \(c))") }
    }
    let point = try EvaluationPoint(hyperparameters, self)
    let kernels = try batchKernels(batches[batch], output: output)
    var logDeterminant = CompensatedSum()
    var traces = [CompensatedSum](repeating: CompensatedSum(), count: tensors.count)
    for block in kernels.blocks {
      let terms = try point.logDeterminantTerms(block)
      logDeterminant.add(terms.logDeterminant)
      for t in tensors.indices { traces[t].add(terms.traces[t]) }
    }
    let batchCount = Double(batches.count)
    return point.result(
      loss: kernels.loss, count: kernels.count, logDeterminants: [logDeterminant.value], traces: traces.map(\.value),
      dataScale: batchCount, determinantScale: batchCount * (output == nil ? 1 : Double(c)))
  }

  // MARK: - One batch

  /// What a batch contributes at any hyperparameters: its loss L_b (at σ = 1, T = 1) and the
  /// per-tensor kernels Sᵀ K_t S of each independent block (one block; one per output for
  /// independent outputs; the one output asked for).
  struct BatchKernels: Sendable {
    let count: Int
    let loss: Double
    /// blocks[β][t]: tensor t's kernel in block β.
    let blocks: [[Matrix]]
  }

  func batchKernels(_ indices: [Int], output: Int?) throws(BDLError) -> BatchKernels {
    let size = inputs.exampleSize, b = indices.count
    var elements: [Double] = []
    elements.reserveCapacity(b * size)
    for i in indices { elements += inputs.elements[(i * size)..<((i + 1) * size)] }
    let x = try Tensor(shape: [b] + model.inputShape, elements: elements)
    let batchTargets = targets.subset(indices)
    let pass = try model.forwardPass(x)
    let f = pass.output
    let loss: Double
    switch batchTargets {
    case .classes: loss = try CategoricalLikelihood().negativeLogLikelihood(f, batchTargets)
    case .values(let y):
      var sum = CompensatedSum()
      for i in f.elements.indices { sum.add(0.5 * (f.elements[i] - y.elements[i]) * (f.elements[i] - y.elements[i])) }
      loss = sum.value
    }
    let vectors = outputVectors(f, output: output)
    let k = vectors.shape[1]
    let blockVectors: [Int?] = options.independentOutputs ? (0..<k).map { $0 } : [nil]
    let rows = options.independentOutputs ? b : b * k
    // Every kernel of the batch, plus M and its inverse for one block.
    let kernelEntries = try Validation.product(rows, rows, "kernel size")
    try Validation.requireAllocatable(
      try Validation.product(blockVectors.count * tensors.count + 3, kernelEntries, "kernel memory"),
      "the NTK kernels of a batch of \(b) examples (\(rows) rows); use a smaller batch_size")
    let statistics = try model.backward(pass, vectors: vectors)
    var blocks: [[Matrix]] = []
    for vector in blockVectors {
      var perTensor: [Matrix] = []
      for tensor in tensors {
        guard let s = statistics.first(where: { $0.layerIndex == tensor.layer }) else {
          throw .internal("no statistics for layer \(tensor.layer + 1)")
        }
        perTensor.append(tensor.isBias ? try s.biasKernel(vector: vector) : try s.weightKernel(vector: vector, route: route))
      }
      blocks.append(perTensor)
    }
    return BatchKernels(count: b, loss: loss, blocks: blocks)
  }

  /// The vectors backpropagated per example, (B, K, C): the columns of S_n (K = C) for the bound;
  /// √λ_{n,c}·e_c for independent outputs (K = C), or only the asked output's (K = 1).
  func outputVectors(_ f: Tensor, output: Int?) -> Tensor {
    let b = f.count, c = model.outputCount
    if !options.independentOutputs && likelihood == .classification {
      return CategoricalLikelihood().hessianSquareRoot(f)
    }
    // λ_{n,c}: p(1 − p) for categorical, 1 for Gaussian (Λ = I at σ = 1).
    var λ = [Double](repeating: 1, count: b * c)
    if likelihood == .classification {
      let p = CategoricalLikelihood().probabilities(f)
      for i in λ.indices { λ[i] = p.elements[i] * (1 - p.elements[i]) }
    }
    let outputs = output.map { [$0] } ?? Array(0..<c)
    var v = Tensor(shape: [b, outputs.count, c])
    for n in 0..<b {
      for (k, o) in outputs.enumerated() { v.elements[(n * outputs.count + k) * c + o] = λ[n * c + o].squareRoot() }
    }
    return v
  }

  // MARK: - Hyperparameters

  /// The checked hyperparameters in per-tensor form: h, δ_t and ‖θ*_t − μ0_t‖².
  struct EvaluationPoint {
    let hyperparameters: LaplaceHyperparameters
    let likelihood: LaplaceLikelihood
    let outputCount: Int
    let scale: Double
    let tensorPrior: [Double]
    let squaredDistance: [Double]

    init(_ hp: LaplaceHyperparameters, _ bound: NTKEvidenceBound) throws(BDLError) {
      guard hp.sigma.isFinite, hp.sigma > 0 else {
        throw hp.sigma.isFinite ? .invalidArgument("sigma_noise = \(hp.sigma); it must be > 0") : .nonFiniteInput("sigma_noise = \(hp.sigma); it must be finite")
      }
      guard hp.temperature.isFinite, hp.temperature > 0 else {
        throw hp.temperature.isFinite ? .invalidArgument("temperature = \(hp.temperature); it must be > 0") : .nonFiniteInput("temperature = \(hp.temperature); it must be finite")
      }
      let groups = bound.groups, count = hp.priorPrecision.count, tensorCount = groups.ranges.count
      guard count == 1 || count == tensorCount else {
        if count == groups.parameterCount {
          throw .unsupported(
            "prior precision has one value per parameter (\(count)); the NTK bound's kernel K = Σ_t K_t/δ_t needs δ constant on each parameter tensor: pass 1 value or one per tensor (\(tensorCount))")
        }
        throw .shapeMismatch(
          "prior precision has \(count) values; the NTK bound needs 1 (scalar) or \(tensorCount) (one per parameter tensor: W₀, b₀, W₁, b₁, …)")
      }
      _ = try groups.perParameter(priorPrecision: hp.priorPrecision)  // δ > 0 and finite, the Laplace's messages
      let μ = try groups.perParameter(priorMean: hp.priorMean)
      let θ = bound.model.parameters
      hyperparameters = hp
      likelihood = bound.likelihood
      outputCount = bound.model.outputCount
      scale = Laplace.likelihoodScale(hp, bound.likelihood)
      tensorPrior = (0..<tensorCount).map { hp.priorPrecision[count == 1 ? 0 : $0] }
      squaredDistance = groups.ranges.map { range in CompensatedSum.of(range.lazy.map { (θ[$0] - μ[$0]) * (θ[$0] - μ[$0]) }) }
    }

    /// log det M and tr(M⁻¹·K_t) for each tensor, M = I + h·Σ_t K_t/δ_t, by one Cholesky.
    func logDeterminantTerms(_ kernels: [Matrix]) throws(BDLError) -> (logDeterminant: Double, traces: [Double]) {
      let rows = kernels[0].rows
      var m = Matrix.identity(rows)
      for (t, kernel) in kernels.enumerated() { try m.add(kernel, scaledBy: scale / tensorPrior[t]) }
      let cholesky: Cholesky
      do {
        cholesky = try Cholesky(m, name: "I + h·SᵀKS")
      } catch .notPositiveDefinite(let reason) {
        throw singularPosterior(reason)
      }
      let inverse = try cholesky.inverse()
      var traces: [Double] = []
      for kernel in kernels { traces.append(try dot(inverse.elements, kernel.elements)) }
      return (cholesky.logDeterminant, traces)
    }

    /// The value and gradient from a data-fit part (loss L over `count` examples, scaled by
    /// `dataScale`) and log-determinant parts (scaled by `determinantScale`).
    func result(
      loss: Double, count: Int, logDeterminants: [Double], traces: [Double], dataScale: Double, determinantScale: Double
    ) -> Result {
      let h = scale, hp = hyperparameters
      let cells = Double(count * outputCount)
      let logLikelihood: Double
      switch likelihood {
      case .classification: logLikelihood = -loss / hp.temperature
      case .regression: logLikelihood = -h * loss - cells * log(hp.sigma * (2 * Double.pi).squareRoot())
      }
      var quadratic = CompensatedSum()
      for t in tensorPrior.indices { quadratic.add(tensorPrior[t] * squaredDistance[t]) }
      let value = dataScale * logLikelihood - 0.5 * determinantScale * CompensatedSum.of(logDeterminants) - 0.5 * quadratic.value
      // Per tensor: ½·h·tr(M⁻¹K_t)/δ_t − ½·δ_t‖θ_t − μ_t‖²; a scalar prior sums them.
      let perTensor = tensorPrior.indices.map { t in
        0.5 * determinantScale * h * traces[t] / tensorPrior[t] - 0.5 * tensorPrior[t] * squaredDistance[t]
      }
      let logPrior = hp.priorPrecision.count == 1 ? [CompensatedSum.of(perTensor)] : perTensor
      var logSigma = 0.0
      if likelihood == .regression {
        let trace = CompensatedSum.of(tensorPrior.indices.lazy.map { traces[$0] / tensorPrior[$0] })
        logSigma = dataScale * (2 * h * loss - cells) + determinantScale * h * trace
      }
      return Result(value: value, logPriorPrecision: logPrior, logSigma: logSigma, logDeterminants: logDeterminants)
    }
  }
}
