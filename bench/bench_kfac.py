"""K-FAC fit against curvlinops and laplace-torch on the same data, in the same run.

Workload (issue: curvature): a 784-256-256-10 ReLU MLP, N = 5,000 seeded random inputs and
labels, exact type-2 Fisher, K-FAC-expand: accumulate A and B for every layer and eigendecompose
them. curvlinops' `KFACLinearOperator.compute_kronecker_factors` (plus torch.linalg.eigh of its
factors) and laplace-torch's `KronLaplace.fit` (which eigendecomposes lazily; its first
log-determinant is included) run with as many threads as OpenBLAS. bdlcore's log-determinant
needs only the factors' eigenvalues and forms eigenvectors on first use, so its row against the
anchors also runs one damped solve, which forms them: the same work. The time without it is
printed too.

Prints median seconds over interleaved rounds and the ratio anchor / bdlcore (> 1: bdlcore
faster), and the accumulation's rate against dgemm's: fed through the binding, and inside the
fit (timed by the library, `KFAC.accumulation_profile`). Needs torch, curvlinops-for-pytorch and
laplace-torch (the fixtures virtualenv has them); without them it says so and exits 0.
"""
import ctypes
import sys

import numpy as np

import bdlcore
from _common import configure_torch, interleaved_runs, mlp_784

N, BATCH, REPEATS = 5000, 500, 5


def openblas(name, argtypes):
    """`name` from the OpenBLAS bdlcore loaded (its own core choice and threads), so that the
    reference rates are the library's own kernels, not only numpy's build."""
    function = getattr(ctypes.CDLL(bdlcore.blas_info().openblas_library), name)
    function.restype = None
    function.argtypes = argtypes
    return function


def openblas_dgemm(n):
    """C ← A·B for n × n matrices through bdlcore's OpenBLAS."""
    pointer = ctypes.POINTER(ctypes.c_double)
    gemm = openblas("cblas_dgemm", [ctypes.c_int] * 6 + [ctypes.c_double, pointer, ctypes.c_int, pointer, ctypes.c_int,
                                                         ctypes.c_double, pointer, ctypes.c_int])
    rng = np.random.default_rng(1)
    a, b, c = rng.standard_normal((n, n)), rng.standard_normal((n, n)), np.zeros((n, n))
    args = [a.ctypes.data_as(pointer), n, b.ctypes.data_as(pointer), n, 0.0, c.ctypes.data_as(pointer), n]
    return lambda: gemm(101, 111, 111, n, n, n, 1.0, *args)


def openblas_dsyrk(batches):
    """The accumulation's kernel alone: one dsyrk (lower, XᵀX) per statistic into fixed sums,
    without checks, calls through the binding, or mirroring — the ceiling for the accumulation."""
    pointer = ctypes.c_void_p
    syrk = openblas("cblas_dsyrk", [ctypes.c_int] * 5 + [ctypes.c_double, pointer, ctypes.c_int, ctypes.c_double,
                                                         pointer, ctypes.c_int])
    rows = [x.reshape(-1, x.shape[-1]) for statistics in batches for _, a, g in statistics for x in (a, g)]
    sums = {x.shape[1]: np.zeros((x.shape[1], x.shape[1])) for x in rows}

    def accumulate():
        for x in rows:
            d = x.shape[1]
            syrk(101, 122, 112, d, x.shape[0], 1.0, x.ctypes.data, d, 1.0, sums[d].ctypes.data, d)
    return accumulate


def accumulation_rate(model, X, y):
    """GFLOP/s of the accumulation alone (Σ a aᵀ and Σ g gᵀ by syrk, n²·rows useful flops each) on
    the fit's statistics, against this machine's dgemm rate: the better of bdlcore's OpenBLAS and
    numpy's at 2048², same threads; and the same for OpenBLAS's bare dsyrk on the same statistics,
    the kernel's own ceiling on this machine. The four are timed in alternation (see
    `interleaved_runs`); the rate ratios are printed for the medians and for the best rounds."""
    C = 10
    batches = []
    for start in range(0, N, BATCH):
        xb = X[start:start + BATCH]
        logits = model(xb)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        # Columns of the output-Hessian square root: V[n, k] = √p_k (e_k − p).
        V = np.sqrt(p)[:, :, None] * (np.eye(C)[None] - p[:, None, :])
        batches.append(model.backward_vectors(xb, V))
    layers = [(a.shape[2], g.shape[3], True) for _, a, g in batches[0]]
    flops = sum(a.shape[0] * a.shape[1] * a.shape[2] ** 2 + g.shape[0] * g.shape[1] * g.shape[2] * g.shape[3] ** 2
                for statistics in batches for _, a, g in statistics)

    def accumulate():
        with bdlcore.KFACAccumulator(layers) as accumulator:
            for statistics in batches:
                for index, (_, a, g) in enumerate(statistics):
                    accumulator.add(index, a, g)

    m = np.random.default_rng(1).standard_normal((2048, 2048))
    (acc_median, acc_best, _), (syrk_median, syrk_best, _), (ours_median, ours_best, _), (numpy_median, numpy_best, _) = \
        interleaved_runs([accumulate, openblas_dsyrk(batches), openblas_dgemm(2048), lambda: m @ m], repeats=7)
    gemm_flops = 2 * 2048 ** 3
    for label, accumulation, syrk, gemm in (("median", acc_median, syrk_median, min(ours_median, numpy_median)),
                                            ("best", acc_best, syrk_best, min(ours_best, numpy_best))):
        rate, peak = flops / accumulation / 1e9, gemm_flops / gemm / 1e9
        print(f"accumulation ({label} of 7): {rate:.1f} GFLOP/s of syrk's useful n²·rows flops = {100 * rate / peak:.0f}% "
              f"of dgemm's {peak:.1f} GFLOP/s (the binding's calls and finite checks included); counted as the "
              f"2n²·rows flops dgemm would spend on the same Grams: {200 * rate / peak:.0f}%; OpenBLAS's bare dsyrk "
              f"on the same statistics: {100 * flops / syrk / 1e9 / peak:.0f}%")
    print(f"dgemm 2048² medians: bdlcore's OpenBLAS {gemm_flops / ours_median / 1e9:.1f}, "
          f"numpy's {gemm_flops / numpy_median / 1e9:.1f} GFLOP/s")


def fit_accumulation_rate(model, X, y):
    """The rate of the accumulation inside the K-FAC fit itself (`KFAC.accumulation_profile`:
    the Gram updates timed in the pass, on every BLAS thread with one shard each), against the
    same dgemm reference, the fits and dgemm timed in alternation."""
    rates = []

    def fit():
        with bdlcore.KFAC(model, X, y, likelihood="classification", approx="expand", fisher="exact", batch_size=BATCH) as kfac:
            profile = kfac.accumulation_profile
        rates.append(profile.rate)
        return profile

    m = np.random.default_rng(1).standard_normal((2048, 2048))
    (_, _, profile), (ours_median, ours_best, _), (numpy_median, numpy_best, _) = interleaved_runs(
        [fit, openblas_dgemm(2048), lambda: m @ m], repeats=7)
    rates = rates[1:]  # the warm-up round
    peak = 2 * 2048 ** 3 / min(ours_median, numpy_median)
    print(f"accumulation inside the K-FAC fit ({profile.workers} workers, one shard each, {profile.flops / 1e9:.1f} GFLOP): "
          f"median {np.median(rates) / 1e9:.1f} GFLOP/s = {100 * np.median(rates) / peak:.0f}% of dgemm's {peak / 1e9:.1f} GFLOP/s "
          f"(rounds {100 * min(rates) / peak:.0f} – {100 * max(rates) / peak:.0f}%)")


def main():
    try:
        import torch
        from curvlinops import FisherType, KFACLinearOperator, KFACType
    except ImportError:
        print("bench_kfac: torch and curvlinops are not importable here; run with the fixtures virtualenv.")
        return 0
    threads = configure_torch(torch)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, 784))
    y = rng.integers(0, 10, N)
    ours = mlp_784()
    theirs = ours.to_torch()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    batches = [(Xt[i:i + BATCH], yt[i:i + BATCH]) for i in range(0, N, BATCH)]

    def fit_bdlcore():
        with bdlcore.KFAC(ours, X, y, likelihood="classification", approx="expand", fisher="exact", batch_size=BATCH) as kfac:
            kfac.logdet(damping=1.0)

    def fit_bdlcore_with_eigenvectors():
        with bdlcore.KFAC(ours, X, y, likelihood="classification", approx="expand", fisher="exact", batch_size=BATCH) as kfac:
            kfac.logdet(damping=1.0)
            kfac.solve(np.ones(ours.num_parameters), damping=1.0)

    def fit_curvlinops():
        op = KFACLinearOperator(theirs, torch.nn.CrossEntropyLoss(reduction="sum"), list(theirs.parameters()), batches,
                                fisher_type=FisherType.TYPE2, kfac_approx=KFACType.EXPAND,
                                separate_weight_and_bias=True, check_deterministic=False, progressbar=False)
        op.compute_kronecker_factors()
        for factor in list(op._input_covariances.values()) + list(op._gradient_covariances.values()):
            torch.linalg.eigh(factor)

    runs = [("curvlinops KFACLinearOperator", fit_curvlinops)]
    try:
        from laplace import KronLaplace

        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(Xt, yt), batch_size=BATCH)

        def fit_laplace():
            la = KronLaplace(theirs, "classification")
            la.fit(loader, progress_bar=False)
            la.log_det_posterior_precision

        runs.append(("laplace-torch KronLaplace.fit", fit_laplace))
    except ImportError:
        print("laplace-torch not importable: its row is skipped")
    timings = interleaved_runs([fn for _, fn in runs] + [fit_bdlcore_with_eigenvectors, fit_bdlcore], REPEATS)
    t_full, t_values = timings[-2][0], timings[-1][0]
    accumulation_rate(ours, X, y)
    fit_accumulation_rate(ours, X, y)
    print(f"threads: {threads}; K-FAC (exact, expand) of 784-256-256-10 on N = {N}, medians of {REPEATS} interleaved rounds")
    print(f"bdlcore: {t_full:.3f} s with the eigenvectors formed (the anchors' work: accumulate, eigendecompose); "
          f"{t_values:.3f} s for fit + log det alone, which needs only eigenvalues")
    print(f"{'anchor':<34} {'anchor s':>9} {'bdlcore s':>10} {'ratio':>6}")
    for (name, _), (seconds, _, _) in zip(runs, timings):
        print(f"{name:<34} {seconds:>9.3f} {t_full:>10.3f} {seconds / t_full:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
