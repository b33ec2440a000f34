import BDLCore
import CBDLCore

@c @implementation
public func bdl_blas_info(_ outInfo: UnsafeMutablePointer<bdl_blas_info_t>!) -> bdl_status {
  exported { () throws(BDLError) in
    let out = try Arguments.output(outInfo, "out_info")
    let size = Int(out.pointee.struct_size)
    let minimum = MemoryLayout<bdl_blas_info_t>.offset(of: \.requested_core)!
    guard size >= minimum else {
      throw .invalidArgument("out_info->struct_size = \(size); set it to sizeof(bdl_blas_info_t) (at least \(minimum))")
    }
    let info = try BLASInfo.current()
    var filled = bdl_blas_info_t()
    filled.struct_size = UInt32(min(size, MemoryLayout<bdl_blas_info_t>.size))
    filled.num_threads = Int32(clamping: info.threads)
    filled.core_source = info.coreSource.rawValue
    copy(info.core, into: &filled.core)
    copy(info.requestedCore, into: &filled.requested_core)
    copy(info.openBLASLibrary, into: &filled.openblas_library)
    copy(info.lapackeLibrary, into: &filled.lapacke_library)
    copy(info.config, into: &filled.config)
    // Write no more than the caller's struct holds.
    let byteCount = Int(filled.struct_size)
    withUnsafeBytes(of: &filled) { source in
      UnsafeMutableRawPointer(out).copyMemory(from: source.baseAddress!, byteCount: byteCount)
    }
  }
}

/// Copies `text` into a fixed C char array (a tuple), truncating and NUL-terminating.
private func copy<T>(_ text: String, into field: inout T) {
  withUnsafeMutableBytes(of: &field) { raw in
    let bytes = Array(text.utf8.prefix(raw.count - 1))
    raw.copyBytes(from: bytes)
    raw[bytes.count] = 0
  }
}
