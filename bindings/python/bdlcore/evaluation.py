r"""How well influence scores predict what retraining actually does.

Both evaluations retrain copies of ``model`` — the network itself is left unchanged — starting
from its CURRENT parameters: those are the common initialisation of every retraining, so pass
the network as it was before training (e.g. a fresh :class:`~bdlcore.Sequential` with the
training run's seed), not the trained one the scores were computed at. Each retraining runs
:meth:`~bdlcore.Sequential.fit` with the given options (same names and defaults) on a subset of
(X_train, y_train). The measurement after retraining is the value of the scores' measurement m:
the query's loss, log-probability, margin, or ⟨v_q, f(x_q)⟩ for a cotangent v_q.

* :func:`lds`, the linear datamodeling score (Park et al. 2023, TRAK; dattri's protocol):
  ``subsets`` random subsets S_m of ⌊fraction·N⌋ training examples, a model retrained on each,
  and per query the Spearman correlation over m between the measurement m_q(θ_{S_m}) and the
  prediction from the scores. With bdlcore's sign (τ is the first-order change of m when an
  example is removed) the prediction for training on S is Σ_{j∉S} τ(z_q, z_j) (up to a constant).
  Values lie in [−1, 1]; higher is better.
* :func:`retrain_without_top_k`: per query, the change of its measurement when its k most
  helpful training examples (largest τ) are removed and the model retrained, against removing k
  random examples — both relative to retraining on all examples from the same start. For a loss
  measurement good scores give ``without_top_k`` clearly above ``without_random``.

Example (X, y, X_q, y_q a small classification problem with 4 features)::

    import bdlcore
    layers = [bdlcore.Linear(4, 2)]
    with bdlcore.Sequential(layers, seed=1) as init, bdlcore.Sequential(layers, seed=1) as net:
        options = dict(epochs=300, lr=0.05, batch_size=len(X), prior_precision=1.0)
        net.fit(X, y, **options)
        with bdlcore.Influence(net, X, y, curvature="ggn", damping=1.0, relative_damping=False) as inf:
            tau = inf.scores(X_q, y_q)
        result = bdlcore.evaluation.lds(init, X, y, X_q, y_q, tau, subsets=50, **options)
        result.mean
"""

from __future__ import annotations

from ctypes import POINTER, byref, c_double, c_uint64
from typing import NamedTuple, Sequence, Union

import numpy as np

from . import _lib
from ._errors import ShapeMismatchError
from .influence import _call_with_progress, _optional_ptr, _queries, _require_model
from .model import _LIKELIHOODS, Sequential, _choice, _float, _int64, _seed, _train_params

__all__ = ["lds", "retrain_without_top_k", "LinearDatamodelingScore", "RetrainingWithoutTopK"]

_ptr = _lib.as_pointer
_MEASUREMENTS = {
    "loss": _lib.BDL_MEASURE_LOSS,
    "logprob": _lib.BDL_MEASURE_LOG_PROB,
    "margin": _lib.BDL_MEASURE_MARGIN,
    "cotangent": _lib.BDL_MEASURE_COTANGENT,
}


class LinearDatamodelingScore(NamedTuple):
    """The outcome of :func:`lds`."""

    #: Spearman ρ per query, (n_query,); NaN where either side is constant over the subsets.
    per_query: np.ndarray
    #: The mean over the queries with a defined ρ (NaN if none).
    mean: float
    #: Each subset's seed (its choice and its training shuffles), (subsets,) uint64.
    subset_seeds: np.ndarray


class RetrainingWithoutTopK(NamedTuple):
    """The outcome of :func:`retrain_without_top_k`: per query, m after retraining minus m after
    retraining on all examples."""

    #: Without the query's k most helpful examples (largest scores), (n_query,).
    without_top_k: np.ndarray
    #: Without k random examples (drawn anew for each query), (n_query,).
    without_random: np.ndarray


def _arguments(model, X_train, y_train, X_query, y_query, scores, measurement, cotangents, likelihood):
    """The converted, shape-checked arrays of both evaluations."""
    model = _require_model(model)
    code = _choice(measurement, _MEASUREMENTS, "measurement")
    likelihood_code = _choice(likelihood, _LIKELIHOODS, "likelihood")
    X, n = model._inputs(X_train)
    y = model._targets(y_train, n, likelihood_code)
    Xq, nq, yq, V = _queries(model, X_query, y_query, code, cotangents, likelihood_code)
    S = np.ascontiguousarray(scores, dtype=np.float64)
    if S.shape != (nq, n):
        raise ShapeMismatchError(f"scores: expected shape (n_query, n_train) = ({nq}, {n}), got shape {S.shape}")
    return model, code, X, n, y, Xq, nq, yq, V, S


def lds(
    model: Sequential,
    X_train,
    y_train,
    X_query,
    y_query,
    scores,
    subsets: int = 100,
    fraction: float = 0.5,
    seed: int = 0,
    *,
    measurement: str = "loss",
    cotangents=None,
    likelihood: str = "classification",
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 32,
    prior_precision: Union[float, Sequence[float]] = 0.0,
    optimizer: str = "adam",
    schedule: str = "constant",
    momentum: float = 0.9,
    sigma: float = 1.0,
    progress=None,
) -> LinearDatamodelingScore:
    r"""The linear datamodeling score of ``scores`` (n_query, n_train).

    For m = 1 … ``subsets``: a subset S_m of ⌊fraction·N⌋ training examples and a copy of
    ``model`` retrained on it from the model's current parameters (the common initialisation),
    its shuffling seeded by the subset's own seed (subset seeds are drawn from ``seed``). Per
    query q, ρ_q = Spearman(m_q(θ_{S_m}), Σ_{j∉S_m} τ(z_q, z_j)) over m. Defaults as dattri:
    100 subsets of half the data. Reproducible from ``seed``.

    Args:
        model: the network at the initialisation of the retrainings (not modified).
        X_train, y_train: the training set the scores' columns refer to.
        X_query, y_query: the queries (y_query may be None for ``"cotangent"``).
        scores: (n_query, n_train), e.g. :meth:`bdlcore.Influence.scores`.
        subsets: M ≥ 2.
        fraction: α in (0, 1).
        seed: draws the subsets and their training seeds.
        measurement: the scores' measurement: ``"loss"``, ``"logprob"``, ``"margin"`` or
            ``"cotangent"`` (then ``cotangents`` (n_query, C) is needed).
        likelihood, epochs, lr, batch_size, prior_precision, optimizer, schedule, momentum,
            sigma: the retraining, as :meth:`bdlcore.Sequential.fit` (the likelihood is also the
            task's for the measurement).
        progress: None — a bar on stderr when it is a terminal; False; True; or a callable
            ``progress(done, subsets)`` after each retraining. An exception it raises is
            re-raised when the evaluation has finished.

    Returns:
        A :class:`LinearDatamodelingScore` (``per_query``, ``mean``).

    Raises:
        ShapeMismatchError: an array of the wrong shape (scores must be (n_query, n_train)).
        InvalidArgumentError: subsets < 2, fraction outside (0, 1) or keeping no example, a bad
            training option or label, y_query missing.
        NotConvergedError: a retraining diverged.
    """
    model, code, X, n, y, Xq, nq, yq, V, S = _arguments(
        model, X_train, y_train, X_query, y_query, scores, measurement, cotangents, likelihood
    )
    params, keep = _train_params(
        likelihood, optimizer, lr, epochs, batch_size, prior_precision, seed, schedule, momentum, sigma
    )
    count = _int64(subsets, "subsets")
    alpha = _float(fraction, "fraction")
    per_query = np.empty(nq, dtype=np.float64)
    seeds = np.empty(count, dtype=np.uint64)
    mean = c_double()
    with model._use() as model_handle:
        failure = _call_with_progress(
            progress, "LDS retraining",
            lambda callback: _lib.lib.bdl_evaluation_lds(
                model_handle, _ptr(X), n, _ptr(y), _ptr(Xq), nq, _optional_ptr(yq), code, _optional_ptr(V), _ptr(S),
                count, alpha, byref(params), _seed(seed), callback, None, _ptr(per_query), byref(mean),
                seeds.ctypes.data_as(POINTER(c_uint64)),
            ),
        )
    del keep
    if failure is not None:
        raise failure
    return LinearDatamodelingScore(per_query, mean.value, seeds)


def retrain_without_top_k(
    model: Sequential,
    X_train,
    y_train,
    X_query,
    y_query,
    scores,
    k: int,
    seed: int = 0,
    *,
    measurement: str = "loss",
    cotangents=None,
    likelihood: str = "classification",
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 32,
    prior_precision: Union[float, Sequence[float]] = 0.0,
    optimizer: str = "adam",
    schedule: str = "constant",
    momentum: float = 0.9,
    sigma: float = 1.0,
    progress=None,
) -> RetrainingWithoutTopK:
    r"""Retraining without each query's k most helpful examples, against k random ones.

    From the model's current parameters (the common initialisation; the model is not modified):
    one retraining on all N examples, then per query one without its top-k examples by
    ``scores`` (largest τ, ties to the lower index) and one without k examples drawn at random.
    Returns the measurement's changes relative to the all-data retraining. 1 + 2·n_query
    retrainings.

    Args:
        k: 1 ≤ k < N.
        seed: seeds the random removals and every retraining's minibatch shuffling.
        progress: follows the queries (as for :func:`lds`).
        The others as :func:`lds`.

    Returns:
        A :class:`RetrainingWithoutTopK` (``without_top_k``, ``without_random``), unpackable as a
        pair.

    Raises:
        As :func:`lds`; InvalidArgumentError for k outside [1, N).
    """
    model, code, X, n, y, Xq, nq, yq, V, S = _arguments(
        model, X_train, y_train, X_query, y_query, scores, measurement, cotangents, likelihood
    )
    params, keep = _train_params(
        likelihood, optimizer, lr, epochs, batch_size, prior_precision, seed, schedule, momentum, sigma
    )
    count = _int64(k, "k")
    without_top = np.empty(nq, dtype=np.float64)
    without_random = np.empty(nq, dtype=np.float64)
    with model._use() as model_handle:
        failure = _call_with_progress(
            progress, "Retraining without top-k",
            lambda callback: _lib.lib.bdl_evaluation_retrain_without_top_k(
                model_handle, _ptr(X), n, _ptr(y), _ptr(Xq), nq, _optional_ptr(yq), code, _optional_ptr(V), _ptr(S),
                count, byref(params), _seed(seed), callback, None, _ptr(without_top), _ptr(without_random),
            ),
        )
    del keep
    if failure is not None:
        raise failure
    return RetrainingWithoutTopK(without_top, without_random)
