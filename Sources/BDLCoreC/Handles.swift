import BDLCore
import Synchronization

/// The kinds of opaque handle the C API hands out.
enum HandleKind: Sendable {
  case kronFactor
  case model
  case layerStatistics
  case curvature
  case kfacAccumulator
  case laplace
  case influence
}

/// Opaque handles: a retained Swift box whose address is the C pointer, recorded in a registry
/// so that a NULL, freed, foreign or wrong-kind pointer is rejected with a status instead of
/// crashing the host, and so that `bdl_debug_live_handles` can count what is alive.
enum Handles {
  private final class Box<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
  }

  private static let registry = Mutex<[UInt: HandleKind]>([:])

  /// Number of live handles.
  static var liveCount: Int { registry.withLock { $0.count } }

  /// Retains `value` and returns its handle.
  static func make<Value>(_ value: Value, kind: HandleKind) -> OpaquePointer {
    let raw = Unmanaged.passRetained(Box(value)).toOpaque()
    registry.withLock { $0[UInt(bitPattern: raw)] = kind }
    return OpaquePointer(raw)
  }

  /// The value behind a live handle of `kind`.
  static func value<Value>(_ handle: OpaquePointer?, kind: HandleKind, as type: Value.Type, _ name: String) throws(BDLError) -> Value {
    guard let handle else { throw .invalidArgument("\(name) is NULL") }
    let raw = UnsafeMutableRawPointer(handle)
    guard registry.withLock({ $0[UInt(bitPattern: raw)] }) == kind else {
      throw .invalidArgument("\(name) is not a live \(kind) handle (freed, or never created by bdlcore)")
    }
    return Unmanaged<Box<Value>>.fromOpaque(raw).takeUnretainedValue().value
  }

  /// Releases a live handle of `kind`; NULL is ignored. Anything else is reported through the
  /// last error message and left alone (a double free must not crash the host).
  static func free<Value>(_ handle: OpaquePointer?, kind: HandleKind, as type: Value.Type, _ name: String) {
    guard let handle else { return }
    let raw = UnsafeMutableRawPointer(handle)
    let removed = registry.withLock { table -> Bool in
      guard table[UInt(bitPattern: raw)] == kind else { return false }
      table[UInt(bitPattern: raw)] = nil
      return true
    }
    if removed {
      Unmanaged<Box<Value>>.fromOpaque(raw).release()
    } else {
      LastError.set("\(name) is not a live \(kind) handle; nothing was freed")
    }
  }
}
