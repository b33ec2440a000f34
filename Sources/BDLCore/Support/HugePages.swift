#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Large buffers backed by transparent huge pages where the system allows it.
///
/// On Linux the first touch of every 4 KB page of a fresh allocation is a page fault in which
/// the kernel clears the page. The statistics of a convolutional network run to gigabytes (a
/// and g for every position), and measured here (a virtual machine) each fault cost ~10 µs:
/// the kernel's page clearing was 58% of a CNN's backward of C output vectors. Advising the
/// kernel to use 2 MB pages (`MADV_HUGEPAGE`) before the buffer is first written cuts the
/// faults 512-fold. It only takes effect when transparent huge pages are enabled in `always` or
/// `madvise` mode; elsewhere the advice is ignored and nothing changes.
enum HugePages {
  /// Buffers smaller than this gain little (they may not even hold one aligned 2 MB page).
  static let threshold = 4 << 20

  /// Advises huge pages for the whole 2 MB-aligned pages inside `buffer`, which must not have
  /// been written yet (the advice applies to pages faulted in later).
  static func advise(_ buffer: UnsafeMutableRawBufferPointer) {
    #if os(Linux)
    guard buffer.count >= threshold, let base = buffer.baseAddress else { return }
    let page = 2 << 20
    let start = (Int(bitPattern: base) + page - 1) / page * page
    let end = (Int(bitPattern: base) + buffer.count) / page * page
    guard end > start, let aligned = UnsafeMutableRawPointer(bitPattern: start) else { return }
    _ = madvise(aligned, end - start, MADV_HUGEPAGE)
    #endif
  }

  /// `count` doubles, every one set by `fill` (which gets the raw, not yet touched buffer) — with
  /// huge pages advised first when the buffer is large.
  static func doubles(_ count: Int, fill: (UnsafeMutableBufferPointer<Double>) -> Void) -> [Double] {
    [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
      advise(UnsafeMutableRawBufferPointer(buffer))
      fill(buffer)
      initialized = count
    }
  }
}
