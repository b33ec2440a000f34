"""K-FAC-reduce against K-FAC-expand in marginal-likelihood training (bdlcore.train_marglik).

With a per-tensor prior and a Kronecker posterior, the evidence splits into one term per K-FAC
block, so the learned δ of a tensor depends only on that tensor's block (and on θ). The two
flavours differ only for layers applied at R > 1 positions (DESIGN.md §4); what they decide is
checked here on the digits, seeded, with the tolerances chosen from runs over six seeds:

* R = 1 everywhere (an MLP; a convolution whose kernel covers the image): the two flavours are
  the same computation, so whole training runs are bit-identical.
* Sequence model (T = 8 rows of a digit): the weights' δ agree within a factor 2 (measured
  within 1.45 over six seeds; seed-to-seed spread of one flavour ~1.1), their order is the same
  and the test accuracies agree within 3 points (measured within 1).
* CNN (R = 64 positions per conv): the decisions differ in a systematic, explained way. The
  mean over positions of a 3×3 patch is almost the same vector in every image (up to scale),
  so reduce's input factor A is nearly rank one and its evidence counts far fewer well-determined
  conv-weight directions: reduce learns conv-weight δ 4–9× smaller than expand (measured 3.8–8.9
  over six seeds). The classifier weight (R = 1) gets the same δ within a factor 2 (measured
  within 1.25); both flavours regularise it more than any conv weight (expand by 3–6×, so 2× is
  asserted); the test accuracies agree within 4 points (measured: reduce 0–3.6 points lower).

Bias δ are not compared: a bias tensor has few entries, its evidence is flat, and during
training the prior feeds back on θ, so one flavour's bias δ already vary 4–40× across seeds.
(Reduce's bias block Σ_n ĝĝᵀ is the exact GGN block of a shared bias; in the sequence model it
gives the shared biases larger δ than expand.)

The exactness of reduce for a deep linear network with positions averaged before the loss is
checked on the curvature itself in test_curvature.py.
"""

import numpy as np
import pytest

import bdlcore
from bdlcore import AvgPool2d, Conv2d, Flatten, Linear, MeanOverSequence, ReLU, Sequential, train_marglik


@pytest.fixture(scope="module")
def digits():
    X, y, X_test, y_test = bdlcore.datasets.load_digits()
    return X / 16.0, y, X_test / 16.0, y_test


def train_both(make, X, y, X_test, y_test, **options):
    """{approx: (learned per-tensor δ, probit test accuracy, result history, best epoch, θ)}."""
    out = {}
    for approx in ("expand", "reduce"):
        with make() as net:
            result = train_marglik(net, X, y, approx=approx, progress=False, **options)
            with result.laplace as la:
                accuracy = float(np.mean(la.predict(X_test).argmax(axis=1) == y_test))
                out[approx] = (la.prior_precision.copy(), accuracy, result.history, result.best_epoch,
                               net.parameters.copy())
    return out


def log_ratio(out):
    """log(δ_reduce / δ_expand) per tensor."""
    return np.log(out["reduce"][0] / out["expand"][0])


@pytest.mark.parametrize(
    "layers, shape",
    [
        ([Linear(64, 32), ReLU(), Linear(32, 10)], (64,)),
        ([Conv2d(1, 6, 8), Flatten(), ReLU(), Linear(6, 10)], (1, 8, 8)),  # one output position
    ],
    ids=["mlp", "conv-one-position"],
)
def test_without_weight_sharing_expand_and_reduce_train_identically(digits, layers, shape):
    X, y, X_test, y_test = digits
    out = train_both(lambda: Sequential(layers, input_shape=shape, seed=1), X[:200].reshape(-1, *shape), y[:200],
                     X_test.reshape(-1, *shape), y_test, epochs=4, lr=1e-2, seed=2)
    expand, reduce = out["expand"], out["reduce"]
    assert expand[3] > 0 and expand[2] == reduce[2] and expand[3] == reduce[3]  # history, best epoch: exactly
    np.testing.assert_array_equal(expand[0], reduce[0])
    np.testing.assert_array_equal(expand[4], reduce[4])


def test_sequence_model_learns_the_same_weight_priors(digits):
    X, y, X_test, y_test = digits
    n = 500

    def make():
        return Sequential([Linear(8, 32), ReLU(), Linear(32, 32), MeanOverSequence(), Linear(32, 10)],
                          input_shape=(8, 8), seed=0)

    out = train_both(make, X[:n].reshape(-1, 8, 8), y[:n], X_test.reshape(-1, 8, 8), y_test, epochs=20, lr=2e-2, seed=0)
    weights = [0, 2, 4]  # W0, W1, W2 in the (W, b) per-layer order
    gap = log_ratio(out)[weights]
    assert np.all(np.abs(gap) <= np.log(2.0)), gap
    assert list(np.argsort(out["expand"][0][weights])) == list(np.argsort(out["reduce"][0][weights]))
    assert abs(out["expand"][1] - out["reduce"][1]) <= 0.03, (out["expand"][1], out["reduce"][1])
    assert min(out["expand"][1], out["reduce"][1]) > 0.5  # trained: a bag of rows, 500 examples (chance 0.1)


def test_cnn_reduce_learns_weaker_conv_priors_and_the_same_classifier_prior(digits):
    X, y, X_test, y_test = digits
    n = 400

    def make():
        return Sequential([Conv2d(1, 8, 3, padding=1), ReLU(), Conv2d(8, 8, 3, padding=1), ReLU(), AvgPool2d(2),
                           Flatten(), Linear(128, 10)], input_shape=(1, 8, 8), seed=0)

    out = train_both(make, X[:n].reshape(-1, 1, 8, 8), y[:n], X_test.reshape(-1, 1, 8, 8), y_test, epochs=10, lr=2e-2,
                     seed=0)
    gap = log_ratio(out)
    conv_weights, classifier = [0, 2], 4
    # Reduce's conv-weight δ: smaller, by a factor in [2, 20] (measured 3.8–8.9).
    assert np.all((gap[conv_weights] <= -np.log(2.0)) & (gap[conv_weights] >= -np.log(20.0))), gap
    assert abs(gap[classifier]) <= np.log(2.0), gap
    for approx in ("expand", "reduce"):
        delta = out[approx][0]
        assert delta[classifier] >= 2 * delta[conv_weights].max(), (approx, delta)
    assert abs(out["expand"][1] - out["reduce"][1]) <= 0.04, (out["expand"][1], out["reduce"][1])
    assert min(out["expand"][1], out["reduce"][1]) > 0.85
