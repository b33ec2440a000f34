#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Checks shared by the core's public entry points. Each throws a `BDLError` whose message names
/// the argument, so that a bad value never reaches a `precondition`.
public enum Validation {
  /// Throws `.nonFiniteInput` naming the first NaN/Inf entry of `values`.
  static func requireFinite(_ values: some Collection<Double>, _ name: String) throws(BDLError) {
    if values.withContiguousStorageIfAvailable(allFinite) == true { return }
    var index = 0
    for value in values {
      if !value.isFinite {
        throw .nonFiniteInput("\(name): entry \(index) is \(value); all entries must be finite")
      }
      index += 1
    }
  }

  /// Whether every entry is finite, by a branch-free scan the vector units run at memory speed
  /// (the statistics checked per batch are megabytes): x − x is 0 for finite x and NaN for ±∞
  /// and NaN, so a sum of such differences is 0 exactly when all entries are finite.
  static func allFinite(_ x: UnsafeBufferPointer<Double>) -> Bool {
    guard let base = x.baseAddress else { return true }
    var first = SIMD4<Double>(), second = SIMD4<Double>()
    var i = 0
    while i + 8 <= x.count {
      let u = UnsafeRawPointer(base + i).loadUnaligned(as: SIMD4<Double>.self)
      let v = UnsafeRawPointer(base + i + 4).loadUnaligned(as: SIMD4<Double>.self)
      first += u - u
      second += v - v
      i += 8
    }
    var total = (first + second).sum()
    while i < x.count {
      total += x[i] - x[i]
      i += 1
    }
    return total == 0
  }

  /// Throws `.invalidArgument` unless `value` is finite.
  static func requireFinite(_ value: Double, _ name: String) throws(BDLError) {
    guard value.isFinite else { throw .invalidArgument("\(name) = \(value); it must be finite") }
  }

  /// Refuses to allocate `count` doubles (saturating arithmetic is fine for the estimate) when
  /// they exceed the machine's physical memory: the allocator would otherwise abort the process
  /// that embeds bdlcore (a Python interpreter, a C program).
  public static func requireAllocatable(_ count: Int, _ what: String) throws(BDLError) {
    let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Double>.stride)
    let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
    let physical = pages > 0 && pageSize > 0 ? pages.multipliedReportingOverflow(by: pageSize).partialValue : Int.max
    if overflow || count < 0 || bytes > physical {
      throw .outOfMemory("\(what): \(count) doubles exceed this machine's memory (\(physical / (1 << 20)) MiB)")
    }
  }

  /// `a · b`, or `.invalidArgument` if the product overflows `Int`.
  static func product(_ a: Int, _ b: Int, _ what: String) throws(BDLError) -> Int {
    let (result, overflow) = a.multipliedReportingOverflow(by: b)
    guard !overflow else { throw .invalidArgument("\(what): \(a) × \(b) overflows") }
    return result
  }
}
