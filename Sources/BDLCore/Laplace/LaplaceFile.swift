/// The file format of a fitted Laplace posterior, so that a posterior fitted once can be reused
/// for evidence, prediction and sampling without the training data. Little-endian, in
/// `BinaryFormat`'s sealed container:
///
///     "BDLLAPL\0"   magic; u32 version (= 1)
///     u8 structure (0 full, 1 diag, 2 kron), u8 subset (0 all, 1 last layer),
///     u8 likelihood (0 classification, 1 regression), u8 damped Kronecker form, 4 zero bytes
///     u64 P (parameters covered), u64 first covered parameter, u64 network parameter count,
///     u64 N, u64 C, f64 loss L
///     u64 tensor count, then each tensor's u64 size
///     hyperparameters: u64 count + f64 prior precisions, u64 count + f64 prior mean,
///                      f64 σ, f64 T
///     f64 × P θ*
///     curvature: full: f64 × P² (G, row-major); diag: f64 × P;
///                kron: u64 layer count, per layer u64 layer index and u64 weight offset, the
///                K-FAC accumulators as a `KFACAccumulatorFile` (u64 length + bytes), then per
///                block u8 (1: refit EK-FAC eigenvalues follow, nb·na f64; 0: none)
///     u64 checksum
///
/// Loading checks everything a fit would (sizes add up, values finite, P positive definite at
/// the stored hyperparameters); a truncated, damaged or inconsistent file is `.corruptData`.
public enum LaplaceFile {
  static let magic: [UInt8] = Array("BDLLAPL".utf8) + [0]
  /// The format version this build writes and reads.
  public static let version: UInt32 = 1

  public static func encode(_ laplace: Laplace) -> [UInt8] {
    var bytes = magic
    BinaryFormat.append(version, to: &bytes)
    bytes += [UInt8(laplace.structure.rawValue), UInt8(laplace.subset.rawValue), UInt8(laplace.likelihood.rawValue), laplace.dampedKronecker ? 1 : 0, 0, 0, 0, 0]
    for value in [laplace.parameterCount, laplace.parameterRange.lowerBound, laplace.networkParameterCount, laplace.dataCount, laplace.outputCount] {
      BinaryFormat.append(UInt64(value), to: &bytes)
    }
    BinaryFormat.append([laplace.loss], to: &bytes)
    BinaryFormat.append(UInt64(laplace.tensorSizes.count), to: &bytes)
    for size in laplace.tensorSizes { BinaryFormat.append(UInt64(size), to: &bytes) }
    let hp = laplace.hyperparameters
    BinaryFormat.append(UInt64(hp.priorPrecision.count), to: &bytes)
    BinaryFormat.append(hp.priorPrecision, to: &bytes)
    BinaryFormat.append(UInt64(hp.priorMean.count), to: &bytes)
    BinaryFormat.append(hp.priorMean + [hp.sigma, hp.temperature], to: &bytes)
    BinaryFormat.append(laplace.mean, to: &bytes)
    switch laplace.curvature {
    case .full(let g): BinaryFormat.append(g.elements, to: &bytes)
    case .diagonal(let g): BinaryFormat.append(g, to: &bytes)
    case .kron(let kfac):
      let weights = kfac.blocks.filter { !$0.isBias }
      BinaryFormat.append(UInt64(weights.count), to: &bytes)
      for block in weights {
        BinaryFormat.append(UInt64(block.layerIndex), to: &bytes)
        BinaryFormat.append(UInt64(block.parameters.lowerBound), to: &bytes)
      }
      let accumulators = KFACAccumulatorFile.encode(kfac.accumulators)
      BinaryFormat.append(UInt64(accumulators.count), to: &bytes)
      bytes += accumulators
      for block in kfac.blocks {
        if let corrected = block.factors.correctedEigenvalues {
          bytes.append(1)
          BinaryFormat.append(corrected.elements, to: &bytes)
        } else {
          bytes.append(0)
        }
      }
    }
    return BinaryFormat.sealed(bytes)
  }

  public static func decode(_ bytes: [UInt8], source: String = "data") throws(BDLError) -> Laplace {
    var reader = try BinaryFormat.Reader(bytes: bytes, source: source, magic: magic, version: version, kind: "Laplace posterior")
    let flags = Array(try reader.bytes(8))
    guard let structure = Laplace.Structure(rawValue: Int(flags[0])), let subset = Laplace.Subset(rawValue: Int(flags[1])),
      let likelihood = LaplaceLikelihood(rawValue: Int(flags[2])), flags[3] <= 1, flags[4...].allSatisfy({ $0 == 0 })
    else { throw .corruptData("\(source): invalid structure, subset or likelihood flags") }
    let p = try reader.size("P"), first = try reader.size("first parameter", minimum: 0)
    let networkCount = try reader.size("network parameter count"), n = try reader.size("N"), c = try reader.size("C")
    let loss = try reader.f64()
    let tensorCount = try reader.size("tensor count")
    guard tensorCount <= reader.remaining / 8 else { throw .corruptData("\(source): truncated in the tensor sizes") }
    var sizes: [Int] = []
    for i in 0..<tensorCount { sizes.append(try reader.size("tensor \(i) size")) }
    let prior = try reader.doubles(try reader.size("prior precision count"), "prior precision")
    let priorMean = try reader.doubles(try reader.size("prior mean count"), "prior mean")
    let sigma = try reader.f64(), temperature = try reader.f64()
    let mean = try reader.doubles(p, "theta")
    let curvature: Laplace.Curvature
    switch structure {
    case .full:
      guard p <= Int(Int32.max) / max(p, 1) else { throw .corruptData("\(source): P = \(p) is too large for a full posterior") }
      curvature = .full(try Matrix(rows: p, columns: p, elements: try reader.doubles(p * p, "curvature")))
    case .diagonal:
      curvature = .diagonal(try reader.doubles(p, "curvature"))
    case .kron:
      let layers = try reader.size("K-FAC layer count")
      guard layers <= reader.remaining / 16 else { throw .corruptData("\(source): truncated in the K-FAC layers") }
      var indices: [Int] = [], offsets: [Int] = []
      for i in 0..<layers {
        indices.append(try reader.size("layer \(i) index", minimum: 0))
        offsets.append(try reader.size("layer \(i) offset", minimum: 0))
      }
      let length = try reader.size("K-FAC section length")
      let accumulators = try KFACAccumulatorFile.decode(Array(try reader.bytes(length)), source: "\(source) (K-FAC section)")
      var kfac = try KFAC(accumulators: accumulators, layerIndices: indices, offsets: offsets, parameterCount: p)
      var corrected: [Matrix?] = []
      for block in kfac.blocks {
        let flag = try reader.u8()
        guard flag <= 1 else { throw .corruptData("\(source): invalid eigenvalue flag") }
        corrected.append(flag == 1 ? try Matrix(rows: block.factors.outputOrder, columns: block.factors.inputOrder, elements: try reader.doubles(block.factors.outputOrder * block.factors.inputOrder, "EK-FAC eigenvalues")) : nil)
      }
      kfac = try kfac.correcting(eigenvalues: corrected)
      curvature = .kron(kfac)
    }
    try reader.requireEnd()
    guard first + p <= networkCount else { throw .corruptData("\(source): parameters \(first)..<\(first + p) exceed the network's \(networkCount)") }
    do {
      return try Laplace(
        curvature: curvature, mean: mean, tensorSizes: sizes, loss: loss, dataCount: n, outputCount: c,
        likelihood: likelihood, hyperparameters: LaplaceHyperparameters(priorPrecision: prior, priorMean: priorMean, sigma: sigma, temperature: temperature),
        dampedKronecker: flags[3] == 1, subset: subset, parameterRange: first..<(first + p), networkParameterCount: networkCount)
    } catch {
      throw .corruptData("\(source): inconsistent posterior: \(error.message)")
    }
  }

  /// Writes `laplace` to `path` atomically.
  public static func save(_ laplace: Laplace, to path: String) throws(BDLError) {
    try writeFileAtomically(encode(laplace), to: path)
  }

  /// Reads a posterior saved at `path`.
  public static func load(from path: String) throws(BDLError) -> Laplace {
    try decode(fileContents(path), source: path)
  }
}
