r"""Laplace approximations of a network's posterior: evidence, its gradients, optimal priors, predictives.

A :class:`Laplace` owns one ``bdl_laplace`` handle: the Gaussian q(θ) = N(θ*, P⁻¹) around the
model's current parameters θ* (train them first, e.g. with :meth:`bdlcore.Sequential.fit`), with
posterior precision

    P = h·G + P0,   h = 1/(σ²·T) (regression) or 1/T (classification),   P0 = diag(δ),

G the curvature (the GGN at σ = 1, T = 1, summed over the data), σ the observation noise
(``sigma_noise``), T the temperature and δ the prior precision: one value (scalar), one per
parameter tensor in θ order (W₀, b₀, W₁, b₁, …; laplace-torch's "layerwise" — a weight and its
bias get separate entries), or one per parameter. Structures (``structure=``):

* ``"full"``: the dense P (Cholesky) — small models and last layers;
* ``"diag"``: the exact GGN diagonal (as laplace-torch's ``DiagLaplace``);
* ``"kron"``: K-FAC blocks B ⊗ A per weight and B per bias, exact through their eigenbases:
  log det(h·B⊗A + δI) = Σ_ij log(h β_i α_j + δ). A per-parameter prior enters a Kronecker
  block through its eigenbasis projection, an approximation (laplace-torch refuses it).

The log marginal likelihood (evidence; laplace-torch's ``log_marginal_likelihood``) is

    log p(D) ≈ log p(D|θ*) − ½ [log det P − log det P0] − ½ (θ* − μ0)ᵀ P0 (θ* − μ0),

log p(D|θ*) = −Σ_n ½‖y_n − f_n‖²/(σ²T) − N·C·log(σ√(2π)) for regression and −Σ_n CE_n / T for
classification, μ0 the prior mean. Its gradients with respect to log δ and log σ are analytic,
so :meth:`Laplace.optimize_prior_precision` solves for the evidence-optimal prior by Newton's
method.

The predictive is the linearised (GLM) one: f(x; θ*) and the functional covariance
Σ_f(x) = J(x) P⁻¹ J(x)ᵀ (C × C, J = ∂f/∂θ at θ*; laplace-torch's ``f_mu``, ``f_var``). For
classification the probit link gives p = softmax(f ⊙ κ), κ_c = 1/√(1 + π/8·Σ_f,cc); for regression
the predictive covariance is Σ_f + σ²I (:meth:`Laplace.predict`) and Σ_f alone is
:meth:`Laplace.functional_variance`.

Example::

    import bdlcore
    X, y, X_test, y_test = bdlcore.datasets.load_digits()
    with bdlcore.Sequential([bdlcore.Linear(64, 32), bdlcore.ReLU(), bdlcore.Linear(32, 10)]) as net:
        net.fit(X / 16, y, epochs=20)
        with bdlcore.Laplace(net, "classification", structure="kron").fit(X / 16, y) as la:
            la.optimize_prior_precision()               # evidence-optimal per-tensor prior
            probs = la.predict(X_test / 16)              # probit predictive, (n, 10)
            bdlcore.metrics.ece(probs, y_test)

A posterior of a PyTorch model is built from its curvature (e.g. K-FAC statistics captured with
hooks into a :class:`~bdlcore.KFACAccumulator`) with :meth:`Laplace.from_curvature`.
"""

from __future__ import annotations

import warnings
from ctypes import POINTER, byref, c_double, c_int32, c_int64, c_void_p
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from ._errors import InvalidArgumentError, ShapeMismatchError, WrongStateError, _check
from ._handle import _OwnedHandle
from ._progress import call_with_progress as _call_with_progress
from .curvature import _APPROXIMATIONS, _FISHERS, KFACAccumulator, PathLike, _Curvature, _path_bytes
from .model import _LIKELIHOODS, Sequential, _choice, _int64, _seed

__all__ = ["Laplace", "EvidenceOptimum"]

_ptr = _lib.as_pointer

_STRUCTURES = {"full": _lib.BDL_LAPLACE_FULL, "diag": _lib.BDL_LAPLACE_DIAG, "kron": _lib.BDL_LAPLACE_KRON}
_SUBSETS = {"all": _lib.BDL_SUBSET_ALL, "last_layer": _lib.BDL_SUBSET_LAST_LAYER}
_PRIOR_STRUCTURES = {
    "scalar": _lib.BDL_PRIOR_SCALAR,
    "layerwise": _lib.BDL_PRIOR_LAYERWISE,
    "diag": _lib.BDL_PRIOR_DIAG,
    "unitwise": _lib.BDL_PRIOR_UNITWISE,
}
_LINKS = {"probit": _lib.BDL_LINK_PROBIT, "bridge": _lib.BDL_LINK_BRIDGE, "mc": _lib.BDL_LINK_MC}
_PRED_TYPES = ("glm", "nn")


def _names(table):
    return {code: name for name, code in table.items()}


# ---------------------------------------------------------------------------------------------
# Progress of a pass over the data
# ---------------------------------------------------------------------------------------------




# ---------------------------------------------------------------------------------------------
# Argument conversion
# ---------------------------------------------------------------------------------------------


def _vector(value, name: str) -> np.ndarray:
    """A float or a sequence as a C-contiguous 1-D float64 array (values are checked by the library)."""
    array = np.ascontiguousarray(value, dtype=np.float64)
    if array.ndim > 1:
        raise ShapeMismatchError(f"{name}: expected a float or a 1-D sequence, got shape {array.shape}")
    return array.reshape(-1)


def _optional_vector(value, name: str):
    """(array or None, pointer or None, count) for an optional array argument."""
    if value is None:
        return None, None, 0
    array = _vector(value, name)
    return array, _ptr(array), array.size


def _bool_flag(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or value in (0, 1):
        return int(bool(value))
    raise InvalidArgumentError(f"{name}: expected True or False, got {value!r}")


class EvidenceOptimum(NamedTuple):
    """The outcome of :meth:`Laplace.optimize_prior_precision`."""

    #: The evidence at the returned hyperparameters.
    log_marginal_likelihood: float
    #: ‖∇ log p(D)‖₂ over log δ (and log σ), entries held at a bound excluded.
    gradient_norm: float
    #: Newton iterations taken.
    iterations: int
    #: Whether gradient_norm < tol.
    converged: bool


# ---------------------------------------------------------------------------------------------
# The posterior
# ---------------------------------------------------------------------------------------------


class Laplace(_OwnedHandle):
    r"""The Laplace approximation N(θ*, P⁻¹), P = h·G + diag(δ), of a network's posterior.

    Construct it with the model and options, then :meth:`fit` it on the training data (one pass
    for the loss and the curvature at the model's current θ*; refitting replaces the posterior).
    Names and defaults follow laplace-torch's ``Laplace(model, likelihood, subset_of_weights,
    hessian_structure, ...)``: the exact GGN, K-FAC "expand", δ = 1 (a unit Gaussian prior),
    σ = 1, T = 1, μ0 = 0. One difference: ``subset`` defaults to ``"all"`` (every parameter, as
    laplace-torch's ``KronLaplace`` class), where laplace-torch's ``Laplace`` factory defaults to
    the last layer.

    Release it with :meth:`close` or a ``with`` block (``fit`` returns the object, so
    ``with Laplace(...).fit(X, y) as la:`` works); otherwise it is released when garbage
    collected, exactly once. Calls on one object are serialised.

    Args:
        model: the :class:`~bdlcore.Sequential` at θ* (MAP-trained). Methods that evaluate the
            network (:meth:`predict`, :meth:`functional_variance`) use it unless given another
            ``model=`` (which must have the same layout; its θ is taken as θ*).
        likelihood: ``"classification"`` (categorical, softmax) or ``"regression"`` (Gaussian).
        structure: ``"full"``, ``"diag"`` or ``"kron"`` (default: K-FAC, which scales to large
            layers and, unlike the diagonal, keeps within-layer correlations).
        subset: ``"all"`` or ``"last_layer"`` (the last Linear/Conv2d layer's weight and bias;
            the rest of the network stays at θ*).
        fisher: the curvature source: ``"exact"`` (the GGN, laplace-torch's default),
            ``"mc"`` (``mc_samples`` sampled labels per example, seeded by ``seed``) or
            ``"empirical"`` (the empirical Fisher).
        approx: K-FAC for layers applied at R positions: ``"expand"`` (laplace-torch's) or
            ``"reduce"``; the same for plain dense layers.
        prior_precision: δ > 0: a float, one value per parameter tensor (W₀, b₀, W₁, b₁, … of
            the covered parameters: 2 for the last layer) or one per covered parameter.
        sigma_noise: σ > 0 (regression only).
        temperature: T > 0; 1 is the Bayesian posterior.
        prior_mean: μ0, a float or one value per covered parameter; only the evidence's scatter
            term (θ* − μ0)ᵀ P0 (θ* − μ0) depends on it — the posterior mean stays θ*.
        damped: ``"kron"`` only: use laplace-torch's damped form (√h·B + √δ·I) ⊗ (√h·A + √δ·I)
            on weight blocks instead of the exact h·B⊗A + δ·I (needs a scalar or per-tensor
            prior). Default False: the exact form is what laplace-torch actually evaluates (its
            ``damping=True`` flag is lost before the evidence is computed).
        mc_samples: labels sampled per example for ``fisher="mc"``, ≥ 1.
        seed: seeds the Monte-Carlo labels of ``fisher="mc"``.

    The options are checked when :meth:`fit` runs (unknown option names at construction).

    Raises:
        InvalidArgumentError: an unknown option name.
        TypeError: ``model`` is not a Sequential.
    """

    _owner_name = "Laplace"

    def __init__(
        self,
        model: Sequential,
        likelihood: str = "classification",
        structure: str = "kron",
        subset: str = "all",
        fisher: str = "exact",
        approx: str = "expand",
        prior_precision: Union[float, Sequence[float]] = 1.0,
        sigma_noise: float = 1.0,
        temperature: float = 1.0,
        *,
        prior_mean: Union[float, Sequence[float]] = 0.0,
        damped: bool = False,
        mc_samples: int = 1,
        seed: int = 0,
    ):
        super().__init__()
        self._closed = False
        if not isinstance(model, Sequential):
            raise TypeError(f"model: expected a bdlcore.Sequential, got {type(model).__name__}")
        self._model: Optional[Sequential] = model
        self._likelihood = _choice(likelihood, _LIKELIHOODS, "likelihood")
        self._structure = _choice(structure, _STRUCTURES, "structure")
        self._subset = _choice(subset, _SUBSETS, "subset")
        self._fisher = _choice(fisher, _FISHERS, "fisher")
        self._approx = _choice(approx, _APPROXIMATIONS, "approx")
        self._damped = _bool_flag(damped, "damped")
        self._mc_samples = _int64(mc_samples, "mc_samples")
        self._seed = _seed(seed)
        self._prior = _vector(prior_precision, "prior_precision")
        self._prior_mean: Optional[np.ndarray] = _vector(prior_mean, "prior_mean")
        self._sigma = float(sigma_noise)
        self._temperature = float(temperature)

    # -- lifetime -------------------------------------------------------------------------------

    def _live(self) -> int:
        handle = self._handle
        if handle is None:
            if self._closed:
                raise WrongStateError("Laplace is closed; create a new one")
            raise WrongStateError("Laplace is not fitted; call fit(X, y) first")
        return handle

    def __enter__(self) -> "Laplace":
        # Unlike the other handle owners, an unfitted Laplace may open a ``with`` block
        # (``with Laplace(model) as la: la.fit(X, y)``); only a closed one is refused.
        if self._closed:
            raise WrongStateError("Laplace is closed; create a new one")
        return self

    def close(self) -> None:
        """Releases the posterior. Idempotent; later method calls raise WrongStateError."""
        super().close()
        self._closed = True

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def fitted(self) -> bool:
        """Whether the object holds a posterior (after :meth:`fit`, :meth:`from_curvature` or :meth:`load`)."""
        return self._handle is not None

    def _replace(self, handle: int) -> None:
        """Adopts a new posterior handle, freeing the previous one; reads its description."""
        with self._lock:
            previous = getattr(self, "_finalizer", None) if self._handle is not None else None
            self._adopt(handle, _lib.lib.bdl_laplace_free)
            self._closed = False
        if previous is not None:
            previous()
        structure, subset, likelihood = c_int32(), c_int32(), c_int32()
        P, tensors, first = c_int64(), c_int64(), c_int64()
        with self._use() as live:
            _check(
                _lib.lib.bdl_laplace_info(
                    live, byref(structure), byref(subset), byref(likelihood), byref(P), byref(tensors), byref(first)
                )
            )
        self._structure, self._subset, self._likelihood = structure.value, subset.value, likelihood.value
        self._n_params, self._n_tensors, self._first_parameter = P.value, tensors.value, first.value

    def _adopt_new(self, handle: int) -> None:
        """Adopts a posterior handle a library call just returned; if that fails, the handle is
        freed (or the object closed) before the error propagates, so nothing leaks."""
        try:
            self._replace(handle)
        except BaseException:
            if self._handle is None:
                _lib.lib.bdl_laplace_free(handle)
            else:
                self.close()
            raise

    @classmethod
    def _empty(cls, model: Optional[Sequential]) -> "Laplace":
        self = cls.__new__(cls)
        _OwnedHandle.__init__(self)
        self._closed = False
        self._model = model
        self._fisher, self._approx = _lib.BDL_FISHER_EXACT, _lib.BDL_KFAC_EXPAND
        self._mc_samples, self._seed, self._damped = 1, 0, 0
        self._prior_mean = None
        return self

    def __repr__(self) -> str:
        if self._closed:
            return "<Laplace (closed)>"
        text = (
            f"likelihood={self.likelihood!r} structure={self.structure!r} subset={self.subset!r}"
        )
        if self._handle is None:
            return f"<Laplace {text} (not fitted)>"
        return f"<Laplace {text} n_params={self._n_params}>"

    # -- construction ---------------------------------------------------------------------------

    def _params(self) -> Tuple[_lib.bdl_laplace_params, list]:
        """The bdl_laplace_params of this object's options and current hyperparameters, and the
        arrays its pointers refer to (keep them alive during the call)."""
        params = _lib.bdl_laplace_params()
        _check(_lib.lib.bdl_laplace_params_init(byref(params)))
        params.likelihood = self._likelihood
        params.structure = self._structure
        params.subset = self._subset
        params.fisher = self._fisher
        params.approximation = self._approx
        params.damped = self._damped
        params.mc_samples = self._mc_samples
        params.seed = self._seed
        prior, mean, sigma, temperature = self._current_hyperparameters()
        mean = mean if mean is not None else np.zeros(1)
        params.prior_precision, params.prior_precision_count = _ptr(prior), prior.size
        params.prior_mean, params.prior_mean_count = _ptr(mean), mean.size
        params.sigma_noise = sigma
        params.temperature = temperature
        return params, [prior, mean]

    def fit(self, X, y, batch_size: int = 256, progress=None) -> "Laplace":
        r"""Fits the posterior at the model's current θ* on (X, y); returns self.

        One pass over the data computes the loss L (Σ cross-entropy, or ½Σ‖y − f‖²) and the
        curvature G at σ = 1, T = 1 (so the hyperparameters can change afterwards without
        refitting). For ``subset="last_layer"`` the features before the last layer are computed
        once and the last layer's curvature is built from them. A refit replaces the posterior
        and keeps the current hyperparameters (e.g. an optimised prior).

        Args:
            X: (N, *input_shape).
            y: classification: N integer labels in [0, C); regression: (N, C) targets.
            batch_size: examples per forward/backward pass (memory only; the result does not
                depend on it beyond rounding).
            progress: None — a one-line progress bar on stderr when it is a terminal, silent
                otherwise (as :meth:`Sequential.fit`); False — silent; True — always the bar;
                a callable — called as ``progress(done, total)`` (examples) after every batch.
                An exception raised by the callback is re-raised once the pass has finished
                (the pass cannot be interrupted), and the previous posterior is then kept.

        Raises:
            WrongStateError: the object has no model (made by :meth:`from_curvature` or
                :meth:`load` without one), or it was closed.
            ShapeMismatchError: X or y has the wrong shape; the prior precision has neither 1,
                one per parameter tensor nor one per parameter value; the prior mean neither 1
                nor one per parameter.
            InvalidArgumentError: a label outside [0, C), N = 0, δ ≤ 0, σ ≤ 0, T ≤ 0,
                batch_size or mc_samples < 1, a per-parameter prior with ``damped=True``.
            NonFiniteInputError: NaN/Inf in X, y or the hyperparameters.
            OutOfMemoryError: a full posterior too large for memory.
            NotPositiveDefiniteError: the posterior precision is singular.
        """
        if self._closed:
            raise WrongStateError("Laplace is closed; create a new one")
        model = self._require_model(None)
        X, n = model._inputs(X)
        y = model._targets(y, n, self._likelihood)
        params, keep = self._params()
        params.batch_size = _int64(batch_size, "batch_size")
        handle = c_void_p()
        with model._use() as model_handle:
            failure = _call_with_progress(
                progress, "Laplace fit",
                lambda callback: _lib.lib.bdl_laplace_fit(
                    model_handle, _ptr(X), n, _ptr(y), byref(params), callback, None, byref(handle)
                ),
            )
        del keep
        if failure is not None:
            _lib.lib.bdl_laplace_free(handle.value)
            raise failure
        self._replace(handle.value)
        return self

    @classmethod
    def from_curvature(
        cls,
        curvature,
        theta,
        loss: float,
        n_data: int,
        n_outputs: int,
        likelihood: str = "classification",
        tensor_sizes: Optional[Sequence[int]] = None,
        prior_precision: Union[float, Sequence[float]] = 1.0,
        sigma_noise: float = 1.0,
        temperature: float = 1.0,
        prior_mean: Union[float, Sequence[float]] = 0.0,
        damped: bool = False,
    ) -> "Laplace":
        r"""A posterior from curvature you already have — e.g. a PyTorch model's K-FAC statistics
        captured with hooks into a :class:`~bdlcore.KFACAccumulator` — so its evidence,
        gradients and optimal prior come without a bdlcore model.

        The structure follows the curvature: :class:`~bdlcore.KFAC` / :class:`~bdlcore.EKFAC`
        (or an accumulator, finalised here) give ``"kron"``, :class:`~bdlcore.DiagGGN`
        ``"diag"``, :class:`~bdlcore.GGN` ``"full"``. The curvature must be the SUM over the
        data at σ = 1, T = 1 (as bdlcore fits it; with PyTorch losses use ``reduction='sum'``
        and the GGN of ½·SSE for regression).

        The result has no model: pass ``model=`` (a :class:`~bdlcore.Sequential` with θ* in
        the curvature's parameter order) to :meth:`predict` and :meth:`functional_variance`.

        Args:
            curvature: a KFAC, EKFAC, DiagGGN, GGN or KFACAccumulator (its data is copied).
            theta: θ* (P,), in the curvature's parameter order.
            loss: L at θ*: Σ_n cross-entropy (classification) or ½ Σ_n ‖y_n − f_n‖²
                (regression), without σ or T.
            n_data: N.
            n_outputs: C.
            likelihood: ``"classification"`` or ``"regression"``.
            tensor_sizes: the parameter tensors' sizes in θ order, for a per-tensor prior
                (None: the K-FAC blocks — each weight, then its bias — or one tensor).
            prior_precision, sigma_noise, temperature, prior_mean, damped: as in the constructor.

        Raises:
            TypeError: ``curvature`` is not one of the types above.
            ShapeMismatchError: theta or the prior does not match the curvature.
            InvalidArgumentError, NonFiniteInputError, NotPositiveDefiniteError: as :meth:`fit`.
        """
        if isinstance(curvature, KFACAccumulator):
            from .curvature import KFAC

            with KFAC._from_handle(curvature._finalize_handle()) as finalised:
                return cls.from_curvature(
                    finalised, theta, loss, n_data, n_outputs, likelihood=likelihood, tensor_sizes=tensor_sizes,
                    prior_precision=prior_precision, sigma_noise=sigma_noise, temperature=temperature,
                    prior_mean=prior_mean, damped=damped,
                )
        if not isinstance(curvature, _Curvature):
            raise TypeError(
                f"curvature: expected a bdlcore KFAC, EKFAC, DiagGGN, GGN or KFACAccumulator, got {type(curvature).__name__}"
            )
        self = cls._empty(None)
        self._likelihood = _choice(likelihood, _LIKELIHOODS, "likelihood")
        self._damped = _bool_flag(damped, "damped")
        self._prior = _vector(prior_precision, "prior_precision")
        self._prior_mean = _vector(prior_mean, "prior_mean")
        self._sigma, self._temperature = float(sigma_noise), float(temperature)
        self._structure, self._subset = _lib.BDL_LAPLACE_KRON, _lib.BDL_SUBSET_ALL
        theta = _vector(theta, "theta")
        sizes = None
        if tensor_sizes is not None:
            sizes = np.ascontiguousarray(tensor_sizes, dtype=np.int64).reshape(-1)
        params, keep = self._params()
        handle = c_void_p()
        with curvature._use() as curvature_handle:
            _check(
                _lib.lib.bdl_laplace_from_curvature(
                    curvature_handle, _ptr(theta), theta.size,
                    None if sizes is None else sizes.ctypes.data_as(POINTER(c_int64)),
                    0 if sizes is None else sizes.size,
                    float(loss), _int64(n_data, "n_data"), _int64(n_outputs, "n_outputs"), byref(params), byref(handle),
                )
            )
        del keep
        self._adopt_new(handle.value)
        return self

    # -- files ----------------------------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        """Writes the posterior (curvature, θ*, loss and hyperparameters) to ``path``: a
        versioned, checksummed file, written to a temporary name and renamed into place.

        Raises:
            BDLIOError: the file cannot be written.
            InvalidArgumentError: an empty path or one containing a NUL byte.
        """
        encoded = _path_bytes(path)
        with self._use() as handle:
            _check(_lib.lib.bdl_laplace_save(handle, encoded))

    @classmethod
    def load(cls, path: PathLike, model: Optional[Sequential] = None) -> "Laplace":
        """Reads a posterior written by :meth:`save`.

        ``model`` (optional) becomes the default network of :meth:`predict` and
        :meth:`functional_variance`; it must have the parameter count the posterior was fitted
        to.

        Raises:
            BDLIOError: the file cannot be opened or read.
            CorruptDataError: not a posterior file, another format version, truncated, damaged
                or inconsistent contents.
            ShapeMismatchError: ``model`` has another parameter count.
            TypeError: ``model`` is not a Sequential.
        """
        encoded = _path_bytes(path)
        if model is not None and not isinstance(model, Sequential):
            raise TypeError(f"model: expected a bdlcore.Sequential or None, got {type(model).__name__}")
        handle = c_void_p()
        if model is None:
            _check(_lib.lib.bdl_laplace_load(encoded, None, byref(handle)))
        else:
            with model._use() as model_handle:
                _check(_lib.lib.bdl_laplace_load(encoded, model_handle, byref(handle)))
        self = cls._empty(model)
        self._adopt_new(handle.value)
        return self

    # -- description ----------------------------------------------------------------------------

    @property
    def likelihood(self) -> str:
        """``"classification"`` or ``"regression"``."""
        return _names(_LIKELIHOODS)[self._likelihood]

    @property
    def structure(self) -> str:
        """``"full"``, ``"diag"`` or ``"kron"``."""
        return _names(_STRUCTURES)[self._structure]

    @property
    def subset(self) -> str:
        """``"all"`` or ``"last_layer"``."""
        return _names(_SUBSETS)[self._subset]

    @property
    def n_params(self) -> int:
        """The number of parameters the posterior covers (the model's P, or the last layer's)."""
        self._live()
        return self._n_params

    @property
    def model(self) -> Optional[Sequential]:
        """The default network of :meth:`predict` and :meth:`functional_variance` (None after
        :meth:`from_curvature`, or :meth:`load` without one)."""
        return self._model

    # -- hyperparameters ------------------------------------------------------------------------

    def _current_hyperparameters(self) -> Tuple[np.ndarray, Optional[np.ndarray], float, float]:
        """(prior precision, prior mean, σ, T): the posterior's when fitted, else the configured ones."""
        if self._closed:
            raise WrongStateError("Laplace is closed; create a new one")
        if self._handle is None:
            return self._prior, self._prior_mean, self._sigma, self._temperature
        prior_count, mean_count, sigma, temperature = c_int64(), c_int64(), c_double(), c_double()
        with self._use() as handle:
            _check(_lib.lib.bdl_laplace_hyperparameters(
                handle, None, 0, byref(prior_count), None, 0, byref(mean_count), None, None))
            prior = np.empty(prior_count.value, dtype=np.float64)
            mean = np.empty(mean_count.value, dtype=np.float64)
            _check(_lib.lib.bdl_laplace_hyperparameters(
                handle, _ptr(prior), prior.size, byref(prior_count), _ptr(mean), mean.size, byref(mean_count),
                byref(sigma), byref(temperature)))
        return prior, mean, sigma.value, temperature.value

    def _set(self, prior=None, mean=None, sigma=None, temperature=None) -> None:
        """Changes some hyperparameters: in the posterior (checked there; on error nothing
        changes) and in the configuration used by a later :meth:`fit`."""
        if self._closed:
            raise WrongStateError("Laplace is closed; create a new one")
        prior_array = None if prior is None else _vector(prior, "prior_precision")
        mean_array = None if mean is None else _vector(mean, "prior_mean")
        if self._handle is not None:
            _, _, current_sigma, current_temperature = self._current_hyperparameters()
            sigma_value = current_sigma if sigma is None else float(sigma)
            temperature_value = current_temperature if temperature is None else float(temperature)
            with self._use() as handle:
                _check(
                    _lib.lib.bdl_laplace_set_hyperparameters(
                        handle,
                        None if prior_array is None else _ptr(prior_array), 0 if prior_array is None else prior_array.size,
                        None if mean_array is None else _ptr(mean_array), 0 if mean_array is None else mean_array.size,
                        sigma_value, temperature_value,
                    )
                )
        if prior_array is not None:
            self._prior = prior_array
        if mean_array is not None:
            self._prior_mean = mean_array
        if sigma is not None:
            self._sigma = float(sigma)
        if temperature is not None:
            self._temperature = float(temperature)

    @property
    def prior_precision(self) -> np.ndarray:
        """δ as a float64 array: 1 value, one per parameter tensor or one per covered parameter.

        Setting it (a float or a sequence) changes the posterior at once (the curvature is kept);
        the library checks the length and δ > 0 and leaves everything unchanged on error.
        """
        return self._current_hyperparameters()[0].copy()

    @prior_precision.setter
    def prior_precision(self, value) -> None:
        self._set(prior=value)

    @property
    def sigma_noise(self) -> float:
        """σ > 0, the regression noise (classification ignores it)."""
        return self._current_hyperparameters()[2]

    @sigma_noise.setter
    def sigma_noise(self, value: float) -> None:
        self._set(sigma=value)

    @property
    def temperature(self) -> float:
        """T > 0: h = 1/(σ²T) or 1/T scales the curvature and the log-likelihood."""
        return self._current_hyperparameters()[3]

    @temperature.setter
    def temperature(self, value: float) -> None:
        self._set(temperature=value)

    @property
    def prior_mean(self) -> Union[float, np.ndarray]:
        """μ0: a float, or an array of one value per covered parameter."""
        mean = self._current_hyperparameters()[1]
        return float(mean[0]) if mean.size == 1 else mean.copy()

    @prior_mean.setter
    def prior_mean(self, value) -> None:
        self._set(mean=value)

    # -- evidence -------------------------------------------------------------------------------

    def log_marginal_likelihood(self, prior_precision=None, sigma_noise=None) -> float:
        r"""log p(D) ≈ log p(D|θ*) − ½[log det P − log det P0] − ½(θ* − μ0)ᵀP0(θ* − μ0).

        At the given prior precision and σ (None: the current ones), without changing the
        posterior — laplace-torch's ``log_marginal_likelihood(prior_precision, sigma_noise)``.

        Raises:
            ShapeMismatchError: a prior of another length.
            InvalidArgumentError: δ ≤ 0 or σ ≤ 0.
            NonFiniteInputError: NaN/Inf among them.
        """
        prior, prior_pointer, count = _optional_vector(prior_precision, "prior_precision")
        sigma = None if sigma_noise is None else c_double(float(sigma_noise))
        out = c_double()
        with self._use() as handle:
            _check(
                _lib.lib.bdl_laplace_log_marginal_likelihood(
                    handle, prior_pointer, count, None if sigma is None else byref(sigma), byref(out)
                )
            )
        del prior
        return out.value

    def log_marginal_likelihood_grad(self, prior_precision=None, sigma_noise=None) -> Tuple[float, np.ndarray, float]:
        r"""(log p(D), ∂ log p(D)/∂ log δ, ∂ log p(D)/∂ log σ), in closed form.

        One gradient entry per prior-precision value (the given prior's or the current one's);
        the σ derivative is 0 for classification. Arguments and errors as
        :meth:`log_marginal_likelihood`.
        """
        prior, prior_pointer, count = _optional_vector(prior_precision, "prior_precision")
        if prior is None:
            size = self._current_hyperparameters()[0].size
        else:
            size = prior.size
        sigma = None if sigma_noise is None else c_double(float(sigma_noise))
        value, grad_sigma = c_double(), c_double()
        grad = np.empty(size, dtype=np.float64)
        with self._use() as handle:
            _check(
                _lib.lib.bdl_laplace_log_marginal_likelihood_grad(
                    handle, prior_pointer, count, None if sigma is None else byref(sigma),
                    byref(value), _ptr(grad), grad.size, byref(grad_sigma),
                )
            )
        del prior
        return value.value, grad, grad_sigma.value

    def optimize_prior_precision(
        self,
        prior_structure: str = "layerwise",
        optimize_sigma: bool = False,
        tol: float = 1e-8,
        max_iter: int = 200,
    ) -> EvidenceOptimum:
        r"""Maximises the evidence over δ (and σ for regression with ``optimize_sigma``).

        Newton's method on the analytic gradient and Hessian with respect to log δ (a separable
        diagonal Newton for a per-parameter prior on ``diag``, L-BFGS for per-parameter and
        unit-wise priors on coupled structures), started from the current values, until the
        gradient norm is < ``tol``; log δ stays in [log 1e−10, log 1e10]. laplace-torch's
        ``optimize_prior_precision(method='marglik')`` instead takes 100 Adam steps (lr 0.1) on
        the same objective and stops wherever they end, typically with gradients of 1e−2 to
        1e−1; here the optimum is reached to the tolerance, so the evidence is at least as high.
        The result becomes the posterior's hyperparameters, also when not converged.

        Args:
            prior_structure: ``"scalar"``, ``"layerwise"`` (one δ per parameter tensor: the
                default, since separate weight and bias scales usually raise the evidence
                markedly at no risk of overfitting a handful of values), ``"diag"``
                (one per parameter) or ``"unitwise"`` (δ_ij = a_i·b_j per weight — per (out, in)
                channel pair for a conv — and one per bias element, stored as one δ per
                parameter; needs a posterior made by :meth:`fit`, which knows the layer shapes).
            optimize_sigma: also optimise σ (regression only).
            tol: the gradient-norm tolerance (≤ 0 means 1e−8).
            max_iter: the iteration limit (≤ 0 means 200).

        Returns:
            An :class:`EvidenceOptimum`. A :class:`UserWarning` is issued when it did not
            converge.

        Raises:
            InvalidArgumentError: an unknown prior_structure; optimize_sigma for classification.
        """
        code = _choice(prior_structure, _PRIOR_STRUCTURES, "prior_structure")
        out = _lib.bdl_evidence_optimum()
        with self._use() as handle:
            _check(
                _lib.lib.bdl_laplace_optimize_prior_precision(
                    handle, code, _bool_flag(optimize_sigma, "optimize_sigma"), float(tol), _int64(max_iter, "max_iter"),
                    byref(out),
                )
            )
        result = EvidenceOptimum(
            float(out.log_marginal_likelihood), float(out.gradient_norm), int(out.iterations), bool(out.converged)
        )
        prior, _, sigma, _ = self._current_hyperparameters()
        self._prior, self._sigma = prior, sigma
        if not result.converged:
            warnings.warn(
                f"optimize_prior_precision did not converge in {result.iterations} iterations: gradient norm "
                f"{result.gradient_norm:.3g} ≥ tol (the last iterate is kept; raise max_iter or tol)",
                UserWarning,
                stacklevel=2,
            )
        return result

    # -- predictive -----------------------------------------------------------------------------

    def _require_model(self, model: Optional[Sequential]) -> Sequential:
        model = self._model if model is None else model
        if model is None:
            raise WrongStateError(
                "Laplace: this posterior has no model (it was made by from_curvature or load without one); pass model=..."
            )
        if not isinstance(model, Sequential):
            raise TypeError(f"model: expected a bdlcore.Sequential, got {type(model).__name__}")
        return model

    def functional_variance(self, X, model: Optional[Sequential] = None) -> Tuple[np.ndarray, np.ndarray]:
        r"""(f_mu, f_var): f(x; θ*) (n, C) and Σ_f = J(x) P⁻¹ J(x)ᵀ (n, C, C), without σ².

        laplace-torch's ``f_mu, f_var`` of the GLM predictive. J is taken at the model's θ (the
        posterior's θ* if the model was not changed).

        Raises:
            WrongStateError: no model (see :meth:`from_curvature`).
            ShapeMismatchError: X has the wrong shape; the model is not the one fitted (size).
            NonFiniteInputError: NaN/Inf in X.
        """
        model = self._require_model(model)
        X, n = model._inputs(X)
        C = model.num_outputs
        mean = np.empty((n, C), dtype=np.float64)
        variance = np.empty((n, C, C), dtype=np.float64)
        with self._use() as handle, model._use() as model_handle:
            _check(
                _lib.lib.bdl_laplace_functional_variance(
                    handle, model_handle, _ptr(X), n, _ptr(mean), mean.size, _ptr(variance), variance.size
                )
            )
        return mean, variance

    def predict(
        self,
        X,
        pred_type: str = "glm",
        link: str = "probit",
        n_samples: int = 100,
        seed: int = 0,
        include_noise: bool = True,
        model: Optional[Sequential] = None,
    ):
        r"""The posterior predictive at X (n examples).

        Classification → class probabilities (n, C):

        * ``pred_type="glm"`` (the linearised predictive, laplace-torch's default) with
          ``link="probit"``: softmax(f ⊙ κ), κ_c = 1/√(1 + π/8·Σ_f,cc) (the default: closed
          form, no sampling); ``"bridge"``: laplace-torch's ``'bridge'``, the Laplace bridge's
          Dirichlet mean α/Σα, α_c = (1 − 2/C + e^{f_c}/C²·Σ_k e^{−f_k})/Σ_f,cc, after the
          zero-mean correction f ← f − Σ_f1·(1ᵀf)/(1ᵀΣ_f1), Σ_f ← Σ_f − Σ_f11ᵀΣ_f/(1ᵀΣ_f1)
          (softmax is shift-invariant); ``"mc"``: the mean of softmax(f̃) over ``n_samples`` draws f̃ ~ N(f, Σ_f),
          seeded by ``seed``;
        * ``pred_type="nn"``: the mean of softmax(f(x; θ̃)) over ``n_samples`` draws
          θ̃ ~ N(θ*, P⁻¹) (seeded).

        Regression → (mean (n, C), covariance (n, C, C)):

        * ``"glm"``: f(x; θ*) and Σ_f + σ²I (Σ_f alone with ``include_noise=False``, which is
          laplace-torch's ``f_var``; ``link`` is not used);
        * ``"nn"``: the mean and covariance of f(x; θ̃) over the draws (+ σ²I with
          ``include_noise``).

        ``n_samples`` defaults to 100, laplace-torch's default. ``model`` defaults to the
        constructor's.

        Raises:
            WrongStateError: no model (see :meth:`from_curvature`); not fitted.
            InvalidArgumentError: an unknown pred_type or link, n_samples < 1.
            ShapeMismatchError: X has the wrong shape; the model is not the one fitted (size).
            NonFiniteInputError: NaN/Inf in X.
        """
        if pred_type not in _PRED_TYPES:
            raise InvalidArgumentError(f"pred_type: expected 'glm' or 'nn', got {pred_type!r}")
        link_code = _choice(link, _LINKS, "link")
        noise = _bool_flag(include_noise, "include_noise")
        seed = _seed(seed)
        samples = _int64(n_samples, "n_samples")
        model = self._require_model(model)
        X, n = model._inputs(X)
        C = model.num_outputs
        mean = np.empty((n, C), dtype=np.float64)
        classification = self._likelihood == _lib.BDL_LIKELIHOOD_CLASSIFICATION
        variance = None if classification else np.empty((n, C, C), dtype=np.float64)
        with self._use() as handle, model._use() as model_handle:
            if pred_type == "nn":
                _check(
                    _lib.lib.bdl_laplace_predict_sampling(
                        handle, model_handle, _ptr(X), n, samples, seed, noise, _ptr(mean), mean.size,
                        None if variance is None else _ptr(variance), 0 if variance is None else variance.size,
                    )
                )
            elif classification:
                _check(
                    _lib.lib.bdl_laplace_predict(handle, model_handle, _ptr(X), n, link_code, samples, seed, _ptr(mean), mean.size)
                )
            else:
                _check(
                    _lib.lib.bdl_laplace_predict_regression(
                        handle, model_handle, _ptr(X), n, noise, _ptr(mean), mean.size, _ptr(variance), variance.size
                    )
                )
        return mean if classification else (mean, variance)

    __call__ = predict

    # -- the Gaussian ---------------------------------------------------------------------------

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        r"""n draws θ ~ N(θ*, P⁻¹) of the covered parameters, shape (n, n_params), seeded.

        Computed as θ* + P^(−1/2) z, z ~ N(0, I), through the structure's factorisation.
        """
        count = _int64(n, "n")
        out = np.empty((max(count, 0), self.n_params), dtype=np.float64)
        with self._use() as handle:
            _check(_lib.lib.bdl_laplace_sample(handle, count, _seed(seed), _ptr(out), out.size))
        return out

    def log_prob(self, theta) -> float:
        r"""log N(θ; θ*, P⁻¹) = −½(θ − θ*)ᵀP(θ − θ*) + ½ log det P − (n_params/2)·log 2π.

        ``theta`` has one value per covered parameter (n_params,).

        Raises:
            ShapeMismatchError: theta of another length.
            NonFiniteInputError: NaN/Inf in theta.
        """
        vector = _vector(theta, "theta")
        out = c_double()
        with self._use() as handle:
            _check(_lib.lib.bdl_laplace_log_prob(handle, _ptr(vector), vector.size, byref(out)))
        return out.value
