#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How fast a K-FAC fit from the engine added its statistics to the factors: the Gram updates
/// Σ a aᵀ and Σ g gᵀ (one dsyrk each per layer and shard), timed inside the pass.
///
/// Why: the accumulation is the fit's BLAS-3 core, and its rate against the machine's dgemm
/// rate says whether it runs at the speed of the hardware. Timing it from outside is not
/// possible: it is interleaved with the forward and backward passes of the same batches, on
/// every BLAS thread at once.
public struct AccumulationProfile: Sendable, Equatable {
  /// Useful flops of the Gram updates: d²·rows for each d × d Gram of `rows` rows — the standard
  /// dsyrk count (d(d+1)/2 entries of 2·rows flops, rounded up to d²·rows).
  public internal(set) var flops: Double = 0
  /// Seconds spent in them, summed over the workers (thread-seconds).
  public internal(set) var threadSeconds: Double = 0
  /// Workers that ran the pass's shards at the same time (one per BLAS thread for big batches).
  public internal(set) var workers: Int = 1

  /// flops / (threadSeconds / workers), in flop/s: the aggregate rate, since the workers run the
  /// same work on equal shards of every batch at the same time.
  public var rate: Double { threadSeconds > 0 ? flops * Double(workers) / threadSeconds : 0 }

  /// Adds one timed update of `flops` flops that started at `start` (`Self.now()`).
  mutating func record(flops: Double, since start: Double) {
    self.flops += flops
    threadSeconds += Self.now() - start
  }

  /// A monotonic clock in seconds.
  static func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
  }
}
