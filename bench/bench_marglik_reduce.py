"""K-FAC-reduce against K-FAC-expand in marginal-likelihood training, same models, same run.

Workload (issue: model selection, K-FAC-reduce): two weight-sharing models on the shipped digits
training split (X/16, N = 1,438; accuracy on the 359 test digits):

- CNN: the 1×8×8 images, Conv2d(1, 16, 3, padding=1) → ReLU → Conv2d(16, 16, 3, padding=1) →
  ReLU → AvgPool2d(2) → Flatten → Linear(256, 10); each conv is applied at R = 64 positions.
- sequence: each image's 8 rows as T = 8 vectors of 8, Linear(8, 64) → ReLU → Linear(64, 64) on
  (N, 8, 8) → MeanOverSequence → Linear(64, 10); the first two layers are applied at R = 8.

For each model, `train_marglik` (kron posterior, layerwise prior, Adam lr 1e-2, batch 32, the
same initial θ and seed) runs with approx="expand" and with approx="reduce": the CNN for 6 epochs
with a hyperparameter step every 2nd, the sequence model for 10 epochs with a step every epoch.
The K-FAC refit alone (`Laplace(...).fit` on all training data, what each hyperparameter step
pays before its solve) is timed for both flavours at the same θ (the expand run's). The last two
rows time the refit of the same CNN with 64 channels (at its initial θ), where the factor Grams —
the part reduce shrinks, from N·R rows to N — are a larger share of the refit, with the exact
Fisher (C = 10 backpropagated vectors per example, as training uses) and with a one-sample
Monte-Carlo Fisher (one vector: the backward pass both flavours share is 10× cheaper).

Prints median seconds of 3 runs per flavour (the flavours' runs alternate, so that a change in
the machine's load hits both) and the ratio expand / reduce (> 1: reduce faster); then, per
model and parameter tensor, its R, the learned δ of both flavours and log(δ_reduce / δ_expand)
with the factor it means; then both flavours' probit test accuracy and log evidence (each at its
own approximation, so not comparable as numbers). Needs only bdlcore.
"""
import statistics
import sys

import numpy as np

import bdlcore
from _common import median_run
from bdlcore import AvgPool2d, Conv2d, Flatten, Laplace, Linear, MeanOverSequence, ReLU, Sequential

REPEATS = 3
LR, BATCH, SEED = 1e-2, 32, 0
APPROXES = ("expand", "reduce")


def cnn(channels=16):
    return Sequential([Conv2d(1, channels, 3, padding=1), ReLU(), Conv2d(channels, channels, 3, padding=1), ReLU(),
                       AvgPool2d(2), Flatten(), Linear(16 * channels, 10)], input_shape=(1, 8, 8), seed=SEED)


def sequence():
    return Sequential([Linear(8, 64), ReLU(), Linear(64, 64), MeanOverSequence(), Linear(64, 10)],
                      input_shape=(8, 8), seed=SEED)


# name, constructor, example shape, epochs, marglik_frequency, (tensor name, R) in θ order
MODELS = [
    ("CNN", cnn, (1, 8, 8), 6, 2,
     [("conv1.weight", 64), ("conv1.bias", 64), ("conv2.weight", 64), ("conv2.bias", 64), ("fc.weight", 1),
      ("fc.bias", 1)]),
    ("sequence", sequence, (8, 8), 10, 1,
     [("lin1.weight", 8), ("lin1.bias", 8), ("lin2.weight", 8), ("lin2.bias", 8), ("fc.weight", 1), ("fc.bias", 1)]),
]


def train(make, X, y, X_test, y_test, approx, epochs, frequency):
    """One marginal-likelihood run from the seeded θ: (δ, test accuracy, evidence, θ, best epoch)."""
    with make() as net:
        result = bdlcore.train_marglik(net, X, y, approx=approx, epochs=epochs, marglik_frequency=frequency, lr=LR,
                                       batch_size=BATCH, seed=SEED, progress=False)
        with result.laplace as la:
            accuracy = float(np.mean(la.predict(X_test).argmax(axis=1) == y_test))
            return la.prior_precision.copy(), accuracy, la.log_marginal_likelihood(), net.parameters.copy(), result.best_epoch


def alternating_medians(make_run):
    """({approx: median seconds}, {approx: last result}) of make_run(approx)() for both flavours,
    run in turn (expand, reduce, expand, …) so that a change in the machine's load hits both."""
    runs = {approx: make_run(approx) for approx in APPROXES}
    times, results = {approx: [] for approx in APPROXES}, {}
    for _ in range(REPEATS):
        for approx, run in runs.items():
            seconds, results[approx] = median_run(run, 1)
            times[approx].append(seconds)
    return {approx: statistics.median(t) for approx, t in times.items()}, results


def refit_seconds(net, X, y, fisher="exact"):
    def make_run(approx):
        return lambda: Laplace(net, "classification", structure="kron", approx=approx, fisher=fisher,
                               mc_samples=1).fit(X, y).close()
    return alternating_medians(make_run)[0]


def row(label, expand_s, reduce_s):
    print(f"{label:<56} {expand_s:>9.3f} {reduce_s:>9.3f} {expand_s / reduce_s:>14.2f}")


def main():
    X, y, X_test, y_test = bdlcore.datasets.load_digits()
    X, X_test = X / 16.0, X_test / 16.0
    print(f"threads: {bdlcore.blas_info().num_threads}; digits N = {len(X)} (test {len(X_test)}); kron posterior, "
          f"layerwise prior, exact Fisher; Adam lr {LR}, batch {BATCH}; median of {REPEATS} runs")
    print(f"{'':<56} {'expand s':>9} {'reduce s':>9} {'expand/reduce':>14}")
    learned = {}
    for name, make, shape, epochs, frequency, tensors in MODELS:
        Xs, Xs_test = X.reshape(-1, *shape), X_test.reshape(-1, *shape)
        seconds, outcome = alternating_medians(
            lambda approx: lambda: train(make, Xs, y, Xs_test, y_test, approx, epochs, frequency))
        refits = epochs // frequency
        row(f"{name}: train_marglik, {epochs} epochs, {refits} refits", seconds["expand"], seconds["reduce"])
        with make() as net:
            net.set_parameters(outcome["expand"][3])
            refit = refit_seconds(net, Xs, y)
        row(f"{name}: one K-FAC refit (Laplace.fit)", refit["expand"], refit["reduce"])
        learned[name] = (tensors, outcome)
    with cnn(64) as wide:
        Xs = X.reshape(-1, 1, 8, 8)
        for fisher, label in (("exact", "exact Fisher"), ("mc", "MC Fisher, 1 sample")):
            refit = refit_seconds(wide, Xs, y, fisher)
            row(f"CNN, 64 channels: one K-FAC refit, {label}", refit["expand"], refit["reduce"])

    for name, (tensors, outcome) in learned.items():
        print(f"\n{name}: learned prior precision δ per tensor")
        print(f"{'tensor':<14} {'R':>3} {'δ expand':>10} {'δ reduce':>10} {'log(δr/δe)':>11} {'factor':>7}")
        gaps = np.log(outcome["reduce"][0] / outcome["expand"][0])
        for (tensor, r), d_e, d_r, gap in zip(tensors, outcome["expand"][0], outcome["reduce"][0], gaps):
            print(f"{tensor:<14} {r:>3} {d_e:>10.4g} {d_r:>10.4g} {gap:>+11.2f} {np.exp(abs(gap)):>7.2f}")
        for approx in APPROXES:
            _, accuracy, evidence, _, best = outcome[approx]
            print(f"{approx:<7} test accuracy {accuracy:.3f}   log evidence {evidence:10.2f}   kept epoch {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
