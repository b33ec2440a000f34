"""What the benchmarks share: timing and the anchors' common workload, the 784-256-256-10 ReLU
MLP (the same network in bdlcore and in PyTorch, by copying one parameter vector)."""
import statistics
import time

import bdlcore


def median_run(fn, repeats=3):
    """(median wall-clock seconds over `repeats` calls, the last call's result)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def interleaved_runs(fns, repeats=3, settle=0.2):
    """Runs the callables in turn, `repeats` rounds (a warm-up round first, not timed), and returns
    for each (median seconds, best seconds, its last result), in order.

    Why interleaved: this machine's speed drifts by tens of percent over seconds (shared cores);
    timing one library's repeats after the other's would fold that drift into their ratio, while
    alternating exposes both to the same conditions. Each timed call starts after `settle`
    seconds of idleness: OpenBLAS's and PyTorch's worker threads keep spinning for up to ~0.1 s
    after their last call, and would otherwise steal cores from whichever library runs next."""
    for fn in fns:
        fn()
    times, results = [[] for _ in fns], [None] * len(fns)
    for _ in range(repeats):
        for index, fn in enumerate(fns):
            time.sleep(settle)
            start = time.perf_counter()
            results[index] = fn()
            times[index].append(time.perf_counter() - start)
    return [(statistics.median(t), min(t), r) for t, r in zip(times, results)]


def mlp_784(seed=0):
    """The 784-256-256-10 ReLU MLP of the curvature, Laplace and influence benchmarks."""
    return bdlcore.Sequential([bdlcore.Linear(784, 256), bdlcore.ReLU(), bdlcore.Linear(256, 256), bdlcore.ReLU(),
                               bdlcore.Linear(256, 10)], seed=seed)


def configure_torch(torch):
    """float64 and as many threads as bdlcore's OpenBLAS (the same hardware for both sides);
    returns the thread count."""
    threads = bdlcore.blas_info().num_threads
    torch.set_num_threads(threads)
    torch.set_default_dtype(torch.float64)
    return threads
