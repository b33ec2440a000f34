r"""Curvature of a network: the GGN, its exact diagonal, K-FAC and EK-FAC, as linear operators.

Every object here owns one ``bdl_curvature`` handle holding a curvature G of a
:class:`~bdlcore.Sequential` fitted on (X, y), and answers queries about

    M = scale · G + damping · I        (P × P, in the model's parameter-vector order),

with ``scale`` the likelihood weight h (1/σ² for Gaussian regression, 1/T with a temperature) and
``damping`` δ (e.g. a prior precision). Fitting never applies h: G is accumulated at σ = 1 and
temperature 1 as a SUM over the data,

    G = Σ_n J_nᵀ Λ_n J_n,   J_n = ∂f(x_n)/∂θ,   Λ = ∂²(−log p)/∂f²,

Λ = I for Gaussian regression (the GGN of ½·Σ‖y − f‖²) and Λ = diag(p) − p pᵀ, p = softmax(f),
for classification. Its square root S (S Sᵀ = Λ) has columns s_k = √p_k (e_k − p) for
classification and is I for regression.

The ``fisher`` option says which output vectors s_{n,k} stand in for S:

* ``"exact"``: the C columns of S — the GGN itself ("type-2" in curvlinops);
* ``"mc"``: ``mc_samples`` labels per example drawn from the model's predictive (seeded by
  ``seed``), each the loss gradient at the sampled label, averaged over the samples;
* ``"empirical"``: one vector, the loss gradient at the observed label (p − onehot(y), or
  f − y for regression) — the empirical Fisher.

Structures:

* :class:`GGN` — the dense P × P matrix (small models).
* :class:`DiagGGN` — diag(G) = Σ_{n,k} (∂⟨f(x_n), s_{n,k}⟩/∂θ)², the exact GGN diagonal with
  ``fisher="exact"`` (what laplace-torch's "diag" Laplace uses).
* :class:`KFAC` — block diagonal, one block per weight and one per bias. For a layer
  y_r = W a_r + b applied at R positions per example (R = 1 for a dense layer, T for a Linear on
  sequences, H_out·W_out im2col patches for Conv2d), with inputs a_{n,r} and backpropagated
  output vectors g_{n,k,r}:

  - ``approx="expand"``: A = (1/(N·R)) Σ_{n,r} a aᵀ,  B = Σ_{n,k,r} g gᵀ;
  - ``approx="reduce"``: â_n = (1/R) Σ_r a_{n,r},  ĝ_{n,k} = Σ_r g_{n,k,r};
    A = (1/N) Σ_n â âᵀ,  B = Σ_{n,k} ĝ ĝᵀ.

  B is a SUM (the output-gradient factor), A a MEAN (the input factor); with ``fisher="mc"`` B is
  divided by the number of samples. The weight block is B ⊗ A on the row-major vec of
  W (d_out × d_in): (B ⊗ A) vec(W) = vec(B W Aᵀ). The bias has its own block B ⊗ [1] = B (A
  never has a bias 1 appended), as in laplace-torch and curvlinops' default. For R = 1 (MLPs)
  expand and reduce coincide.
* :class:`EKFAC` — K-FAC's eigenbases A = Q_A diag(α) Q_Aᵀ, B = Q_B diag(β) Q_Bᵀ with the
  eigenvalues refitted to the per-example gradients (George et al. 2018):
  Λ_ij = Σ_{n,k} ((Q_Bᵀ ∇W_{n,k} Q_A)_ij)², the bias block keeping Q_B with
  Λ_i = Σ_{n,k} ((Q_Bᵀ ∇b_{n,k})_i)², ∇W_{n,k} = Σ_r g_{n,k,r} a_{n,r}ᵀ (curvlinops' rule).

All damped inverses and powers are exact through the eigendecompositions: per eigenvalue λ of a
block, (scale·λ + damping)^exponent (no π-damping), so
log det(h·B⊗A + δI) = Σ_ij log(h β_i α_j + δ).

Comparing with other libraries:

* curvlinops' ``KFACLinearOperator`` with ``CrossEntropyLoss(reduction='sum')`` has the same A
  and B. With ``MSELoss(reduction='sum')`` its loss is Σ‖f − y‖² = 2 × ours, so its exact
  (type-2) B is 2·B (and its empirical B is 4·B); laplace-torch multiplies those factors by ½,
  so its ``KronLaplace`` precision agrees with ours. ``reduction='mean'`` also divides B by N
  (classification) or N·C (regression).
* kronfluence averages over the N examples where we sum and appends the bias to the input:
  its influence score at damping d equals N × ours at damping N·d on a bias-free model.

Statistics captured elsewhere (e.g. with PyTorch hooks) go into a :class:`KFACAccumulator`,
which merges over data shards, saves to a versioned checksummed file and finalises into a
:class:`KFAC`.

Example::

    import bdlcore
    X, y, _, _ = bdlcore.datasets.load_digits()
    with bdlcore.Sequential([bdlcore.Linear(64, 32), bdlcore.ReLU(), bdlcore.Linear(32, 10)]) as net:
        net.fit(X / 16, y, epochs=5)
        with bdlcore.KFAC(net, X / 16, y) as G:
            logdet = G.logdet(scale=1.0, damping=1.0)   # log det(G + I)
            B, A = G.factors(0)                          # first Linear layer's factors
"""

from __future__ import annotations

import os
from ctypes import POINTER, byref, c_double, c_float, c_int32, c_int64, c_void_p
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from ._errors import InternalError, InvalidArgumentError, ShapeMismatchError, WrongStateError, _check
from ._handle import _OwnedHandle
from .model import _LIKELIHOODS, Sequential, _choice, _int64, _seed

__all__ = ["KFAC", "EKFAC", "DiagGGN", "GGN", "KFACAccumulator"]

_ptr = _lib.as_pointer

_FISHERS = {
    "exact": _lib.BDL_FISHER_EXACT,
    "mc": _lib.BDL_FISHER_MC,
    "empirical": _lib.BDL_FISHER_EMPIRICAL,
}
_APPROXIMATIONS = {"expand": _lib.BDL_KFAC_EXPAND, "reduce": _lib.BDL_KFAC_REDUCE}
_APPROXIMATION_NAMES = {code: name for name, code in _APPROXIMATIONS.items()}
_DAMPING_MODES = {
    "exact": _lib.BDL_KFAC_DAMPING_EXACT,
    "factored": _lib.BDL_KFAC_DAMPING_FACTORED,
    "pi": _lib.BDL_KFAC_DAMPING_PI,
}

PathLike = Union[str, "os.PathLike[str]"]


def _path_bytes(path, name: str = "path") -> bytes:
    """``path`` (str, bytes or os.PathLike) as the bytes the C library receives."""
    try:
        raw = os.fspath(path)
    except TypeError:
        raise TypeError(f"{name}: expected a str, bytes or os.PathLike, got {type(path).__name__}") from None
    encoded = os.fsencode(raw)
    if not encoded:
        raise InvalidArgumentError(f"{name}: the path is empty")
    if b"\0" in encoded:
        raise InvalidArgumentError(f"{name}: the path contains a NUL byte")
    return encoded


# ---------------------------------------------------------------------------------------------
# Curvature operators
# ---------------------------------------------------------------------------------------------


class _Curvature(_OwnedHandle):
    """Base of the curvature operators: one ``bdl_curvature`` handle and the queries on it."""

    #: The ``BDL_CURVATURE_*`` kind the subclass holds.
    _kind = 0

    def _fit(self, model, X, y, likelihood, fisher, approx, mc_samples, seed, batch_size) -> None:
        """Fits G on (X, y) through ``bdl_curvature_fit`` and adopts the new handle."""
        if not isinstance(model, Sequential):
            raise TypeError(f"model: expected a bdlcore.Sequential, got {type(model).__name__}")
        params = _lib.bdl_curvature_params()
        _check(_lib.lib.bdl_curvature_params_init(byref(params)))
        params.kind = self._kind
        params.likelihood = _choice(likelihood, _LIKELIHOODS, "likelihood")
        params.fisher = _choice(fisher, _FISHERS, "fisher")
        if approx is not None:
            params.approximation = _choice(approx, _APPROXIMATIONS, "approx")
        params.mc_samples = _int64(mc_samples, "mc_samples")
        params.seed = _seed(seed)
        params.batch_size = _int64(batch_size, "batch_size")
        X, n = model._inputs(X)
        y = model._targets(y, n, params.likelihood)
        handle = c_void_p()
        with model._use() as model_handle:
            _check(_lib.lib.bdl_curvature_fit(model_handle, _ptr(X), n, _ptr(y), byref(params), byref(handle)))
        self._take(handle.value)

    @classmethod
    def _from_handle(cls, handle: int):
        """A new object owning ``handle`` (a ``bdl_curvature*`` of this class's kind), e.g. from
        :meth:`KFACAccumulator.finalize`; no model is involved."""
        self = cls.__new__(cls)
        _OwnedHandle.__init__(self)
        self._take(handle)
        return self

    def _take(self, handle: int) -> None:
        """Adopts ``handle`` and reads its kind and sizes."""
        self._adopt(handle, _lib.lib.bdl_curvature_free)
        kind, P, layers = c_int32(), c_int64(), c_int64()
        _check(_lib.lib.bdl_curvature_info(self._handle, byref(kind), byref(P), byref(layers)))
        if kind.value != self._kind:
            self.close()
            raise InternalError(f"{self._owner_name}: the library returned a curvature of kind {kind.value}, expected {self._kind}")
        self._P = P.value
        self._num_layers = layers.value

    def __repr__(self) -> str:
        if self._handle is None:
            return f"<{self._owner_name} (closed)>"
        return f"<{self._owner_name} P={self._P}>"

    # -- description ----------------------------------------------------------------------------

    @property
    def num_parameters(self) -> int:
        """P, the number of parameters (the model's θ length)."""
        self._live()
        return self._P

    @property
    def shape(self) -> Tuple[int, int]:
        """(P, P)."""
        self._live()
        return (self._P, self._P)

    # -- argument conversion --------------------------------------------------------------------

    def _vectors(self, v, name: str = "v") -> Tuple[np.ndarray, bool]:
        """``v`` of shape (P,) or (P, k) as C-contiguous (k, P) rows, and whether it was 1-D."""
        array = np.asarray(v, dtype=np.float64)
        P = self._P
        if array.ndim == 1 and array.shape[0] == P:
            return np.ascontiguousarray(array.reshape(1, P)), True
        if array.ndim == 2 and array.shape[0] == P and array.shape[1] >= 1:
            return np.ascontiguousarray(array.T), False
        raise ShapeMismatchError(f"{name}: expected shape (P,) or (P, k) with P = {P} and k ≥ 1, got shape {array.shape}")

    # -- queries --------------------------------------------------------------------------------

    def apply_power(self, v, exponent: float, scale: float = 1.0, damping: float = 0.0) -> np.ndarray:
        """(scale·G + damping·I)^exponent v, for v of shape (P,) or (P, k) (k columns).

        Exponent 1 multiplies, −1 solves exactly, −½ whitens (M^(−1/2) z with z ~ N(0, I) is a
        sample of N(0, M⁻¹)). Powers go through the structure's eigendecomposition.

        Returns:
            A new float64 array with the shape of v.

        Raises:
            ShapeMismatchError: v is not (P,) or (P, k).
            NonFiniteInputError: NaN/Inf in v.
            NotPositiveDefiniteError: an eigenvalue scale·λ + damping is ≤ 0 with exponent ≤ 0
                (use damping > 0 on a singular G), or < 0 with exponent > 0.
            InvalidArgumentError: scale < 0, or scale/damping/exponent not finite.
        """
        rows, flat = self._vectors(v)
        out = np.empty_like(rows)
        with self._use() as handle:
            _check(
                _lib.lib.bdl_curvature_apply_power(
                    handle, float(scale), float(damping), float(exponent), _ptr(rows), rows.shape[0], _ptr(out), out.size
                )
            )
        return out[0] if flat else out.T.copy()

    def __matmul__(self, v) -> np.ndarray:
        """G v for v of shape (P,) or (P, k): scale 1, damping 0 (:meth:`apply_power` with exponent 1)."""
        return self.apply_power(v, 1.0)

    def solve(self, v, damping: float, scale: float = 1.0) -> np.ndarray:
        """(scale·G + damping·I)⁻¹ v, exact, for v of shape (P,) or (P, k).

        With scale = h and damping = δ this applies the Laplace posterior covariance. Raises as
        :meth:`apply_power` (a singular G needs damping > 0).
        """
        return self.apply_power(v, -1.0, scale, damping)

    def logdet(self, scale: float = 1.0, damping: float = 0.0) -> float:
        """log det(scale·G + damping·I), the sum of log(scale·λ + damping) over G's eigenvalues λ.

        Raises:
            NotPositiveDefiniteError: the matrix is singular (e.g. damping 0 on a rank-deficient
                G; use damping > 0).
            InvalidArgumentError: scale < 0, or scale/damping not finite.
        """
        out = c_double()
        with self._use() as handle:
            _check(_lib.lib.bdl_curvature_logdet(handle, float(scale), float(damping), byref(out)))
        return out.value

    def diagonal(self, scale: float = 1.0, damping: float = 0.0, exponent: float = 1.0) -> np.ndarray:
        """diag((scale·G + damping·I)^exponent), shape (P,); the default is diag(G).

        exponent −1 gives marginal posterior variances. Raises as :meth:`apply_power`.
        """
        out = np.empty(self._P, dtype=np.float64)
        with self._use() as handle:
            _check(
                _lib.lib.bdl_curvature_diagonal(handle, float(scale), float(damping), float(exponent), _ptr(out), out.size)
            )
        return out

    def trace(self) -> float:
        """tr(G) = Σ diag(G)."""
        return float(self.diagonal().sum())

    def to_dense(self, scale: float = 1.0, damping: float = 0.0) -> np.ndarray:
        """The dense P × P matrix scale·G + damping·I (8·P² bytes: small models and tests).

        Raises:
            OutOfMemoryError: P² doubles cannot be allocated.
            InvalidArgumentError: scale < 0, or scale/damping not finite.
        """
        out = np.empty((self._P, self._P), dtype=np.float64)
        with self._use() as handle:
            _check(_lib.lib.bdl_curvature_dense(handle, float(scale), float(damping), _ptr(out), out.size))
        return out


class AccumulationProfile(NamedTuple):
    """How fast an engine fit added its statistics to the K-FAC factors (see
    :attr:`KFAC.accumulation_profile`)."""

    #: Useful flops of the Gram updates Σ a aᵀ and Σ g gᵀ: d²·rows for each d × d Gram of
    #: ``rows`` rows (the dsyrk count).
    flops: float
    #: Seconds spent in them, summed over the workers.
    thread_seconds: float
    #: Workers that ran at once: one per OpenBLAS thread for big batches.
    workers: int

    @property
    def rate(self) -> float:
        """flops · workers / thread_seconds in flop/s: the aggregate rate, to compare with the
        machine's dgemm rate (the workers run equal shards of every batch at the same time)."""
        return self.flops * self.workers / self.thread_seconds if self.thread_seconds > 0 else 0.0


class _KroneckerCurvature(_Curvature):
    """K-FAC and EK-FAC: one Kronecker block per weight, one B block per bias."""

    def __init__(
        self,
        model: Sequential,
        X,
        y,
        likelihood: str = "classification",
        approx: str = "expand",
        fisher: str = "exact",
        mc_samples: int = 1,
        seed: int = 0,
        batch_size: int = 256,
    ):
        super().__init__()
        self._fit(model, X, y, likelihood, fisher, approx, mc_samples, seed, batch_size)

    def _take(self, handle: int) -> None:
        super()._take(handle)
        entries = []
        for index in range(self._num_layers):
            layer, d_out, d_in = c_int64(), c_int64(), c_int64()
            _check(
                _lib.lib.bdl_curvature_kfac_factors(
                    self._handle, index, byref(layer), byref(d_out), byref(d_in), None, 0, None, 0
                )
            )
            entries.append((layer.value, d_out.value, d_in.value))
        self._entries = tuple(entries)

    def __repr__(self) -> str:
        if self._handle is None:
            return f"<{self._owner_name} (closed)>"
        return f"<{self._owner_name} P={self._P} layers={list(self.layers)}>"

    @property
    def damping_mode(self) -> str:
        """How every query adds the damping δ: ``"exact"`` (default: scale·B⊗A + δ·I through the
        eigenbasis), ``"factored"`` ((√scale·B + √δ·I) ⊗ (√scale·A + √δ·I), laplace-torch's
        damped Kron) or ``"pi"`` (Martens & Grosse's π-damping, π = √((tr A/n_A)/(tr B/n_B))).
        The factored forms need δ ≥ 0; EK-FAC supports only ``"exact"``."""
        self._live()
        return getattr(self, "_damping_mode", "exact")

    @damping_mode.setter
    def damping_mode(self, mode: str) -> None:
        code = _choice(mode, _DAMPING_MODES, "damping_mode")
        with self._use() as handle:
            _check(_lib.lib.bdl_curvature_set_kfac_damping(handle, code))
        self._damping_mode = mode

    @property
    def accumulation_profile(self) -> Optional[AccumulationProfile]:
        """For a fit from a model (EK-FAC: its K-FAC pass), the flops and thread-seconds of its
        Gram updates, timed inside the pass; None for an object from
        :meth:`KFACAccumulator.finalize`, whose accumulation the caller drove."""
        flops, seconds, workers = c_double(), c_double(), c_int64()
        with self._use() as handle:
            try:
                _check(_lib.lib.bdl_curvature_kfac_accumulation(handle, byref(flops), byref(seconds), byref(workers)))
            except WrongStateError:
                return None
        return AccumulationProfile(flops.value, seconds.value, workers.value)

    @property
    def num_layers(self) -> int:
        """The number of Kronecker-factored layers (entries of :meth:`factors`)."""
        self._live()
        return len(self._entries)

    @property
    def layers(self) -> Tuple[int, ...]:
        """For each entry 0 … num_layers − 1, the layer's position in the model's layer list
        (for an object from :meth:`KFACAccumulator.finalize`: the accumulator's layer index)."""
        self._live()
        return tuple(layer for layer, _, _ in self._entries)

    def factors(self, layer: int) -> Tuple[np.ndarray, np.ndarray]:
        """(B, A) of entry ``layer`` (0 ≤ layer < :attr:`num_layers`; see :attr:`layers`).

        B (d_out × d_out) is the output-gradient factor, a SUM over examples (and positions for
        expand); A (d_in × d_in) the input factor, a MEAN. The weight block is B ⊗ A on the
        row-major vec of W (d_out, d_in); the bias block is B. For EK-FAC these are the K-FAC
        factors whose eigenbases it uses.

        Raises:
            InvalidArgumentError: ``layer`` is not an integer in [0, num_layers).
        """
        index = _int64(layer, "layer")
        if not 0 <= index < len(self._entries):
            raise InvalidArgumentError(f"layer = {index}; this {self._owner_name} has {len(self._entries)} layers (0 … {len(self._entries) - 1})")
        _, d_out, d_in = self._entries[index]
        B = np.empty((d_out, d_out), dtype=np.float64)
        A = np.empty((d_in, d_in), dtype=np.float64)
        with self._use() as handle:
            _check(
                _lib.lib.bdl_curvature_kfac_factors(handle, index, None, None, None, _ptr(B), B.size, _ptr(A), A.size)
            )
        return B, A


class KFAC(_KroneckerCurvature):
    r"""K-FAC: G ≈ block-diag(B_l ⊗ A_l for each weight, B_l for each bias).

    B = Σ g gᵀ (a sum over examples, output vectors and, for expand, positions) and A the mean
    of a aᵀ; see the module docstring for ``approx`` ("expand"/"reduce") and ``fisher``. Equals
    curvlinops' ``KFACLinearOperator`` factors with ``CrossEntropyLoss(reduction='sum')``
    (regression: curvlinops' ``MSELoss(reduction='sum')`` gives 2·B) and laplace-torch's
    ``KronLaplace`` precision.

    The factors' eigenvalues are computed here, their eigenvectors on the first call that needs
    them (``solve``, ``@``, ``diagonal``, ``trace``, …; not ``logdet``), which therefore takes
    longer than later ones.

    Release it with :meth:`close` or a ``with`` block; otherwise it is released when garbage
    collected, exactly once. Calls on one object are serialised.

    Args:
        model: the :class:`~bdlcore.Sequential` at θ*.
        X: (N, *input_shape).
        y: classification: N integer labels in [0, C); regression: (N, C) targets (used by the
            empirical Fisher only, but always checked).
        likelihood: ``"classification"`` or ``"regression"`` (Gaussian at σ = 1).
        approx: ``"expand"`` or ``"reduce"``.
        fisher: ``"exact"``, ``"mc"`` or ``"empirical"``.
        mc_samples: labels sampled per example for ``fisher="mc"``, ≥ 1.
        seed: seeds the Monte-Carlo labels.
        batch_size: examples per forward/backward pass (memory only; the result does not depend
            on it beyond rounding).

    Raises:
        ShapeMismatchError: X or y has the wrong shape.
        InvalidArgumentError: an unknown option, a label outside [0, C), N = 0, mc_samples or
            batch_size < 1.
        NonFiniteInputError: NaN/Inf in X or y.
        TypeError: ``model`` is not a Sequential.
    """

    _owner_name = "KFAC"
    _kind = _lib.BDL_CURVATURE_KFAC


class EKFAC(_KroneckerCurvature):
    r"""EK-FAC: K-FAC's eigenbases with eigenvalues refitted to the per-example gradients.

    Per weight block, with A = Q_A diag(α) Q_Aᵀ and B = Q_B diag(β) Q_Bᵀ the K-FAC factors,
    G ≈ (Q_B ⊗ Q_A) diag(vec Λ) (Q_B ⊗ Q_A)ᵀ, Λ_ij = Σ_{n,k} ((Q_Bᵀ ∇W_{n,k} Q_A)_ij)², with
    ∇W_{n,k} = Σ_r g_{n,k,r} a_{n,r}ᵀ example n's weight gradient for output vector k; per bias
    block Q_B diag(Λ_b) Q_Bᵀ, Λ_b,i = Σ_{n,k} ((Q_Bᵀ ∇b_{n,k})_i)² (curvlinops' rule). Λ is
    the exact diagonal of G's block in that eigenbasis, so each block is at least as close to
    G's block in Frobenius norm as K-FAC's (which uses β_i α_j in the same basis).
    kronfluence averages these over N (and appends the bias to the input): its score at damping
    d equals N × ours at damping N·d on a bias-free model.

    Arguments, lifetime and errors as :class:`KFAC`; fitting makes a second pass over the data.
    """

    _owner_name = "EKFAC"
    _kind = _lib.BDL_CURVATURE_EKFAC


class _GGNCurvature(_Curvature):
    """The GGN kinds, fitted without a K-FAC approximation."""

    def __init__(
        self,
        model: Sequential,
        X,
        y,
        likelihood: str = "classification",
        fisher: str = "exact",
        mc_samples: int = 1,
        seed: int = 0,
        batch_size: int = 256,
    ):
        super().__init__()
        self._fit(model, X, y, likelihood, fisher, None, mc_samples, seed, batch_size)


class DiagGGN(_GGNCurvature):
    r"""The diagonal of G: diag(G)_p = Σ_{n,k} (∂⟨f(x_n), s_{n,k}⟩/∂θ_p)².

    With ``fisher="exact"`` (s the columns of S, S Sᵀ = Λ) this is the exact diagonal of the GGN
    Σ_n J_nᵀ Λ_n J_n, the structure of laplace-torch's ``DiagLaplace``; ``"mc"`` and
    ``"empirical"`` give the Monte-Carlo and empirical Fisher diagonals. Every query treats G as
    the diagonal matrix it is.

    Arguments, lifetime and errors as :class:`KFAC` (no ``approx``).
    """

    _owner_name = "DiagGGN"
    _kind = _lib.BDL_CURVATURE_DIAG_GGN


class GGN(_GGNCurvature):
    r"""The dense GGN G = Σ_n J_nᵀ Λ_n J_n (P × P; for small models).

    Built from the per-example gradients of ⟨f(x_n), s_{n,k}⟩, never from a full Jacobian of
    the data set. With ``fisher="exact"`` it is the GGN (laplace-torch's ``FullLaplace`` with a
    GGN backend); ``"empirical"`` gives Σ_n ∇ℓ_n ∇ℓ_nᵀ.

    Arguments, lifetime and errors as :class:`KFAC` (no ``approx``), plus
    :class:`~bdlcore.OutOfMemoryError` when P² doubles do not fit.
    """

    _owner_name = "GGN"
    _kind = _lib.BDL_CURVATURE_GGN


# ---------------------------------------------------------------------------------------------
# Caller-fed statistics
# ---------------------------------------------------------------------------------------------

LayerShape = Tuple[int, int, bool]


class KFACAccumulator(_OwnedHandle):
    r"""K-FAC statistics fed by the caller, e.g. layer inputs and output gradients captured with
    PyTorch or JAX hooks; merges over data shards, saves to a file, finalises into a :class:`KFAC`.

    Layer i computes y_r = W a_r + b with W of shape (d_out, d_in) at R positions per example.
    Each :meth:`add` of a batch updates

    * ``approx="expand"``: Σ_{n,r} a aᵀ (with the count N·R) and B += Σ_{n,k,r} g gᵀ;
    * ``approx="reduce"``: with â_n = (1/R) Σ_r a_{n,r}, ĝ_{n,k} = Σ_r g_{n,k,r}:
      Σ_n â âᵀ (count N) and B += Σ_{n,k} ĝ ĝᵀ;

    and the factors are A = (Σ a aᵀ)/count, a MEAN, and B, a SUM — so the g must already carry
    the loss scaling you want (e.g. the columns of the output-Hessian square root S, S Sᵀ = Λ,
    for the GGN; divide Monte-Carlo vectors by √(samples)). The parameters of the finalised
    :class:`KFAC` are laid out layer by layer, weight (d_out × d_in, row-major) then bias, with
    weight block B ⊗ A and bias block B ⊗ [1] = B; A never carries an appended bias 1.

    Statistics are sums, so :meth:`merge` of accumulators over disjoint data equals one
    accumulator over their union (A as the count-weighted mean). Note that a PyTorch loss with
    ``reduction='mean'`` scales g by 1/N, and ``MSELoss(reduction='sum')`` by 2 (so its B is 2·B
    of the GGN of ½·SSE).

    Release it with :meth:`close` or a ``with`` block; otherwise it is released when garbage
    collected, exactly once. Calls on one object are serialised.

    Args:
        layers: one ``(d_in, d_out, has_bias)`` per layer, d_in, d_out ≥ 1.
        approx: ``"expand"`` or ``"reduce"``.

    Raises:
        InvalidArgumentError: no layers, a dimension < 1, an unknown approx.
        ShapeMismatchError: an entry of ``layers`` is not a (d_in, d_out, has_bias) triple.
    """

    _owner_name = "KFACAccumulator"

    def __init__(self, layers: Sequence[Tuple[int, int, bool]], approx: str = "expand"):
        super().__init__()
        code = _choice(approx, _APPROXIMATIONS, "approx")
        shapes = []
        for index, entry in enumerate(layers):
            try:
                d_in, d_out, has_bias = entry
            except (TypeError, ValueError):
                raise ShapeMismatchError(f"layers[{index}]: expected a (d_in, d_out, has_bias) triple, got {entry!r}") from None
            shapes.append((_int64(d_in, f"layers[{index}] d_in"), _int64(d_out, f"layers[{index}] d_out"), bool(has_bias)))
        if not shapes:
            raise InvalidArgumentError("layers: an accumulator needs at least one layer")
        count = len(shapes)
        d_in = (c_int64 * count)(*(s[0] for s in shapes))
        d_out = (c_int64 * count)(*(s[1] for s in shapes))
        bias = (c_int32 * count)(*(int(s[2]) for s in shapes))
        handle = c_void_p()
        _check(_lib.lib.bdl_kfac_accumulator_create(d_in, d_out, bias, count, code, byref(handle)))
        self._adopt(handle.value, _lib.lib.bdl_kfac_accumulator_free)
        self._shapes: Tuple[LayerShape, ...] = tuple(shapes)
        self._approx: str = _APPROXIMATION_NAMES[code]

    def __repr__(self) -> str:
        if self._handle is None:
            return "<KFACAccumulator (closed)>"
        return f"<KFACAccumulator approx={self._approx!r} layers={list(self._shapes)}>"

    # -- description ----------------------------------------------------------------------------

    @property
    def layers(self) -> Tuple[LayerShape, ...]:
        """One ``(d_in, d_out, has_bias)`` per layer."""
        self._live()
        return self._shapes

    @property
    def approx(self) -> str:
        """``"expand"`` or ``"reduce"``."""
        self._live()
        return self._approx

    # -- accumulation ---------------------------------------------------------------------------

    def add(self, layer: int, a, g) -> None:
        r"""Adds a batch of layer ``layer``'s inputs and output vectors.

        Args:
            layer: the layer index, 0 ≤ layer < len(layers).
            a: inputs, (N, d_in) or (N, R, d_in) — R positions per example (1 for a dense layer,
                T for sequences, H_out·W_out im2col patches for a convolution).
            g: output vectors ∂⟨f, s_k⟩/∂y_r, (N, K, d_out) or (N, K, R, d_out) with K ≥ 1 vectors
                per example (the C columns of S, Monte-Carlo samples, or 1 for the empirical
                Fisher).

        On any error the accumulator is unchanged.

        Raises:
            InvalidArgumentError: ``layer`` out of range; N, K or R is 0.
            ShapeMismatchError: a or g of the wrong rank, d_in or d_out not the layer's, N or R
                differing between a and g.
            NonFiniteInputError: NaN/Inf in a or g, or entries so large that a sum of squares
                overflows.
        """
        index = _int64(layer, "layer")
        if not 0 <= index < len(self._shapes):
            raise InvalidArgumentError(f"layer = {index}; the accumulator has {len(self._shapes)} layers (0 … {len(self._shapes) - 1})")
        d_in, d_out, _ = self._shapes[index]
        # float32 statistics (as captured from float32 models) are passed as they are and
        # accumulated in float64 by the library; anything else is converted to float64 here.
        single = np.asarray(a).dtype == np.float32 and np.asarray(g).dtype == np.float32
        dtype = np.float32 if single else np.float64
        a = np.ascontiguousarray(a, dtype=dtype)
        g = np.ascontiguousarray(g, dtype=dtype)
        if a.ndim == 2:
            a = a.reshape(a.shape[0], 1, a.shape[1])
        elif a.ndim != 3:
            raise ShapeMismatchError(f"a: expected shape (N, d_in) or (N, R, d_in), got shape {a.shape}")
        if g.ndim == 3:
            g = g.reshape(g.shape[0], g.shape[1], 1, g.shape[2])
        elif g.ndim != 4:
            raise ShapeMismatchError(f"g: expected shape (N, K, d_out) or (N, K, R, d_out), got shape {g.shape}")
        n, positions = a.shape[0], a.shape[1]
        if a.shape[2] != d_in:
            raise ShapeMismatchError(f"a: layer {index} has d_in = {d_in}, got inputs of size {a.shape[2]} (shape {a.shape})")
        if g.shape[3] != d_out:
            raise ShapeMismatchError(f"g: layer {index} has d_out = {d_out}, got vectors of size {g.shape[3]} (shape {g.shape})")
        if g.shape[0] != n:
            raise ShapeMismatchError(f"a and g: a has N = {n} examples, g has {g.shape[0]}")
        if g.shape[2] != positions:
            raise ShapeMismatchError(f"a and g: a has R = {positions} positions per example, g has {g.shape[2]}")
        with self._use() as handle:
            if single:
                pointer = lambda x: x.ctypes.data_as(POINTER(c_float))  # noqa: E731
                _check(_lib.lib.bdl_kfac_accumulator_add_f32(handle, index, pointer(a), n, positions, pointer(g), g.shape[1]))
            else:
                _check(_lib.lib.bdl_kfac_accumulator_add(handle, index, _ptr(a), n, positions, _ptr(g), g.shape[1]))

    def merge(self, other: "KFACAccumulator") -> None:
        """Adds ``other``'s statistics to this accumulator: self ← self ∪ other (other unchanged).

        Raises:
            ShapeMismatchError: the layers (count, d_in, d_out, has_bias) or approximations differ;
                this accumulator is then unchanged.
            InvalidArgumentError: ``other`` is this accumulator (that would count its data twice).
            TypeError: ``other`` is not a KFACAccumulator.
        """
        if not isinstance(other, KFACAccumulator):
            raise TypeError(f"other: expected a KFACAccumulator, got {type(other).__name__}")
        if other is self:
            raise InvalidArgumentError("other: cannot merge an accumulator into itself (its data would count twice)")
        # Lock both, always in the same order, so that a.merge(b) and b.merge(a) cannot deadlock.
        first, second = (self, other) if id(self) < id(other) else (other, self)
        with first._use() as first_handle, second._use() as second_handle:
            mine, theirs = (first_handle, second_handle) if first is self else (second_handle, first_handle)
            _check(_lib.lib.bdl_kfac_accumulator_merge(mine, theirs))

    # -- files ----------------------------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        """Writes the statistics to ``path`` (a versioned, checksummed file).

        The file is written to a temporary name and renamed into place, so a failure leaves any
        previous file intact.

        Raises:
            BDLIOError: the file cannot be written (the message gives the system's reason).
            InvalidArgumentError: an empty path or one containing a NUL byte.
            TypeError: ``path`` is not a str, bytes or os.PathLike.
        """
        encoded = _path_bytes(path)
        with self._use() as handle:
            _check(_lib.lib.bdl_kfac_accumulator_save(handle, encoded))

    @classmethod
    def load(cls, path: PathLike) -> "KFACAccumulator":
        """Reads an accumulator written by :meth:`save`.

        Raises:
            BDLIOError: the file cannot be opened or read (e.g. it does not exist).
            CorruptDataError: not such a file, another format version, truncated, trailing
                bytes, checksum mismatch or impossible sizes.
            InvalidArgumentError: an empty path or one containing a NUL byte.
            TypeError: ``path`` is not a str, bytes or os.PathLike.
        """
        encoded = _path_bytes(path)
        handle = c_void_p()
        _check(_lib.lib.bdl_kfac_accumulator_load(encoded, byref(handle)))
        self = cls.__new__(cls)
        _OwnedHandle.__init__(self)
        self._adopt(handle.value, _lib.lib.bdl_kfac_accumulator_free)
        try:
            self._shapes, self._approx = self._read_description()
        except BaseException:
            self.close()
            raise
        return self

    def _read_description(self) -> Tuple[Tuple[LayerShape, ...], str]:
        """The layers' (d_in, d_out, has_bias) and the approximation, as the library reports them."""
        count, approximation = c_int64(), c_int32()
        shapes = []
        with self._use() as handle:
            _check(_lib.lib.bdl_kfac_accumulator_info(handle, byref(count), byref(approximation)))
            for index in range(count.value):
                d_in, d_out, examples, has_bias = c_int64(), c_int64(), c_int64(), c_int32()
                _check(_lib.lib.bdl_kfac_accumulator_layer(handle, index, byref(d_in), byref(d_out), byref(has_bias), byref(examples)))
                shapes.append((d_in.value, d_out.value, bool(has_bias.value)))
        return tuple(shapes), _APPROXIMATION_NAMES[approximation.value]

    # -- result ---------------------------------------------------------------------------------

    def _finalize_handle(self) -> int:
        handle = c_void_p()
        with self._use() as accumulator:
            _check(_lib.lib.bdl_kfac_accumulator_finalize(accumulator, byref(handle)))
        return handle.value

    def finalize(self) -> KFAC:
        """The :class:`KFAC` of the statistics so far (the accumulator stays usable).

        Its parameters are laid out layer by layer, weight (d_out × d_in) then bias, as a model
        with these layers would have them; its :attr:`KFAC.layers` are the accumulator's layer
        indices 0 … len(layers) − 1. A layer without data has zero factors.
        """
        return KFAC._from_handle(self._finalize_handle())


