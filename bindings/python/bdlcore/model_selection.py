r"""Model selection by the evidence: objectives that choose hyperparameters from the training data alone.

The Laplace log marginal likelihood (evidence) of a network at its parameters θ*,

    log p(D) ≈ log p(D|θ*) − ½ [log det P − log det P0] − ½ (θ* − μ0)ᵀ P0 (θ* − μ0),
    P = h·G + P0,   h = 1/(σ²·T) (regression) or 1/T (classification),

is a training-set objective for the prior precision δ (P0 = diag(δ)), the noise σ and the
architecture. :func:`ntk_evidence_bound` is its kernel form with a stochastic lower bound
(Immer et al. 2023, "Stochastic marginal likelihood gradients using neural tangent kernels").

The NTK bound. By Sylvester's identity, with Λ_n = S_n S_nᵀ the output Hessian at σ = 1
(I for regression, diag(p) − p pᵀ for classification) and K = J P0⁻¹ Jᵀ the (N·C × N·C)
neural tangent kernel of the prior,

    log det P − log det P0 = log det(I + h·Sᵀ K S).

With δ constant on each parameter tensor, K = Σ_t K_t/δ_t, each K_t built from its layer's
inputs and backpropagated output vectors (for a dense layer the Hadamard product of the input
Gram and the output-gradient Gram) — never from the N·C × P Jacobian. Cutting the data into
batches of B (a seeded random order, optionally grouped by class; the last batch smaller when B
does not divide N) and keeping only each batch's kernel block gives, by Fischer's inequality,

    E_B = log p(D|θ*) − ½ Σ_b log det(I + h·S_bᵀ K_bb S_b) − ½ (θ* − μ0)ᵀ P0 (θ* − μ0)  ≤  log p(D),

with equality for one batch (``batch_size=None``, the default): then the value is exactly the
evidence of ``Laplace(structure="full")``. The estimate from one batch b,
n_B·[log p(D_b|θ*) − ½ log det(I + h·S_bᵀ K_bb S_b)] − ½ (θ* − μ0)ᵀ P0 (θ* − μ0), averages to E_B
over the n_B batches (``batch_index=``). ``independent_outputs=True`` is the paper's cheaper
variant: Λ replaced by its diagonal p(1 − p) and the cross-output kernel blocks dropped
(C kernels of B × B per batch) — an approximation, not a bound, exact for one regression output
(0.9–24 % below the evidence on the library's test models).

Example::

    import bdlcore
    X, y, _, _ = bdlcore.datasets.load_digits()
    with bdlcore.Sequential([bdlcore.Linear(64, 16), bdlcore.Tanh(), bdlcore.Linear(16, 10)]) as net:
        net.fit(X[:200] / 16, y[:200], epochs=20)
        value, grad = bdlcore.ntk_evidence_bound(net, X[:200] / 16, y[:200], prior_precision=[1.0] * 4,
                                                 batch_size=50, group_by_class=True)
"""

from __future__ import annotations

from ctypes import byref, c_double, c_int64
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from ._errors import InvalidArgumentError, _check
from .laplace import _bool_flag, _vector
from .model import _LIKELIHOODS, Sequential, _choice, _int64, _seed

__all__ = ["ntk_evidence_bound"]

_ptr = _lib.as_pointer


def _optional_index(value, name: str) -> int:
    """None as −1 (the C API's "none"), else a non-negative int64."""
    if value is None:
        return -1
    index = _int64(value, name)
    if index < 0:
        raise InvalidArgumentError(f"{name}: expected None or an integer ≥ 0, got {index}")
    return index


def _ntk_bound_call(
    model: Sequential,
    X,
    y,
    likelihood: str,
    prior_precision,
    sigma_noise: float,
    temperature: float,
    batch_size: Optional[int],
    independent_outputs: bool,
    group_by_class: bool,
    seed: int,
    prior_mean,
    batch_index: Optional[int],
    output_index: Optional[int],
) -> Tuple[float, np.ndarray, float, int]:
    """(value, ∂/∂log δ, ∂/∂log σ, number of batches) of one ``bdl_ntk_evidence_bound`` call."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a bdlcore.Sequential, got {type(model).__name__}")
    params = _lib.bdl_ntk_bound_params()
    _check(_lib.lib.bdl_ntk_bound_params_init(byref(params)))
    params.likelihood = _choice(likelihood, _LIKELIHOODS, "likelihood")
    prior = _vector(prior_precision, "prior_precision")
    mean = _vector(prior_mean, "prior_mean")
    params.prior_precision, params.prior_precision_count = _ptr(prior), prior.size
    params.prior_mean, params.prior_mean_count = _ptr(mean), mean.size
    params.sigma_noise = float(sigma_noise)
    params.temperature = float(temperature)
    if batch_size is not None:
        params.batch_size = _int64(batch_size, "batch_size")
        if params.batch_size < 1:
            raise InvalidArgumentError(f"batch_size: expected None (one batch) or an integer ≥ 1, got {batch_size}")
    params.independent_outputs = _bool_flag(independent_outputs, "independent_outputs")
    params.group_by_class = _bool_flag(group_by_class, "group_by_class")
    params.seed = _seed(seed)
    params.batch_index = _optional_index(batch_index, "batch_index")
    params.output_index = _optional_index(output_index, "output_index")
    X, n = model._inputs(X)
    y = model._targets(y, n, params.likelihood)
    value, sigma, batches = c_double(), c_double(), c_int64()
    gradient = np.empty(max(prior.size, 1), dtype=np.float64)
    with model._use() as handle:
        _check(
            _lib.lib.bdl_ntk_evidence_bound(
                handle, _ptr(X), n, _ptr(y), byref(params), byref(value), _ptr(gradient), byref(sigma), byref(batches)
            )
        )
    return value.value, gradient, sigma.value, batches.value


def ntk_evidence_bound(
    model: Sequential,
    X,
    y,
    likelihood: str = "classification",
    prior_precision: Union[float, Sequence[float]] = 1.0,
    sigma_noise: float = 1.0,
    temperature: float = 1.0,
    batch_size: Optional[int] = None,
    independent_outputs: bool = False,
    group_by_class: bool = False,
    seed: int = 0,
    *,
    prior_mean: Union[float, Sequence[float]] = 0.0,
    batch_index: Optional[int] = None,
    output_index: Optional[int] = None,
) -> Tuple[float, np.ndarray]:
    r"""The NTK lower bound E_B on the Laplace evidence of ``model`` at its current θ*, and its
    gradient with respect to log δ.

    With ``batch_size=None`` (one batch) the value equals ``Laplace(model, likelihood,
    structure="full", prior_precision=..., sigma_noise=..., temperature=...).fit(X, y)
    .log_marginal_likelihood()`` to rounding (the oracle the tests use), at O((N·C)³) instead of
    O(P³) cost and without the P × P matrix. With B < N it is a lower bound (Fischer's
    inequality; see the module documentation), cheaper by a factor ≈ (N/B)² in the kernels.

    The gradient is ∂E_B/∂log δ_t = ½ h Σ_b tr(M_b⁻¹ S_bᵀ K_{t,bb} S_b)/δ_t − ½ δ_t‖θ*_t − μ0_t‖²
    with M_b = I + h·S_bᵀ K_bb S_b, summed over tensors for a scalar δ.

    Args:
        model: a :class:`~bdlcore.Sequential` whose parametric layers are Linear or Conv2d.
        X: (N, *input_shape).
        y: classification: N integer labels in [0, C); regression: (N, C) targets.
        likelihood: ``"classification"`` or ``"regression"``.
        prior_precision: δ > 0: a float or one value per parameter tensor (W₀, b₀, W₁, b₁, …).
            One value per parameter does not factor into per-tensor kernels and raises
            :class:`~bdlcore.UnsupportedError`.
        sigma_noise: σ > 0 (regression).
        temperature: T > 0.
        batch_size: B ≥ 1 examples per batch; None: one batch (the exact evidence).
        independent_outputs: the paper's class-independent approximation (not a bound).
        group_by_class: sort the examples by label before cutting batches (classification),
            which tightens the bound.
        seed: the random order of the examples before they are cut into batches.
        prior_mean: μ0, a float or one value per parameter.
        batch_index: None: E_B over all batches; b: the unbiased stochastic estimate from batch
            b alone (0 ≤ b < ⌈N/B⌉), whose average over the batches is E_B.
        output_index: with ``independent_outputs`` and ``batch_index``: the estimate from
            output c of that batch alone, its log-determinant scaled by C.

    Returns:
        ``(value, gradient)``: a float and a float64 array with one entry per prior-precision
        value.

    Raises:
        TypeError: ``model`` is not a Sequential.
        ShapeMismatchError: X or y has the wrong shape; the prior has neither 1 value nor one per
            parameter tensor; the prior mean neither 1 nor P values.
        InvalidArgumentError: a label outside [0, C), δ ≤ 0, σ ≤ 0, T ≤ 0, batch_size < 1, an
            index out of range, ``group_by_class`` for regression.
        NonFiniteInputError: NaN/Inf in X, y or the hyperparameters.
        UnsupportedError: one prior value per parameter.
        OutOfMemoryError: a batch's kernels (≈ (tensors + 3)·(B·C)² doubles) do not fit.
    """
    value, gradient, _, _ = _ntk_bound_call(
        model, X, y, likelihood, prior_precision, sigma_noise, temperature, batch_size, independent_outputs,
        group_by_class, seed, prior_mean, batch_index, output_index,
    )
    return value, gradient
