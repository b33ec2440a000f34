#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The library's seeded random number generator: SplitMix64 (Steele, Lea & Flood 2014).
///
/// Why this one: its stream is fixed by the seed on every platform and compiler (the system
/// generator is not seedable), it passes BigCrush, and its state is one word, so a training run
/// or a Monte-Carlo estimate is reproducible bit for bit from its seed.
public struct RandomSource: RandomNumberGenerator, Sendable {
  private var state: UInt64

  public init(seed: UInt64) { state = seed }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform on [0, 1) with 53 random bits.
  public mutating func uniform() -> Double {
    Double(next() >> 11) * 0x1p-53
  }

  /// A standard normal draw (Box–Muller; one of the pair is discarded to keep the stream simple).
  public mutating func normal() -> Double {
    let u1 = Double(next() >> 11) * 0x1p-53 + 0x1p-54  // in (0, 1): log is finite
    let u2 = uniform()
    return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
  }

  /// A uniformly random permutation of 0..<n (Fisher–Yates).
  public mutating func permutation(_ n: Int) -> [Int] {
    var order = Array(0..<n)
    if n < 2 { return order }
    for i in stride(from: n - 1, to: 0, by: -1) {
      let j = Int(next() % UInt64(i + 1))
      order.swapAt(i, j)
    }
    return order
  }
}
