r"""Marginal-likelihood training: learn a network and its hyperparameters from the training data alone.

:func:`train_marglik` is online empirical Bayes (Immer et al. 2021, laplace-torch's
``marglik_training``): MAP steps on

    Σ_n NLL_n + ½ θᵀ diag(δ) θ

alternate with hyperparameter steps. After every ``marglik_frequency``-th epoch past ``burnin``,
the Laplace posterior is refitted at the current θ and the log marginal likelihood

    log p(D) ≈ log p(D|θ*) − ½ [log det P − log det P0] − ½ θ*ᵀ P0 θ*

is maximised over log δ (and log σ for regression). laplace-torch takes ``n_hypersteps`` = 10
Adam steps (lr 0.1) per refit; bdlcore solves each step to a gradient norm below ``tol`` with the analytic gradients
(Newton for grouped priors, L-BFGS for parameter- and unit-wise ones), usually in fewer than 20
iterations. The parameters with the best evidence seen at a hyperparameter step are kept, so no
validation set is needed. With ``objective="ntk_bound"`` the steps maximise the NTK lower bound
(Immer et al. 2023) instead, whose cost grows with the batch size, not with the parameter count.

Prior structures (``prior_structure=``): ``"scalar"``, ``"layerwise"`` (one δ per parameter
tensor, the default), ``"diag"`` (one per parameter) and ``"unitwise"`` (δ_ij = a_i·b_j for a
weight (out × in) — per (out, in) channel pair for a conv, repeated over its kernel — and one per
bias element: a unit can be switched off by the evidence, as SpaM uses for pruning). With
``structure="kron"`` a per-parameter or unit-wise prior enters through the eigenbasis-projected
diagonal (see :mod:`bdlcore.laplace`).

Example::

    import bdlcore
    X, y, X_test, y_test = bdlcore.datasets.load_digits()
    net = bdlcore.Sequential([bdlcore.Linear(64, 64), bdlcore.ReLU(), bdlcore.Linear(64, 10)])
    result = bdlcore.train_marglik(net, X / 16, y, epochs=50, lr=1e-2, seed=0)
    result.laplace.prior_precision      # the learned per-tensor δ
    result.laplace.predict(X_test / 16)  # the probit predictive at the kept parameters
"""

from __future__ import annotations

from ctypes import byref, c_int64, c_void_p
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Union


from . import _lib
from ._errors import _check
from ._progress import TextBar
from .curvature import _APPROXIMATIONS, _FISHERS
from .laplace import _PRIOR_STRUCTURES, _STRUCTURES, Laplace, _bool_flag
from .model import Sequential, _choice, _epoch_entry, _int64

__all__ = ["train_marglik", "MarglikResult"]

_ptr = _lib.as_pointer
_OBJECTIVES = {"laplace": _lib.BDL_OBJECTIVE_LAPLACE, "ntk_bound": _lib.BDL_OBJECTIVE_NTK_BOUND}


class MarglikResult(NamedTuple):
    """The outcome of :func:`train_marglik`."""

    #: The network, trained in place and left at the kept parameters.
    model: Sequential
    #: The posterior at the kept parameters with its evidence-optimal hyperparameters.
    laplace: Laplace
    #: One dict per epoch: ``{"epoch", "epochs", "objective", "mean_nll", "log_marglik",
    #: "sigma_noise"}``; ``log_marglik`` is the evidence after that epoch's hyperparameter step
    #: (None without a step), ``sigma_noise`` the σ the next epochs train with.
    history: List[Dict[str, Any]]
    #: The epoch whose parameters were kept (0: no hyperparameter step ran; the final θ is kept).
    best_epoch: int


class _MarglikBar(TextBar):
    """Epochs done, with the objective and the latest evidence."""

    def __init__(self, stream):
        super().__init__(stream, "epoch")
        self._evidence = None

    def __call__(self, report: Dict[str, Any]) -> bool:
        if report["log_marglik"] is not None:
            self._evidence = report["log_marglik"]
        evidence = "" if self._evidence is None else f"  log marglik {self._evidence:.6g}"
        self.draw(report["epoch"], report["epochs"], f" objective {report['objective']:.4g}{evidence}   ")
        return False


def train_marglik(
    model: Sequential,
    X,
    y,
    likelihood: str = "classification",
    structure: str = "kron",
    approx: str = "expand",
    prior_structure: str = "layerwise",
    epochs: int = 100,
    marglik_frequency: int = 1,
    burnin: int = 0,
    *,
    optimizer: str = "adam",
    lr: float = 1e-3,
    batch_size: int = 32,
    schedule: str = "constant",
    momentum: float = 0.9,
    prior_precision: Union[float, Sequence[float]] = 1.0,
    sigma_noise: float = 1.0,
    optimize_sigma: bool = True,
    temperature: float = 1.0,
    fisher: str = "exact",
    laplace_batch_size: int = 256,
    tol: float = 1e-6,
    max_hyper_iter: int = 100,
    mask=None,
    objective: str = "laplace",
    bound_batch_size: Optional[int] = None,
    single_class: bool = False,
    group_by_class: bool = False,
    seed: int = 0,
    progress: Union[None, bool, Callable[[Dict[str, Any]], Any]] = None,
) -> MarglikResult:
    r"""Trains ``model`` in place by the evidence and returns it with its posterior and history.

    Args:
        model: the network; training continues from its current θ.
        X, y: the training data, as for :meth:`bdlcore.Sequential.fit`.
        likelihood: ``"classification"`` or ``"regression"``.
        structure: the posterior refitted at each step: ``"kron"`` (default, as laplace-torch),
            ``"diag"`` or ``"full"``.
        approx: K-FAC for weight sharing: ``"expand"`` or ``"reduce"`` (faster on sequence and
            conv models; see DESIGN.md).
        prior_structure: ``"scalar"``, ``"layerwise"`` (default: a handful of values the
            evidence pins down well), ``"diag"`` or ``"unitwise"``.
        epochs: MAP epochs in all.
        marglik_frequency: F, a hyperparameter step after every F-th epoch (default 1, as
            laplace-torch: the prior follows θ closely; larger F saves refits).
        burnin: epochs at the initial δ before the first step (default 0, as laplace-torch).
        optimizer, lr, batch_size, schedule, momentum, mask, seed: the MAP optimiser, as for
            :meth:`bdlcore.Sequential.fit`; its state persists across hyperparameter steps.
        prior_precision: the initial δ (default 1, laplace-torch's ``prior_prec_init``).
        sigma_noise: the initial σ (regression).
        optimize_sigma: tune σ with δ (regression; default True).
        temperature: T in the evidence's likelihood term (1: the Bayesian evidence).
        fisher: the curvature's Fisher (``"exact"``, ``"mc"``, ``"empirical"``).
        laplace_batch_size: examples per pass of the refit (memory only).
        tol: stationarity of each hyperparameter solve (default 1e-6: the next MAP steps move
            θ, so more digits of a transient optimum buy nothing).
        max_hyper_iter: iterations per solve.
        objective: what each hyperparameter step maximises: ``"laplace"`` (the evidence of the
            refitted posterior, default) or ``"ntk_bound"`` (the NTK lower bound on the full-GGN
            evidence, see :func:`bdlcore.ntk_evidence_bound`; scalar or layerwise prior; the
            batches are redrawn at every step).
        bound_batch_size: the NTK bound's examples per batch (None: all in one batch, where the
            bound is the exact full-GGN evidence).
        single_class: the NTK bound's classes-independent variant (λ = p(1 − p), C kernels of
            B × B; an approximation, not a bound).
        group_by_class: sort examples by class before cutting the bound's batches (tighter).
        progress: as for :meth:`bdlcore.Sequential.fit`; the callable receives the history dicts.

    Returns:
        A :class:`MarglikResult` (model, laplace, history, best_epoch). Close ``laplace`` when done.

    Raises:
        InvalidArgumentError: bad options (unknown names, marglik_frequency < 1, burnin < 0,
            a non-positive initial δ), bad labels.
        ShapeMismatchError: X, y, prior_precision or mask of the wrong shape.
        NotConvergedError: MAP training diverged; θ is restored.
        On any error raised by the library θ is unchanged.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a bdlcore.Sequential, got {type(model).__name__}")
    train, X, n, y, keep = model._train_params(
        X, y, likelihood, optimizer, lr, epochs, batch_size, prior_precision, seed, schedule, momentum, sigma_noise, mask
    )
    params = _lib.bdl_marglik_params()
    _check(_lib.lib.bdl_marglik_params_init(byref(params)))
    params.train = train
    params.laplace.structure = _choice(structure, _STRUCTURES, "structure")
    params.laplace.approximation = _choice(approx, _APPROXIMATIONS, "approx")
    params.laplace.fisher = _choice(fisher, _FISHERS, "fisher")
    params.laplace.batch_size = _int64(laplace_batch_size, "laplace_batch_size")
    params.laplace.temperature = float(temperature)
    params.laplace.seed = train.seed
    params.prior_structure = _choice(prior_structure, _PRIOR_STRUCTURES, "prior_structure")
    params.optimize_sigma = _bool_flag(optimize_sigma, "optimize_sigma")
    params.frequency = _int64(marglik_frequency, "marglik_frequency")
    params.burnin = _int64(burnin, "burnin")
    params.tolerance = float(tol)
    params.max_hyper_iterations = _int64(max_hyper_iter, "max_hyper_iter")
    params.objective = _choice(objective, _OBJECTIVES, "objective")
    params.bound_batch_size = 0 if bound_batch_size is None else _int64(bound_batch_size, "bound_batch_size")
    params.independent_outputs = _bool_flag(single_class, "single_class")
    params.group_by_class = _bool_flag(group_by_class, "group_by_class")

    def entry(report) -> Dict[str, Any]:
        return dict(
            _epoch_entry(report),
            log_marglik=float(report.log_marginal_likelihood) if report.hyperparameter_step else None,
            sigma_noise=float(report.sigma_noise),
        )

    handle, best = c_void_p(), c_int64(0)

    def invoke(model_handle, callback) -> int:
        return _lib.lib.bdl_train_marglik(
            model_handle, _ptr(X), n, _ptr(y), byref(params), callback, None, byref(handle), None, 0, byref(best)
        )

    try:
        history = model._run_epochs(progress, _MarglikBar, _lib.BDL_MARGLIK_PROGRESS_FN, entry, invoke)
    except BaseException:
        if handle.value:
            _lib.lib.bdl_laplace_free(handle.value)
        raise
    laplace = Laplace._empty(model)
    laplace._adopt_new(handle.value)
    laplace._fisher = params.laplace.fisher
    laplace._approx = params.laplace.approximation
    del keep
    return MarglikResult(model, laplace, history, int(best.value))
