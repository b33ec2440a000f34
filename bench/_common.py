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
