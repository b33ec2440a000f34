r"""Pruning: scores, structured units, masks and sparsity reports.

A score ranks the parameters; the smallest are removed first. With θ the posterior mean θ* of a
:class:`~bdlcore.Laplace` posterior (the trained network's parameters) and
P = h·G + P0 its posterior precision at its current hyperparameters (h = 1/(σ²T) for regression,
1/T for classification; G the curvature, P0 = diag(δ) the prior precision):

* ``"opd"`` — optimal posterior damage (Dhahri et al. 2024, SpaM): s_i = P_ii·θ_i²;
* ``"obd"`` — optimal brain damage (LeCun et al. 1990): s_i = ½·h·G_ii·θ_i², G_ii the exact GGN
  diagonal for ``"full"``/``"diag"`` posteriors and K-FAC's diagonal for ``"kron"``;
  for ``"diag"``, OPD = 2·OBD + δ_i·θ_i²;
* ``"kfac_obs"`` — the optimal-brain-surgeon saliency (Hassibi & Stork 1993) with the posterior's
  variances: s_i = θ_i²/[P⁻¹]_ii (without Hassibi & Stork's ½, so it equals OPD for ``"diag"``);
* ``"magnitude"`` — |θ_i|; ``"random"`` — uniform on [0, 1) from ``seed``.

P is never formed where the structure avoids it: for ``"kron"``, per block with eigenvalues
d_pq = h·β_p·α_q + δ in the eigenbasis Q_B ⊗ Q_A,
P_(m,n) = Σ_pq Q_B[m,p]²·Q_A[n,q]²·d_pq and [P⁻¹]_(m,n) = Σ_pq Q_B[m,p]²·Q_A[n,q]²/d_pq;
``"full"`` uses the dense diagonals (Cholesky).

Structured pruning removes whole units: an output neuron of a Linear layer (its row of W and its
bias) or an output filter of a Conv2d layer (W[j] and its bias), in every Linear/Conv2d layer
except the last (the output layer is never pruned structurally). A unit's score is the sum of its
parameters' scores; :func:`groups` lists the units in score order.

A mask holds one value per parameter of the network: 1 keeps it, 0 removes it. Apply it with
:meth:`bdlcore.Sequential.apply_mask`; save it with the network with
:meth:`bdlcore.Sequential.save`.

Example::

    import bdlcore
    from bdlcore import pruning
    la = bdlcore.Laplace(net, "classification", structure="kron").fit(X, y)
    la.optimize_prior_precision(prior_structure="diag")
    s = pruning.scores(la, "opd")
    m = pruning.mask(s, 0.9, model=net)              # remove 90% of the weights
    net.apply_mask(m)
    pruning.sparsity_report(net).sparsity              # 0.9 (to one weight)
"""

from __future__ import annotations

import inspect
from ctypes import byref, c_int64
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from ._errors import InvalidArgumentError, ShapeMismatchError, _check
from .laplace import Laplace
from .model import Sequential, _choice, _seed

__all__ = [
    "scores", "groups", "mask", "sparsity_report", "sparsity_curve", "SparsityReport", "LayerSparsity",
    "SparsityCurve", "CRITERIA", "SPAM_SPARSITIES",
]

_ptr = _lib.as_pointer

_CRITERIA = {
    "opd": _lib.BDL_PRUNING_OPD,
    "obd": _lib.BDL_PRUNING_OBD,
    "magnitude": _lib.BDL_PRUNING_MAGNITUDE,
    "random": _lib.BDL_PRUNING_RANDOM,
    "kfac_obs": _lib.BDL_PRUNING_KFAC_OBS,
}

#: The criterion names :func:`scores` accepts.
CRITERIA: Tuple[str, ...] = tuple(_CRITERIA)


def _flag(value, name: str) -> int:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{name}: expected True or False, got {value!r}")
    return int(value)


def _vector(values, name: str) -> np.ndarray:
    array = np.ascontiguousarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ShapeMismatchError(f"{name}: expected a vector, got an array of shape {array.shape}")
    return array


def scores(
    model_or_laplace: Union[Sequential, Laplace],
    criterion: str = "opd",
    structured: bool = False,
    seed: int = 0,
    model: Optional[Sequential] = None,
) -> np.ndarray:
    r"""Pruning scores of each parameter (or, with ``structured=True``, of each unit).

    Args:
        model_or_laplace: a fitted :class:`~bdlcore.Laplace` (every criterion; θ = its mean θ*),
            or a :class:`~bdlcore.Sequential` (``"magnitude"`` and ``"random"`` only; θ = its
            parameters).
        criterion: ``"opd"`` (P_ii·θ_i²), ``"obd"`` (½·h·G_ii·θ_i²), ``"magnitude"`` (|θ_i|),
            ``"random"`` (uniform on [0, 1)) or ``"kfac_obs"`` (θ_i²/[P⁻¹]_ii); see the module
            documentation.
        structured: False: one score per parameter the posterior covers (or per model
            parameter); True: one per unit, the sum over its weights and bias, in :func:`groups`
            order (needs a posterior over all parameters, not ``subset="last_layer"``).
        seed: seeds ``"random"`` (0 ≤ seed < 2**64).
        model: with a Laplace, the network it was fitted to (checked; needed for structured
            scores, where it defaults to the posterior's own model).

    Returns:
        float64 array: one score per covered parameter, or per unit.

    Raises:
        InvalidArgumentError: unknown criterion; a posterior criterion on a model; structured
            scores without a model, from a last-layer posterior, or of a network without a
            Linear/Conv2d layer before its output layer.
        ShapeMismatchError: ``model`` is not the network the posterior was fitted to.
        TypeError: ``model_or_laplace`` is neither a Laplace nor a Sequential.
    """
    code = _choice(criterion, _CRITERIA, "criterion")
    structured = _flag(structured, "structured")
    seed = _seed(seed)
    if isinstance(model_or_laplace, Laplace):
        laplace = model_or_laplace
        if model is None and structured:
            model = laplace.model
    elif isinstance(model_or_laplace, Sequential):
        if model is not None and model is not model_or_laplace:
            raise InvalidArgumentError("model: give the model once (as the first argument) when there is no posterior")
        laplace, model = None, model_or_laplace
    else:
        raise TypeError(f"model_or_laplace: expected a bdlcore.Laplace or Sequential, got {type(model_or_laplace).__name__}")
    if model is not None and not isinstance(model, Sequential):
        raise TypeError(f"model: expected a bdlcore.Sequential, got {type(model).__name__}")

    def call(out: Optional[np.ndarray], count: c_int64) -> None:
        pointer, capacity = (None, 0) if out is None else (_ptr(out), out.size)
        if laplace is not None and model is not None:
            with laplace._use() as la, model._use() as net:
                _check(_lib.lib.bdl_pruning_scores(la, net, code, structured, seed, pointer, capacity, byref(count)))
        elif laplace is not None:
            with laplace._use() as la:
                _check(_lib.lib.bdl_pruning_scores(la, None, code, structured, seed, pointer, capacity, byref(count)))
        else:
            with model._use() as net:
                _check(_lib.lib.bdl_pruning_scores(None, net, code, structured, seed, pointer, capacity, byref(count)))

    count = c_int64()
    call(None, count)
    out = np.empty(count.value, dtype=np.float64)
    call(out, count)
    return out


def groups(model: Sequential) -> List[Tuple[int, int]]:
    """The units of structured pruning, in score order: (layer, unit) for each output neuron of
    every Linear and output filter of every Conv2d layer except the last. ``layer`` is the
    library's layer index, as in :func:`sparsity_report` (equal to the position in
    ``model.layers`` unless the network has a layer the library runs as two).
    """
    layers = sparsity_report(model).layers
    return [(layer.layer, j) for layer in layers[:-1] for j in range(layer.units)]


def mask(
    scores,
    sparsity: Optional[float] = None,
    structured: bool = False,
    per_layer: Optional[Sequence[float]] = None,
    model: Optional[Sequential] = None,
    include_biases: bool = False,
) -> np.ndarray:
    r"""A pruning mask for ``model``: one value per parameter, 1 kept, 0 removed.

    Unstructured (default): global over the network — the k = round(s·n) of the n prunable
    parameters with the smallest scores are removed, i.e. a threshold at the s-quantile of all
    prunable scores; ties go to the earlier parameter. Prunable are the weights only unless
    ``include_biases``: biases are ~1% of a network, cost no multiplications and zeroing one
    shifts a unit's every activation rather than cutting a connection (SpaM and the
    magnitude baselines prune weights only).

    Structured: in each prunable layer l the k_l = round(f_l·n_l) of its n_l units with the
    smallest scores lose their weights and bias; f_l = ``per_layer[l]`` or ``sparsity`` for
    every layer. Per layer rather than global, because unit sums of layers with different
    fan-in are not on one scale.

    Sparsity 0 keeps everything: applying that mask changes no bit of θ.

    Args:
        scores: one per model parameter (unstructured) or per unit (structured), e.g. from
            :func:`scores`.
        sparsity: s in [0, 1) (required unless ``per_layer`` is given).
        structured: prune whole units (see :func:`groups`).
        per_layer: structured only: one fraction in [0, 1) per prunable layer.
        model: the :class:`~bdlcore.Sequential` the mask is for (required).
        include_biases: unstructured only: biases are prunable too.

    Raises:
        InvalidArgumentError: s or a fraction outside [0, 1); one that would remove every
            prunable parameter or every unit of a layer; missing model or sparsity;
            ``per_layer`` without ``structured``.
        ShapeMismatchError: scores or per_layer of the wrong length.
        NonFiniteInputError: a NaN score.
    """
    if not isinstance(model, Sequential):
        raise InvalidArgumentError(f"model: expected the bdlcore.Sequential the mask is for, got {model!r}")
    structured = _flag(structured, "structured")
    biases = _flag(include_biases, "include_biases")
    values = _vector(scores, "scores")
    fractions = None
    if per_layer is not None:
        if not structured:
            raise InvalidArgumentError("per_layer: per-layer fractions apply to structured pruning (structured=True)")
        fractions = _vector(per_layer, "per_layer")
        if fractions.size == 0:
            raise ShapeMismatchError("per_layer: expected one fraction per prunable layer, got none")
    elif sparsity is None:
        raise InvalidArgumentError("sparsity: give the fraction to prune, in [0, 1)")
    s = 0.0 if sparsity is None else float(sparsity)
    out = np.empty(model.num_parameters, dtype=np.float64)
    with model._use() as net:
        _check(
            _lib.lib.bdl_pruning_mask(
                net, _ptr(values), values.size, s, structured,
                None if fractions is None else _ptr(fractions), 0 if fractions is None else fractions.size,
                biases, _ptr(out), out.size,
            )
        )
    return out


@dataclass(frozen=True)
class LayerSparsity:
    """One Linear/Conv2d layer after pruning. A layer computing y_r = W·a_r + b at R positions
    per example (R = 1 for vectors, T for sequences, H_out·W_out for a convolution) costs
    ``macs`` = R·d_out·d_in multiply-accumulates dense (one MAC = 2 FLOPs) and
    ``macs_kept`` = R·``weights_kept`` after pruning; bias additions, activations and pooling
    are not counted, and inputs dead because an upstream unit was pruned are not discounted."""

    layer: int
    weights: int
    weights_kept: int
    biases: int
    biases_kept: int
    units: int
    units_kept: int
    macs: int
    macs_kept: int

    @property
    def sparsity(self) -> float:
        """The fraction of the layer's weights removed."""
        return 1 - self.weights_kept / self.weights if self.weights else 0.0


@dataclass(frozen=True)
class SparsityReport:
    """Per Linear/Conv2d layer (:class:`LayerSparsity`) and totals over the network."""

    layers: Tuple[LayerSparsity, ...]

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def weights_kept(self) -> int:
        return sum(layer.weights_kept for layer in self.layers)

    @property
    def macs(self) -> int:
        """Multiply-accumulates per example of the dense network."""
        return sum(layer.macs for layer in self.layers)

    @property
    def macs_kept(self) -> int:
        """Multiply-accumulates per example by the kept weights."""
        return sum(layer.macs_kept for layer in self.layers)

    @property
    def sparsity(self) -> float:
        """The fraction of all weights removed."""
        return 1 - self.weights_kept / self.weights if self.weights else 0.0


def sparsity_report(model: Sequential, mask=None) -> SparsityReport:
    """Parameters and multiply-accumulates kept, per Linear/Conv2d layer.

    Args:
        model: the network.
        mask: its mask (0/1 per parameter), or None: the parameters that are exactly 0 count as
            removed.

    Raises:
        ShapeMismatchError: a mask of the wrong length.
        InvalidArgumentError: a mask value other than 0 or 1.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a bdlcore.Sequential, got {type(model).__name__}")
    values = None if mask is None else _vector(mask, "mask")
    count = c_int64()
    with model._use() as net:
        pointer, size = (None, 0) if values is None else (_ptr(values), values.size)
        _check(_lib.lib.bdl_model_sparsity(net, pointer, size, None, 0, byref(count)))
        layers = (_lib.bdl_layer_sparsity * count.value)()
        _check(_lib.lib.bdl_model_sparsity(net, pointer, size, layers, count.value, None))
    names = [name for name, _ in _lib.bdl_layer_sparsity._fields_]
    return SparsityReport(tuple(LayerSparsity(**{name: int(getattr(layer, name)) for name in names}) for layer in layers))


#: The :meth:`Sequential.fit` options a fine-tune may set (likelihood, mask and progress are fixed).
_FINE_TUNE_OPTIONS = ("optimizer", "lr", "epochs", "batch_size", "prior_precision", "seed", "schedule", "momentum", "sigma")

#: The sparsities of the SpaM paper's curves.
SPAM_SPARSITIES: Tuple[float, ...] = (0.2, 0.4, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)


class SparsityCurve(NamedTuple):
    """The outcome of :func:`sparsity_curve`: one entry per sparsity."""

    sparsity: np.ndarray
    #: Test accuracy of the pruned network.
    accuracy: np.ndarray
    #: Mean test NLL of p = softmax(f(x; θ ⊙ m)), from the logits.
    nll: np.ndarray
    #: Expected calibration error (15 equal-width bins).
    ece: np.ndarray


def sparsity_curve(model: Sequential, scores, X_test, y_test, sparsities: Sequence[float] = SPAM_SPARSITIES,
                   fine_tune: Optional[dict] = None) -> SparsityCurve:
    r"""How a classifier's test performance falls as it is pruned (the SpaM paper's evaluation).

    For each sparsity s the network is pruned by ``scores`` — global unstructured pruning of the
    weights, as :func:`mask` — optionally fine-tuned with the mask kept, and its predictions
    p = softmax(f(x; θ ⊙ m)) scored on (X_test, y_test). ``model`` itself is not changed.

    Args:
        model: the trained network.
        scores: one per parameter, any criterion (:func:`scores`).
        X_test, y_test: test inputs and labels in [0, C).
        sparsities: each in [0, 1); default :data:`SPAM_SPARSITIES`.
        fine_tune: None (no fine-tuning, the paper's main setting), or a dict with ``X`` and
            ``y`` (the training data) and any :meth:`bdlcore.Sequential.fit` options (epochs, lr,
            batch_size, prior_precision, seed, …) for a short fine-tune of each pruned copy.

    Raises:
        InvalidArgumentError: a sparsity outside [0, 1), bad labels or fine-tuning options.
        ShapeMismatchError: scores of the wrong length, test data of the wrong shape.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a bdlcore.Sequential, got {type(model).__name__}")
    values = _vector(scores, "scores")
    levels = _vector(sparsities, "sparsities")
    X, n = model._inputs(X_test)
    y = model._targets(y_test, n, _lib.BDL_LIKELIHOOD_CLASSIFICATION)
    params, keep = None, []
    X_train = y_train = None
    n_train = 0
    if fine_tune is not None:
        options = dict(fine_tune)
        try:
            X_fit, y_fit = options.pop("X"), options.pop("y")
        except KeyError as missing:
            raise InvalidArgumentError(f"fine_tune: needs the training data as 'X' and 'y' (missing {missing})") from None
        if "likelihood" in options or "mask" in options or "progress" in options:
            raise InvalidArgumentError("fine_tune: likelihood, mask and progress are set by sparsity_curve")
        # Sequential.fit's own options and defaults, so that fine-tuning means what fit means.
        fit_options = inspect.signature(Sequential.fit).parameters
        settings = {name: fit_options[name].default for name in _FINE_TUNE_OPTIONS}
        unknown = set(options) - set(settings)
        if unknown:
            raise InvalidArgumentError(f"fine_tune: unknown options {sorted(unknown)}")
        settings.update(options)
        params, X_train, n_train, y_train, keep = model._train_params(
            X_fit, y_fit, "classification", mask=None, **settings
        )
    accuracy, nll, ece = (np.empty(levels.size) for _ in range(3))
    with model._use() as net:
        _check(_lib.lib.bdl_pruning_sparsity_curve(
            net, _ptr(values), values.size, _ptr(levels), levels.size, _ptr(X), n, _ptr(y),
            None if params is None else byref(params), None if X_train is None else _ptr(X_train), n_train,
            None if y_train is None else _ptr(y_train), _ptr(accuracy), _ptr(nll), _ptr(ece),
        ))
    del keep
    return SparsityCurve(levels.copy(), accuracy, nll, ece)
