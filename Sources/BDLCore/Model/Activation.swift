#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An elementwise nonlinearity y = f(x), any input shape.
public struct Activation: Layer {
  /// The functions PyTorch users know, with their derivatives.
  public enum Function: String, Sendable, CaseIterable {
    /// max(x, 0); derivative 0 at x = 0, as PyTorch.
    case relu = "ReLU"
    case tanh = "Tanh"
    /// 1/(1 + e^(−x)).
    case sigmoid = "Sigmoid"
    /// x·Φ(x), the exact (erf) form — PyTorch's default `approximate='none'`.
    case gelu = "GELU"
    case identity = "Identity"
  }

  public let function: Function

  public init(_ function: Function) { self.function = function }

  public static let relu = Activation(.relu)
  public static let tanh = Activation(.tanh)
  public static let sigmoid = Activation(.sigmoid)
  public static let gelu = Activation(.gelu)
  public static let identity = Activation(.identity)

  public var description: String { "\(function.rawValue)()" }

  public func outputShape(forInput shape: [Int]) throws(BDLError) -> [Int] { shape }

  /// f(x).
  @inline(__always)
  func value(_ x: Double) -> Double {
    switch function {
    case .relu: x > 0 ? x : 0
    case .tanh: Glibc.tanh(x)
    case .sigmoid: 1 / (1 + exp(-x))
    case .gelu: 0.5 * x * (1 + erf(x * 0.5.squareRoot()))
    case .identity: x
    }
  }

  /// f′(x).
  @inline(__always)
  func derivative(_ x: Double) -> Double {
    switch function {
    case .relu: return x > 0 ? 1 : 0
    case .tanh:
      let t = Glibc.tanh(x)
      return 1 - t * t
    case .sigmoid:
      let s = 1 / (1 + exp(-x))
      return s * (1 - s)
    case .gelu:  // Φ(x) + x·φ(x)
      return 0.5 * (1 + erf(x * 0.5.squareRoot())) + x * exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
    case .identity: return 1
    }
  }

  /// target[i] = f(source[i]) with the function chosen once, outside the loop.
  @inline(__always)
  private func apply(
    _ f: (Double) -> Double, _ source: UnsafePointer<Double>, _ target: UnsafeMutablePointer<Double>, _ count: Int
  ) {
    for i in 0..<count { target[i] = f(source[i]) }
  }

  /// Elementwise `value` (or `derivative`) over a buffer, dispatching on the function once.
  private func map(derivative: Bool, _ source: UnsafePointer<Double>, _ target: UnsafeMutablePointer<Double>, _ count: Int) {
    switch (function, derivative) {
    case (.relu, false): apply({ $0 > 0 ? $0 : 0 }, source, target, count)
    case (.relu, true): apply({ $0 > 0 ? 1 : 0 }, source, target, count)
    case (.identity, false): apply({ $0 }, source, target, count)
    case (.identity, true): apply({ _ in 1 }, source, target, count)
    case (_, false): apply(value, source, target, count)
    case (_, true): apply(self.derivative, source, target, count)
    }
  }

  public func forward(_ x: Tensor, parameters: UnsafeBufferPointer<Double>) throws(BDLError) -> (output: Tensor, cache: Tensor) {
    let y = try Tensor(shape: x.shape) { target throws(BDLError) in
      x.elements.withUnsafeBufferPointer { source in
        BLASThreads.forEachPiece(of: source.count, entries: source.count) { piece in
          map(derivative: false, source.baseAddress! + piece.lowerBound, target.baseAddress! + piece.lowerBound, piece.count)
        }
      }
    }
    return (y, x)
  }

  public func backward(
    _ g: consuming Tensor, cache: Tensor, inputShape: [Int], parameters: UnsafeBufferPointer<Double>
  ) throws(BDLError) -> Tensor {
    let n = g.shape[0], k = g.shape[1], size = cache.exampleSize
    var dx = g  // the caller hands over its gradient: scaled in place, no copy
    cache.elements.withUnsafeBufferPointer { xp in
      dx.elements.withUnsafeMutableBufferPointer { dp in
        BLASThreads.forEachPiece(of: n, entries: dp.count) { examples in
          var slope = [Double](repeating: 0, count: size)
          slope.withUnsafeMutableBufferPointer { sp in
            let f = sp.baseAddress!
            for example in examples {
              map(derivative: true, xp.baseAddress! + example * size, f, size)
              for vector in 0..<k {
                let d = dp.baseAddress! + (example * k + vector) * size
                for i in 0..<size { d[i] *= f[i] }
              }
            }
          }
        }
      }
    }
    return dx
  }
}
