/// Checks shared by the core's public entry points. Each throws a `BDLError` whose message names
/// the argument, so that a bad value never reaches a `precondition`.
enum Validation {
  /// Throws `.nonFiniteInput` naming the first NaN/Inf entry of `values`.
  static func requireFinite(_ values: some Collection<Double>, _ name: String) throws(BDLError) {
    var index = 0
    for value in values {
      if !value.isFinite {
        throw .nonFiniteInput("\(name): entry \(index) is \(value); all entries must be finite")
      }
      index += 1
    }
  }

  /// Throws `.invalidArgument` unless `value` is finite.
  static func requireFinite(_ value: Double, _ name: String) throws(BDLError) {
    guard value.isFinite else { throw .invalidArgument("\(name) = \(value); it must be finite") }
  }

  /// `a · b`, or `.invalidArgument` if the product overflows `Int`.
  static func product(_ a: Int, _ b: Int, _ what: String) throws(BDLError) -> Int {
    let (result, overflow) = a.multipliedReportingOverflow(by: b)
    guard !overflow else { throw .invalidArgument("\(what): \(a) × \(b) overflows") }
    return result
  }
}
