"""Sparsity curves (bdlcore.pruning.sparsity_curve) and the SpaM paper's claim on the digits.

The claim (Dhahri et al. 2024): training by the evidence with a per-parameter prior (SpaM) and
pruning by optimal posterior damage keeps higher test accuracy at 90% and 95% unstructured
sparsity, without fine-tuning, than MAP training with a hand-picked prior and magnitude
pruning — here on the shipped digits, for an MLP and a small CNN, averaged over 3 seeds.
"""

import numpy as np
import pytest

import bdlcore
from bdlcore import AvgPool2d, Conv2d, Flatten, InvalidArgumentError, Linear, ReLU, Sequential, ShapeMismatchError, pruning

EPOCHS = 60  # the demo's recipe: Adam 3e-3, cosine decay, batches of 32
MAP_PRIOR = 1e-4  # the hand-picked weight decay of the MAP baseline


def digits(images=False):
    X, y, Xt, yt = bdlcore.datasets.load_digits()
    shape = (-1, 1, 8, 8) if images else (-1, 64)
    return X.reshape(shape) / 16, y, Xt.reshape(shape) / 16, yt


def mlp(seed):
    return Sequential([Linear(64, 128), ReLU(), Linear(128, 10)], seed=seed)


def cnn(seed):
    return Sequential([Conv2d(1, 16, 3, padding=1), ReLU(), AvgPool2d(2), Flatten(), Linear(16 * 4 * 4, 10)],
                      input_shape=(1, 8, 8), seed=seed)


@pytest.mark.parametrize("make, images", [(mlp, False), (cnn, True)], ids=["mlp", "cnn"])
def test_spam_with_opd_beats_map_with_magnitude_at_high_sparsity(make, images):
    X, y, Xt, yt = digits(images)
    recipe = dict(epochs=EPOCHS, lr=3e-3, batch_size=32, schedule="cosine", progress=False)
    spam_accuracy, map_accuracy = [], []
    for seed in range(3):
        with make(seed) as net:
            net.fit(X, y, prior_precision=MAP_PRIOR, seed=seed, **recipe)
            curve = pruning.sparsity_curve(net, pruning.scores(net, "magnitude"), Xt, yt, sparsities=[0.9, 0.95])
            map_accuracy.append(curve.accuracy)
        with make(seed) as net:
            result = bdlcore.train_marglik(net, X, y, prior_structure="diag", marglik_frequency=5, burnin=5, seed=seed, **recipe)
            with result.laplace as la:
                curve = pruning.sparsity_curve(net, pruning.scores(la, "opd"), Xt, yt, sparsities=[0.9, 0.95])
            spam_accuracy.append(curve.accuracy)
    spam, baseline = np.mean(spam_accuracy, axis=0), np.mean(map_accuracy, axis=0)
    # Measured: MLP 0.86 / 0.55 against 0.52 / 0.31; CNN 0.46 / 0.36 against 0.38 / 0.26.
    assert np.all(spam > baseline), f"SpaM+OPD {spam} vs MAP+magnitude {baseline} at 90% / 95%"


def test_sparsity_curve_definition():
    X, y, Xt, yt = digits()
    with mlp(0) as net:
        net.fit(X[:300], y[:300], epochs=5, lr=1e-2, progress=False)
        theta = net.parameters.copy()
        scores = pruning.scores(net, "magnitude")
        curve = pruning.sparsity_curve(net, scores, Xt, yt, sparsities=[0.0, 0.5, 0.9])
        np.testing.assert_array_equal(net.parameters, theta)  # the network itself is untouched
        # 0%: the unpruned network's own metrics.
        p = np.exp(net(Xt) - net(Xt).max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        assert curve.accuracy[0] == pytest.approx(bdlcore.metrics.accuracy(p, yt), abs=1e-12)
        assert curve.nll[0] == pytest.approx(bdlcore.metrics.nll(p, yt), rel=1e-10)
        assert curve.ece[0] == pytest.approx(bdlcore.metrics.ece(p, yt, bins=15), abs=1e-12)
        # 50%: the same numbers as pruning a copy by hand.
        m = pruning.mask(scores, 0.5, model=net)
        net.apply_mask(m)
        assert curve.accuracy[1] == pytest.approx((net(Xt).argmax(1) == yt).mean(), abs=1e-12)
        net.set_parameters(theta)
    X2 = X[:200]
    with mlp(1) as net:
        net.fit(X2, y[:200], epochs=2, progress=False)
        tuned = pruning.sparsity_curve(net, pruning.scores(net, "magnitude"), Xt, yt, sparsities=[0.8],
                                       fine_tune=dict(X=X2, y=y[:200], epochs=3, lr=1e-2))
        plain = pruning.sparsity_curve(net, pruning.scores(net, "magnitude"), Xt, yt, sparsities=[0.8])
        assert tuned.accuracy[0] != plain.accuracy[0]
        with pytest.raises(InvalidArgumentError):
            pruning.sparsity_curve(net, pruning.scores(net, "magnitude"), Xt, yt, sparsities=[1.0])
        with pytest.raises(ShapeMismatchError):
            pruning.sparsity_curve(net, np.ones(5), Xt, yt)
        with pytest.raises(InvalidArgumentError):
            pruning.sparsity_curve(net, pruning.scores(net, "magnitude"), Xt, yt, fine_tune=dict(epochs=1))
        with pytest.raises(InvalidArgumentError):
            pruning.sparsity_curve(net, pruning.scores(net, "magnitude"), Xt, yt, fine_tune=dict(X=X2, y=y[:200], mask=1))
