"""Kronecker-factored curvature operations: bdlcore against the same algorithm in numpy.

For a K-FAC block P = h·B⊗A + δI of a layer with nb outputs and na inputs, a Laplace fit needs the
eigendecompositions of B and A once, then log det P for many δ (evidence optimisation) and P⁻¹
applied to a batch of gradients. numpy runs the identical formulas (np.linalg.eigh, then
Σ log(h·β_i·α_j + δ) and Q_B[(Q_Bᵀ X Q_A) / d]Q_Aᵀ), so the ratio measures the implementations,
not the algorithm. laplace-torch's KronDecomposed does the same in PyTorch.

Prints, per size and task, the median seconds of each and the ratio numpy / bdlcore (> 1: bdlcore
is faster). The solve is dgemm-bound in both (four products per right-hand side), so it measures
the two OpenBLAS builds more than the two libraries. Run with `make bench`.
"""
import statistics
import time

import numpy as np

import bdlcore

SIZES = [(64, 256), (256, 512), (512, 1024), (1024, 1024)]
DELTAS = np.logspace(-3, 1, 20)   # an evidence scan over prior precisions
RHS = 32                          # gradients to precondition
REPEATS = 5


def numpy_scan(B, A):
    """Eigendecompose once, then log det P for every δ of an evidence scan."""
    beta, _ = np.linalg.eigh(B)
    alpha, _ = np.linalg.eigh(A)
    d = np.outer(np.clip(beta, 0, None), np.clip(alpha, 0, None))
    return [np.log(d + delta).sum() for delta in DELTAS]


def bdlcore_scan(B, A):
    with bdlcore.KronFactor(B, A) as P:
        return [P.logdet(scale=1.0, delta=delta) for delta in DELTAS]


def numpy_solve(QB, beta, QA, alpha, X):
    """P⁻¹ applied to RHS gradient-shaped matrices, given the eigendecompositions."""
    d = np.outer(beta, alpha) + DELTAS[0]
    return QB @ ((QB.T @ X @ QA) / d) @ QA.T


def bdlcore_solve(P, X):
    return P.solve(X, scale=1.0, delta=DELTAS[0])


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
    print(f"{'task':<24} {'nb × na':>11} {'numpy s':>9} {'bdlcore s':>10} {'ratio':>6}")
    for nb, na in SIZES:
        GB = rng.standard_normal((nb, 2 * nb))
        GA = rng.standard_normal((na, 2 * na))
        B, A = GB @ GB.T / nb, GA @ GA.T / na
        X = rng.standard_normal((RHS, nb, na))
        beta, QB = np.linalg.eigh(B)
        alpha, QA = np.linalg.eigh(A)
        with bdlcore.KronFactor(B, A) as P:
            assert np.allclose(numpy_scan(B, A), bdlcore_scan(B, A), rtol=1e-9), "log dets disagree"
            assert np.allclose(numpy_solve(QB, beta, QA, alpha, X), bdlcore_solve(P, X), rtol=1e-7, atol=1e-9), "solves disagree"
            rows = [
                (f"eigh + {len(DELTAS)} log dets", median_seconds(numpy_scan, B, A), median_seconds(bdlcore_scan, B, A)),
                (f"P⁻¹ on {RHS} gradients", median_seconds(numpy_solve, QB, beta, QA, alpha, X), median_seconds(bdlcore_solve, P, X)),
            ]
        for task, t_numpy, t_bdl in rows:
            print(f"{task:<24} {nb:>5} × {na:<5} {t_numpy:>9.4f} {t_bdl:>10.4f} {t_numpy / t_bdl:>6.2f}")


if __name__ == "__main__":
    main()
