#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The file format of K-FAC accumulators: how users move statistics between machines and merge
/// them later. Little-endian:
///
///     "BDLKFAC\0"            8 bytes, magic
///     version                u32 (= 1)
///     layer count            u32
///     per layer              u64 d_in, u64 d_out, u8 has_bias, u8 approximation (0 expand,
///                            1 reduce), 6 zero bytes, u64 input rows, u64 examples,
///                            u64 K (vectors per example, 0 before any data),
///                            d_in² f64 Σaaᵀ, d_out² f64 Σggᵀ
///     checksum               u64 FNV-1a over every byte before it
///
/// A file that is truncated, has trailing bytes, a wrong magic, version or checksum, or
/// impossible sizes is `.corruptData` — never silently read. Writing goes to a temporary file in
/// the same folder that is renamed over the target only when complete, so a failed save leaves
/// any previous file intact.
public enum KFACAccumulatorFile {
  static let magic: [UInt8] = Array("BDLKFAC".utf8) + [0]
  /// The format version this build writes and reads.
  public static let version: UInt32 = 1

  /// The bytes of a file holding `layers`.
  public static func encode(_ layers: [KFACLayerAccumulator]) -> [UInt8] {
    var bytes = magic
    BinaryFormat.append(version, to: &bytes)
    BinaryFormat.append(UInt32(layers.count), to: &bytes)
    for layer in layers {
      BinaryFormat.append(UInt64(layer.inputDimension), to: &bytes)
      BinaryFormat.append(UInt64(layer.outputDimension), to: &bytes)
      bytes += [layer.hasBias ? 1 : 0, layer.approximation == .expand ? 0 : 1, 0, 0, 0, 0, 0, 0]
      BinaryFormat.append(UInt64(layer.inputRows), to: &bytes)
      BinaryFormat.append(UInt64(layer.examples), to: &bytes)
      BinaryFormat.append(UInt64(layer.vectorsPerExample), to: &bytes)
      for value in layer.inputSum.elements { BinaryFormat.append(value.bitPattern, to: &bytes) }
      for value in layer.outputGradientSum.elements { BinaryFormat.append(value.bitPattern, to: &bytes) }
    }
    return BinaryFormat.sealed(bytes)
  }

  /// The accumulators in `bytes`; `.corruptData` naming what is wrong.
  public static func decode(_ bytes: [UInt8], source: String = "data") throws(BDLError) -> [KFACLayerAccumulator] {
    var reader = try BinaryFormat.Reader(bytes: bytes, source: source, magic: magic, version: version, kind: "K-FAC accumulator")
    let count = Int(try reader.u32())
    var layers: [KFACLayerAccumulator] = []
    for index in 0..<count {
      let dIn = try reader.size("layer \(index) d_in"), dOut = try reader.size("layer \(index) d_out")
      let flags = Array(try reader.bytes(8))
      guard flags[0] <= 1, flags[1] <= 1, flags[2...].allSatisfy({ $0 == 0 }) else { throw .corruptData("\(source): layer \(index) has invalid flags") }
      let rows = try reader.size("layer \(index) input rows", minimum: 0), examples = try reader.size("layer \(index) examples", minimum: 0)
      let vectors = try reader.size("layer \(index) K", minimum: 0)
      // The sums must be in the file before anything of their size is allocated.
      guard dIn * dIn + dOut * dOut <= (bytes.count - 8 - reader.offset) / 8 else {
        throw .corruptData("\(source): layer \(index) claims d_in = \(dIn), d_out = \(dOut), more than the file holds")
      }
      var layer = try KFACLayerAccumulator(inputDimension: dIn, outputDimension: dOut, hasBias: flags[0] == 1, approximation: flags[1] == 0 ? .expand : .reduce)
      let inputSum = try reader.doubles(dIn * dIn, "layer \(index) Σaaᵀ")
      let outputSum = try reader.doubles(dOut * dOut, "layer \(index) Σggᵀ")
      try layer.restore(inputSum: inputSum, outputGradientSum: outputSum, inputRows: rows, examples: examples, vectorsPerExample: vectors)
      layers.append(layer)
    }
    guard reader.offset == bytes.count - 8 else { throw .corruptData("\(source): \(bytes.count - 8 - reader.offset) unexpected bytes after the last layer") }
    return layers
  }

  /// Writes `layers` to `path` atomically (temporary file, then rename).
  public static func save(_ layers: [KFACLayerAccumulator], to path: String) throws(BDLError) {
    try writeFileAtomically(encode(layers), to: path)
  }

  /// Reads the accumulators saved at `path`.
  public static func load(from path: String) throws(BDLError) -> [KFACLayerAccumulator] {
    try decode(fileContents(path), source: path)
  }
}

extension KFACLayerAccumulator {
  /// Sets the sums and counts read from a file, checking them as `add` would.
  mutating func restore(inputSum: [Double], outputGradientSum: [Double], inputRows: Int, examples: Int, vectorsPerExample: Int) throws(BDLError) {
    try Validation.requireFinite(inputSum, "Σaaᵀ")
    try Validation.requireFinite(outputGradientSum, "Σggᵀ")
    self.inputLower = try Matrix(rows: inputDimension, columns: inputDimension, elements: inputSum).lowerTriangle()
    self.outputGradientLower = try Matrix(rows: outputDimension, columns: outputDimension, elements: outputGradientSum).lowerTriangle()
    self.inputRows = inputRows
    self.examples = examples
    self.vectorsPerExample = vectorsPerExample
  }
}
