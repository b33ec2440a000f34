"""K-FAC fit against curvlinops and laplace-torch on the same data, in the same run.

Workload (issue: curvature): a 784-256-256-10 ReLU MLP, N = 5,000 seeded random inputs and
labels, exact type-2 Fisher, K-FAC-expand: accumulate A and B for every layer and eigendecompose
them (what a Laplace fit needs). curvlinops' `KFACLinearOperator.compute_kronecker_factors` (plus
torch.linalg.eigh of its factors) and laplace-torch's `KronLaplace.fit` (which eigendecomposes
lazily; its first log-determinant is included) run with as many threads as OpenBLAS.

Prints median seconds and the ratio anchor / bdlcore (> 1: bdlcore faster). Needs torch,
curvlinops-for-pytorch and laplace-torch (the fixtures virtualenv has them); without them it says
so and exits 0.
"""
import sys

import numpy as np

import bdlcore
from _common import configure_torch, median_run, mlp_784

N, BATCH, REPEATS = 5000, 500, 3


def median_seconds(fn):
    return median_run(fn, REPEATS)[0]


def accumulation_rate(model, X, y):
    """GFLOP/s of the accumulation alone (Σ a aᵀ and Σ g gᵀ by syrk, n²·rows flops each) on the
    fit's statistics, against the same machine's dgemm rate (numpy, 2048², same threads)."""
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

    seconds = median_seconds(accumulate)
    m = np.random.default_rng(1).standard_normal((2048, 2048))
    gemm = median_seconds(lambda: m @ m)
    rate, peak = flops / seconds / 1e9, 2 * 2048 ** 3 / gemm / 1e9
    print(f"accumulation: {rate:.1f} GFLOP/s of syrk's useful n²·rows flops = {100 * rate / peak:.0f}% of dgemm's "
          f"{peak:.1f} GFLOP/s (numpy, same threads; the binding's calls and finite checks included); "
          f"counted as the 2n²·rows flops dgemm would spend on the same Grams: {200 * rate / peak:.0f}%")


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

    def fit_curvlinops():
        op = KFACLinearOperator(theirs, torch.nn.CrossEntropyLoss(reduction="sum"), list(theirs.parameters()), batches,
                                fisher_type=FisherType.TYPE2, kfac_approx=KFACType.EXPAND,
                                separate_weight_and_bias=True, check_deterministic=False, progressbar=False)
        op.compute_kronecker_factors()
        for factor in list(op._input_covariances.values()) + list(op._gradient_covariances.values()):
            torch.linalg.eigh(factor)

    rows = [("curvlinops KFACLinearOperator", median_seconds(fit_curvlinops))]
    try:
        from laplace import KronLaplace

        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(Xt, yt), batch_size=BATCH)

        def fit_laplace():
            la = KronLaplace(theirs, "classification")
            la.fit(loader, progress_bar=False)
            la.log_det_posterior_precision

        rows.append(("laplace-torch KronLaplace.fit", median_seconds(fit_laplace)))
    except ImportError:
        print("laplace-torch not importable: its row is skipped")
    t_ours = median_seconds(fit_bdlcore)
    accumulation_rate(ours, X, y)
    print(f"threads: {threads}; K-FAC (exact, expand) of 784-256-256-10 on N = {N}; bdlcore {t_ours:.3f} s")
    print(f"{'anchor':<34} {'anchor s':>9} {'bdlcore s':>10} {'ratio':>6}")
    for name, seconds in rows:
        print(f"{name:<34} {seconds:>9.3f} {t_ours:>10.3f} {seconds / t_ours:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
