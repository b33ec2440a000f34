r"""Sequential networks in PyTorch's parameter layout: outputs, Jacobians, gradients, training.

A :class:`Sequential` is an ``nn.Sequential``-like network held by the library (one
``bdl_model`` handle). It has one parameter vector θ of length P: layer by layer, each layer's
weight then bias, flattened row-major in PyTorch's shapes — Linear weight (out, in), Conv2d weight
(out, in, k, k) — which is exactly ``torch.nn.utils.parameters_to_vector(model.parameters())`` of
the equivalent ``torch.nn.Sequential``. Weights therefore move between PyTorch and bdlcore by
copying one vector (:func:`from_torch`, :meth:`Sequential.to_torch`).

Shapes: a batch puts the example first and is row-major: X is (N, *input_shape) with
input_shape (in,) for vectors, (T, in) for sequences, (C, H, W) for NCHW images. Outputs are
(N, C). Every array is converted with ``np.ascontiguousarray(..., dtype=float64)``.

Likelihoods (``likelihood=``):

* ``"classification"``: categorical, p = softmax(f). Targets y are N class labels in [0, C)
  (any integer dtype; floats holding exact integers are accepted too).
  NLL = Σ_n [logsumexp(f_n) − f_{n, y_n}], PyTorch's ``CrossEntropyLoss(reduction='sum')``.
* ``"regression"``: Gaussian N(y; f, σ² I). Targets y are (N, C) (or (N,) when C = 1).
  NLL = Σ_n ½‖y_n − f_n‖²/σ² + N·C·log(σ√(2π)) — note the constant, which
  ``MSELoss``-based code leaves out.

Layers: :class:`Linear`, :class:`Conv2d`, :class:`ReLU`, :class:`Tanh`, :class:`Sigmoid`,
:class:`GELU`, :class:`Identity`, :class:`Flatten`, :class:`AvgPool2d`,
:class:`GlobalAvgPool2d`, :class:`MeanOverSequence`. A Linear layer acts on the last axis, so
on (N, T, in) it is shared over the T positions.

Example::

    import bdlcore
    X_train, y_train, X_test, y_test = bdlcore.datasets.load_digits()
    with bdlcore.Sequential([bdlcore.Linear(64, 128), bdlcore.ReLU(), bdlcore.Linear(128, 10)]) as net:
        net.fit(X_train / 16, y_train, epochs=30)
        accuracy = (net(X_test / 16).argmax(1) == y_test).mean()
"""

from __future__ import annotations

import ctypes
import math
import operator
import threading
import weakref
from ctypes import byref, c_double, c_int32, c_int64, c_void_p
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from ._errors import (
    InternalError,
    InvalidArgumentError,
    ShapeMismatchError,
    UnsupportedError,
    WrongStateError,
    error_for_status,
)
from ._errors import _check
from ._handle import _OwnedHandle
from ._progress import TextBar
from ._progress import reporter as _reporter

__all__ = [
    "Linear",
    "Conv2d",
    "ConvFCMixture",
    "ReLU",
    "Tanh",
    "Sigmoid",
    "GELU",
    "Identity",
    "Flatten",
    "AvgPool2d",
    "GlobalAvgPool2d",
    "MeanOverSequence",
    "Sequential",
    "from_torch",
]

_ptr = _lib.as_pointer
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1

_LIKELIHOODS = {
    "classification": _lib.BDL_LIKELIHOOD_CLASSIFICATION,
    "regression": _lib.BDL_LIKELIHOOD_REGRESSION,
}
_OPTIMIZERS = {"adam": _lib.BDL_OPTIMIZER_ADAM, "sgd": _lib.BDL_OPTIMIZER_SGD}
_SCHEDULES = {"constant": _lib.BDL_SCHEDULE_CONSTANT, "cosine": _lib.BDL_SCHEDULE_COSINE}


def _int64(value, name: str) -> int:
    """``value`` as a Python int in the int64 range (ctypes would wrap silently otherwise)."""
    try:
        number = operator.index(value)
    except TypeError:
        raise InvalidArgumentError(f"{name}: expected an integer, got {value!r}") from None
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise InvalidArgumentError(f"{name}: {number} does not fit in int64")
    return number


def _seed(value, name: str = "seed") -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise InvalidArgumentError(f"{name}: expected an integer, got {value!r}") from None
    if not 0 <= number <= _UINT64_MAX:
        raise InvalidArgumentError(f"{name}: expected 0 ≤ {name} < 2**64, got {number}")
    return number


def _choice(value, choices: Dict[str, int], name: str) -> int:
    if isinstance(value, str) and value in choices:
        return choices[value]
    expected = " or ".join(repr(key) for key in choices)
    raise InvalidArgumentError(f"{name}: expected {expected}, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------


class _Layer:
    """Base of the layer descriptions. A layer is a frozen value; the network holds the weights."""

    #: Whether the layer has a weight (Linear, Conv2d).
    has_weight = False

    def _set_ints(self, *names: str) -> None:
        for name in names:
            object.__setattr__(self, name, _int64(getattr(self, name), f"{type(self).__name__}.{name}"))

    def to_spec(self) -> _lib.bdl_layer_spec:
        """The ``bdl_layer_spec`` describing this layer to the library."""
        return _lib.bdl_layer_spec(kind=self._kind)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass(frozen=True, repr=False)
class Linear(_Layer):
    r"""y = W x + b on the last axis: (N, in) → (N, out), or (N, T, in) → (N, T, out).

    Parameters: weight W (out_features, in_features), then bias b (out_features,) if ``bias``.
    Initialised like PyTorch: W, b ~ U(±1/√in_features).
    """

    in_features: int
    out_features: int
    bias: bool = True

    has_weight = True
    _kind = _lib.BDL_LAYER_LINEAR

    def __post_init__(self):
        self._set_ints("in_features", "out_features")
        object.__setattr__(self, "bias", bool(self.bias))

    def to_spec(self) -> _lib.bdl_layer_spec:
        return _lib.bdl_layer_spec(
            kind=self._kind, bias=int(self.bias), in_features=self.in_features, out_features=self.out_features
        )

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias={self.bias})"


@dataclass(frozen=True, repr=False)
class Conv2d(_Layer):
    r"""2-D convolution, square kernel, zero padding, NCHW: (N, C_in, H, W) → (N, C_out, H', W').

    H' = ⌊(H + 2·padding − kernel_size)/stride⌋ + 1 (likewise W'). As a linear map at each of the
    R = H'·W' output positions: y_r = W a_r + b, with a_r the im2col patch (entries ordered
    (c, i, j) like the flattened weight).

    Parameters: weight (out_channels, in_channels, kernel_size, kernel_size), then bias
    (out_channels,) if ``bias``. Initialised like PyTorch: U(±1/√(in_channels·k²)).
    """

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    bias: bool = True

    has_weight = True
    _kind = _lib.BDL_LAYER_CONV2D

    def __post_init__(self):
        self._set_ints("in_channels", "out_channels", "kernel_size", "stride", "padding")
        object.__setattr__(self, "bias", bool(self.bias))

    def to_spec(self) -> _lib.bdl_layer_spec:
        return _lib.bdl_layer_spec(
            kind=self._kind,
            bias=int(self.bias),
            in_features=self.in_channels,
            out_features=self.out_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
        )

    def __repr__(self) -> str:
        k, s, p = self.kernel_size, self.stride, self.padding
        text = f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size=({k}, {k}), stride=({s}, {s})"
        if p != 0:
            text += f", padding=({p}, {p})"
        if not self.bias:
            text += ", bias=False"
        return text + ")"


@dataclass(frozen=True, repr=False)
class ConvFCMixture(Conv2d):
    r"""A convolution and a fully-connected path on the same image, averaged (layer-wise
    equivariance selection, van der Ouderaa et al. 2023):

        y = ½ · (Conv2d(x) + reshape(W_fc · vec(x) + b_fc)),   (N, C_in, H, W) → (N, C_out, H', W').

    The convolution is translation-equivariant, the fully-connected path is not; each has its own
    parameter tensors — conv weight, conv bias, FC weight (C_out·H'·W', C_in·H·W), FC bias, in
    this order — hence its own K-FAC blocks and its own per-tensor prior precision, so training by
    the evidence (:func:`bdlcore.train_marglik`) decides how much of the FC path the data
    support. The library runs it as two engine layers (conv, then FC), so per-layer indices of
    the library (K-FAC blocks, layer statistics, pruning reports) count it twice.
    """

    _kind = _lib.BDL_LAYER_CONV_FC_MIXTURE

    def __repr__(self) -> str:
        return "ConvFCMixture" + super().__repr__()[len("Conv2d"):]


@dataclass(frozen=True, repr=False)
class ReLU(_Layer):
    """max(x, 0), elementwise."""

    _kind = _lib.BDL_LAYER_RELU


@dataclass(frozen=True, repr=False)
class Tanh(_Layer):
    """tanh(x), elementwise."""

    _kind = _lib.BDL_LAYER_TANH


@dataclass(frozen=True, repr=False)
class Sigmoid(_Layer):
    """1/(1 + e^(−x)), elementwise."""

    _kind = _lib.BDL_LAYER_SIGMOID


@dataclass(frozen=True, repr=False)
class GELU(_Layer):
    """x·Φ(x) with Φ the standard normal CDF (the exact form, PyTorch's ``approximate='none'``)."""

    _kind = _lib.BDL_LAYER_GELU

    def __repr__(self) -> str:
        return "GELU(approximate='none')"


@dataclass(frozen=True, repr=False)
class Identity(_Layer):
    """x ↦ x."""

    _kind = _lib.BDL_LAYER_IDENTITY


@dataclass(frozen=True, repr=False)
class Flatten(_Layer):
    """(N, d1, d2, …) → (N, d1·d2·…), row-major (PyTorch's ``nn.Flatten()`` with start_dim=1)."""

    _kind = _lib.BDL_LAYER_FLATTEN

    def __repr__(self) -> str:
        return "Flatten(start_dim=1, end_dim=-1)"


@dataclass(frozen=True, repr=False)
class AvgPool2d(_Layer):
    """Mean over non-overlapping k × k windows (stride k, no padding): (N, C, H, W) → (N, C, ⌊H/k⌋, ⌊W/k⌋)."""

    kernel_size: int
    _kind = _lib.BDL_LAYER_AVG_POOL2D

    def __post_init__(self):
        self._set_ints("kernel_size")

    def to_spec(self) -> _lib.bdl_layer_spec:
        return _lib.bdl_layer_spec(kind=self._kind, kernel_size=self.kernel_size)

    def __repr__(self) -> str:
        k = self.kernel_size
        return f"AvgPool2d(kernel_size={k}, stride={k}, padding=0)"


@dataclass(frozen=True, repr=False)
class GlobalAvgPool2d(_Layer):
    """Mean over H and W: (N, C, H, W) → (N, C); PyTorch's ``AdaptiveAvgPool2d(1)`` then ``Flatten()``."""

    _kind = _lib.BDL_LAYER_GLOBAL_AVG_POOL2D


@dataclass(frozen=True, repr=False)
class MeanOverSequence(_Layer):
    """Mean over the sequence axis: (N, T, D) → (N, D), i.e. ``x.mean(dim=1)``."""

    _kind = _lib.BDL_LAYER_MEAN_OVER_SEQUENCE


_LAYER_TYPES = (Linear, Conv2d, ConvFCMixture, ReLU, Tanh, Sigmoid, GELU, Identity, Flatten, AvgPool2d, GlobalAvgPool2d, MeanOverSequence)


def _layer_from_spec(spec: _lib.bdl_layer_spec) -> _Layer:
    """The layer a ``bdl_layer_spec`` from the library describes (``bdl_model_layers``)."""
    kind = spec.kind
    if kind == _lib.BDL_LAYER_LINEAR:
        return Linear(spec.in_features, spec.out_features, bias=bool(spec.bias))
    if kind in (_lib.BDL_LAYER_CONV2D, _lib.BDL_LAYER_CONV_FC_MIXTURE):
        cls = Conv2d if kind == _lib.BDL_LAYER_CONV2D else ConvFCMixture
        return cls(spec.in_features, spec.out_features, spec.kernel_size, spec.stride, spec.padding, bias=bool(spec.bias))
    if kind == _lib.BDL_LAYER_AVG_POOL2D:
        return AvgPool2d(spec.kernel_size)
    simple = {layer._kind: layer for layer in (ReLU, Tanh, Sigmoid, GELU, Identity, Flatten, GlobalAvgPool2d, MeanOverSequence)}
    if kind not in simple:
        raise InternalError(f"bdl_model_layers returned the unknown layer kind {kind}")
    return simple[kind]()


# ---------------------------------------------------------------------------------------------
# Progress reporting
# ---------------------------------------------------------------------------------------------


def _float(value, name: str) -> float:
    """``value`` as a float (ranges are checked by the library)."""
    if isinstance(value, (str, bytes)):
        raise InvalidArgumentError(f"{name}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name}: expected a number, got {value!r}") from None


def _train_params(likelihood, optimizer, lr, epochs, batch_size, prior_precision, seed, schedule, momentum, sigma,
                  mask=None):
    """(bdl_train_params, arrays its pointers refer to) for :meth:`Sequential.fit`'s options; every
    training entry point (fit, train_marglik, the retraining evaluations, fine-tuning) builds them here."""
    prior = np.ascontiguousarray(prior_precision, dtype=np.float64)
    if prior.ndim > 1:
        raise ShapeMismatchError(
            f"prior_precision: expected a float or a sequence of one value per parameter tensor, got shape {prior.shape}"
        )
    prior = prior.reshape(-1)
    params = _lib.bdl_train_params()
    _check(_lib.lib.bdl_train_params_init(byref(params)))
    params.likelihood = _choice(likelihood, _LIKELIHOODS, "likelihood")
    params.sigma = _float(sigma, "sigma")
    params.optimizer = _choice(optimizer, _OPTIMIZERS, "optimizer")
    params.schedule = _choice(schedule, _SCHEDULES, "schedule")
    params.learning_rate = _float(lr, "lr")
    params.momentum = _float(momentum, "momentum")
    params.epochs = _int64(epochs, "epochs")
    params.batch_size = _int64(batch_size, "batch_size")
    params.prior_precision = _ptr(prior)
    params.prior_precision_count = prior.size
    params.seed = _seed(seed)
    keep = [prior]
    if mask is not None:
        mask = np.ascontiguousarray(mask, dtype=np.float64).reshape(-1)
        params.mask, params.mask_count = _ptr(mask), mask.size
        keep.append(mask)
    return params, keep


def _epoch_entry(report) -> Dict[str, Any]:
    """A training report (bdl_train_progress or bdl_marglik_progress) as fit's history dict."""
    return {
        "epoch": int(report.epoch),
        "epochs": int(report.epochs),
        "objective": float(report.objective),
        "mean_nll": float(report.mean_negative_log_likelihood),
    }


class _ProgressBar(TextBar):
    """The training bar: epochs done, with the epoch's objective and mean NLL."""

    def __init__(self, stream):
        super().__init__(stream, "epoch")

    def __call__(self, report: Dict[str, Any]) -> bool:
        self.draw(report["epoch"], report["epochs"],
                  f" objective {report['objective']:.4g}  mean NLL {report['mean_nll']:.4g}   ")
        return False


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


class _StatisticsOwner:
    """Owns a bdl_layer_statistics handle whose memory numpy arrays view: every array made by
    :meth:`array` keeps this object alive through its ctypes buffer, and the handle is freed when
    the last of them is gone (or at interpreter exit)."""

    def __init__(self, handle: c_void_p):
        weakref.finalize(self, _lib.lib.bdl_layer_statistics_free, handle)

    def array(self, data, shape) -> np.ndarray:
        """The ``shape`` doubles at the library pointer ``data``, as an array keeping the handle."""
        size = math.prod(shape)
        if size == 0:
            return np.zeros(shape)
        buffer = (c_double * size).from_address(ctypes.addressof(data.contents))
        buffer._owner = self
        return np.frombuffer(buffer, dtype=np.float64).reshape(shape)


class Sequential(_OwnedHandle):
    r"""A sequential network owned by the library, in PyTorch's parameter layout.

    θ (length P) is the concatenation, layer by layer, of each Linear/Conv2d layer's weight then
    bias, flattened row-major in PyTorch's shapes: Linear weight (out, in), Conv2d weight
    (out, in, k, k). It equals ``torch.nn.utils.parameters_to_vector(model.parameters())`` of the
    equivalent ``torch.nn.Sequential`` (see :meth:`to_torch` and :func:`from_torch`). θ is
    initialised from ``seed`` like PyTorch's defaults (W, b ~ U(±1/√fan_in)), not bit-equal to
    PyTorch's own random stream.

    Release it with :meth:`close` or a ``with`` block; otherwise it is released when garbage
    collected (``weakref.finalize``), exactly once. Any use after :meth:`close` raises
    :class:`~bdlcore.WrongStateError` without reaching the library. One object may be shared by
    threads: calls on it are serialised. The model must not be used from inside :meth:`fit`'s
    progress callback (that raises WrongStateError); use the callback's report or evaluate after
    ``fit`` returns.

    Args:
        layers: the layers in order (:class:`Linear`, :class:`Conv2d`, :class:`ReLU`, …), at least one.
        input_shape: one example's shape — (in,) for vectors, (T, in) for sequences, (C, H, W)
            for images. If None, it is (in_features,) when the first layer is Linear, and required
            otherwise (a Linear on sequences needs it given: (T, in)).
        seed: seeds the initialisation of θ, 0 ≤ seed < 2**64.

    Raises:
        ShapeMismatchError: input_shape missing where it cannot be inferred; a layer cannot take
            what the previous one produces (e.g. Conv2d after Flatten), or the output is not a
            vector per example — the message names the layer and the shapes.
        InvalidArgumentError: no layers, bad layer fields (e.g. zero features), bad input_shape
            (rank outside 1…3, entries < 1), bad seed.
        TypeError: an entry of ``layers`` is not a bdlcore layer.
    """

    _owner_name = "Sequential"

    def __init__(self, layers: Sequence[_Layer], input_shape: Optional[Sequence[int]] = None, seed: int = 0):
        super().__init__()
        self._training_thread: Optional[int] = None
        if isinstance(layers, _Layer):
            raise TypeError("layers: expected a sequence of layers, e.g. [Linear(4, 8), ReLU(), Linear(8, 2)], got a single layer")
        layers = tuple(layers)
        for index, layer in enumerate(layers):
            if not isinstance(layer, _LAYER_TYPES):
                hint = " (use bdlcore.from_torch for a torch.nn module)" if type(layer).__module__.startswith("torch") else ""
                raise TypeError(f"layers[{index}]: expected a bdlcore layer (Linear, Conv2d, ReLU, …), got {layer!r}{hint}")
        if not layers:
            raise InvalidArgumentError("layers: a network needs at least one layer")
        if input_shape is None:
            if not isinstance(layers[0], Linear):
                raise ShapeMismatchError(
                    f"input_shape is required when the first layer is {layers[0]!r}: give one example's shape, "
                    f"e.g. (channels, height, width) for images or (T, features) for sequences"
                )
            input_shape = (layers[0].in_features,)
        elif isinstance(input_shape, (int, np.integer)):
            input_shape = (input_shape,)
        input_shape = tuple(_int64(d, f"input_shape[{i}]") for i, d in enumerate(input_shape))
        seed = _seed(seed)

        specs = (_lib.bdl_layer_spec * len(layers))(*(layer.to_spec() for layer in layers))
        shape = (c_int64 * len(input_shape))(*input_shape)
        handle = c_void_p()
        _check(_lib.lib.bdl_model_create(specs, len(layers), shape, len(input_shape), seed, byref(handle)))
        self._adopt(handle.value, _lib.lib.bdl_model_free)
        self._layers = layers
        self._input_shape = input_shape

        P, C, size = c_int64(), c_int64(), c_int64()
        _check(_lib.lib.bdl_model_sizes(self._handle, byref(P), byref(C), byref(size)))
        self._P, self._C = P.value, C.value
        if size.value != math.prod(input_shape):
            self.close()
            raise InternalError(
                f"bdl_model_sizes reports an input size of {size.value} for input_shape {input_shape} "
                f"(expected {math.prod(input_shape)})"
            )

    # -- lifetime (close, closed and the with block come from _OwnedHandle) ---------------------

    def __repr__(self) -> str:
        lines = ["Sequential("] + [f"  ({i}): {layer!r}" for i, layer in enumerate(self._layers)] + [")"]
        if self._handle is None:
            lines[-1] = ")  (closed)"
        return "\n".join(lines)

    def _guard(self) -> None:
        """close() and every call through _use() are refused from inside fit's progress callback."""
        self._not_in_callback()

    def _not_in_callback(self) -> None:
        if self._training_thread is not None and self._training_thread == threading.get_ident():
            raise WrongStateError(
                "Sequential: the model is being trained by fit(); it cannot be used from inside the progress callback"
            )

    # -- description ----------------------------------------------------------------------------

    @property
    def num_parameters(self) -> int:
        """P, the length of θ."""
        self._live()
        return self._P

    @property
    def num_outputs(self) -> int:
        """C, the number of outputs per example."""
        self._live()
        return self._C

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """One example's shape: (in,), (T, in) or (C, H, W)."""
        return self._input_shape

    @property
    def layers(self) -> Tuple[_Layer, ...]:
        """The layers, in order."""
        return self._layers

    @property
    def parameters(self) -> np.ndarray:
        """A copy of θ, shape (P,): per layer weight then bias, row-major in PyTorch's shapes."""
        out = np.empty(self._P, dtype=np.float64)
        with self._use() as handle:
            _check(_lib.lib.bdl_model_get_parameters(handle, _ptr(out), out.size))
        return out

    def set_parameters(self, parameters) -> None:
        """Replaces θ by ``parameters`` (shape (P,), in the layout of :attr:`parameters`).

        On any failure θ is unchanged.

        Raises:
            ShapeMismatchError: not a vector of exactly P values.
            NonFiniteInputError: NaN/Inf among the values.
        """
        vector = np.ascontiguousarray(parameters, dtype=np.float64)
        if vector.ndim != 1:
            raise ShapeMismatchError(
                f"parameters: expected a vector of P = {self._P} values, got an array of shape {vector.shape}"
            )
        with self._use() as handle:
            _check(_lib.lib.bdl_model_set_parameters(handle, _ptr(vector), vector.size))

    # -- argument conversion --------------------------------------------------------------------

    def _inputs(self, X) -> Tuple[np.ndarray, int]:
        """X as C-contiguous float64 of shape (N, *input_shape), and N."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        shape = self._input_shape
        if X.ndim != 1 + len(shape) or X.shape[1:] != shape:
            expected = "(N, " + ", ".join(str(d) for d in shape) + ")"
            raise ShapeMismatchError(
                f"X: expected shape {expected} for a model with input_shape {shape}, got shape {X.shape}"
            )
        return X, X.shape[0]

    def _targets(self, y, n: int, likelihood: int) -> np.ndarray:
        """y as C-contiguous float64: N labels (classification) or (N, C) targets (regression)."""
        array = np.asarray(y)
        if likelihood == _lib.BDL_LIKELIHOOD_CLASSIFICATION:
            if array.dtype.kind not in "biuf":
                raise InvalidArgumentError(f"y: class labels must be integers in [0, {self._C}), got dtype {array.dtype}")
            if array.shape != (n,):
                raise ShapeMismatchError(f"y: expected N = {n} class labels, shape ({n},), got shape {array.shape}")
            return np.ascontiguousarray(array, dtype=np.float64)
        if array.dtype.kind not in "biuf":
            raise InvalidArgumentError(f"y: regression targets must be real numbers, got dtype {array.dtype}")
        if self._C == 1 and array.shape == (n,):
            array = array.reshape(n, 1)
        if array.shape != (n, self._C):
            raise ShapeMismatchError(f"y: expected regression targets of shape (N, C) = ({n}, {self._C}), got shape {array.shape}")
        return np.ascontiguousarray(array, dtype=np.float64)

    # -- evaluation -----------------------------------------------------------------------------

    def forward(self, X) -> np.ndarray:
        """f(X): outputs of shape (N, C) for X of shape (N, *input_shape).

        Raises:
            ShapeMismatchError: X does not have shape (N, *input_shape).
            InvalidArgumentError: N = 0.
            NonFiniteInputError: NaN/Inf in X.
        """
        X, n = self._inputs(X)
        out = np.empty((n, self._C), dtype=np.float64)
        with self._use() as handle:
            _check(_lib.lib.bdl_model_forward(handle, _ptr(X), n, _ptr(out), out.size))
        return out

    __call__ = forward

    def jacobian(self, X) -> np.ndarray:
        r"""J[n, c, :] = ∂f_c(x_n)/∂θ, shape (N, C, P), by backpropagating the C unit vectors.

        N·C·P doubles: meant for a few inputs (per-example GGN blocks, linearised predictives of
        small models). Raises as :meth:`forward`.
        """
        X, n = self._inputs(X)
        out = np.empty((n, self._C, self._P), dtype=np.float64)
        with self._use() as handle:
            _check(_lib.lib.bdl_model_jacobian(handle, _ptr(X), n, _ptr(out), out.size))
        return out

    def loss_and_gradient(self, X, y, likelihood: str = "classification", sigma: float = 1.0) -> Tuple[float, np.ndarray]:
        r"""The summed negative log-likelihood and its gradient with respect to θ.

        classification: Σ_n [logsumexp(f_n) − f_{n, y_n}];
        regression: Σ_n ½‖y_n − f_n‖²/σ² + N·C·log(σ√(2π)).

        Args:
            X: (N, *input_shape).
            y: classification: N integer labels in [0, C); regression: (N, C) targets.
            likelihood: ``"classification"`` or ``"regression"``.
            sigma: σ > 0 (regression only).

        Returns:
            (loss, gradient) with gradient of shape (P,).

        Raises:
            ShapeMismatchError: X or y has the wrong shape.
            InvalidArgumentError: unknown likelihood, a label outside [0, C) or not an integer,
                σ ≤ 0, N = 0.
            NonFiniteInputError: NaN/Inf in X or y.
        """
        code = _choice(likelihood, _LIKELIHOODS, "likelihood")
        X, n = self._inputs(X)
        y = self._targets(y, n, code)
        loss = c_double()
        gradient = np.empty(self._P, dtype=np.float64)
        with self._use() as handle:
            _check(
                _lib.lib.bdl_model_loss_gradient(
                    handle, _ptr(X), n, _ptr(y), code, float(sigma), byref(loss), _ptr(gradient), gradient.size
                )
            )
        return loss.value, gradient

    def per_example_gradients(self, X, V) -> np.ndarray:
        r"""G[n, k, :] = ∂⟨f(x_n), V[n, k]⟩/∂θ, shape (N, K, P).

        Contracted layer by layer from :meth:`backward_vectors`' a and g (weight Σ_r g aᵀ, bias
        Σ_r g), never forming a Jacobian. With V[n, 0] the loss gradient ∂ℓ/∂f at the label
        (softmax(f) − e_y for classification) these are the per-example loss gradients that
        influence functions and the empirical Fisher use. N·K·P doubles.

        Raises as :meth:`backward_vectors`.
        """
        X, n = self._inputs(X)
        V = np.ascontiguousarray(V, dtype=np.float64)
        if V.ndim != 3 or V.shape[0] != n or V.shape[2] != self._C:
            raise ShapeMismatchError(f"V: expected shape (N, K, C) = ({n}, K, {self._C}), got shape {V.shape}")
        out = np.empty((n, V.shape[1], self._P), dtype=np.float64)
        with self._use() as handle:
            _check(_lib.lib.bdl_model_per_example_gradients(handle, _ptr(X), n, _ptr(V), V.shape[1], _ptr(out), out.size))
        return out

    def backward_vectors(self, X, V) -> List[Tuple[int, np.ndarray, np.ndarray]]:
        r"""Per-layer inputs and output gradients for K output vectors per example.

        For every Linear/Conv2d layer computing y_r = W a_r + b at R positions per example
        (Linear: R = 1, or T on sequences; Conv2d: R = H'·W' with a_r the im2col patch, entries
        ordered (c, i, j) like the flattened weight), returns its inputs a (N, R, d_in) and
        g (N, K, R, d_out), g[n, k, r] = ∂⟨f(x_n), V[n, k]⟩/∂y_r. No Jacobian is formed.

        From these, example n's gradient of ⟨f(x_n), V[n, k]⟩ is, per layer,
        weight Σ_r g[n, k, r] a[n, r]ᵀ (shape (d_out, d_in)) and bias Σ_r g[n, k, r]; with V the
        columns of the output-Hessian square root they give the GGN, K-FAC factors
        (A = Σ a aᵀ, B = Σ g gᵀ) and per-example gradients for influence scores.

        The arrays are the library's own memory, not copies (for K vectors through a CNN they run
        to gigabytes): it is released when the last array of the call, or a view of one, is gone.

        Args:
            X: (N, *input_shape).
            V: (N, K, C), K ≥ 1.

        Returns:
            A list with one ``(layer_index, a, g)`` per Linear/Conv2d layer, in order;
            ``layer_index`` is the position in :attr:`layers`.

        Raises:
            ShapeMismatchError: X or V has the wrong shape.
            InvalidArgumentError: N = 0 or K = 0.
            NonFiniteInputError: NaN/Inf in X or V.
            OutOfMemoryError: the statistics do not fit in memory.
        """
        X, n = self._inputs(X)
        V = np.ascontiguousarray(V, dtype=np.float64)
        if V.ndim != 3 or V.shape[0] != n or V.shape[2] != self._C:
            raise ShapeMismatchError(f"V: expected shape (N, K, C) = ({n}, K, {self._C}), got shape {V.shape}")
        lib = _lib.lib
        statistics = c_void_p()
        with self._use() as handle:
            _check(lib.bdl_model_backward_vectors(handle, _ptr(X), n, _ptr(V), V.shape[1], byref(statistics)))
        owner = _StatisticsOwner(statistics)
        count = c_int64()
        _check(lib.bdl_layer_statistics_count(statistics, byref(count)))
        result = []
        for index in range(count.value):
            layer, n_, k, positions, d_in, d_out = (c_int64() for _ in range(6))
            has_bias = c_int32()
            _check(
                lib.bdl_layer_statistics_shape(
                    statistics, index, byref(layer), byref(n_), byref(k), byref(positions),
                    byref(d_in), byref(d_out), byref(has_bias),
                )
            )
            a_data, g_data = _lib._dptr(), _lib._dptr()
            _check(lib.bdl_layer_statistics_data(statistics, index, byref(a_data), byref(g_data)))
            a = owner.array(a_data, (n_.value, positions.value, d_in.value))
            g = owner.array(g_data, (n_.value, k.value, positions.value, d_out.value))
            result.append((layer.value, a, g))
        return result

    # -- training -------------------------------------------------------------------------------

    def fit(
        self,
        X,
        y,
        likelihood: str = "classification",
        optimizer: str = "adam",
        lr: float = 1e-3,
        epochs: int = 10,
        batch_size: int = 32,
        prior_precision: Union[float, Sequence[float]] = 0.0,
        seed: int = 0,
        schedule: str = "constant",
        momentum: float = 0.9,
        sigma: float = 1.0,
        progress: Union[None, bool, Callable[[Dict[str, Any]], Any]] = None,
        mask=None,
    ) -> List[Dict[str, Any]]:
        r"""Trains θ to the MAP estimate by minibatch Adam or SGD with seeded shuffling.

        Each minibatch B minimises (Σ_{n∈B} NLL_n + ½ θᵀ diag(δ) θ · |B|/N) / |B|, i.e. the MAP
        objective Σ_n NLL_n + ½ θᵀ diag(δ) θ divided by N, so learning rates mean what they
        mean with PyTorch's mean-reduced losses. Runs are bit-for-bit reproducible for a given
        ``seed`` and OpenBLAS thread count (a minibatch with enough work, e.g. a CNN's, is split
        over the threads and its gradient summed in a fixed order; another thread count changes
        the rounding only); training continues from the current θ.

        Args:
            X: (N, *input_shape).
            y: classification: N integer labels in [0, C); regression: (N, C) targets.
            likelihood: ``"classification"`` or ``"regression"``.
            optimizer: ``"adam"`` (β = 0.9, 0.999, ε = 1e-8, PyTorch's defaults) or ``"sgd"``.
            lr: learning rate.
            epochs: number of passes over the data.
            batch_size: examples per step (the last batch of an epoch may be smaller).
            prior_precision: δ, a float, one value per parameter tensor in θ order
                (W₀, b₀, W₁, b₁, …) or one per parameter.
            seed: shuffling seed.
            schedule: ``"constant"`` or ``"cosine"`` (annealed to 0 over the epochs).
            momentum: SGD momentum in [0, 1).
            sigma: regression noise σ > 0.
            progress: None — a one-line progress bar on stderr when it is a terminal, silent
                otherwise; False — silent; True — always the bar; a callable — called after
                every epoch with ``{"epoch", "epochs", "objective", "mean_nll"}`` (epoch 1-based,
                objective the mean minibatch objective, mean_nll the mean NLL per example over the
                epoch); returning True stops training after that epoch. The model cannot be used
                from inside the callback. An exception raised by the callback stops training and
                is re-raised once the library has returned; θ then holds the last finished epoch's
                value. (So Ctrl-C takes effect at the end of the running epoch.)
            mask: None, or one 0/1 value per parameter (e.g. from :func:`bdlcore.pruning.mask`):
                parameters with 0 are set to 0 before the first step and stay exactly 0 — a
                pruned network keeps its sparsity through fine-tuning.

        Returns:
            One dict per finished epoch, as passed to the callback.

        Raises:
            ShapeMismatchError: X or y has the wrong shape; prior_precision has neither 1, one
                value per parameter tensor nor one per parameter; mask has not P values.
            InvalidArgumentError: bad option (unknown likelihood/optimizer/schedule, lr,
                epochs, batch_size, momentum, σ), a label outside [0, C) or not an integer, N = 0,
                a mask value other than 0 or 1.
            NonFiniteInputError: NaN/Inf in X, y or prior_precision.
            NotConvergedError: the objective became NaN/Inf; θ is restored to its value before
                the call.
            On any error raised by the library θ is unchanged.
        """
        params, X, n, y, keep = self._train_params(
            X, y, likelihood, optimizer, lr, epochs, batch_size, prior_precision, seed, schedule, momentum, sigma, mask
        )

        last = _lib.bdl_train_progress()
        return self._run_epochs(
            progress, _ProgressBar, _lib.BDL_PROGRESS_FN, _epoch_entry,
            lambda handle, callback: _lib.lib.bdl_model_train(
                handle, _ptr(X), n, _ptr(y), byref(params), callback, None, byref(last)
            ),
        )

    def _train_params(
        self, X, y, likelihood, optimizer, lr, epochs, batch_size, prior_precision, seed, schedule, momentum, sigma, mask
    ):
        """(bdl_train_params, X, n, y, arrays its pointers refer to) for :meth:`fit`'s options and data."""
        params, keep = _train_params(
            likelihood, optimizer, lr, epochs, batch_size, prior_precision, seed, schedule, momentum, sigma, mask
        )
        X, n = self._inputs(X)
        y = self._targets(y, n, params.likelihood)
        return params, X, n, y, keep

    def _run_epochs(self, progress, bar_type, callback_type, entry, invoke) -> List[Dict[str, Any]]:
        """Runs ``invoke(handle, callback)`` — a C training call reporting every epoch through a
        ``callback_type`` callback — turning each report into ``entry(report)``: collected,
        passed to the progress callable or bar, and returned. Exceptions raised by the user's
        callable are kept (nothing may propagate into the library) and re-raised afterwards."""
        reporter, bar = _reporter(progress, bar_type)
        history: List[Dict[str, Any]] = []
        failures: List[BaseException] = []

        def on_epoch(report_pointer, _user_data) -> int:
            try:
                item = entry(report_pointer.contents)
                history.append(item)
                if reporter is not None and reporter(dict(item)):
                    return 1
                return 0
            except BaseException as error:  # noqa: BLE001 — includes KeyboardInterrupt
                failures.append(error)
                return 1

        callback = callback_type(on_epoch)  # kept alive by this frame during the call
        error = None
        try:
            with self._use() as handle:
                self._training_thread = threading.get_ident()
                try:
                    status = invoke(handle, callback)
                    if status != _lib.BDL_OK:
                        message = _lib.lib.bdl_last_error_message().decode("utf-8", "replace")
                        error = error_for_status(status, message)
                finally:
                    self._training_thread = None
        finally:
            if bar is not None:
                bar.close()
        del callback
        if failures:
            raise failures[0]
        if error is not None:
            raise error
        return history

    # -- pruning masks and files ----------------------------------------------------------------

    def _mask(self, mask, name: str = "mask") -> np.ndarray:
        values = np.ascontiguousarray(mask, dtype=np.float64)
        if values.ndim != 1:
            raise ShapeMismatchError(f"{name}: expected a vector of P = {self._P} values 0/1, got an array of shape {values.shape}")
        return values

    def apply_mask(self, mask) -> None:
        """Applies a pruning mask (see :mod:`bdlcore.pruning`): θ_i = 0 where mask_i = 0; every
        kept θ_i is left bit for bit, so the all-ones mask changes nothing. To keep pruned
        parameters at 0 through further training, pass the same mask to training.

        Raises:
            ShapeMismatchError: not P values. On any failure θ is unchanged.
            InvalidArgumentError: a value other than 0 or 1.
        """
        values = self._mask(mask)
        with self._use() as handle:
            _check(_lib.lib.bdl_model_apply_mask(handle, _ptr(values), values.size))

    def save(self, path, mask=None) -> None:
        """Writes the network — its layers, input shape, θ and, if given, a pruning mask — to
        ``path``: a versioned, checksummed file, written to a temporary name and renamed into
        place. :meth:`load` restores θ and the mask bit for bit.

        Raises:
            BDLIOError: the file cannot be written.
            ShapeMismatchError: a mask of the wrong length.
            InvalidArgumentError: a mask value other than 0 or 1; an empty path.
        """
        from .curvature import _path_bytes  # curvature imports this module

        encoded = _path_bytes(path)
        values = None if mask is None else self._mask(mask)
        with self._use() as handle:
            pointer, count = (None, 0) if values is None else (_ptr(values), values.size)
            _check(_lib.lib.bdl_model_save(handle, pointer, count, encoded))

    @classmethod
    def load(cls, path, return_mask: bool = False):
        """Reads a network written by :meth:`save`.

        Returns:
            the :class:`Sequential`; with ``return_mask=True``, ``(model, mask)`` where mask is
            the saved mask (float64, P values 0/1) or None.

        Raises:
            BDLIOError: the file cannot be opened or read.
            CorruptDataError: not a model file, another format version, truncated, damaged or
                inconsistent contents.
        """
        from .curvature import _path_bytes  # curvature imports this module

        encoded = _path_bytes(path)
        count, has_mask = c_int64(), c_int32()
        _check(_lib.lib.bdl_model_file_info(encoded, byref(count), byref(has_mask)))
        mask = np.empty(count.value, dtype=np.float64) if has_mask.value else None
        handle = c_void_p()
        _check(_lib.lib.bdl_model_load(encoded, byref(handle), None if mask is None else _ptr(mask),
                                       0 if mask is None else mask.size, byref(has_mask)))
        self = cls.__new__(cls)
        _OwnedHandle.__init__(self)
        self._training_thread = None
        self._adopt(handle.value, _lib.lib.bdl_model_free)
        n_layers, rank, P, C = c_int64(), c_int64(), c_int64(), c_int64()
        _check(_lib.lib.bdl_model_layers(self._handle, None, 0, byref(n_layers), None, 0, byref(rank)))
        specs = (_lib.bdl_layer_spec * n_layers.value)()
        shape = (c_int64 * rank.value)()
        _check(_lib.lib.bdl_model_layers(self._handle, specs, n_layers.value, None, shape, rank.value, None))
        _check(_lib.lib.bdl_model_sizes(self._handle, byref(P), byref(C), None))
        self._layers = tuple(_layer_from_spec(spec) for spec in specs)
        self._input_shape = tuple(shape)
        self._P, self._C = P.value, C.value
        if not has_mask.value:
            mask = None
        return (self, mask) if return_mask else self

    # -- PyTorch --------------------------------------------------------------------------------

    def to_torch(self):
        """The equivalent ``torch.nn.Sequential`` (float64) holding a copy of θ.

        MeanOverSequence and GlobalAvgPool2d become small modules of those class names (defined
        here, so that :func:`from_torch` maps them back). Needs PyTorch; bdlcore itself does not.
        """
        import torch
        from torch import nn

        # Tiny modules named like the fixture generator's, so that from_torch maps them back.
        def mean_over_sequence(self, x):
            return x.mean(dim=1)

        def global_avg_pool(self, x):
            return x.mean(dim=(2, 3))

        torch_mean_over_sequence = type(
            "MeanOverSequence", (nn.Module,), {"forward": mean_over_sequence, "__doc__": "Mean over T: (N, T, D) -> (N, D)."}
        )
        torch_global_avg_pool = type(
            "GlobalAvgPool2d", (nn.Module,), {"forward": global_avg_pool, "__doc__": "Mean over H, W: (N, C, H, W) -> (N, C)."}
        )
        simple = {ReLU: nn.ReLU, Tanh: nn.Tanh, Sigmoid: nn.Sigmoid, Identity: nn.Identity, Flatten: nn.Flatten}

        class ConvFCMixtureModule(nn.Module):
            """½(conv(x) + fc(x.flatten(1)).view_as(conv(x))); parameters conv then fc."""

            def __init__(self, layer, shape):
                super().__init__()
                self.conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                      stride=layer.stride, padding=layer.padding, bias=layer.bias)
                out = self.conv(torch.zeros((1,) + tuple(shape), dtype=self.conv.weight.dtype)).shape[1:]
                self.fc = nn.Linear(int(np.prod(shape)), int(np.prod(out)), bias=layer.bias)

            def forward(self, x):
                c = self.conv(x)
                return 0.5 * (c + self.fc(x.flatten(1)).view_as(c))

        def module(layer):
            if isinstance(layer, Linear):
                return nn.Linear(layer.in_features, layer.out_features, bias=layer.bias)
            if isinstance(layer, Conv2d):
                return nn.Conv2d(
                    layer.in_channels, layer.out_channels, layer.kernel_size,
                    stride=layer.stride, padding=layer.padding, bias=layer.bias,
                )
            if isinstance(layer, AvgPool2d):
                return nn.AvgPool2d(layer.kernel_size)
            if isinstance(layer, GELU):
                return nn.GELU(approximate="none")
            if isinstance(layer, GlobalAvgPool2d):
                return torch_global_avg_pool()
            if isinstance(layer, MeanOverSequence):
                return torch_mean_over_sequence()
            return simple[type(layer)]()

        theta = self.parameters
        modules = []
        with torch.random.fork_rng(devices=[]), torch.no_grad():  # the default init must not disturb the caller's RNG
            x = torch.zeros((1,) + tuple(self._input_shape), dtype=torch.float64)  # each layer's input shape
            for layer in self._layers:
                m = (ConvFCMixtureModule(layer, x.shape[1:]) if isinstance(layer, ConvFCMixture) else module(layer))
                modules.append(m.to(torch.float64))
                x = modules[-1](x)
        net = nn.Sequential(*modules)
        count = sum(p.numel() for p in net.parameters())
        if count != theta.size:
            raise InternalError(f"to_torch: the torch model has {count} parameters, bdlcore's {theta.size}")
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.from_numpy(theta.copy()), net.parameters())
        return net


# ---------------------------------------------------------------------------------------------
# From PyTorch
# ---------------------------------------------------------------------------------------------


def _square_int(value, what: str, module_text: str) -> int:
    if isinstance(value, tuple):
        if len(set(value)) != 1:
            raise UnsupportedError(f"from_torch: {module_text}: {what} {value} is not square; bdlcore needs equal entries")
        value = value[0]
    return int(value)


def _flatten_modules(module, nn) -> List[Any]:
    if isinstance(module, nn.Sequential):
        modules = []
        for child in module:
            modules.extend(_flatten_modules(child, nn))
        return modules
    if any(True for _ in module.children()) and not isinstance(module, (nn.Linear, nn.Conv2d)):
        raise UnsupportedError(
            f"from_torch: {type(module).__name__} is a container other than nn.Sequential; its forward order is unknown"
        )
    return [module]


def from_torch(module, input_shape: Optional[Sequence[int]] = None) -> Sequential:
    """A :class:`Sequential` equivalent to a ``torch.nn.Sequential``, with a copy of its parameters.

    Supported modules: ``nn.Linear``; ``nn.Conv2d`` with a square kernel, equal stride and
    padding entries (ints, or padding 'valid', or 'same' with an odd kernel and stride 1),
    dilation 1, groups 1, padding_mode 'zeros'; ``nn.ReLU``, ``nn.Tanh``, ``nn.Sigmoid``,
    ``nn.GELU(approximate='none')``, ``nn.Identity``, ``nn.Flatten()`` (start_dim=1,
    end_dim=-1); ``nn.AvgPool2d`` with stride None or equal to the kernel and padding 0;
    ``nn.AdaptiveAvgPool2d(1)`` followed by ``nn.Flatten()`` (→ :class:`GlobalAvgPool2d`); any
    module whose class is named ``MeanOverSequence`` or ``GlobalAvgPool2d``. Nested
    ``nn.Sequential`` are flattened. θ is ``parameters_to_vector(module.parameters())`` in float64.

    Args:
        module: an ``nn.Sequential`` (or one supported module).
        input_shape: one example's shape; optional when the first layer is Linear.

    Raises:
        UnsupportedError: a module has no bdlcore equivalent (the message names it).
        ShapeMismatchError: input_shape missing or inconsistent with the layers.
    """
    import torch
    from torch import nn

    modules = _flatten_modules(module, nn)
    layers: List[_Layer] = []
    index = 0
    while index < len(modules):
        m = modules[index]
        text = f"module {index} ({m!r})"
        name = type(m).__name__
        if isinstance(m, nn.Linear):
            layers.append(Linear(m.in_features, m.out_features, bias=m.bias is not None))
        elif isinstance(m, nn.Conv2d):
            kernel = _square_int(m.kernel_size, "kernel_size", text)
            stride = _square_int(m.stride, "stride", text)
            if _square_int(m.dilation, "dilation", text) != 1:
                raise UnsupportedError(f"from_torch: {text}: dilation must be 1")
            if m.groups != 1:
                raise UnsupportedError(f"from_torch: {text}: groups must be 1")
            if m.padding_mode != "zeros":
                raise UnsupportedError(f"from_torch: {text}: padding_mode must be 'zeros'")
            if m.padding == "valid":
                padding = 0
            elif m.padding == "same":
                if kernel % 2 != 1 or stride != 1:
                    raise UnsupportedError(f"from_torch: {text}: padding='same' needs an odd kernel and stride 1")
                padding = (kernel - 1) // 2
            else:
                padding = _square_int(m.padding, "padding", text)
            layers.append(Conv2d(m.in_channels, m.out_channels, kernel, stride, padding, bias=m.bias is not None))
        elif isinstance(m, nn.ReLU):
            layers.append(ReLU())
        elif isinstance(m, nn.Tanh):
            layers.append(Tanh())
        elif isinstance(m, nn.Sigmoid):
            layers.append(Sigmoid())
        elif isinstance(m, nn.GELU):
            if m.approximate != "none":
                raise UnsupportedError(f"from_torch: {text}: only GELU(approximate='none') is supported")
            layers.append(GELU())
        elif isinstance(m, nn.Identity):
            layers.append(Identity())
        elif isinstance(m, nn.Flatten):
            if (m.start_dim, m.end_dim) != (1, -1):
                raise UnsupportedError(f"from_torch: {text}: only Flatten(start_dim=1, end_dim=-1) is supported")
            layers.append(Flatten())
        elif isinstance(m, nn.AvgPool2d):
            kernel = _square_int(m.kernel_size, "kernel_size", text)
            stride = kernel if m.stride is None else _square_int(m.stride, "stride", text)
            if stride != kernel or _square_int(m.padding, "padding", text) != 0 or m.ceil_mode:
                raise UnsupportedError(
                    f"from_torch: {text}: AvgPool2d needs stride equal to the kernel, padding 0 and ceil_mode False"
                )
            layers.append(AvgPool2d(kernel))
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            size = m.output_size
            follower = modules[index + 1] if index + 1 < len(modules) else None
            if (
                size not in (1, (1, 1))
                or not isinstance(follower, nn.Flatten)
                or (follower.start_dim, follower.end_dim) != (1, -1)
            ):
                raise UnsupportedError(
                    f"from_torch: {text}: AdaptiveAvgPool2d is supported only as AdaptiveAvgPool2d(1) followed by Flatten()"
                )
            layers.append(GlobalAvgPool2d())
            index += 1
        elif name == "MeanOverSequence":
            layers.append(MeanOverSequence())
        elif name == "GlobalAvgPool2d":
            layers.append(GlobalAvgPool2d())
        else:
            raise UnsupportedError(f"from_torch: {text} has no bdlcore equivalent")
        index += 1

    params = list(module.parameters())
    theta = (
        torch.nn.utils.parameters_to_vector(params).detach().to(device="cpu", dtype=torch.float64).numpy()
        if params
        else np.empty(0)
    )
    net = Sequential(layers, input_shape=input_shape)
    try:
        if theta.size != net.num_parameters:
            raise ShapeMismatchError(
                f"from_torch: the module has {theta.size} parameters, the bdlcore network {net.num_parameters}"
            )
        net.set_parameters(theta)
    except BaseException:
        net.close()
        raise
    return net
