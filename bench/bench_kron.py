"""Kronecker-factored curvature operations: bdlcore against the same algorithm in numpy.

For a K-FAC block P = h·B⊗A + δI of a layer with nb outputs and na inputs, a Laplace fit needs the
eigendecompositions of B and A once, then log det P for many δ (evidence optimisation) and P⁻¹
applied to a batch of gradients. numpy runs the identical formulas (np.linalg.eigh, then
Σ log(h·β_i·α_j + δ) and Q_B[(Q_Bᵀ X Q_A) / d]Q_Aᵀ), so the ratio measures the implementations,
not the algorithm. laplace-torch's KronDecomposed does the same in PyTorch.

Prints one line per size: the median seconds of each and the ratio numpy / bdlcore (> 1: bdlcore
is faster). Run with `make bench`.
"""
import statistics
import time

import numpy as np

import bdlcore

SIZES = [(64, 256), (256, 512), (512, 1024), (1024, 1024)]
DELTAS = np.logspace(-3, 1, 20)   # an evidence scan over prior precisions
RHS = 32                          # gradients to precondition
REPEATS = 5


def numpy_block(B, A, X):
    beta, QB = np.linalg.eigh(B)
    alpha, QA = np.linalg.eigh(A)
    beta = np.clip(beta, 0, None)
    alpha = np.clip(alpha, 0, None)
    d = np.outer(beta, alpha)
    logdets = [np.log(d + delta).sum() for delta in DELTAS]
    Y = QB @ ((QB.T @ X @ QA) / (d + DELTAS[0])) @ QA.T
    return logdets, Y


def bdlcore_block(B, A, X):
    with bdlcore.KronFactor(B, A) as P:
        logdets = [P.logdet(scale=1.0, delta=delta) for delta in DELTAS]
        Y = P.solve(X, scale=1.0, delta=DELTAS[0])
    return logdets, Y


def median_seconds(fn, *args):
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    rng = np.random.default_rng(0)
    info = bdlcore.blas_info()
    print(f"bdlcore OpenBLAS core: {info.core} ({info.core_source}), {info.num_threads} threads")
    try:
        from threadpoolctl import threadpool_info  # optional: which kernel numpy runs
        for pool in threadpool_info():
            print(f"numpy {pool.get('internal_api')}: {pool.get('architecture')}, {pool.get('num_threads')} threads")
    except ImportError:
        pass
    print(f"{'nb × na':>12} {'numpy s':>10} {'bdlcore s':>10} {'ratio':>7}")
    for nb, na in SIZES:
        GB = rng.standard_normal((nb, 2 * nb))
        GA = rng.standard_normal((na, 2 * na))
        B, A = GB @ GB.T / nb, GA @ GA.T / na
        X = rng.standard_normal((RHS, nb, na))
        ref_logdets, ref_Y = numpy_block(B, A, X)
        got_logdets, got_Y = bdlcore_block(B, A, X)
        assert np.allclose(ref_logdets, got_logdets, rtol=1e-9), "log dets disagree"
        assert np.allclose(ref_Y, got_Y, rtol=1e-7, atol=1e-9), "solves disagree"
        t_numpy = median_seconds(numpy_block, B, A, X)
        t_bdl = median_seconds(bdlcore_block, B, A, X)
        print(f"{nb:>5} × {na:<5} {t_numpy:>10.4f} {t_bdl:>10.4f} {t_numpy / t_bdl:>7.2f}")


if __name__ == "__main__":
    main()
