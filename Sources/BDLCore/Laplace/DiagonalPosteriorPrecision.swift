/// P = diag(h·g + δ) for the GGN diagonal g: every function of P is elementwise.
struct DiagonalPosteriorPrecision: PosteriorPrecision {
  let curvature: [Double]
  /// d_p = h·g_p + δ_p.
  let values: [Double]

  init(curvature g: [Double], scale h: Double, prior δ: [Double]) throws(BDLError) {
    values = zip(g, δ).map { h * $0 + $1 }
    if let p = values.firstIndex(where: { !($0 > 0 && $0.isFinite) }) {
      throw singularPosterior("entry \(p) is \(values[p])")
    }
    curvature = g
  }

  var logDeterminant: Double {
    values.withUnsafeBufferPointer { sumOfLogarithms($0).sum }
  }

  func priorSensitivity() throws(BDLError) -> [Double] { values.map { 1 / $0 } }

  func scaleSensitivity() throws(BDLError) -> Double {
    CompensatedSum.of(zip(curvature, values).lazy.map { $0 / $1 })
  }

  func spectralSums(over ranges: [Range<Int>]) -> [SpectralSums]? {
    ranges.map { range in
      var sums = SpectralSums()
      for p in range { sums.add(curvature: curvature[p], eigenvalue: values[p]) }
      return sums
    }
  }

  func applyPower(_ e: Double, toRows x: Matrix) throws(BDLError) -> Matrix {
    guard e == 1 || e == -1 else { throw .invalidArgument("exponent \(e): P and P⁻¹ only") }
    return scaledColumns(x) { p in e == 1 ? values[p] : 1 / values[p] }
  }

  func covarianceFactor(rows z: Matrix) throws(BDLError) -> Matrix {
    scaledColumns(z) { p in 1 / values[p].squareRoot() }
  }

  /// One block per weight and bias of the head's linear maps, unrotated, 1/d in the weight's shape.
  func varianceBlocks(head: Sequential) throws(BDLError) -> [VarianceBlock]? {
    guard head.parameterCount == values.count else { return nil }
    var blocks: [VarianceBlock] = []
    for (index, layer) in head.layers.enumerated() {
      guard let map = layer as? any LinearMapLayer else {
        if layer.parameterCount > 0 { return nil }
        continue
      }
      let (dOut, dIn, start) = (map.outputDimension, map.inputDimension, head.parameterOffsets[index])
      let weight = values[start..<(start + dOut * dIn)].map { 1 / $0 }
      guard let inverse = try? Matrix(rows: dOut, columns: dIn, elements: weight) else { return nil }
      blocks.append(VarianceBlock(layerIndex: index, isBias: false, outputBasis: nil, inputBasis: nil, inverseEigenvalues: inverse))
      if map.hasBias {
        let bias = values[(start + dOut * dIn)..<(start + dOut * dIn + dOut)].map { 1 / $0 }
        guard let inverse = try? Matrix(rows: dOut, columns: 1, elements: bias) else { return nil }
        blocks.append(VarianceBlock(layerIndex: index, isBias: true, outputBasis: nil, inputBasis: nil, inverseEigenvalues: inverse))
      }
    }
    return blocks
  }

  private func scaledColumns(_ x: Matrix, _ factor: (Int) -> Double) -> Matrix {
    var y = x
    for p in 0..<x.columns {
      let f = factor(p)
      for r in 0..<x.rows { y.elements[r * x.columns + p] *= f }
    }
    return y
  }
}
