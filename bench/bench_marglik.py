"""One epoch of marginal-likelihood training against laplace-torch's `marglik_training`, same run.

Workload (issue: model selection): the digits MLP of the demo (64-128-10, ReLU) on the shipped
digits training split (X/16), Kron posterior, layerwise prior, one epoch, Adam (lr 1e-3, batch 32,
PyTorch's Adam defaults), a hyperparameter step after the epoch. Both libraries run the MAP epoch,
refit the Kron Laplace on all training data, and update log δ:

- laplace-torch 0.3: `marglik_training(n_epochs=1)` with its defaults — 10 Adam steps (lr 0.1) on
  the negative evidence, then (as it always does at the end) a refit at the best parameters;
  default backend AsdlGGN, and CurvlinopsGGN as a second row.
- bdlcore: `train_marglik(epochs=1)` — the evidence maximised to a gradient norm below 1e-6 by
  Newton's method.

Both start from the same θ (one parameter vector copied), in float64, with as many threads as
OpenBLAS. Prints median seconds, the ratio laplace-torch / bdlcore (> 1: bdlcore faster) and the
evidence each reaches. Needs torch and laplace-torch (the fixtures virtualenv has them); without
them it says so and exits 0.
"""
import sys

import numpy as np

import bdlcore
from _common import configure_torch, median_run

BATCH, REPEATS = 32, 5


def digits_mlp(seed=0):
    return bdlcore.Sequential([bdlcore.Linear(64, 128), bdlcore.ReLU(), bdlcore.Linear(128, 10)], seed=seed)


def main():
    try:
        import torch
        from laplace.curvature import AsdlGGN, CurvlinopsGGN
        from laplace.marglik_training import marglik_training
    except ImportError:
        print("bench_marglik: torch and laplace-torch are not importable here; run with the fixtures virtualenv.")
        return 0
    threads = configure_torch(torch)
    X, y, _, _ = bdlcore.datasets.load_digits()
    X = X / 16.0
    start = digits_mlp()
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))

    def run_bdlcore():
        with digits_mlp() as net:  # the same seeded θ as `start`
            result = bdlcore.train_marglik(net, X, y, epochs=1, lr=1e-3, batch_size=BATCH, seed=0, progress=False)
            with result.laplace as la:
                return la.log_marginal_likelihood(), la.prior_precision

    def run_laplace_torch(backend):
        def run():
            model = start.to_torch()
            torch.manual_seed(0)
            loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True)
            la, _, _, _ = marglik_training(model, loader, "classification", hessian_structure="kron", backend=backend,
                                           n_epochs=1, optimizer_kwargs={"lr": 1e-3})
            return la.log_marginal_likelihood().item(), la.prior_precision.detach().numpy()
        return run

    print(f"threads: {threads}; one epoch of marginal-likelihood training, digits 64-128-10 MLP, N = {len(X)}, kron, layerwise")
    print(f"{'laplace-torch backend':<22} {'laplace-torch s':>15} {'bdlcore s':>10} {'ratio':>6}   "
          f"{'evidence after the epoch (laplace-torch | bdlcore)':>52}")
    t_ours, (evidence_ours, prior_ours) = median_run(run_bdlcore, REPEATS)
    for name, backend in (("AsdlGGN (default)", AsdlGGN), ("CurvlinopsGGN", CurvlinopsGGN)):
        t_theirs, (evidence_theirs, prior_theirs) = median_run(run_laplace_torch(backend), REPEATS)
        print(f"{name:<22} {t_theirs:>15.3f} {t_ours:>10.3f} {t_theirs / t_ours:>6.2f}   "
              f"{evidence_theirs:>26.3f} | {evidence_ours:<22.3f}"
              f"  δ: {np.array2string(np.asarray(prior_theirs), precision=3)} | {np.array2string(np.asarray(prior_ours), precision=3)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
