import BDLCore
import CBDLCore

#if canImport(Glibc)
import Glibc
#endif

// Version, status text, last error, live handles: the library-wide entry points.

/// Static C strings that live for the whole process. `nonisolated(unsafe)` is sound: they are
/// written once, by the thread-safe lazy initialisation of a global, and never again.
private enum StaticText {
  nonisolated(unsafe) static let version = UnsafePointer<CChar>(strdup("\(BDL_VERSION_MAJOR).\(BDL_VERSION_MINOR).\(BDL_VERSION_PATCH)")!)
  nonisolated(unsafe) static let statuses: [UnsafePointer<CChar>] = ([
    "ok", "invalid argument", "shape mismatch", "non-finite input", "not positive definite",
    "not converged", "out of memory", "I/O error", "corrupt data", "wrong state", "unsupported",
    "internal error",
  ] as [String]).map { UnsafePointer(strdup($0)!) }
  nonisolated(unsafe) static let unknown = UnsafePointer<CChar>(strdup("unknown status")!)
}

@c @implementation
public func bdl_version_string() -> UnsafePointer<CChar>! {
  StaticText.version
}

@c @implementation
public func bdl_version_number() -> Int32 {
  Int32(BDL_VERSION_MAJOR * 10000 + BDL_VERSION_MINOR * 100 + BDL_VERSION_PATCH)
}

@c @implementation
public func bdl_status_string(_ status: bdl_status) -> UnsafePointer<CChar>! {
  guard let index = Int(exactly: status), StaticText.statuses.indices.contains(index) else {
    return StaticText.unknown
  }
  return StaticText.statuses[index]
}

@c @implementation
public func bdl_last_error_message() -> UnsafePointer<CChar>! {
  LastError.current
}

@c @implementation
public func bdl_debug_live_handles() -> Int64 {
  Int64(Handles.liveCount)
}
