/// How K-FAC treats a layer applied at R positions per example (sequences, conv patches);
/// Eschenhagen et al. (2023), "Kronecker-Factored Approximate Curvature for Modern Neural
/// Network Architectures".
public enum KFACApproximation: String, Sendable, Equatable {
  /// Every position is a separate example: A = (1/(N·R)) Σ_{n,r} a aᵀ, B = Σ_{n,k,r} g gᵀ.
  /// Exact for deep linear networks when the loss sees every position.
  case expand
  /// Positions are pooled first: â_n = (1/R) Σ_r a_{n,r}, ĝ_{n,k} = Σ_r g_{n,k,r},
  /// A = (1/N) Σ_n â âᵀ, B = Σ_{n,k} ĝ ĝᵀ. Exact for deep linear networks when positions are
  /// averaged before the loss, and R times cheaper.
  case reduce
}

/// Running sums behind the K-FAC factors of one layer computing y_r = W·a_r + b.
///
/// Statistics are sums, so accumulators over disjoint data merge by addition (A as a
/// count-weighted mean): `merged(with:)` of two equals one accumulator over the union.
public struct KFACLayerAccumulator: Sendable, Equatable {
  /// d_in and d_out.
  public let inputDimension: Int
  public let outputDimension: Int
  public let hasBias: Bool
  public let approximation: KFACApproximation
  /// The lower triangles of Σ a aᵀ and Σ g gᵀ, upper triangles kept zero. A batch's syrk writes
  /// only the lower half, so the sums are mirrored once when read (`inputSum`,
  /// `outputGradientSum`) rather than after every batch: mirroring is a transposing pass over
  /// d² entries that would otherwise follow each syrk.
  var inputLower: Matrix
  var outputGradientLower: Matrix
  /// Σ a aᵀ over the rows counted in `inputRows` (positions for expand, examples for reduce).
  public var inputSum: Matrix { inputLower.mirroringLower() }
  /// Σ g gᵀ — B itself (a sum, DESIGN.md §4).
  public var outputGradientSum: Matrix { outputGradientLower.mirroringLower() }
  /// Rows behind `inputSum`: N·R for expand, N for reduce.
  public internal(set) var inputRows: Int = 0
  /// Examples seen.
  public internal(set) var examples: Int = 0
  /// K, the output vectors per example, fixed by the first batch (0 before it): B sums over them,
  /// so batches with different K would mix different Fisher estimates.
  public internal(set) var vectorsPerExample: Int = 0

  public init(inputDimension: Int, outputDimension: Int, hasBias: Bool, approximation: KFACApproximation) throws(BDLError) {
    guard inputDimension >= 1, outputDimension >= 1 else {
      throw .invalidArgument("K-FAC layer: d_in = \(inputDimension) and d_out = \(outputDimension) must be ≥ 1")
    }
    _ = try Validation.product(inputDimension, inputDimension, "A size")
    _ = try Validation.product(outputDimension, outputDimension, "B size")
    self.inputDimension = inputDimension
    self.outputDimension = outputDimension
    self.hasBias = hasBias
    self.approximation = approximation
    self.inputLower = Matrix(rows: inputDimension, columns: inputDimension)
    self.outputGradientLower = Matrix(rows: outputDimension, columns: outputDimension)
  }

  /// Adds a batch: a (N, R, d_in) and g (N, K, R, d_out), as `Sequential.backward` produces.
  /// Both factors are updated by one syrk each over the batch's rows.
  /// - Throws: `.shapeMismatch` for dimensions that disagree with the layer or each other,
  ///   `.nonFiniteInput` for NaN/Inf or sums of squares that overflow; the accumulator is
  ///   unchanged on any error.
  public mutating func add(inputs a: Tensor, outputGradients g: Tensor) throws(BDLError) {
    try add(inputs: a, outputGradients: g, checkingFinite: true)
  }

  /// The same; `checkingFinite: false` skips the scan of a and g for statistics the engine made
  /// from validated inputs and parameters (an overflow there still surfaces: a non-finite factor
  /// is refused when it is eigendecomposed). The scan would read every statistic once more.
  /// `recordingVectors` is the K the statistics stand for when g holds an equivalent smaller set
  /// of vectors per example (the engine's reduced root of the exact GGN, `FisherSource`).
  mutating func add(inputs a: Tensor, outputGradients g: Tensor, checkingFinite: Bool, recordingVectors recorded: Int? = nil) throws(BDLError) {
    guard a.shape.count == 3, g.shape.count == 4 else {
      throw .shapeMismatch("K-FAC: a must be (N, R, d_in) and g (N, K, R, d_out), got \(Tensor.describe(a.shape)) and \(Tensor.describe(g.shape))")
    }
    guard a.shape[2] == inputDimension, g.shape[3] == outputDimension else {
      throw .shapeMismatch("K-FAC: a has d_in = \(a.shape[2]) and g d_out = \(g.shape[3]); the layer has \(inputDimension) and \(outputDimension)")
    }
    guard g.shape[0] == a.shape[0], g.shape[2] == a.shape[1] else {
      throw .shapeMismatch("K-FAC: a covers \(a.shape[0]) examples × \(a.shape[1]) positions, g \(g.shape[0]) × \(g.shape[2])")
    }
    try a.elements.withUnsafeBufferPointer { ap throws(BDLError) in
      try g.elements.withUnsafeBufferPointer { gp throws(BDLError) in
        try add(inputs: ap, outputGradients: gp, examples: a.shape[0], positions: a.shape[1], vectors: g.shape[1], recordingVectors: recorded ?? g.shape[1], checkingFinite: checkingFinite)
      }
    }
  }

  /// The same from caller memory, without copying it: a holds n·positions rows of d_in, g
  /// n·vectors·positions rows of d_out (row-major, as in the Tensor form). The expand factors are
  /// one syrk each straight on those rows. `checkingFinite: false` skips the NaN/Inf scan: only
  /// for statistics already known finite (then a non-finite entry corrupts the sums silently).
  public mutating func add(
    inputs a: UnsafeBufferPointer<Double>, outputGradients g: UnsafeBufferPointer<Double>,
    examples n: Int, positions r: Int, vectors k: Int, checkingFinite: Bool = true
  ) throws(BDLError) {
    try add(inputs: a, outputGradients: g, examples: n, positions: r, vectors: k, recordingVectors: k, checkingFinite: checkingFinite)
  }

  private mutating func add(
    inputs a: UnsafeBufferPointer<Double>, outputGradients g: UnsafeBufferPointer<Double>,
    examples n: Int, positions r: Int, vectors k: Int, recordingVectors recorded: Int, checkingFinite: Bool
  ) throws(BDLError) {
    guard n >= 0, r >= 1, k >= 1,
      a.count == (try Validation.product(try Validation.product(n, r, "rows"), inputDimension, "a size")),
      g.count == (try Validation.product(try Validation.product(n * r, k, "rows"), outputDimension, "g size"))
    else {
      throw .shapeMismatch("K-FAC: a (\(a.count) values) and g (\(g.count)) do not hold \(n) examples × \(r) positions × \(k) vectors of d_in = \(inputDimension), d_out = \(outputDimension)")
    }
    guard vectorsPerExample == 0 || recorded == vectorsPerExample else {
      throw .shapeMismatch("K-FAC: g has K = \(recorded) vectors per example; earlier batches had \(vectorsPerExample)")
    }
    if n == 0 { return }
    let original = checkingFinite ? (a: a, g: g) : nil
    switch approximation {
    case .expand:
      try addGrams(inputs: a, rows: n * r, outputGradients: g, rows: n * k * r, checking: original)
      inputRows += n * r
    case .reduce:
      // â_n = mean over positions, ĝ_{n,k} = sum over positions: contiguous row sums through
      // raw pointers (the inner loops vectorise), then the Grams over N and N·K rows. A
      // non-finite entry stays non-finite in the pooled rows, where the check finds it.
      let (dIn, dOut) = (inputDimension, outputDimension)
      var pooledInputs = [Double](repeating: 0, count: n * dIn)
      var pooledGradients = [Double](repeating: 0, count: n * k * dOut)
      let scale = 1 / Double(r)
      pooledInputs.withUnsafeMutableBufferPointer { pooled in
        for example in 0..<n {
          let target = pooled.baseAddress! + example * dIn
          for position in 0..<r {
            let source = a.baseAddress! + (example * r + position) * dIn
            for i in 0..<dIn { target[i] += source[i] }
          }
          for i in 0..<dIn { target[i] *= scale }
        }
      }
      pooledGradients.withUnsafeMutableBufferPointer { pooled in
        for row in 0..<(n * k) {
          let target = pooled.baseAddress! + row * dOut
          for position in 0..<r {
            let source = g.baseAddress! + (row * r + position) * dOut
            for i in 0..<dOut { target[i] += source[i] }
          }
        }
      }
      try pooledInputs.withUnsafeBufferPointer { pa throws(BDLError) in
        try pooledGradients.withUnsafeBufferPointer { pg throws(BDLError) in
          try addGrams(inputs: pa, rows: n, outputGradients: pg, rows: n * k, checking: original)
        }
      }
      inputRows += n
    }
    examples += n
    vectorsPerExample = recorded
  }

  /// Adds the Grams XᵀX of the input rows x and of the output-gradient rows y (as given for
  /// expand, pooled for reduce) to the sums. With `original` (the caller's a and g) both batches
  /// are checked finite first, so that a failure leaves both sums as they were.
  ///
  /// The check: when X has at least as many rows as columns, XᵀX is formed in scratch and its
  /// diagonal Σ_r x_rj² is read. It is finite exactly when every entry of X is finite and no sum of
  /// squares overflows, and reading d values replaces a scan of rows·d (megabytes per batch; the
  /// scratch costs d²). Then `original` is scanned only to name the offending entry. A wide X is
  /// scanned directly and its Gram added by one syrk straight into the sum.
  private mutating func addGrams(
    inputs x: UnsafeBufferPointer<Double>, rows xRows: Int, outputGradients y: UnsafeBufferPointer<Double>, rows yRows: Int,
    checking original: (a: UnsafeBufferPointer<Double>, g: UnsafeBufferPointer<Double>)?
  ) throws(BDLError) {
    func checkedGram(_ x: UnsafeBufferPointer<Double>, _ rows: Int, _ columns: Int, _ original: UnsafeBufferPointer<Double>?, _ name: String) throws(BDLError) -> Matrix? {
      guard let original else { return nil }
      guard rows >= columns else {
        try Validation.requireFinite(original, name)
        return nil
      }
      var gram = Matrix(rows: columns, columns: columns)
      try gram.addLowerGram(of: x, rows: rows)
      if (0..<columns).contains(where: { !gram.elements[$0 * columns + $0].isFinite }) {
        try Validation.requireFinite(original, name)
        throw .nonFiniteInput("\(name): its sums of squares overflow to ∞ (entries too large for Σ \(name)\(name)ᵀ in Double)")
      }
      return gram
    }
    let inputGram = try checkedGram(x, xRows, inputDimension, original?.a, "a")
    let outputGradientGram = try checkedGram(y, yRows, outputDimension, original?.g, "g")
    if let inputGram {
      try inputLower.add(inputGram)
    } else {
      try inputLower.addLowerGram(of: x, rows: xRows)
    }
    if let outputGradientGram {
      try outputGradientLower.add(outputGradientGram)
    } else {
      try outputGradientLower.addLowerGram(of: y, rows: yRows)
    }
  }

  /// The useful flops `add` spends on a batch (its two Grams, as `AccumulationProfile` counts
  /// them): d_in²·rows + d_out²·rows·K, with rows = N·R for expand and N for reduce.
  func gramFlops(inputs a: Tensor, outputGradients g: Tensor) -> Double {
    let rows = Double(approximation == .expand ? a.shape[0] * a.shape[1] : a.shape[0])
    let (dIn, dOut) = (Double(inputDimension), Double(outputDimension))
    return dIn * dIn * rows + dOut * dOut * rows * Double(g.shape[1])
  }

  /// The accumulator of the union of this one's data and `other`'s.
  public func merged(with other: KFACLayerAccumulator) throws(BDLError) -> KFACLayerAccumulator {
    guard other.inputDimension == inputDimension, other.outputDimension == outputDimension,
      other.hasBias == hasBias, other.approximation == approximation,
      vectorsPerExample == 0 || other.vectorsPerExample == 0 || vectorsPerExample == other.vectorsPerExample
    else {
      throw .shapeMismatch("K-FAC merge: layers differ (d_in \(inputDimension)/\(other.inputDimension), d_out \(outputDimension)/\(other.outputDimension), bias \(hasBias)/\(other.hasBias), \(approximation)/\(other.approximation), K \(vectorsPerExample)/\(other.vectorsPerExample))")
    }
    var result = self
    try result.inputLower.add(other.inputLower)
    try result.outputGradientLower.add(other.outputGradientLower)
    result.inputRows += other.inputRows
    result.examples += other.examples
    result.vectorsPerExample = max(vectorsPerExample, other.vectorsPerExample)
    return result
  }

  /// A = Σ a aᵀ / rows (the input factor, a mean).
  public var inputFactor: Matrix {
    var a = inputSum
    if inputRows > 0 { for i in a.elements.indices { a.elements[i] /= Double(inputRows) } }
    return a
  }

  /// B = Σ g gᵀ (the output-gradient factor, a sum).
  public var outputGradientFactor: Matrix { outputGradientSum }
}

extension Matrix {
  /// self += XᵀX for X given as `rows` × `columns` row-major entries (dsyrk, lower triangle, then
  /// mirrored), the BLAS-3 kernel of the dense GGN.
  mutating func addGram(of x: [Double], rows: Int, columns: Int) throws(BDLError) {
    precondition(self.rows == columns && self.columns == columns && x.count == rows * columns, "internal: Gram shapes")
    try x.withUnsafeBufferPointer { p throws(BDLError) in try addLowerGram(of: p, rows: rows) }
    fillUpperFromLower()
  }

  /// The lower triangle of self += XᵀX for X given as `rows` × n row-major entries, n = self's
  /// order (one dsyrk); the upper triangle is not touched. The BLAS-3 kernel of every K-FAC factor.
  mutating func addLowerGram(of x: UnsafeBufferPointer<Double>, rows: Int) throws(BDLError) {
    precondition(self.rows == columns && x.count == rows * columns, "internal: Gram shapes")
    if rows == 0 { return }
    let n = columns
    try elements.withUnsafeMutableBufferPointer { cp throws(BDLError) in
      try BLAS.syrkLower(
        transpose: true, n: n, k: rows, alpha: 1, a: x.baseAddress!, lda: n, beta: 1,
        c: cp.baseAddress!, ldc: n)
    }
  }

  /// A copy with the upper triangle set to zero.
  func lowerTriangle() -> Matrix {
    var copy = self
    for i in 0..<rows { for j in (i + 1)..<columns { copy.elements[i * columns + j] = 0 } }
    return copy
  }

  /// A copy with the lower triangle mirrored onto the upper one.
  func mirroringLower() -> Matrix {
    var copy = self
    copy.fillUpperFromLower()
    return copy
  }
}
