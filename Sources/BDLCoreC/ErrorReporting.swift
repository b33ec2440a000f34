import BDLCore
import CBDLCore

#if canImport(Glibc)
import Glibc
#endif

/// Runs the body of an exported function: a thrown `BDLError` becomes its `bdl_status` and the
/// calling thread's last error message. Every `@c` function with a status result goes through here.
func exported(_ body: () throws(BDLError) -> Void) -> bdl_status {
  do {
    try body()
    return bdl_status(BDL_OK)
  } catch {
    LastError.set(error.message)
    return error.status
  }
}

extension BDLError {
  /// The pinned C status of each case.
  var status: bdl_status {
    switch self {
    case .invalidArgument: bdl_status(BDL_INVALID_ARGUMENT)
    case .shapeMismatch: bdl_status(BDL_SHAPE_MISMATCH)
    case .nonFiniteInput: bdl_status(BDL_NON_FINITE_INPUT)
    case .notPositiveDefinite: bdl_status(BDL_NOT_POSITIVE_DEFINITE)
    case .notConverged: bdl_status(BDL_NOT_CONVERGED)
    case .outOfMemory: bdl_status(BDL_OUT_OF_MEMORY)
    case .ioError: bdl_status(BDL_IO_ERROR)
    case .corruptData: bdl_status(BDL_CORRUPT_DATA)
    case .wrongState: bdl_status(BDL_WRONG_STATE)
    case .unsupported: bdl_status(BDL_UNSUPPORTED)
    case .internal: bdl_status(BDL_INTERNAL)
    }
  }
}

/// The thread-local last error message: a malloc'd C string per thread, freed at thread exit.
enum LastError {
  private static let key: pthread_key_t = {
    var key = pthread_key_t()
    let result = pthread_key_create(&key) { free($0) }
    precondition(result == 0, "pthread_key_create failed")
    return key
  }()

  /// An empty, never-freed C string for threads without a failure.
  nonisolated(unsafe) private static let empty = UnsafePointer<CChar>(strdup("")!)

  static func set(_ message: String) {
    let old = pthread_getspecific(key)
    pthread_setspecific(key, strdup(message))
    free(old)
  }

  static var current: UnsafePointer<CChar> {
    guard let text = pthread_getspecific(key) else { return empty }
    return UnsafePointer(text.assumingMemoryBound(to: CChar.self))
  }
}
