r"""Influence functions: which training examples moved a prediction, and by how much.

An :class:`Influence` owns one ``bdl_influence`` handle: a curvature G of the model's training
objective, fitted on the training set (X, y) at the model's current parameters θ* (train them
first, e.g. with :meth:`bdlcore.Sequential.fit`), and a copy of that training set. For a query
measurement m(θ; z_q) and a training example z_j its score is (Koh & Liang 2017, with a curvature
of choice)

    τ(z_q, z_j) = ∇_θ m(θ*; z_q)ᵀ (G + λI)⁻¹ ∇_θ ℓ(θ*; z_j),

ℓ the training loss of one example (the summed-NLL convention of :mod:`bdlcore.model`:
cross-entropy, or ½‖y − f‖² + const for regression at σ = 1), G the curvature as a SUM over the N
training examples (DESIGN conventions, as :class:`~bdlcore.KFAC` etc. fit it) and λ ≥ 0 the
damping.

Sign. For the summed objective Σ_j ℓ_j + ½ θᵀP0θ, whose Hessian G + P0 is modelled by G + λI,
removing a set S of training examples changes the measurement to first order by

    m(θ*_{−S}; z_q) − m(θ*; z_q) ≈ + Σ_{j∈S} τ(z_q, z_j).

A positive score means the example pushed m down while training: for a loss measurement it
*helped* the query (removing it raises the query's loss); a negative score means it *harmed* it.

Curvatures (``curvature=``): ``"ekfac"`` (EK-FAC, the default: K-FAC's eigenbases with refit
eigenvalues Λ_ij, inverted as 1/(Λ_ij + λ)), ``"kfac"`` (K-FAC, 1/(β_i α_j + λ)), ``"diag"`` (the
exact GGN diagonal), ``"ggn"`` (the dense GGN, small models) and ``"identity"`` (G + λI replaced by
I: plain gradient dot products, TracIn-style; the damping is unused). ``fisher=`` and ``approx=``
select the curvature's output vectors and the K-FAC variant exactly as in :mod:`bdlcore.curvature`.

Damping. With ``relative_damping=True`` (the default) λ is scale-free: on each parameter tensor t
(W₀, b₀, W₁, b₁, … in θ order)

    λ_t = damping × tr(G_t)/n_t,

``damping`` times the mean eigenvalue of G's block on that tensor (for K-FAC the mean of β_i α_j,
for EK-FAC of Λ_ij, for the GGN and its diagonal the mean diagonal entry) — as kronfluence's
heuristic damping, but per parameter tensor. With ``relative_damping=False``, λ = ``damping`` for
every parameter; ``damping=0`` then needs a non-singular G.

Measurements (``measurement=``), defined by their output cotangent ∂m/∂f (so
∇_θ m = J(x_q)ᵀ ∂m/∂f):

* ``"loss"``: the query's loss at its label: ∂m/∂f = p − e_y (classification), f − y (regression);
* ``"logprob"``: log p(y_q | x_q) = −loss (classification), so its scores are the loss's negated;
* ``"margin"``: f_y − max_{c≠y} f_c (classification): ∂m/∂f = e_y − e_{c*};
* ``"cotangent"`` (:meth:`Influence.scores` only): any function of the outputs, given by its
  cotangent ∂m/∂f per query, shape (n_query, C); as a value, the linear functional ⟨v_q, f⟩.

Comparing with kronfluence: it averages its factors over the N examples where bdlcore sums, and
appends each Linear bias to the layer input (one block over [W | b]) where bdlcore keeps a
separate bias block B. On a bias-free model therefore, exactly,

    kronfluence score at damping_factor d = N × τ at absolute λ = N·d

(``relative_damping=False, damping=N*d``; same Fisher variant). With biases the curvatures differ
and only the rankings agree closely.

Example::

    import bdlcore
    X, y, X_test, y_test = bdlcore.datasets.load_digits()
    with bdlcore.Sequential([bdlcore.Linear(64, 32), bdlcore.ReLU(), bdlcore.Linear(32, 10)]) as net:
        net.fit(X / 16, y, epochs=20)
        with bdlcore.Influence(net, X / 16, y) as influence:           # EK-FAC, λ = 0.1 × mean eigenvalue
            tau = influence.scores(X_test[:5] / 16, y_test[:5])        # (5, N)
            helpful, harmful = influence.top_k(X_test[:5] / 16, y_test[:5], k=10)
            suspicious = bdlcore.influence.top_k(influence.self_influence(), 20)[0]

:mod:`bdlcore.evaluation` checks scores against actual retraining (the linear datamodeling score
and retraining without the top-k examples).
"""

from __future__ import annotations

from ctypes import POINTER, byref, c_int32, c_int64, c_void_p
from typing import Optional, Tuple

import numpy as np

from . import _lib
from ._errors import InvalidArgumentError, ShapeMismatchError, UnsupportedError, _check
from ._handle import _OwnedHandle
from ._progress import call_with_progress as _call_with_progress
from .curvature import _APPROXIMATIONS, _FISHERS
from .laplace import _bool_flag
from .model import _LIKELIHOODS, Sequential, _choice, _float, _int64, _seed

__all__ = ["Influence", "top_k"]

_ptr = _lib.as_pointer

_CURVATURES = {
    "ekfac": _lib.BDL_INFLUENCE_EKFAC,
    "kfac": _lib.BDL_INFLUENCE_KFAC,
    "diag": _lib.BDL_INFLUENCE_DIAG,
    "ggn": _lib.BDL_INFLUENCE_GGN,
    "identity": _lib.BDL_INFLUENCE_IDENTITY,
}
_CURVATURE_NAMES = {code: name for name, code in _CURVATURES.items()}
#: The measurements a constructor may set as its default.
_MEASUREMENTS = {"loss": _lib.BDL_MEASURE_LOSS, "logprob": _lib.BDL_MEASURE_LOG_PROB, "margin": _lib.BDL_MEASURE_MARGIN}
#: Every measurement, including the per-call ``"cotangent"``.
_ALL_MEASUREMENTS = dict(_MEASUREMENTS, cotangent=_lib.BDL_MEASURE_COTANGENT)
_MEASUREMENT_NAMES = {code: name for name, code in _ALL_MEASUREMENTS.items()}
_LIKELIHOOD_NAMES = {code: name for name, code in _LIKELIHOODS.items()}


# ---------------------------------------------------------------------------------------------
# Progress of a pass over the data (shared with bdlcore.evaluation)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Argument conversion (shared with bdlcore.evaluation)
# ---------------------------------------------------------------------------------------------


def _measurement(measurement, cotangents, default: int) -> int:
    """The BDL_MEASURE_* code of a per-call ``measurement`` (None: ``default``, or "cotangent"
    when cotangents are given)."""
    if measurement is None:
        if cotangents is not None:
            return _lib.BDL_MEASURE_COTANGENT
        return default
    code = _choice(measurement, _ALL_MEASUREMENTS, "measurement")
    if code == _lib.BDL_MEASURE_COTANGENT and cotangents is None:
        raise InvalidArgumentError("measurement='cotangent' needs cotangents=, the ∂m/∂f of each query, shape (n_query, C)")
    if code != _lib.BDL_MEASURE_COTANGENT and cotangents is not None:
        raise InvalidArgumentError(f"cotangents are used only with measurement='cotangent', not {measurement!r}")
    return code


def _queries(model: Sequential, X_query, y_query, code: int, cotangents, likelihood: int):
    """(X, n, y or None, cotangents or None) as C-contiguous float64, shapes checked here
    (the library reads n·C cotangents and n targets through bare pointers)."""
    X, n = model._inputs(X_query)
    y = None if y_query is None else model._targets(y_query, n, likelihood)
    if y is None and code != _lib.BDL_MEASURE_COTANGENT:
        raise InvalidArgumentError(
            f"y_query: the {_MEASUREMENT_NAMES[code]!r} measurement needs the queries' labels or targets"
        )
    V = None
    if code == _lib.BDL_MEASURE_COTANGENT:
        V = np.ascontiguousarray(cotangents, dtype=np.float64)
        C = model.num_outputs
        if V.shape != (n, C):
            raise ShapeMismatchError(f"cotangents: expected shape (n_query, C) = ({n}, {C}), got shape {V.shape}")
    return X, n, y, V


def _optional_ptr(array: Optional[np.ndarray]):
    return None if array is None else _ptr(array)


def _require_model(model) -> Sequential:
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a bdlcore.Sequential, got {type(model).__name__}")
    return model


# ---------------------------------------------------------------------------------------------
# From statistics captured elsewhere
# ---------------------------------------------------------------------------------------------


def _layer_data(statistics, what: str):
    """(bdl_layer_data array, the arrays it points into, n) from [(a, g), …] per layer."""
    entries, keep, n = [], [], None
    for i, pair in enumerate(statistics):
        a, g = (np.ascontiguousarray(x, dtype=np.float64) for x in pair)
        if a.ndim == 2:
            a = a[:, None, :]
        if g.ndim == 2:
            g = g[:, None, :]
        if g.ndim == 4:
            if g.shape[1] != 1:
                raise ShapeMismatchError(f"{what}[{i}]: g has {g.shape[1]} vectors per example; influence needs one")
            g = g[:, 0]
        if a.ndim != 3 or g.ndim != 3 or a.shape[:2] != g.shape[:2]:
            raise ShapeMismatchError(
                f"{what}[{i}]: a {np.shape(pair[0])} and g {np.shape(pair[1])}; expected (n, [R,] d_in) and (n, [1,] [R,] d_out)"
            )
        if n is not None and a.shape[0] != n:
            raise ShapeMismatchError(f"{what}: layer {i} has {a.shape[0]} examples, layer 0 has {n}")
        n = a.shape[0]
        a, g = np.ascontiguousarray(a), np.ascontiguousarray(g)
        keep += [a, g]
        entries.append(_lib.bdl_layer_data(_ptr(a), _ptr(g), a.shape[1]))
    if not entries:
        raise ShapeMismatchError(f"{what}: no layers")
    return (_lib.bdl_layer_data * len(entries))(*entries), keep, n


def scores_from_statistics(curvature, query_statistics, train_statistics, damping: float = 0.1,
                           relative_damping: bool = True) -> np.ndarray:
    r"""τ(z_q, z_j) for a model that lives elsewhere (e.g. PyTorch), from captured statistics.

    ``curvature`` is a :class:`~bdlcore.KFAC` or :class:`~bdlcore.EKFAC` (or a
    :class:`~bdlcore.KFACAccumulator` fed with the training statistics, finalized here) of the
    same layers. ``query_statistics`` and ``train_statistics`` hold, per layer in the curvature's
    order, a pair (a, g): a (n, R, d_in) the layer inputs and g (n, R, d_out) the output-gradients —
    of the query measurement (e.g. the loss at the query's label) for the queries, of the loss for
    training examples (R may be omitted for plain dense layers). Damping as :class:`Influence`.
    Returns (n_query, n_train); call once per batch of training examples for more columns. The
    same definition and sign as :class:`Influence`.

    Raises:
        WrongStateError: the curvature has no Kronecker factors (DiagGGN, GGN).
        ShapeMismatchError: layer counts, widths or example counts disagree.
    """
    from .curvature import KFAC, KFACAccumulator, _KroneckerCurvature

    if isinstance(curvature, KFACAccumulator):
        with KFAC._from_handle(curvature._finalize_handle()) as finalised:
            return scores_from_statistics(finalised, query_statistics, train_statistics, damping, relative_damping)
    if not isinstance(curvature, _KroneckerCurvature):
        raise TypeError(f"curvature: expected a bdlcore KFAC, EKFAC or KFACAccumulator, got {type(curvature).__name__}")
    query_list, train_list = list(query_statistics), list(train_statistics)
    if len(query_list) != len(train_list):
        raise ShapeMismatchError(f"{len(query_list)} query and {len(train_list)} training layers")
    queries, keep_q, nq = _layer_data(query_list, "query_statistics")
    train, keep_t, nt = _layer_data(train_list, "train_statistics")
    out = np.empty((nq, nt), dtype=np.float64)
    with curvature._use() as handle:
        _check(_lib.lib.bdl_influence_scores_from_statistics(
            handle, _float(damping, "damping"), _bool_flag(relative_damping, "relative_damping"), len(query_list),
            queries, nq, train, nt,
            _ptr(out), out.size))
    del keep_q, keep_t
    return out


# ---------------------------------------------------------------------------------------------
# Top-k
# ---------------------------------------------------------------------------------------------


def top_k(scores, k: int) -> Tuple[np.ndarray, np.ndarray]:
    r"""Per row of ``scores``, the column indices of the k largest and of the k smallest scores.

    Returns ``(helpful, harmful)``, int64 arrays of shape (n_rows, k): ``helpful[q]`` lists the
    k training examples with the largest τ(z_q, ·) in decreasing order (for a loss measurement:
    removing them raises the query's loss most), ``harmful[q]`` the k smallest in increasing
    order. Equal scores are ordered by the lower index. A 1-D ``scores`` (e.g.
    :meth:`Influence.self_influence`) is one row and gives arrays of shape (k,).

    Raises:
        ShapeMismatchError: scores is not 1-D or 2-D.
        InvalidArgumentError: k is not an integer in [1, n_cols].
        NonFiniteInputError: NaN/Inf among the scores.
    """
    S = np.ascontiguousarray(scores, dtype=np.float64)
    flat = S.ndim == 1
    if flat:
        S = S.reshape(1, -1)
    if S.ndim != 2:
        raise ShapeMismatchError(f"scores: expected shape (n_rows, n_cols) or (n_cols,), got shape {np.shape(scores)}")
    count = _int64(k, "k")
    rows, columns = S.shape
    if not 1 <= count <= columns:
        raise InvalidArgumentError(f"k = {count}; it must be in 1…{columns} (the number of columns, e.g. n_train)")
    helpful = np.empty((rows, count), dtype=np.int64)
    harmful = np.empty((rows, count), dtype=np.int64)
    _check(
        _lib.lib.bdl_influence_top_k(
            _ptr(S), rows, columns, count,
            helpful.ctypes.data_as(POINTER(c_int64)), harmful.ctypes.data_as(POINTER(c_int64)),
        )
    )
    return (helpful[0], harmful[0]) if flat else (helpful, harmful)


# ---------------------------------------------------------------------------------------------
# The influence object
# ---------------------------------------------------------------------------------------------


class Influence(_OwnedHandle):
    r"""Influence scores τ(z_q, z_j) = ∇m(θ*; z_q)ᵀ (G + λI)⁻¹ ∇ℓ(θ*; z_j) of a trained network.

    Fits G on (X_train, y_train) at the model's current θ* when constructed (one pass over the
    data; EK-FAC makes a second) and keeps a copy of the training set, over which
    :meth:`scores` and :meth:`self_influence` run. Queries are preconditioned once,
    (G + λI)⁻¹∇m_q, exactly through the curvature's factorisation; training gradients are formed
    batch by batch and never stored. See the module docstring for the sign (positive = helpful
    for a loss), the damping and the mapping to kronfluence.

    The model is kept: scoring uses its parameters at the time of the call, which must still be
    θ* (the library checks only the parameter count). Release the object with :meth:`close` or
    a ``with`` block; otherwise it is released when garbage collected, exactly once. Calls on
    one object are serialised; the model cannot be used from inside a progress callback.

    Args:
        model: the :class:`~bdlcore.Sequential` at θ* (trained).
        X_train: (N, *input_shape).
        y_train: classification: N integer labels in [0, C); regression: (N, C) targets.
        likelihood: ``"classification"`` (cross-entropy) or ``"regression"`` (Gaussian, σ = 1).
        curvature: ``"ekfac"``, ``"kfac"``, ``"diag"``, ``"ggn"`` or ``"identity"``.
        fisher: the curvature's output vectors: ``"exact"`` (the GGN), ``"mc"``
            (``mc_samples`` sampled labels per example, seeded by ``seed``) or ``"empirical"``.
        damping: λ ≥ 0, relative or absolute (``relative_damping``); default 0.1 (relative).
        relative_damping: True: λ_t = damping × the mean eigenvalue of G on each parameter
            tensor t (scale-free); False: λ = damping for every parameter.
        measurement: the default measurement of :meth:`scores` and :meth:`top_k`: ``"loss"``,
            ``"logprob"`` or ``"margin"`` (the last two for classification).
        approx: K-FAC for layers applied at several positions: ``"expand"`` or ``"reduce"``.
        batch_size: examples per forward/backward pass (memory only).
        progress: None — a one-line bar on stderr when it is a terminal, silent otherwise;
            False — silent; True — always the bar; a callable — ``progress(done, total)``
            (examples) after each batch of the curvature's pass. An exception it raises is
            re-raised once the pass has finished, and no object is made.
        mc_samples: labels sampled per example for ``fisher="mc"``, ≥ 1.
        seed: seeds the Monte-Carlo labels of ``fisher="mc"``.

    Raises:
        TypeError: ``model`` is not a Sequential.
        ShapeMismatchError: X_train or y_train has the wrong shape.
        InvalidArgumentError: an unknown option, damping < 0, a label outside [0, C), N = 0,
            batch_size or mc_samples < 1.
        UnsupportedError: ``"logprob"`` or ``"margin"`` for regression.
        NonFiniteInputError: NaN/Inf in X_train, y_train or damping.
        NotPositiveDefiniteError: λ = 0 with a singular curvature.
        OutOfMemoryError: the dense GGN of a large model.
    """

    _owner_name = "Influence"

    def __init__(
        self,
        model: Sequential,
        X_train,
        y_train,
        likelihood: str = "classification",
        curvature: str = "ekfac",
        fisher: str = "exact",
        damping: float = 0.1,
        relative_damping: bool = True,
        measurement: str = "loss",
        approx: str = "expand",
        batch_size: int = 256,
        progress=None,
        mc_samples: int = 1,
        seed: int = 0,
    ):
        super().__init__()
        self._model = _require_model(model)
        params = _lib.bdl_influence_params()
        _check(_lib.lib.bdl_influence_params_init(byref(params)))
        params.likelihood = _choice(likelihood, _LIKELIHOODS, "likelihood")
        params.curvature = _choice(curvature, _CURVATURES, "curvature")
        params.fisher = _choice(fisher, _FISHERS, "fisher")
        params.approximation = _choice(approx, _APPROXIMATIONS, "approx")
        params.relative_damping = _bool_flag(relative_damping, "relative_damping")
        params.damping = _float(damping, "damping")
        params.mc_samples = _int64(mc_samples, "mc_samples")
        params.seed = _seed(seed)
        params.batch_size = _int64(batch_size, "batch_size")
        self._measurement = _choice(measurement, _MEASUREMENTS, "measurement")
        if params.likelihood == _lib.BDL_LIKELIHOOD_REGRESSION and self._measurement != _lib.BDL_MEASURE_LOSS:
            raise UnsupportedError(
                f"measurement={measurement!r} is a classification measurement; use 'loss' (or a cotangent in scores())"
            )
        self._likelihood = params.likelihood
        X, n = model._inputs(X_train)
        y = model._targets(y_train, n, self._likelihood)
        handle = c_void_p()
        with model._use() as model_handle:
            failure = _call_with_progress(
                progress, "Influence fit",
                lambda callback: _lib.lib.bdl_influence_fit(
                    model_handle, _ptr(X), n, _ptr(y), byref(params), callback, None, byref(handle)
                ),
            )
        if failure is not None:
            _lib.lib.bdl_influence_free(handle.value)
            raise failure
        self._adopt(handle.value, _lib.lib.bdl_influence_free)
        kind, n_train, P = c_int32(), c_int64(), c_int64()
        _check(_lib.lib.bdl_influence_info(self._handle, byref(kind), byref(n_train), byref(P)))
        self._curvature, self._n_train, self._P = kind.value, n_train.value, P.value
        self._damping, self._relative = float(params.damping), bool(params.relative_damping)

    def __repr__(self) -> str:
        if self._handle is None:
            return "<Influence (closed)>"
        damping = f"{self._damping:g}" + (" (relative)" if self._relative else "")
        return (
            f"<Influence curvature={self.curvature!r} likelihood={self.likelihood!r} measurement={self.measurement!r} "
            f"damping={damping} n_train={self._n_train} n_params={self._P}>"
        )

    # -- description ----------------------------------------------------------------------------

    @property
    def n_train(self) -> int:
        """N, the number of training examples (columns of :meth:`scores`)."""
        self._live()
        return self._n_train

    @property
    def num_parameters(self) -> int:
        """P, the parameter count of the model it was fitted to."""
        self._live()
        return self._P

    @property
    def curvature(self) -> str:
        """``"ekfac"``, ``"kfac"``, ``"diag"``, ``"ggn"`` or ``"identity"``."""
        self._live()
        return _CURVATURE_NAMES[self._curvature]

    @property
    def likelihood(self) -> str:
        """``"classification"`` or ``"regression"``."""
        return _LIKELIHOOD_NAMES[self._likelihood]

    @property
    def measurement(self) -> str:
        """The default measurement of :meth:`scores` and :meth:`top_k`."""
        return _MEASUREMENT_NAMES[self._measurement]

    @property
    def model(self) -> Sequential:
        """The network the scores are taken at."""
        return self._model

    # -- scores ---------------------------------------------------------------------------------

    def _model_for(self, model: Optional[Sequential]) -> Sequential:
        return self._model if model is None else _require_model(model)

    def scores(
        self,
        X_query,
        y_query=None,
        measurement: Optional[str] = None,
        cotangents=None,
        progress=None,
        *,
        model: Optional[Sequential] = None,
    ) -> np.ndarray:
        r"""τ(z_q, z_j) for every query (row q) and training example (column j): (n_query, n_train).

        Args:
            X_query: (n_query, *input_shape).
            y_query: the queries' labels (classification) or (n_query, C) targets; needed
                except for ``"cotangent"``.
            measurement: ``"loss"``, ``"logprob"``, ``"margin"`` or ``"cotangent"``; None: the
                constructor's, or ``"cotangent"`` when ``cotangents`` is given.
            cotangents: ∂m/∂f per query, (n_query, C), for ``"cotangent"`` only.
            progress: as the constructor's, following the batches of training examples.
            model: score at another network's parameters (the same layout; default: the
                constructor's).

        Raises:
            ShapeMismatchError: X_query, y_query or cotangents has the wrong shape; a model of
                another size.
            InvalidArgumentError: y_query missing, an unknown measurement, cotangents with
                another measurement, a label outside [0, C).
            UnsupportedError: ``"logprob"`` or ``"margin"`` for regression.
            NonFiniteInputError: NaN/Inf in the queries or cotangents.
            WrongStateError: this object or the model is closed.
        """
        model = self._model_for(model)
        code = _measurement(measurement, cotangents, self._measurement)
        X, n, y, V = _queries(model, X_query, y_query, code, cotangents, self._likelihood)
        out = np.empty((n, self.n_train), dtype=np.float64)
        with self._use() as handle, model._use() as model_handle:
            failure = _call_with_progress(
                progress, "Influence scores",
                lambda callback: _lib.lib.bdl_influence_scores(
                    handle, model_handle, _ptr(X), n, _optional_ptr(y), code, _optional_ptr(V), callback, None,
                    _ptr(out), out.size,
                ),
            )
        if failure is not None:
            raise failure
        return out

    @property
    def damping(self) -> np.ndarray:
        """λ per parameter (num_parameters,): the value given, or with relative damping r × the
        mean eigenvalue of G on each parameter tensor."""
        out = np.empty(self.num_parameters, dtype=np.float64)
        with self._use() as handle:
            _check(_lib.lib.bdl_influence_damping(handle, _ptr(out), out.size))
        return out

    def self_influence(self, *, model: Optional[Sequential] = None, progress=None) -> np.ndarray:
        r"""τ(z_j, z_j) = ∇ℓ_jᵀ (G + λI)⁻¹ ∇ℓ_j for every training example (loss measurement), (n_train,).

        Large values flag examples the model fits only by bending towards them (often
        mislabelled ones). For the diagonal and Kronecker curvatures it is computed from layer
        statistics in each block's eigenbasis, without forming per-example gradients; it equals
        the diagonal of ``scores(X_train, y_train, "loss")``. ``progress`` as for :meth:`scores`.

        Raises:
            ShapeMismatchError: a model of another size.
            WrongStateError: this object or the model is closed.
        """
        model = self._model_for(model)
        out = np.empty(self.n_train, dtype=np.float64)
        with self._use() as handle, model._use() as model_handle:
            failure = _call_with_progress(
                progress, "Self-influence",
                lambda callback: _lib.lib.bdl_influence_self(handle, model_handle, callback, None, _ptr(out), out.size),
            )
        if failure is not None:
            raise failure
        return out

    def top_k(
        self,
        X_query,
        y_query,
        k: int,
        *,
        measurement: Optional[str] = None,
        cotangents=None,
        model: Optional[Sequential] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        r"""The k most helpful and k most harmful training examples of each query.

        :meth:`scores`, then :func:`top_k`: ``(helpful, harmful)``, int64 arrays (n_query, k) of
        training-set indices, ``helpful`` by decreasing τ (for a loss: removing them raises the
        query's loss most), ``harmful`` by increasing τ; ties go to the lower index.

        Raises:
            InvalidArgumentError: k not in [1, n_train]; as :meth:`scores`.
        """
        count = _int64(k, "k")
        if not 1 <= count <= self.n_train:
            raise InvalidArgumentError(f"k = {count}; it must be in 1…{self.n_train} (the training set size)")
        return top_k(self.scores(X_query, y_query, measurement, cotangents, progress=False, model=model), count)
