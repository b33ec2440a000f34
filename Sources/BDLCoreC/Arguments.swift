import BDLCore
import CBDLCore

#if canImport(Glibc)
import Glibc
#endif

/// Validation of raw C arguments (pointers, sizes, capacities, handles) before anything reaches
/// the core. Values themselves (finite, symmetric, PSD) are checked by the core, which names the
/// argument the same way, so each check exists once.
enum Arguments {
  /// A size ≥ `minimum` that fits `Int`.
  static func size(_ n: Int64, _ name: String, minimum: Int64 = 1) throws(BDLError) -> Int {
    guard n >= minimum, let value = Int(exactly: n) else {
      throw .invalidArgument("\(name) = \(n); it must be ≥ \(minimum)")
    }
    return value
  }

  /// `a · b`, or `.invalidArgument` naming the sizes if it overflows.
  static func product(_ factors: [Int], _ what: String) throws(BDLError) -> Int {
    var result = 1
    for factor in factors {
      let (next, overflow) = result.multipliedReportingOverflow(by: factor)
      guard !overflow else {
        throw .invalidArgument("\(what): \(factors.map(String.init).joined(separator: " × ")) overflows")
      }
      result = next
    }
    return result
  }

  /// Copies `count` doubles from a caller's array, after checking the pointer.
  static func array(_ pointer: UnsafePointer<Double>?, count: Int, _ name: String) throws(BDLError) -> [Double] {
    guard let pointer else { throw .invalidArgument("\(name) is NULL") }
    try Validation.requireAllocatable(count, name)
    return Array(UnsafeBufferPointer(start: pointer, count: count))
  }

  /// A view of `count` doubles of a caller's array, after checking the pointer; valid for the call.
  static func buffer(_ pointer: UnsafePointer<Double>?, count: Int, _ name: String) throws(BDLError) -> UnsafeBufferPointer<Double> {
    guard let pointer else { throw .invalidArgument("\(name) is NULL") }
    return UnsafeBufferPointer(start: pointer, count: count)
  }

  /// An n × n row-major matrix from a caller's array.
  static func squareMatrix(_ pointer: UnsafePointer<Double>?, order n: Int64, _ name: String, orderName: String) throws(BDLError) -> Matrix {
    let order = try size(n, orderName)
    let count = try product([order, order], "\(name) size \(orderName)²")
    return try Matrix(rows: order, columns: order, elements: array(pointer, count: count, name))
  }

  /// A C path argument as a Swift string.
  static func path(_ path: UnsafePointer<CChar>?) throws(BDLError) -> String {
    guard let path else { throw .invalidArgument("path is NULL") }
    let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(path).assumingMemoryBound(to: UInt8.self), count: strlen(path))
    guard !bytes.isEmpty else { throw .invalidArgument("path is empty") }
    return String(decoding: bytes, as: UTF8.self)
  }

  /// A BDL_KFAC_* value.
  static func approximation(_ value: Int32) throws(BDLError) -> KFACApproximation {
    switch Int(value) {
    case BDL_KFAC_EXPAND: return .expand
    case BDL_KFAC_REDUCE: return .reduce
    default: throw .invalidArgument("approximation = \(value) is not a BDL_KFAC_* value")
    }
  }

  /// A BDL_FISHER_* value with its Monte-Carlo sample count and seed.
  static func fisher(_ value: Int32, samples: Int64, seed: UInt64) throws(BDLError) -> FisherSource {
    switch Int(value) {
    case BDL_FISHER_EXACT: return .exact
    case BDL_FISHER_MC: return .monteCarlo(samples: try size(samples, "params->mc_samples"), seed: seed)
    case BDL_FISHER_EMPIRICAL: return .empirical
    default: throw .invalidArgument("params->fisher = \(value) is not a BDL_FISHER_* value")
    }
  }

  /// A non-NULL output pointer.
  static func output<T>(_ pointer: UnsafeMutablePointer<T>?, _ name: String) throws(BDLError) -> UnsafeMutablePointer<T> {
    guard let pointer else { throw .invalidArgument("\(name) is NULL") }
    return pointer
  }

  /// A non-NULL output buffer with room for `needed` elements.
  static func output<T>(_ pointer: UnsafeMutablePointer<T>?, capacity: Int64, needed: Int, _ name: String) throws(BDLError) -> UnsafeMutablePointer<T> {
    let buffer = try output(pointer, name)
    guard capacity >= needed else {
      throw .shapeMismatch("\(name): capacity \(capacity) is smaller than the \(needed) elements to write")
    }
    return buffer
  }
}

extension UnsafeMutablePointer where Pointee == Double {
  /// Writes `values` to the buffer (called only after every computation succeeded).
  func write(_ values: [Double]) {
    values.withUnsafeBufferPointer { self.update(from: $0.baseAddress!, count: $0.count) }
  }
}
