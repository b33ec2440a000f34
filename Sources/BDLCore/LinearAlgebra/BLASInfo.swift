import CBLASLAPACK

/// What BLAS/LAPACK bdlcore runs on: the OpenBLAS core (kernel family), its threads and files.
public struct BLASInfo: Sendable, Equatable {
  /// Where the core in use came from (same values as `BDL_BLAS_CORE_*` in bdlcore.h).
  public enum CoreSource: Int32, Sendable {
    /// OpenBLAS detected the CPU itself.
    case openBLAS = 0
    /// `OPENBLAS_CORETYPE` was set by the user before loading.
    case user = 1
    /// bdlcore chose it from the CPU features.
    case bdlcore = 2
    /// OpenBLAS was already loaded into the process by someone else.
    case preloaded = 3
  }

  /// `openblas_get_corename()`, e.g. "Haswell", "SkylakeX".
  public let core: String
  /// The `OPENBLAS_CORETYPE` value in effect when OpenBLAS was loaded ("" if none).
  public let requestedCore: String
  public let coreSource: CoreSource
  /// OpenBLAS's thread count.
  public let threads: Int
  /// The loaded files.
  public let openBLASLibrary: String
  public let lapackeLibrary: String
  /// `openblas_get_config()`.
  public let config: String

  /// Loads the libraries if needed and describes them; `.unsupported` if they cannot be loaded.
  public static func current() throws(BDLError) -> BLASInfo {
    let api = try BLAS.api().pointee
    return BLASInfo(
      core: text(api.core), requestedCore: text(api.requested_core),
      coreSource: CoreSource(rawValue: Int32(api.core_source)) ?? .openBLAS,
      threads: Int(api.get_num_threads()), openBLASLibrary: text(api.openblas_library),
      lapackeLibrary: text(api.lapacke_library), config: text(api.config))
  }

  /// Whether the CPU has AVX-512 (F, BW, DQ, VL) and AVX2 with FMA, as the loader saw it.
  public static var cpuHasAVX512: Bool { cbl_cpu_has_avx512() != 0 }
  public static var cpuHasAVX2: Bool { cbl_cpu_has_avx2() != 0 }

  /// OpenBLAS cores that use AVX2/FMA kernels or better.
  public static let avx2Cores: Set<String> = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"]
  /// OpenBLAS cores that use AVX-512 kernels.
  public static let avx512Cores: Set<String> = ["skylakex", "cooperlake", "sapphirerapids"]

  /// Whether the core in use makes use of the CPU's vector units: on an AVX-512 CPU an AVX-512
  /// core, on an AVX2 CPU an AVX2 core, unless the user asked for a core by name (then that one).
  public var usesBestKernelForCPU: Bool {
    let name = core.lowercased()
    if coreSource == .user { return name == requestedCore.lowercased() }
    if BLASInfo.cpuHasAVX512 { return BLASInfo.avx512Cores.contains(name) }
    if BLASInfo.cpuHasAVX2 { return BLASInfo.avx2Cores.contains(name) }
    return true
  }

  private static func text<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
      let bytes = raw.bindMemory(to: UInt8.self)
      let end = bytes.firstIndex(of: 0) ?? bytes.count
      return String(decoding: bytes[..<end], as: UTF8.self)
    }
  }
}
