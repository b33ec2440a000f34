"""bdlcore: Bayesian-deep-learning numerics (K-FAC, Laplace evidence) over a C library.

Quickstart::

    import numpy as np, bdlcore
    rng = np.random.default_rng(0)
    G, H = rng.standard_normal((4, 8)), rng.standard_normal((3, 8))
    B, A = G @ G.T, H @ H.T                        # output-gradient and input factors
    bdlcore.kron_logdet(B, A, scale=1.0, delta=0.5)  # log det(B ⊗ A + 0.5 I)
    W = rng.standard_normal((4, 3))                  # weight-shaped (out, in) vector
    with bdlcore.KronFactor(B, A) as F:              # eigendecompose once, reuse
        Y = F.solve(W, delta=0.5)                    # (B ⊗ A + 0.5 I)^-1 vec(W)
        var = F.diagonal(delta=0.5, exponent=-1)     # marginal posterior variances, (4, 3)

Matrices are float64, row-major; (B ⊗ A) vec(X) = vec(B X Aᵀ) for X of shape (nb, na), the
layout of a PyTorch Linear weight. Failures raise subclasses of :class:`BDLError`.
The shared library is found via ``BDLCORE_LIBRARY``, the package directory, or the source tree's
``.build/release`` folder.

Modules: :mod:`bdlcore.kron` (Kronecker-factored solves, log-determinants, diagonals),
:mod:`bdlcore.model` (sequential networks in PyTorch's parameter layout: outputs, Jacobians,
gradients, per-layer K-FAC statistics, training; ``bdlcore.Sequential``, ``bdlcore.from_torch``),
:mod:`bdlcore.curvature` (GGN, its diagonal, K-FAC and EK-FAC of a network as linear operators
on its parameters; caller-fed K-FAC statistics: ``bdlcore.KFAC``, ``bdlcore.KFACAccumulator``),
:mod:`bdlcore.laplace` (Laplace posteriors: evidence and its gradients, evidence-optimal priors,
linearised predictives, sampling, save/load; ``bdlcore.Laplace``), :mod:`bdlcore.marglik` (marginal-likelihood training of a network and its priors by the
evidence; ``bdlcore.train_marglik``), :mod:`bdlcore.model_selection` (the stochastic NTK lower
bound on the evidence and its gradient; ``bdlcore.ntk_evidence_bound``), :mod:`bdlcore.influence`
(influence scores τ = ∇mᵀ(G + λI)⁻¹∇ℓ with EK-FAC, K-FAC, diagonal, GGN or identity curvature,
self-influence, top-k; ``bdlcore.Influence``), :mod:`bdlcore.evaluation` (the linear
datamodeling score and retraining without the top-k examples), :mod:`bdlcore.metrics`
(accuracy, NLL, Brier score, ECE and reliability diagrams of class probabilities),
:mod:`bdlcore.pruning` (OPD, OBD, magnitude, random and K-FAC-OBS scores, structured units,
masks and sparsity/FLOP reports; ``Sequential.apply_mask``, ``Sequential.save``/``load``),
:mod:`bdlcore.blas` (the BLAS in use) and :mod:`bdlcore.datasets` (the shipped digits and
diabetes data as numpy arrays with the fixed train/test split, ``bdlcore.datasets.load_digits()``).
"""

from . import _lib
from ._errors import (
    BDLError,
    BDLIOError,
    CorruptDataError,
    InternalError,
    InvalidArgumentError,
    NonFiniteInputError,
    NotConvergedError,
    NotPositiveDefiniteError,
    OutOfMemoryError,
    ShapeMismatchError,
    Status,
    UnsupportedError,
    WrongStateError,
)
from . import datasets, evaluation, influence, metrics, pruning
from .blas import BLASInfo, blas_info
from .curvature import EKFAC, GGN, KFAC, AccumulationProfile, DiagGGN, KFACAccumulator
from .kron import KronFactor, kron_diagonal, kron_logdet, kron_solve
from .influence import Influence
from .laplace import EvidenceOptimum, Laplace
from .marglik import MarglikResult, train_marglik
from .model_selection import ntk_evidence_bound
from .model import (
    GELU,
    AvgPool2d,
    Conv2d,
    ConvFCMixture,
    Flatten,
    GlobalAvgPool2d,
    Identity,
    Linear,
    MeanOverSequence,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    from_torch,
)

__version__ = _lib.lib.bdl_version_string().decode("ascii")


def version_number() -> int:
    """The library's version as MAJOR·10000 + MINOR·100 + PATCH."""
    return int(_lib.lib.bdl_version_number())


def status_string(status: int) -> str:
    """Short static description of a status ("invalid argument"); unknown values give "unknown status"."""
    return _lib.lib.bdl_status_string(int(status)).decode("utf-8", "replace")


def last_error_message() -> str:
    """The message of the most recent failed bdlcore call on this thread ("" if none)."""
    return _lib.lib.bdl_last_error_message().decode("utf-8", "replace")


def debug_live_handles() -> int:
    """Number of bdlcore handles alive in the process (created and not yet freed), for leak tests."""
    return int(_lib.lib.bdl_debug_live_handles())


__all__ = [
    "__version__",
    "version_number",
    "status_string",
    "last_error_message",
    "debug_live_handles",
    "kron_logdet",
    "kron_solve",
    "kron_diagonal",
    "KronFactor",
    "Sequential",
    "from_torch",
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
    "KFAC",
    "EKFAC",
    "DiagGGN",
    "GGN",
    "KFACAccumulator",
    "AccumulationProfile",
    "Laplace",
    "EvidenceOptimum",
    "train_marglik",
    "MarglikResult",
    "ntk_evidence_bound",
    "Influence",
    "influence",
    "evaluation",
    "metrics",
    "pruning",
    "blas_info",
    "BLASInfo",
    "Status",
    "BDLError",
    "InvalidArgumentError",
    "ShapeMismatchError",
    "NonFiniteInputError",
    "NotPositiveDefiniteError",
    "NotConvergedError",
    "OutOfMemoryError",
    "BDLIOError",
    "CorruptDataError",
    "WrongStateError",
    "UnsupportedError",
    "InternalError",
]
