#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Σ_i log(x_i) for positive x_i, as the logarithm of the product kept as significand·2^exponent.
///
/// Why: a log-determinant through eigenvalues (K-FAC's Σ_ij log(h·β_i·α_j + δ)) needs one log
/// per entry, and glibc's scalar `log` costs ~20 ns — more than the rest of an evidence
/// evaluation for a layer with 10⁵–10⁶ weights. Multiplying significands (in [1, 2)) and adding
/// exponents is exact in its exponent part and rounds once per factor in its significand, so the
/// result has absolute error ≈ √N·ε (random walk, N·ε at worst) — no worse than summing N
/// rounded logs — while needing one `log` in all. Neither overflow nor underflow can occur:
/// the running significand is renormalised before it can leave [1, 2^64).
///
/// Eight lanes at a time: a normal x = 2^e·m is split by its bits (exponent field e + 1023,
/// significand m ∈ [1, 2)), each lane keeps its own product of significands and sum of
/// exponents, and the lanes are folded at the end. A block holding anything but positive normal
/// numbers (zero, negatives, NaN, ±∞, subnormals) hands the rest to the scalar loop, which finds
/// the invalid entry or decomposes subnormals exactly.
///
/// Returns nil at the first x_i ≤ 0 or non-finite x_i, with its index.
public func sumOfLogarithms(_ values: UnsafeBufferPointer<Double>) -> (sum: Double, firstInvalid: Int?) {
  var lanes = SIMD8<Double>(repeating: 1)
  var laneExponents = SIMD8<Int64>(repeating: 0)
  let exponentField: UInt64 = 0x7FF0_0000_0000_0000, one: UInt64 = 0x3FF0_0000_0000_0000
  /// Moves the lanes' binary exponents into `laneExponents`, leaving significands in [1, 2).
  func renormalize() {
    let bits = unsafeBitCast(lanes, to: SIMD8<UInt64>.self)
    laneExponents &+= SIMD8<Int64>(truncatingIfNeeded: (bits & exponentField) &>> 52) &- 1023
    lanes = unsafeBitCast((bits & ~exponentField) | one, to: SIMD8<Double>.self)
  }
  var scalarStart = values.count - values.count % 8
  if let base = values.baseAddress {
    for block in 0..<(values.count / 8) {
      let x = UnsafeRawPointer(base + block * 8).loadUnaligned(as: SIMD8<Double>.self)
      guard all((x .>= Double.leastNormalMagnitude) .& (x .<= Double.greatestFiniteMagnitude)) else {
        scalarStart = block * 8
        break
      }
      let bits = unsafeBitCast(x, to: SIMD8<UInt64>.self)
      laneExponents &+= SIMD8<Int64>(truncatingIfNeeded: bits &>> 52) &- 1023
      lanes *= unsafeBitCast((bits & ~exponentField) | one, to: SIMD8<Double>.self)
      if block & 31 == 31 { renormalize() }  // 32 factors below 2 each keep a lane below 2^32
    }
  }
  renormalize()
  var significand = 1.0
  var exponent = Int(laneExponents.wrappedSum())
  for lane in 0..<8 { significand *= lanes[lane] }  // eight factors in [1, 2): below 2^8
  for index in scalarStart..<values.count {
    let x = values[index]
    guard x > 0, x.isFinite else { return (.nan, index) }
    significand *= x.significand
    exponent += Int(x.exponent)
    if (index - scalarStart) & 31 == 31 {
      exponent += Int(significand.exponent)
      significand = significand.significand
    }
  }
  return (log(significand) + Double(exponent) * M_LN2, nil)
}
