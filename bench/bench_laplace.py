"""Laplace evidence end to end against laplace-torch on the same data, in the same run.

Workload (issue: Laplace): a 784-256-256-10 ReLU MLP (the curvature benchmark's), N = 5,000
seeded random inputs and labels, classification, the exact GGN. For the Kron and the Diag
posterior, each library runs

    fit on the data → log marginal likelihood at δ = 1 → optimise the per-tensor prior
    precision by the evidence → log marginal likelihood at the optimum

laplace-torch: `KronLaplace` / `DiagLaplace` with its default backend, then
`optimize_prior_precision(method="marglik", prior_structure="layerwise")` with its defaults
(100 Adam steps, learning rate 0.1, from δ = 1). bdlcore: `Laplace(...).fit`, then
`optimize_prior_precision("layerwise")` (Newton's method on the analytic gradient to a gradient
norm below 1e-8). Both use as many threads as OpenBLAS. Prints median seconds over interleaved
rounds (the two libraries alternate, so that the machine's drifting speed affects both alike), the
ratio laplace-torch / bdlcore (> 1: bdlcore faster) and both evidence values at each library's
optimum. bdlcore's evidence and its prior optimisation need only the Kronecker factors'
eigenvalues; it forms eigenvectors when a prediction first needs them, which this workload does
not.

laplace-torch's Diag posterior with its default backend forms per-example Jacobians (N_batch ×
C × P doubles): at the benchmark's batch of 500 that is ~11 GB per batch and it ran out of this
machine's 24 GB; at batch 100 its fit alone took about 13 minutes here. So the Diag row runs only
with `--diag` (laplace-torch at batch 100, once; bdlcore at the usual batch, median of 3).

Needs torch and laplace-torch (the fixtures virtualenv has them); without them it says so and
exits 0.
"""
import sys

import numpy as np

import bdlcore
from _common import configure_torch, interleaved_runs, median_run, mlp_784

N, BATCH, REPEATS = 5000, 500, 5


def main():
    try:
        import torch
        from laplace import DiagLaplace, KronLaplace
    except ImportError:
        print("bench_laplace: torch and laplace-torch are not importable here; run with the fixtures virtualenv.")
        return 0
    threads = configure_torch(torch)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, 784))
    y = rng.integers(0, 10, N)
    ours = mlp_784()
    theirs = ours.to_torch()
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))

    def run_bdlcore(structure):
        def run():
            with bdlcore.Laplace(ours, likelihood="classification", structure=structure) as la:
                la.fit(X, y, batch_size=BATCH, progress=False)
                start = la.log_marginal_likelihood()
                result = la.optimize_prior_precision(prior_structure="layerwise")
                return start, result.log_marginal_likelihood, result.gradient_norm, la.prior_precision
        return run

    def run_laplace_torch(cls, batch):
        def run():
            la = cls(theirs, "classification")
            la.fit(torch.utils.data.DataLoader(dataset, batch_size=batch), progress_bar=False)
            start = la.log_marginal_likelihood().item()
            la.optimize_prior_precision(method="marglik", prior_structure="layerwise", progress_bar=False)
            return start, la.log_marginal_likelihood().item(), la.prior_precision.detach().numpy()
        return run

    print(f"threads: {threads}; Laplace fit + evidence + layerwise prior optimisation of 784-256-256-10 on N = {N}")
    print(f"{'structure':<6} {'laplace-torch s':>15} {'bdlcore s':>10} {'ratio':>6}   "
          f"{'evidence at δ = 1':>30}   {'evidence at the optimum (laplace-torch | bdlcore)':>50}")
    rows = [("kron", "kron", KronLaplace, BATCH, REPEATS)]
    if "--diag" in sys.argv:
        rows.append(("diag", "diag", DiagLaplace, 100, 1))
    for name, structure, cls, batch, repeats in rows:
        if repeats > 1:
            (t_theirs, _, (start_theirs, end_theirs, _)), (t_ours, _, (start_ours, end_ours, norm, prior)) = interleaved_runs(
                [run_laplace_torch(cls, batch), run_bdlcore(structure)], repeats)
        else:
            t_theirs, (start_theirs, end_theirs, _) = median_run(run_laplace_torch(cls, batch), repeats)
            t_ours, (start_ours, end_ours, norm, prior) = median_run(run_bdlcore(structure), REPEATS)
        print(f"{name:<6} {t_theirs:>15.3f} {t_ours:>10.3f} {t_theirs / t_ours:>6.2f}   "
              f"{start_theirs:>14.4f} | {start_ours:<14.4f}   {end_theirs:>24.4f} | {end_ours:<24.4f}"
              f"  (bdlcore ‖∇‖ = {norm:.1e}, δ = {np.array2string(np.asarray(prior), precision=3)})")
    if "--diag" not in sys.argv:
        print("diag: skipped (laplace-torch's exact GGN diagonal takes minutes here; run with --diag)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
