/// A running sum with Neumaier's compensation: the error is about ε·Σ|x_i| instead of growing
/// with the number of terms. Why: an evidence gradient is ½(n − δ·Σ_p s_p − δ·Σ_p r_p²) over
/// 10⁵–10⁶ parameters, a difference of sums of size ~n; naive summation leaves ~10⁻⁸ of rounding
/// in it, as large as the stationarity tolerance the optimiser must reach.
struct CompensatedSum {
  private(set) var sum = 0.0
  private var compensation = 0.0

  mutating func add(_ x: Double) {
    let t = sum + x
    if abs(sum) >= abs(x) { compensation += (sum - t) + x } else { compensation += (x - t) + sum }
    sum = t
  }

  var value: Double { sum + compensation }

  static func of(_ values: some Sequence<Double>) -> Double {
    var s = CompensatedSum()
    for x in values { s.add(x) }
    return s.value
  }
}

/// Eight Neumaier sums side by side, for sums over 10⁵–10⁶ terms: the scalar sum's branch and
/// dependency chain cost more than the terms. Same error bound per lane; `value` folds the lanes'
/// sums and compensations with a scalar compensated sum.
struct CompensatedLanes {
  private var sum = SIMD8<Double>(repeating: 0)
  private var compensation = SIMD8<Double>(repeating: 0)

  @inline(__always)
  mutating func add(_ x: SIMD8<Double>) {
    let t = sum + x
    let sumIsLarger = sum.replacing(with: -sum, where: sum .< 0) .>= x.replacing(with: -x, where: x .< 0)
    compensation += ((x - t) + sum).replacing(with: (sum - t) + x, where: sumIsLarger)
    sum = t
  }

  var value: Double {
    var total = CompensatedSum()
    for lane in 0..<8 {
      total.add(sum[lane])
      total.add(compensation[lane])
    }
    return total.value
  }
}

/// Σ_i f(x_i) compensated, eight lanes at a time with a scalar tail; `f` must act lane-wise like
/// `scalar` (e.g. 1/x).
@inline(__always)
func compensatedSum(
  _ x: UnsafeBufferPointer<Double>, _ f: (SIMD8<Double>) -> SIMD8<Double>, scalar: (Double) -> Double
) -> Double {
  var lanes = CompensatedLanes()
  let whole = x.count - x.count % 8
  if let base = x.baseAddress {
    for start in stride(from: 0, to: whole, by: 8) {
      lanes.add(f(UnsafeRawPointer(base + start).loadUnaligned(as: SIMD8<Double>.self)))
    }
  }
  var tail = CompensatedSum()
  tail.add(lanes.value)
  for i in whole..<x.count { tail.add(scalar(x[i])) }
  return tail.value
}
