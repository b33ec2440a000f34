#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The unit-wise prior precision of one parameter tensor (SpaM): for a weight of PyTorch shape
/// (out, in, k…) δ_{i,j,·} = a_i · b_j — one factor per output unit and one per input unit (a
/// conv's input channel, repeated over the kernel), additive in log space:
/// log δ_{i,j} = log a_i + log b_j. A 1-D tensor (a bias) has one δ per element.
/// It lets the evidence switch whole units off (a_i → ∞ prunes output neuron i) with only
/// out + in hyperparameters per layer instead of out·in.
public struct UnitwisePrior: Sendable, Equatable {
  /// The covered parameter tensors' shapes in parameter-vector order (e.g. `Sequential.parameterShapes`).
  public let shapes: [[Int]]

  public init(shapes: [[Int]]) throws(BDLError) {
    guard !shapes.isEmpty, shapes.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0 >= 1 } }) else {
      throw .invalidArgument("a unit-wise prior needs parameter tensors with positive dimensions; got \(shapes)")
    }
    self.shapes = shapes
  }

  /// The number of log factors: out + in for each tensor of rank ≥ 2, the size of each 1-D tensor.
  public var factorCount: Int { shapes.reduce(0) { $0 + ($1.count >= 2 ? $1[0] + $1[1] : $1[0]) } }
  public var parameterCount: Int { shapes.reduce(0) { $0 + $1.reduce(1, *) } }

  /// For each parameter, the indices of the one or two log factors whose sum is its log δ
  /// (`second` = −1 for a 1-D tensor's element).
  func factorIndices() -> (first: [Int], second: [Int]) {
    var first: [Int] = [], second: [Int] = []
    first.reserveCapacity(parameterCount)
    second.reserveCapacity(parameterCount)
    var offset = 0
    for shape in shapes {
      if shape.count >= 2 {
        let (rows, columns, repeats) = (shape[0], shape[1], shape.dropFirst(2).reduce(1, *))
        for i in 0..<rows {
          for j in 0..<columns {
            first += repeatElement(offset + i, count: repeats)
            second += repeatElement(offset + rows + j, count: repeats)
          }
        }
        offset += rows + columns
      } else {
        for i in 0..<shape[0] {
          first.append(offset + i)
          second.append(-1)
        }
        offset += shape[0]
      }
    }
    return (first, second)
  }
}

/// How the optimiser's log hyperparameters t map to the prior-precision vector stored in
/// `LaplaceHyperparameters`: a plain structure (t = log of each stored entry) or unit-wise
/// (t = log unit factors, stored as one δ per parameter). The map is linear in log space, so the
/// gradient in t is the stored gradient summed over the parameters each factor touches.
struct PriorParametrization {
  enum Kind {
    case plain(PriorStructure)
    case unitwise(first: [Int], second: [Int])
  }
  let kind: Kind
  /// The number of log hyperparameters t.
  let count: Int

  init(_ structure: PriorStructure, groups: ParameterGroups) {
    kind = .plain(structure)
    count = structure.count(groups: groups.ranges)
  }

  init(_ unitwise: UnitwisePrior, groups: ParameterGroups) throws(BDLError) {
    guard unitwise.shapes.map({ $0.reduce(1, *) }) == groups.ranges.map(\.count) else {
      throw .shapeMismatch(
        "unit-wise shapes \(unitwise.shapes) do not match the posterior's parameter tensors of sizes \(groups.ranges.map(\.count))")
    }
    let (first, second) = unitwise.factorIndices()
    kind = .unitwise(first: first, second: second)
    count = unitwise.factorCount
  }

  /// The structure the stored prior-precision vector has.
  var storedStructure: PriorStructure {
    switch kind {
    case .plain(let s): s
    case .unitwise: .diagonal
    }
  }

  /// The stored prior precision for t.
  func priorPrecision(_ t: ArraySlice<Double>) -> [Double] {
    switch kind {
    case .plain: return t.map { exp($0) }
    case .unitwise(let first, let second):
      let base = t.startIndex
      return first.indices.map { p in exp(t[base + first[p]] + (second[p] >= 0 ? t[base + second[p]] : 0)) }
    }
  }

  /// ∂/∂t from ∂/∂(log of each stored entry).
  func pullBack(_ stored: [Double]) -> [Double] {
    switch kind {
    case .plain: return stored
    case .unitwise(let first, let second):
      var g = [Double](repeating: 0, count: count)
      for p in stored.indices {
        g[first[p]] += stored[p]
        if second[p] >= 0 { g[second[p]] += stored[p] }
      }
      return g
    }
  }

  /// A start for t from one δ per parameter: the geometric mean over each entry's parameters;
  /// unit-wise splits each weight's mean log δ evenly between its two factors.
  func initial(fromPerParameter δ: [Double], groups: ParameterGroups) -> [Double] {
    let logs = δ.map { log($0) }
    switch kind {
    case .plain(let structure):
      let sums = groups.reduce(logs, to: structure)
      let sizes = groups.reduce([Double](repeating: 1, count: δ.count), to: structure)
      return zip(sums, sizes).map { $0 / $1 }
    case .unitwise(let first, let second):
      var sums = [Double](repeating: 0, count: count), sizes = sums
      for p in logs.indices {
        let share = second[p] >= 0 ? 0.5 : 1
        sums[first[p]] += share * logs[p]
        sizes[first[p]] += 1
        if second[p] >= 0 {
          sums[second[p]] += share * logs[p]
          sizes[second[p]] += 1
        }
      }
      return zip(sums, sizes).map { $0 / max($1, 1) }
    }
  }
}
