r"""Calibration metrics of class probabilities: accuracy, NLL, Brier score, ECE, reliability diagram.

Every function takes ``probs`` of shape (n, C) — rows ≥ 0 summing to 1 within 1e-6, e.g. the
output of :meth:`bdlcore.Laplace.predict` or a softmax — and ``labels``, n integers in [0, C).
The library checks these (an empty set, a bad row, a label out of range raise
:class:`~bdlcore.InvalidArgumentError`; NaN/Inf :class:`~bdlcore.NonFiniteInputError`); this
module only converts: ``probs`` to float64, ``labels`` to int64 (integer dtypes only, so that a
float label is not silently truncated).

With p_n = probs[n], ŷ_n = argmax_c p_nc (the first on ties) and conf_n = max_c p_nc:

* accuracy = (1/n) Σ_n [ŷ_n = y_n];
* nll = −(1/n) Σ_n log p_{n, y_n} (+inf if a label has probability 0);
* brier = (1/n) Σ_n Σ_c (p_nc − [c = y_n])², in [0, 2] (the multi-class form, not divided by C);
* ece = Σ_b (n_b/n)·|acc_b − conf_b| over ``bins`` equal-width confidence bins (i/B, (i+1)/B]
  (the first also holds 0), acc_b and conf_b the mean correctness and confidence in bin b —
  15 bins, the usual choice (Guo et al. 2017);
* reliability: the per-bin counts n_b, conf_b and acc_b behind the ECE (0 for empty bins).

Example::

    probs = la.predict(X_test)                      # (n, C), a fitted bdlcore.Laplace
    bdlcore.metrics.ece(probs, y_test)              # 15 bins
"""

from __future__ import annotations

from ctypes import POINTER, byref, c_double, c_int64
from typing import NamedTuple, Tuple

import numpy as np

from . import _lib
from ._errors import InvalidArgumentError, ShapeMismatchError, _check
from .model import _int64

__all__ = ["accuracy", "nll", "brier", "ece", "reliability", "Reliability"]

_ptr = _lib.as_pointer


def _arguments(probs, labels) -> Tuple[np.ndarray, np.ndarray]:
    """probs as C-contiguous float64 (n, C) and labels as C-contiguous int64 (n,)."""
    p = np.ascontiguousarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ShapeMismatchError(f"probs: expected shape (n, C), got shape {p.shape}")
    raw = np.asarray(labels)
    if raw.dtype.kind not in "biu":
        raise InvalidArgumentError(f"labels: expected integer class labels, got dtype {raw.dtype}")
    y = np.ascontiguousarray(raw, dtype=np.int64)
    if y.shape != (p.shape[0],):
        raise ShapeMismatchError(f"labels: expected shape ({p.shape[0]},) to match probs {p.shape}, got shape {y.shape}")
    return p, y


def _labels_pointer(y: np.ndarray):
    return y.ctypes.data_as(POINTER(c_int64))


def _scalar(function, probs, labels, *extra) -> float:
    p, y = _arguments(probs, labels)
    out = c_double()
    _check(function(_ptr(p), p.shape[0], p.shape[1], _labels_pointer(y), *extra, byref(out)))
    return out.value


def accuracy(probs, labels) -> float:
    """(1/n) Σ_n [argmax_c p_nc = y_n], the first maximum on ties."""
    return _scalar(_lib.lib.bdl_metrics_accuracy, probs, labels)


def nll(probs, labels) -> float:
    """Mean negative log-likelihood −(1/n) Σ_n log p_{n, y_n}; +inf if some p_{n, y_n} is 0."""
    return _scalar(_lib.lib.bdl_metrics_nll, probs, labels)


def brier(probs, labels) -> float:
    """Brier score (1/n) Σ_n Σ_c (p_nc − [c = y_n])², in [0, 2]."""
    return _scalar(_lib.lib.bdl_metrics_brier, probs, labels)


def ece(probs, labels, bins: int = 15) -> float:
    """Expected calibration error Σ_b (n_b/n)·|acc_b − conf_b| over ``bins`` equal-width bins.

    Bin b holds the examples whose confidence max_c p_nc lies in (b/B, (b+1)/B] (bin 0 also
    holds 0); acc_b is the fraction of them classified correctly, conf_b their mean confidence.
    15 bins is the usual choice (Guo et al. 2017), hence the default.

    Raises:
        InvalidArgumentError: bins < 1, or bad probs/labels (see the module docstring).
    """
    return _scalar(_lib.lib.bdl_metrics_ece, probs, labels, _int64(bins, "bins"))


class Reliability(NamedTuple):
    """The reliability diagram of :func:`reliability`: one entry per bin."""

    counts: np.ndarray  #: n_b, int64
    confidence: np.ndarray  #: conf_b, the mean confidence in the bin (0 if empty)
    accuracy: np.ndarray  #: acc_b, the fraction correct in the bin (0 if empty)


def reliability(probs, labels, bins: int = 15) -> Reliability:
    """Per confidence bin (as in :func:`ece`): the count, mean confidence and accuracy.

    ece = Σ_b counts_b/n · |accuracy_b − confidence_b|. Empty bins have confidence and
    accuracy 0. Raises as :func:`ece`.
    """
    p, y = _arguments(probs, labels)
    count = _int64(bins, "bins")
    size = max(count, 0)
    counts = np.zeros(size, dtype=np.int64)
    confidence = np.zeros(size, dtype=np.float64)
    accuracy_ = np.zeros(size, dtype=np.float64)
    _check(
        _lib.lib.bdl_metrics_reliability(
            _ptr(p), p.shape[0], p.shape[1], _labels_pointer(y), count,
            counts.ctypes.data_as(POINTER(c_int64)), _ptr(confidence), _ptr(accuracy_),
        )
    )
    return Reliability(counts, confidence, accuracy_)
