#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bytes of the file at `path`; `.ioError` naming the path and the system's reason.
func fileContents(_ path: String) throws(BDLError) -> [UInt8] {
  guard let file = fopen(path, "rb") else {
    throw .ioError("cannot open \(path): \(String(cString: strerror(errno)))")
  }
  defer { fclose(file) }
  var bytes: [UInt8] = []
  var chunk = [UInt8](repeating: 0, count: 1 << 16)
  while true {
    let read = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
    bytes.append(contentsOf: chunk[0..<read])
    if read < chunk.count {
      if ferror(file) != 0 { throw .ioError("error reading \(path)") }
      return bytes
    }
  }
}

/// Writes `bytes` to `path` atomically: to a temporary file in the same folder, flushed to disk,
/// then renamed over `path` — a reader sees the old file or the whole new one, and a failed write
/// leaves any previous file intact (and no temporary file behind).
public func writeFileAtomically(_ bytes: [UInt8], to path: String) throws(BDLError) {
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

/// Elementwise damping shared by the structures whose spectrum is a plain list:
/// (h·λ_i + δ)^e, with e ≤ 0 needing h·λ_i + δ > 0 and e > 0 needing ≥ 0.
func dampedPowers(_ values: [Double], scale h: Double, damping δ: Double, exponent e: Double, what: String) throws(BDLError) -> [Double] {
  try requireDamping(scale: h, damping: δ)
  try Validation.requireFinite(e, "exponent")
  var result = values
  for (i, λ) in values.enumerated() {
    let d = h * λ + δ
    guard d > 0 || (e > 0 && d == 0) else {
      throw .notPositiveDefinite("\(what) \(i) of scale·G + damping·I is \(d); use damping > 0")
    }
    result[i] = e == 1 ? d : e == -1 ? 1 / d : pow(d, e)
  }
  return result
}

/// scale h ≥ 0 and finite, damping δ finite: the hyperparameters of every damped curvature query.
func requireDamping(scale h: Double, damping δ: Double) throws(BDLError) {
  guard h.isFinite, h >= 0 else { throw .invalidArgument("scale = \(h); it must be finite and ≥ 0") }
  try Validation.requireFinite(δ, "damping")
}
