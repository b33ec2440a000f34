#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Data parallelism on OpenBLAS's thread budget.
///
/// Why: a batch's statistics pass is a chain of mid-sized BLAS calls (5,000 × 256 syrks, a
/// 5,000 × 256 × 256 gemm for the 784-256-256-10 MLP at batch 500) with serial loops between
/// them (activations, the output-Hessian roots, fresh-page faults). With OpenBLAS threading
/// each call, a profile of the K-FAC fit on two cores had each thread ~20% of its time waiting:
/// at the calls' internal barriers, or idle while the loops in between ran on one core. Giving
/// each of T workers a 1/T shard of the batch, every BLAS call single-threaded, keeps all cores
/// on useful work: the fit took ~13% less time (interleaved runs, same machine).
///
/// OpenBLAS's thread count is process-wide: while a region runs, other BLAS calls through the
/// same OpenBLAS (from any thread of the process) are single-threaded too. Regions nest and may
/// overlap; the caller's count is restored when the last one ends. With OpenBLAS set to one
/// thread (`OPENBLAS_NUM_THREADS=1`, or `openblas_set_num_threads(1)` before the call) the
/// work runs serially and nothing is changed.
enum BLASThreads {
  private struct Regions {
    var open = 0
    var savedCount = 1
  }
  private static let regions = Mutex(Regions())

  /// OpenBLAS's thread count now (1 if the libraries cannot be loaded).
  static var count: Int {
    guard let api = try? BLAS.api().pointee else { return 1 }
    return max(1, Int(api.get_num_threads()))
  }

  /// How many workers a batch of `multiplyAdds` forward multiply-adds is worth: all BLAS threads
  /// from 2²³ (8.4 M, ~1 ms of forward and backward) up, else 1 — below it, starting a thread
  /// (tens of µs) and the split calls' lower efficiency cost more than they gain.
  static func workers(forMultiplyAdds multiplyAdds: Int) -> Int {
    multiplyAdds >= 1 << 23 ? count : 1
  }

  /// Loops writing at least this many doubles are split over the BLAS threads by `forEachPiece`
  /// (8 MB: ~1 ms of memory traffic even when the pages are warm, against tens of µs to start a
  /// thread).
  static let pieceThreshold = 1 << 20

  /// Runs `body` over contiguous pieces of 0..<count: one piece per BLAS thread when the loop
  /// writes at least `pieceThreshold` doubles (`entries`), else one piece on the caller's thread.
  /// For the memory-bound loops over one big batch (pooling, activations, layout changes):
  /// their passes over gigabytes, and the first-touch page faults of fresh output buffers, which
  /// the kernel serves on the faulting thread, then run on every core. Inside a `concurrently`
  /// region (OpenBLAS at one thread, as in a sharded pass) it runs serially. `body` must write
  /// only what belongs to its piece; the first error by piece is rethrown after all have ended.
  static func forEachPiece(of count: Int, entries: Int, _ body: (Range<Int>) throws(BDLError) -> Void) throws(BDLError) {
    let workers = entries >= pieceThreshold ? min(count, self.count) : 1
    guard workers > 1 else {
      try body(0..<count)
      return
    }
    let pieces = Tensor.shards(of: count, into: workers)
    try concurrently(workers) { w throws(BDLError) in try body(pieces[w]) }
  }

  /// The same for a loop that cannot fail.
  static func forEachPiece(of count: Int, entries: Int, _ body: (Range<Int>) -> Void) {
    do {
      try forEachPiece(of: count, entries: entries) { piece throws(BDLError) in body(piece) }
    } catch {
      body(0..<count)  // only if OpenBLAS could not be reached, before any piece ran
    }
  }

  /// Runs `work(worker)` for worker = 0..<workers concurrently, every BLAS call inside
  /// single-threaded, and returns when all have finished. The first error (by worker index) is
  /// rethrown after every worker has stopped.
  static func concurrently(
    _ workers: Int, _ work: (Int) throws(BDLError) -> Void
  ) throws(BDLError) {
    if workers <= 1 {
      if workers == 1 { try work(0) }
      return
    }
    let api = try BLAS.api().pointee
    regions.withLock { state in
      if state.open == 0 {
        state.savedCount = max(1, Int(api.get_num_threads()))
        api.set_num_threads(1)
      }
      state.open += 1
    }
    defer {
      regions.withLock { state in
        state.open -= 1
        if state.open == 0 { api.set_num_threads(Int32(state.savedCount)) }
      }
    }
    let failures = UnsafeMutableBufferPointer<BDLError?>.allocate(capacity: workers)
    failures.initialize(repeating: nil)
    defer { failures.deinitialize(); failures.deallocate() }
    try withoutActuallyEscaping(work) { work throws(BDLError) in
      // Workers 1… run on threads of their own, worker 0 on the caller's; all are joined before
      // returning, so the closure and the failure slots outlive every use, and each worker
      // writes only its own slot. (Plain threads: the library links no Dispatch.)
      let run = { (worker: Int) in
        do throws(BDLError) { try work(worker) } catch { failures[worker] = error }
      }
      var threads: [pthread_t] = []
      for worker in 1..<workers {
        let job = Unmanaged.passRetained(Job { run(worker) })
        var thread = pthread_t()
        if pthread_create(&thread, nil, { raw in
          let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
          job.run()
          return nil
        }, job.toOpaque()) == 0 {
          threads.append(thread)
        } else {
          job.release()
          run(worker)  // no thread to be had: do this shard here, after the others started
        }
      }
      run(0)
      for thread in threads { pthread_join(thread, nil) }
    }
    if let failure = failures.first(where: { $0 != nil }) ?? nil { throw failure }
  }
}

/// One worker's share, handed to its thread.
private final class Job {
  let run: () -> Void
  init(_ run: @escaping () -> Void) { self.run = run }
}
