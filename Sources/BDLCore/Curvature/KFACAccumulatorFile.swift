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
    append(version, to: &bytes)
    append(UInt32(layers.count), to: &bytes)
    for layer in layers {
      append(UInt64(layer.inputDimension), to: &bytes)
      append(UInt64(layer.outputDimension), to: &bytes)
      bytes += [layer.hasBias ? 1 : 0, layer.approximation == .expand ? 0 : 1, 0, 0, 0, 0, 0, 0]
      append(UInt64(layer.inputRows), to: &bytes)
      append(UInt64(layer.examples), to: &bytes)
      append(UInt64(layer.vectorsPerExample), to: &bytes)
      for value in layer.inputSum.elements { append(value.bitPattern, to: &bytes) }
      for value in layer.outputGradientSum.elements { append(value.bitPattern, to: &bytes) }
    }
    append(checksum(bytes[...]), to: &bytes)
    return bytes
  }

  /// The accumulators in `bytes`; `.corruptData` naming what is wrong.
  public static func decode(_ bytes: [UInt8], source: String = "data") throws(BDLError) -> [KFACLayerAccumulator] {
    var reader = Reader(bytes: bytes, source: source)
    guard bytes.count >= magic.count + 16 else { throw .corruptData("\(source): \(bytes.count) bytes is too short for a K-FAC accumulator file") }
    guard Array(bytes[0..<magic.count]) == magic else { throw .corruptData("\(source): not a K-FAC accumulator file (wrong magic)") }
    let stored = bytes[(bytes.count - 8)...].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    guard checksum(bytes[0..<(bytes.count - 8)]) == stored else { throw .corruptData("\(source): checksum mismatch (the file is damaged or truncated)") }
    reader.offset = magic.count
    let fileVersion = try reader.u32()
    guard fileVersion == version else { throw .corruptData("\(source): format version \(fileVersion); this build reads version \(version)") }
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
    let bytes = encode(layers)
    let temporary = path + ".tmp-\(getpid())"
    guard let file = fopen(temporary, "wb") else { throw .ioError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
    let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    let flushed = fflush(file) == 0 && fsync(fileno(file)) == 0
    fclose(file)
    guard written == bytes.count, flushed, rename(temporary, path) == 0 else {
      let reason = String(cString: strerror(errno))
      unlink(temporary)
      throw .ioError("cannot write \(path): \(reason)")
    }
  }

  /// Reads the accumulators saved at `path`.
  public static func load(from path: String) throws(BDLError) -> [KFACLayerAccumulator] {
    try decode(fileContents(path), source: path)
  }

  /// FNV-1a, 64 bit: detects truncation and damage (not an adversary).
  static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
      hash ^= UInt64(byte)
      hash &*= 0x0000_0100_0000_01b3
    }
    return hash
  }

  static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
  }

  /// Bounds-checked little-endian reads.
  struct Reader {
    let bytes: [UInt8]
    let source: String
    var offset = 0

    mutating func bytes(_ count: Int) throws(BDLError) -> ArraySlice<UInt8> {
      guard count >= 0, offset <= bytes.count - 8 - count else { throw .corruptData("\(source): truncated at byte \(offset)") }
      defer { offset += count }
      return bytes[offset..<(offset + count)]
    }

    mutating func u32() throws(BDLError) -> UInt32 {
      try bytes(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    mutating func u64() throws(BDLError) -> UInt64 {
      try bytes(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// A size that fits the rest of the file (so a corrupt size cannot trigger a huge allocation).
    mutating func size(_ what: String, minimum: UInt64 = 1) throws(BDLError) -> Int {
      let value = try u64()
      guard value >= minimum, value <= UInt64(Int32.max) else { throw .corruptData("\(source): \(what) = \(value) is impossible") }
      return Int(value)
    }

    mutating func doubles(_ count: Int, _ what: String) throws(BDLError) -> [Double] {
      guard count <= (bytes.count - offset) / 8 else { throw .corruptData("\(source): truncated in \(what)") }
      let raw = try bytes(count * 8)
      var values = [Double](repeating: 0, count: count)
      var index = raw.startIndex
      for i in 0..<count {
        var bits: UInt64 = 0
        for b in 0..<8 { bits |= UInt64(raw[index + b]) << (8 * UInt64(b)) }
        values[i] = Double(bitPattern: bits)
        index += 8
      }
      return values
    }
  }
}

extension KFACLayerAccumulator {
  /// Sets the sums and counts read from a file, checking them as `add` would.
  mutating func restore(inputSum: [Double], outputGradientSum: [Double], inputRows: Int, examples: Int, vectorsPerExample: Int) throws(BDLError) {
    try Validation.requireFinite(inputSum, "Σaaᵀ")
    try Validation.requireFinite(outputGradientSum, "Σggᵀ")
    self.inputSum = try Matrix(rows: inputDimension, columns: inputDimension, elements: inputSum)
    self.outputGradientSum = try Matrix(rows: outputDimension, columns: outputDimension, elements: outputGradientSum)
    self.inputRows = inputRows
    self.examples = examples
    self.vectorsPerExample = vectorsPerExample
  }
}
