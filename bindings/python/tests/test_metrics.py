"""Calibration metrics (bdlcore.metrics) against hand-computed values and numpy re-implementations."""

import math

import numpy as np
import pytest

import bdlcore
from bdlcore import InvalidArgumentError, NonFiniteInputError, ShapeMismatchError, metrics

from _support import rng

# Four examples, three classes. Predictions (argmax, first on ties): 0, 1, 2, 0; labels 0, 2, 2, 1.
PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.5, 0.5, 0.0]])
LABELS = np.array([0, 2, 2, 1])


def test_hand_computed_values():
    assert metrics.accuracy(PROBS, LABELS) == 0.5  # examples 0 and 2; example 3's tie goes to class 0
    expected_nll = -(math.log(0.7) + math.log(0.3) + math.log(0.4) + math.log(0.5)) / 4
    assert metrics.nll(PROBS, LABELS) == pytest.approx(expected_nll, rel=1e-15)
    # Σ_c (p − onehot)²: 0.09 + 0.04 + 0.01, 0.01 + 0.36 + 0.49, 0.09 + 0.09 + 0.36, 0.25 + 0.25 + 0.
    assert metrics.brier(PROBS, LABELS) == pytest.approx((0.14 + 0.86 + 0.54 + 0.5) / 4, rel=1e-15)
    # 5 bins (0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]: confidences .7 (right), .6 (wrong),
    # .4 (right), .5 (wrong) fall in bins 3, 2, 1, 2:
    # ECE = 1/4·|1 − .4| + 2/4·|0 − .55| + 1/4·|1 − .7| = .15 + .275 + .075 = .5.
    assert metrics.ece(PROBS, LABELS, bins=5) == pytest.approx(0.5, rel=1e-15)
    table = metrics.reliability(PROBS, LABELS, bins=5)
    assert table.counts.dtype == np.int64
    assert table.counts.tolist() == [0, 1, 2, 1, 0]
    np.testing.assert_allclose(table.confidence, [0.0, 0.4, 0.55, 0.7, 0.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(table.accuracy, [0.0, 1.0, 0.0, 1.0, 0.0], rtol=0, atol=0)
    # With the default 15 bins (width 1/15): .4 → bin 5, .5 → bin 7, .6 → bin 8, .7 → bin 10,
    # each alone, so the ECE is the mean |correct − confidence|.
    assert metrics.ece(PROBS, LABELS) == pytest.approx((0.3 + 0.6 + 0.6 + 0.5) / 4, rel=1e-15)
    assert metrics.reliability(PROBS, LABELS).counts.tolist() == [0] * 5 + [1, 0, 1, 1, 0, 1] + [0] * 4


def test_perfect_and_extreme_predictions():
    onehot = np.eye(3)[[0, 1, 2, 1]]
    labels = np.array([0, 1, 2, 1])
    assert metrics.accuracy(onehot, labels) == 1.0
    assert metrics.nll(onehot, labels) == 0.0
    assert metrics.brier(onehot, labels) == 0.0
    assert metrics.ece(onehot, labels) == 0.0
    wrong = np.array([1, 2, 0, 0])
    assert metrics.accuracy(onehot, wrong) == 0.0
    assert metrics.nll(onehot, wrong) == math.inf
    assert metrics.brier(onehot, wrong) == 2.0  # the maximum
    assert metrics.ece(onehot, wrong) == 1.0
    uniform = np.full((6, 4), 0.25)
    # Confidence 1/4 in every row; the first class wins every tie.
    assert metrics.accuracy(uniform, np.array([0, 0, 1, 2, 3, 0])) == 0.5
    assert metrics.nll(uniform, np.zeros(6, dtype=int)) == pytest.approx(math.log(4), rel=1e-15)


def reference_metrics(probs, labels, bins):
    """numpy re-implementations of the definitions in bdlcore.h / bdlcore.metrics."""
    n = probs.shape[0]
    predicted = probs.argmax(axis=1)  # numpy's argmax also takes the first maximum
    correct = (predicted == labels).astype(float)
    confidence = probs.max(axis=1)
    onehot = np.eye(probs.shape[1])[labels]
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)  # (i/B, (i+1)/B], 0 in bin 0
    counts = np.bincount(index, minlength=bins)
    sums_confidence = np.bincount(index, weights=confidence, minlength=bins)
    sums_correct = np.bincount(index, weights=correct, minlength=bins)
    nonempty = counts > 0
    mean_confidence = np.where(nonempty, sums_confidence / np.maximum(counts, 1), 0.0)
    mean_correct = np.where(nonempty, sums_correct / np.maximum(counts, 1), 0.0)
    return {
        "accuracy": correct.mean(),
        "nll": -np.mean(np.log(probs[np.arange(n), labels])),
        "brier": np.mean(np.sum((probs - onehot) ** 2, axis=1)),
        "ece": np.sum(counts / n * np.abs(mean_correct - mean_confidence)),
        "counts": counts,
        "confidence": mean_confidence,
        "accuracy_per_bin": mean_correct,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n, classes", [(500, 10), (37, 2), (1000, 3)])
def test_against_numpy_on_random_predictions(seed, n, classes):
    g = rng(seed)
    logits = g.standard_normal((n, classes)) * g.uniform(0.5, 4.0)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    # Labels drawn from a sharpened version of the predictions: a miscalibrated but informative model.
    sharp = probs**2 / np.sum(probs**2, axis=1, keepdims=True)
    labels = np.array([g.choice(classes, p=row) for row in sharp])
    want = reference_metrics(probs, labels, 15)
    assert metrics.accuracy(probs, labels) == pytest.approx(want["accuracy"], rel=1e-15)
    assert metrics.nll(probs, labels) == pytest.approx(want["nll"], rel=1e-12)
    assert metrics.brier(probs, labels) == pytest.approx(want["brier"], rel=1e-12)
    assert metrics.ece(probs, labels) == pytest.approx(want["ece"], rel=1e-12, abs=1e-15)
    assert want["ece"] > 0.01  # the sharpened labels make the model visibly miscalibrated
    table = metrics.reliability(probs, labels)
    assert np.array_equal(table.counts, want["counts"])
    np.testing.assert_allclose(table.confidence, want["confidence"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(table.accuracy, want["accuracy_per_bin"], rtol=1e-12, atol=0)
    assert np.sum(table.counts / n * np.abs(table.accuracy - table.confidence)) == pytest.approx(
        metrics.ece(probs, labels), rel=1e-12
    )
    for bins in (1, 7, 40):
        assert metrics.ece(probs, labels, bins=bins) == pytest.approx(reference_metrics(probs, labels, bins)["ece"], rel=1e-12, abs=1e-15)


def test_accepted_input_types():
    as_lists = metrics.brier(PROBS.tolist(), LABELS.tolist())
    assert as_lists == metrics.brier(PROBS, LABELS)
    assert metrics.brier(PROBS.astype(np.float32).astype(np.float64), LABELS.astype(np.int32)) == pytest.approx(as_lists)
    assert metrics.accuracy(np.asfortranarray(PROBS), LABELS.astype(np.uint8)) == 0.5
    assert metrics.nll(PROBS[::-1], LABELS[::-1]) == pytest.approx(metrics.nll(PROBS, LABELS), rel=1e-15)
    assert bdlcore.metrics is metrics


def test_bad_input():
    for function in (metrics.accuracy, metrics.nll, metrics.brier, metrics.ece, metrics.reliability):
        with pytest.raises(InvalidArgumentError, match="label"):
            function(PROBS, np.array([0, 1, 3, 1]))  # 3 is not a class
        with pytest.raises(InvalidArgumentError, match="label"):
            function(PROBS, np.array([0, 1, -1, 1]))
        with pytest.raises(InvalidArgumentError, match="labels"):
            function(PROBS, LABELS.astype(float))  # would truncate silently
        with pytest.raises(ShapeMismatchError, match="labels"):
            function(PROBS, LABELS[:3])
        with pytest.raises(ShapeMismatchError, match="probs"):
            function(PROBS[0], LABELS[:1])
        with pytest.raises(InvalidArgumentError, match="sum"):
            function(PROBS * 1.01, LABELS)
        with pytest.raises(InvalidArgumentError):
            function(np.array([[1.2, -0.2, 0.0]]), np.array([0]))  # sums to 1 but negative
        with pytest.raises(InvalidArgumentError, match="n = 0"):
            function(np.empty((0, 3)), np.empty(0, dtype=np.int64))
        bad = PROBS.copy()
        bad[1, 1] = np.nan
        with pytest.raises(NonFiniteInputError):
            function(bad, LABELS)
    for bins in (0, -3):
        with pytest.raises(InvalidArgumentError, match="bins"):
            metrics.ece(PROBS, LABELS, bins=bins)
        with pytest.raises(InvalidArgumentError, match="bins"):
            metrics.reliability(PROBS, LABELS, bins=bins)
    with pytest.raises(InvalidArgumentError, match="bins"):
        metrics.ece(PROBS, LABELS, bins=2.5)
