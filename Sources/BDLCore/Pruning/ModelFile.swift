/// The file format of a network: its architecture, its parameters θ and optionally a pruning
/// mask, so that a pruned (or any trained) network is restored exactly — θ and the mask bit for
/// bit. Little-endian, in `BinaryFormat`'s sealed container:
///
///     "BDLMODL\0"   magic; u32 version (= 1)
///     u64 input rank, then u64 × rank the shape of one input example
///     u64 layer count, then per layer 48 bytes (`LayerRecord`): u8 kind, u8 bias, 6 zero bytes,
///                  u64 in_features, u64 out_features, u64 kernel_size, u64 stride, u64 padding
///                  (a conv/FC mixture is one record for its two engine layers)
///     u64 P, then f64 × P θ
///     u8 mask flag (0: no mask, 1: a mask follows), then u8 × P mask (0 pruned, 1 kept)
///     u64 checksum (FNV-1a over every byte before it)
///
/// Loading rebuilds the network and checks it as construction would (layers fit together, θ
/// finite, P as stored); a truncated, damaged, wrongly versioned or inconsistent file is
/// `.corruptData` — never silently read. Saving writes a temporary file and renames it over the
/// target, so a failed save leaves any previous file intact.
public enum ModelFile {
  static let magic: [UInt8] = Array("BDLMODL".utf8) + [0]
  /// The format version this build writes and reads.
  public static let version: UInt32 = 1

  /// One layer as stored, field by field as the C API's `bdl_layer_spec`. Kinds carry the
  /// values of the C API's BDL_LAYER_* constants; fields a kind does not use are 0.
  public struct LayerRecord: Sendable, Equatable {
    public enum Kind: UInt8, Sendable, CaseIterable {
      case linear = 1, conv2d = 2, relu = 3, tanh = 4, sigmoid = 5, gelu = 6, identity = 7
      case flatten = 8, avgPool2d = 9, globalAvgPool2d = 10, meanOverSequence = 11
      /// A `ConvolutionFullyConnectedMixture`: one record (conv fields) for its two engine layers.
      case convFCMixture = 12
    }

    public var kind: Kind
    public var bias = false
    /// Linear: in_features; Conv2d: in_channels.
    public var inFeatures = 0
    /// Linear: out_features; Conv2d: out_channels.
    public var outFeatures = 0
    /// Conv2d, AvgPool2d.
    public var kernelSize = 0
    public var stride = 0
    public var padding = 0

    public init(kind: Kind) { self.kind = kind }

    /// The record of a built-in layer.
    /// - Throws: `.unsupported` for a layer type this format cannot describe (a user-defined one).
    public init(_ layer: any Layer) throws(BDLError) {
      switch layer {
      case let l as Linear:
        self.init(kind: .linear)
        (bias, inFeatures, outFeatures) = (l.hasBias, l.inFeatures, l.outFeatures)
      case let c as Conv2d:
        self.init(kind: .conv2d)
        (bias, inFeatures, outFeatures) = (c.hasBias, c.inChannels, c.outChannels)
        (kernelSize, stride, padding) = (c.kernelSize, c.stride, c.padding)
      case let m as MixtureConvolution:
        try self.init(m.convolution)
        kind = .convFCMixture
      case let a as Activation:
        switch a.function {
        case .relu: self.init(kind: .relu)
        case .tanh: self.init(kind: .tanh)
        case .sigmoid: self.init(kind: .sigmoid)
        case .gelu: self.init(kind: .gelu)
        case .identity: self.init(kind: .identity)
        }
      case is Flatten: self.init(kind: .flatten)
      case let p as AvgPool2d:
        self.init(kind: .avgPool2d)
        kernelSize = p.kernelSize
      case is GlobalAvgPool2d: self.init(kind: .globalAvgPool2d)
      case is MeanOverSequence: self.init(kind: .meanOverSequence)
      default: throw .unsupported("\(layer) is not a built-in layer; a model file can only describe built-in layers")
      }
    }

    /// The records of a network's layers: one per layer, except one for both engine layers of a
    /// convolution / fully-connected mixture.
    /// - Throws: `.unsupported` for a user-defined layer or a mixture half without its partner.
    public static func records(of layers: [any Layer]) throws(BDLError) -> [LayerRecord] {
      var records: [LayerRecord] = []
      for (index, layer) in layers.enumerated() {
        if layer is MixtureFullyConnected {
          guard index > 0, layers[index - 1] is MixtureConvolution else {
            throw .unsupported("\(layer) without its MixtureConvolution cannot be described")
          }
          continue
        }
        if layer is MixtureConvolution, !(index + 1 < layers.count && layers[index + 1] is MixtureFullyConnected) {
          throw .unsupported("\(layer) without its MixtureFullyConnected cannot be described")
        }
        records.append(try LayerRecord(layer))
      }
      return records
    }

    /// The layers `records` describe for inputs of `inputShape`: a mixture's FC path is sized by
    /// the image it receives, so the shapes are followed through the stack.
    public static func layers(of records: [LayerRecord], inputShape: [Int]) throws(BDLError) -> [any Layer] {
      var layers: [any Layer] = []
      var shape = inputShape
      for record in records {
        let built: [any Layer]
        if record.kind == .convFCMixture {
          built = try ConvolutionFullyConnectedMixture.layers(
            record.inFeatures, record.outFeatures, kernelSize: record.kernelSize, stride: record.stride,
            padding: record.padding, bias: record.bias, inputShape: shape)
        } else {
          built = [try record.layer()]
        }
        for layer in built { shape = try layer.outputShape(forInput: shape) }
        layers += built
      }
      return layers
    }

    /// The layer this record describes (checked as the layer's initialiser checks); a mixture
    /// needs its input shape: use `layers(of:inputShape:)`.
    public func layer() throws(BDLError) -> any Layer {
      switch kind {
      case .convFCMixture:
        throw .invalidArgument("a conv/FC mixture record describes two layers sized by their input: use LayerRecord.layers(of:inputShape:)")
      case .linear: return try Linear(inFeatures, outFeatures, bias: bias)
      case .conv2d:
        return try Conv2d(inFeatures, outFeatures, kernelSize: kernelSize, stride: stride, padding: padding, bias: bias)
      case .relu: return Activation.relu
      case .tanh: return Activation.tanh
      case .sigmoid: return Activation.sigmoid
      case .gelu: return Activation.gelu
      case .identity: return Activation.identity
      case .flatten: return Flatten()
      case .avgPool2d: return try AvgPool2d(kernelSize)
      case .globalAvgPool2d: return GlobalAvgPool2d()
      case .meanOverSequence: return MeanOverSequence()
      }
    }
  }

  /// The bytes of a file holding `model` (and `mask`, which must be one of `model`'s).
  /// - Throws: `.unsupported` for a user-defined layer; `.shapeMismatch` for a mask of another network.
  public static func encode(_ model: Sequential, mask: PruningMask? = nil) throws(BDLError) -> [UInt8] {
    try mask?.requireMatches(model)
    var bytes = magic
    BinaryFormat.append(version, to: &bytes)
    BinaryFormat.append(UInt64(model.inputShape.count), to: &bytes)
    for d in model.inputShape { BinaryFormat.append(UInt64(d), to: &bytes) }
    let records = try LayerRecord.records(of: model.layers)
    BinaryFormat.append(UInt64(records.count), to: &bytes)
    for record in records {
      bytes += [record.kind.rawValue, record.bias ? 1 : 0, 0, 0, 0, 0, 0, 0]
      for value in [record.inFeatures, record.outFeatures, record.kernelSize, record.stride, record.padding] {
        BinaryFormat.append(UInt64(value), to: &bytes)
      }
    }
    BinaryFormat.append(UInt64(model.parameterCount), to: &bytes)
    BinaryFormat.append(model.parameters, to: &bytes)
    if let mask {
      bytes.append(1)
      bytes += mask.values.map { $0 == 0 ? 0 : 1 }
    } else {
      bytes.append(0)
    }
    return BinaryFormat.sealed(bytes)
  }

  /// The network and mask in `bytes`; `.corruptData` naming what is wrong.
  public static func decode(_ bytes: [UInt8], source: String = "data") throws(BDLError) -> (model: Sequential, mask: PruningMask?) {
    var reader = try BinaryFormat.Reader(bytes: bytes, source: source, magic: magic, version: version, kind: "model")
    let rank = try reader.size("input rank")
    guard rank <= 3 else { throw .corruptData("\(source): input rank \(rank) is impossible") }
    var shape: [Int] = []
    for i in 0..<rank { shape.append(try reader.size("input dimension \(i)")) }
    let count = try reader.size("layer count")
    guard count <= reader.remaining / 48 else { throw .corruptData("\(source): truncated in the layers") }
    var records: [LayerRecord] = []
    for i in 0..<count {
      let flags = Array(try reader.bytes(8))
      guard let kind = LayerRecord.Kind(rawValue: flags[0]), flags[1] <= 1, flags[2...].allSatisfy({ $0 == 0 }) else {
        throw .corruptData("\(source): layer \(i) has an invalid kind or flags")
      }
      var record = LayerRecord(kind: kind)
      record.bias = flags[1] == 1
      record.inFeatures = try reader.size("layer \(i) in_features", minimum: 0)
      record.outFeatures = try reader.size("layer \(i) out_features", minimum: 0)
      record.kernelSize = try reader.size("layer \(i) kernel_size", minimum: 0)
      record.stride = try reader.size("layer \(i) stride", minimum: 0)
      record.padding = try reader.size("layer \(i) padding", minimum: 0)
      records.append(record)
    }
    let layers: [any Layer]
    do {
      layers = try LayerRecord.layers(of: records, inputShape: shape)
    } catch {
      throw .corruptData("\(source): the layers do not describe a network: \(error.message)")
    }
    let p = try reader.size("P", minimum: 0)
    let theta = try reader.doubles(p, "theta")
    let flag = try reader.u8()
    guard flag <= 1 else { throw .corruptData("\(source): invalid mask flag \(flag)") }
    let maskBytes = flag == 1 ? Array(try reader.bytes(p)) : nil
    try reader.requireEnd()
    do {
      var model = try Sequential(layers, inputShape: shape)
      try model.setParameters(theta)
      let mask = try maskBytes.map { (m) throws(BDLError) in try PruningMask(values: m.map(Double.init), model: model) }
      return (model, mask)
    } catch {
      throw .corruptData("\(source): inconsistent model: \(error.message)")
    }
  }

  /// Writes `model` (and `mask`) to `path` atomically.
  public static func save(_ model: Sequential, mask: PruningMask? = nil, to path: String) throws(BDLError) {
    try writeFileAtomically(encode(model, mask: mask), to: path)
  }

  /// Reads the network (and mask, if one was saved) at `path`.
  public static func load(from path: String) throws(BDLError) -> (model: Sequential, mask: PruningMask?) {
    try decode(fileContents(path), source: path)
  }
}
