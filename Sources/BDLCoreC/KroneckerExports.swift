import BDLCore
import CBDLCore

// Kronecker-factored matrices scale·B⊗A + delta·I (see the section in bdlcore.h).

/// Reads B (nb × nb) and A (na × na) and eigendecomposes them.
private func decompose(
  _ b: UnsafePointer<Double>?, _ nb: Int64, _ a: UnsafePointer<Double>?, _ na: Int64
) throws(BDLError) -> KroneckerEigendecomposition {
  let bMatrix = try Arguments.squareMatrix(b, order: nb, "B", orderName: "nb")
  let aMatrix = try Arguments.squareMatrix(a, order: na, "A", orderName: "na")
  _ = try Arguments.product([bMatrix.rows, aMatrix.rows], "nb·na")
  return try KroneckerEigendecomposition(b: bMatrix, a: aMatrix)
}

/// The caller's k matrices of nb × na, read in place (no copy: they may be large).
private func rightHandSides(
  _ x: UnsafePointer<Double>?, _ k: Int64, _ factor: KroneckerEigendecomposition
) throws(BDLError) -> (values: UnsafeBufferPointer<Double>, count: Int) {
  let count = try Arguments.size(k, "k")
  let total = try Arguments.product([count, factor.outputOrder, factor.inputOrder], "k·nb·na")
  return (try Arguments.buffer(x, count: total, "X"), count)
}

@c @implementation
public func bdl_kron_logdet(
  _ B: UnsafePointer<Double>!, _ nb: Int64, _ A: UnsafePointer<Double>!, _ na: Int64,
  _ scale: Double, _ delta: Double, _ outLogdet: UnsafeMutablePointer<Double>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outLogdet, "out_logdet")
    let factor = try decompose(B, nb, A, na)
    out.pointee = try factor.logDeterminant(scale: scale, shift: delta)
  }
}

@c @implementation
public func bdl_kron_solve(
  _ B: UnsafePointer<Double>!, _ nb: Int64, _ A: UnsafePointer<Double>!, _ na: Int64,
  _ scale: Double, _ delta: Double, _ X: UnsafePointer<Double>!, _ k: Int64,
  _ outY: UnsafeMutablePointer<Double>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outY, "out_Y")
    let factor = try decompose(B, nb, A, na)
    let rhs = try rightHandSides(X, k, factor)
    try factor.applyPower(
      -1, scale: scale, shift: delta, to: rhs.values, count: rhs.count,
      into: UnsafeMutableBufferPointer(start: out, count: rhs.values.count))
  }
}

@c @implementation
public func bdl_kron_diagonal(
  _ B: UnsafePointer<Double>!, _ nb: Int64, _ A: UnsafePointer<Double>!, _ na: Int64,
  _ scale: Double, _ delta: Double, _ exponent: Double, _ outDiag: UnsafeMutablePointer<Double>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outDiag, "out_diag")
    let factor = try decompose(B, nb, A, na)
    out.write(try factor.diagonalOfPower(exponent, scale: scale, shift: delta).elements)
  }
}

@c @implementation
public func bdl_kron_factor_create(
  _ B: UnsafePointer<Double>!, _ nb: Int64, _ A: UnsafePointer<Double>!, _ na: Int64,
  _ outFactor: UnsafeMutablePointer<OpaquePointer?>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outFactor, "out_factor")
    let factor = try decompose(B, nb, A, na)
    out.pointee = Handles.make(factor, kind: .kronFactor)
  }
}

@c @implementation
public func bdl_kron_factor_free(_ factor: OpaquePointer!) {
  Handles.free(factor, kind: .kronFactor, as: KroneckerEigendecomposition.self, "factor")
}

/// The decomposition behind a `bdl_kron_factor*`.
private func factorValue(_ handle: OpaquePointer?) throws(BDLError) -> KroneckerEigendecomposition {
  try Handles.value(handle, kind: .kronFactor, as: KroneckerEigendecomposition.self, "factor")
}

@c @implementation
public func bdl_kron_factor_shape(
  _ factor: OpaquePointer!, _ outNb: UnsafeMutablePointer<Int64>!, _ outNa: UnsafeMutablePointer<Int64>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let value = try factorValue(factor)
    let nbOut = try Arguments.output(outNb, "out_nb")
    let naOut = try Arguments.output(outNa, "out_na")
    nbOut.pointee = Int64(value.outputOrder)
    naOut.pointee = Int64(value.inputOrder)
  }
}

@c @implementation
public func bdl_kron_factor_eigenvalues(
  _ factor: OpaquePointer!, _ outBeta: UnsafeMutablePointer<Double>!, _ betaCapacity: Int64,
  _ outAlpha: UnsafeMutablePointer<Double>!, _ alphaCapacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let value = try factorValue(factor)
    let beta = try Arguments.output(outBeta, capacity: betaCapacity, needed: value.outputOrder, "out_beta")
    let alpha = try Arguments.output(outAlpha, capacity: alphaCapacity, needed: value.inputOrder, "out_alpha")
    beta.write(value.b.eigenvalues)
    alpha.write(value.a.eigenvalues)
  }
}

@c @implementation
public func bdl_kron_factor_logdet(
  _ factor: OpaquePointer!, _ scale: Double, _ delta: Double, _ outLogdet: UnsafeMutablePointer<Double>!
) -> bdl_status {
  exported { () throws(BDLError) in
    let value = try factorValue(factor)
    let out = try Arguments.output(outLogdet, "out_logdet")
    out.pointee = try value.logDeterminant(scale: scale, shift: delta)
  }
}

@c @implementation
public func bdl_kron_factor_apply_power(
  _ factor: OpaquePointer!, _ scale: Double, _ delta: Double, _ exponent: Double,
  _ X: UnsafePointer<Double>!, _ k: Int64, _ outY: UnsafeMutablePointer<Double>!, _ outCapacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let value = try factorValue(factor)
    let rhs = try rightHandSides(X, k, value)
    let out = try Arguments.output(outY, capacity: outCapacity, needed: rhs.values.count, "out_Y")
    try value.applyPower(
      exponent, scale: scale, shift: delta, to: rhs.values, count: rhs.count,
      into: UnsafeMutableBufferPointer(start: out, count: rhs.values.count))
  }
}

@c @implementation
public func bdl_kron_factor_diagonal(
  _ factor: OpaquePointer!, _ scale: Double, _ delta: Double, _ exponent: Double,
  _ outDiag: UnsafeMutablePointer<Double>!, _ outCapacity: Int64
) -> bdl_status {
  exported { () throws(BDLError) in
    let value = try factorValue(factor)
    let needed = value.outputOrder * value.inputOrder
    let out = try Arguments.output(outDiag, capacity: outCapacity, needed: needed, "out_diag")
    out.write(try value.diagonalOfPower(exponent, scale: scale, shift: delta).elements)
  }
}
