/// The one error type of bdlcore. Each case corresponds to a pinned `bdl_status` of the C API and
/// carries a message that names the argument and value at fault.
public enum BDLError: Error, Equatable, Sendable, CustomStringConvertible {
  /// A caller bug: bad pointer, size, enum value or option.
  case invalidArgument(String)
  /// Dimensions disagree with each other, with a handle, or a buffer is too small.
  case shapeMismatch(String)
  /// NaN or ±Inf in an input.
  case nonFiniteInput(String)
  /// A matrix that must be positive (semi-)definite is not.
  case notPositiveDefinite(String)
  /// An iterative method stopped before reaching its tolerance.
  case notConverged(String)
  /// An allocation failed or would exceed addressable memory.
  case outOfMemory(String)
  /// A file could not be opened, read or written.
  case ioError(String)
  /// A file or buffer is malformed, truncated or fails its checksum.
  case corruptData(String)
  /// The object is not in a state that allows the call.
  case wrongState(String)
  /// A valid request this build or platform cannot serve.
  case unsupported(String)
  /// A bug in bdlcore.
  case `internal`(String)

  /// The human-readable message.
  public var message: String {
    switch self {
    case .invalidArgument(let m), .shapeMismatch(let m), .nonFiniteInput(let m),
      .notPositiveDefinite(let m), .notConverged(let m), .outOfMemory(let m), .ioError(let m),
      .corruptData(let m), .wrongState(let m), .unsupported(let m), .internal(let m):
      return m
    }
  }

  public var description: String { message }
}
