/// The container shared by bdlcore's files (K-FAC accumulators, Laplace posteriors): an 8-byte
/// magic, a u32 format version, little-endian fields, and a u64 FNV-1a checksum over every byte
/// before it. Readers check magic, version and checksum before parsing, bound every size by what
/// the file holds (so a corrupt size cannot trigger a huge allocation), and writers replace the
/// target only once the new file is complete (`writeFileAtomically`).
enum BinaryFormat {
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

  static func append(_ values: [Double], to bytes: inout [UInt8]) {
    bytes.reserveCapacity(bytes.count + 8 * values.count)
    for value in values { append(value.bitPattern, to: &bytes) }
  }

  /// `bytes` with its checksum appended.
  static func sealed(_ bytes: [UInt8]) -> [UInt8] {
    var result = bytes
    append(checksum(bytes[...]), to: &result)
    return result
  }

  /// Bounds-checked little-endian reads of a sealed file (the last 8 bytes, the checksum, are
  /// never read as data).
  struct Reader {
    let bytes: [UInt8]
    let source: String
    var offset = 0

    /// Checks length, magic, checksum and version, and positions the reader after them.
    init(bytes: [UInt8], source: String, magic: [UInt8], version: UInt32, kind: String) throws(BDLError) {
      self.bytes = bytes
      self.source = source
      guard bytes.count >= magic.count + 16 else { throw .corruptData("\(source): \(bytes.count) bytes is too short for a \(kind) file") }
      guard Array(bytes[0..<magic.count]) == magic else { throw .corruptData("\(source): not a \(kind) file (wrong magic)") }
      let stored = bytes[(bytes.count - 8)...].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
      guard checksum(bytes[0..<(bytes.count - 8)]) == stored else { throw .corruptData("\(source): checksum mismatch (the file is damaged or truncated)") }
      offset = magic.count
      let fileVersion = try u32()
      guard fileVersion == version else { throw .corruptData("\(source): format version \(fileVersion); this build reads version \(version)") }
    }

    /// Bytes left before the checksum.
    var remaining: Int { bytes.count - 8 - offset }

    mutating func bytes(_ count: Int) throws(BDLError) -> ArraySlice<UInt8> {
      guard count >= 0, offset <= bytes.count - 8 - count else { throw .corruptData("\(source): truncated at byte \(offset)") }
      defer { offset += count }
      return bytes[offset..<(offset + count)]
    }

    mutating func u8() throws(BDLError) -> UInt8 { try bytes(1).first! }

    mutating func u32() throws(BDLError) -> UInt32 {
      try bytes(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    mutating func u64() throws(BDLError) -> UInt64 {
      try bytes(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    mutating func f64() throws(BDLError) -> Double { Double(bitPattern: try u64()) }

    /// A size that fits the rest of the file (so a corrupt size cannot trigger a huge allocation).
    mutating func size(_ what: String, minimum: UInt64 = 1) throws(BDLError) -> Int {
      let value = try u64()
      guard value >= minimum, value <= UInt64(Int32.max) else { throw .corruptData("\(source): \(what) = \(value) is impossible") }
      return Int(value)
    }

    mutating func doubles(_ count: Int, _ what: String) throws(BDLError) -> [Double] {
      guard count >= 0, count <= remaining / 8 else { throw .corruptData("\(source): truncated in \(what)") }
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

    /// Throws unless every byte before the checksum was read.
    func requireEnd() throws(BDLError) {
      guard remaining == 0 else { throw .corruptData("\(source): \(remaining) unexpected bytes before the checksum") }
    }
  }
}
