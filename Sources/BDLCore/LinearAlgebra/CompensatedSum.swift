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
