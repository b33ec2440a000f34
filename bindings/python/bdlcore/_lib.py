"""Loader and ctypes declarations of the bdlcore C ABI (``include/bdlcore.h``).

This module mirrors the header: one declaration per C function, in header order, each with its C
prototype in a comment, plus the header's constants and the ``bdl_blas_info_t`` struct. Nothing
here converts or checks values; the public modules (``kron``, ``blas``, ``model``) do that.
The structures (``bdl_blas_info_t``, ``bdl_layer_spec``, ``bdl_train_params``,
``bdl_train_progress``, ``bdl_curvature_params``, ``bdl_laplace_params``,
``bdl_evidence_optimum``, ``bdl_influence_params``, ``bdl_layer_sparsity``, ``bdl_ntk_bound_params``) mirror the C ones field by field; ``BDL_PROGRESS_FN`` and
``BDL_PASS_PROGRESS_FN`` are the ctypes types of ``bdl_progress_fn`` and ``bdl_pass_progress_fn``.

The shared library is looked for, in this order:

1. the file named by the environment variable ``BDLCORE_LIBRARY``;
2. ``libbdlcore.so`` next to this file (an installed wheel ships it there);
3. ``.build/release/libbdlcore.so`` of the source tree this package sits in
   (``<package dir>/../../../.build/release``), i.e. the output of
   ``swift build -c release -Xswiftc -static-stdlib``.

If none loads, importing ``bdlcore`` raises :class:`LibraryNotFoundError` (an ``ImportError``)
whose message lists every path tried and why each failed.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_double,
    c_float,
    c_int32,
    c_int64,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import List, Mapping, Optional, Sequence, Tuple

from ._paths import search_candidates

__all__ = [
    "LibraryNotFoundError",
    "library_candidates",
    "load_library",
    "lib",
    "library_path",
    "DECLARED_FUNCTIONS",
    "bdl_blas_info_t",
    "bdl_layer_spec",
    "bdl_train_params",
    "bdl_train_progress",
    "bdl_curvature_params",
    "bdl_laplace_params",
    "bdl_evidence_optimum",
    "bdl_influence_params",
    "bdl_marglik_params",
    "bdl_marglik_progress",
    "bdl_layer_sparsity",
    "bdl_ntk_bound_params",
    "BDL_PROGRESS_FN",
    "BDL_MARGLIK_PROGRESS_FN",
    "BDL_PASS_PROGRESS_FN",
]

#: Environment variable naming the shared library to load, tried before anything else.
LIBRARY_ENV_VAR = "BDLCORE_LIBRARY"
#: File name of the shared library.
LIBRARY_NAME = "libbdlcore.so"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class LibraryNotFoundError(ImportError):
    """No candidate file could be loaded as libbdlcore; the message lists each path and reason."""


def library_candidates(
    environ: Optional[Mapping[str, str]] = None, package_dir: Optional[str] = None
) -> List[Tuple[str, str]]:
    """The files to try, in order, as ``(origin, path)`` pairs.

    ``environ`` defaults to ``os.environ`` and ``package_dir`` to this package's directory; both
    are parameters so that the search can be exercised without touching the real ones.
    """
    package_dir = _PACKAGE_DIR if package_dir is None else package_dir
    return search_candidates(
        LIBRARY_ENV_VAR, package_dir, LIBRARY_NAME, os.path.join(".build", "release", LIBRARY_NAME), "source tree build", environ
    )


def load_library(candidates: Sequence[Tuple[str, str]]) -> Tuple[ctypes.CDLL, str]:
    """Loads the first candidate that is a bdlcore library; returns ``(library, path)``.

    Raises :class:`LibraryNotFoundError` listing every ``origin: path (reason)`` when none loads.
    A failing ``BDLCORE_LIBRARY`` followed by a working fallback is reported with a
    ``RuntimeWarning``, since the caller asked for that file explicitly.
    """
    failures = []
    for origin, path in candidates:
        if not os.path.exists(path):
            failures.append(f"  {origin}: {path} (no such file)")
            continue
        try:
            library = ctypes.CDLL(path)
        except OSError as error:
            failures.append(f"  {origin}: {path} ({error})")
            continue
        if not hasattr(library, "bdl_version_string"):
            failures.append(f"  {origin}: {path} (loaded, but it does not export bdl_version_string)")
            continue
        if failures and any(line.startswith(f"  {LIBRARY_ENV_VAR}:") for line in failures):
            warnings.warn(
                f"{LIBRARY_ENV_VAR} could not be loaded, using {path} instead:\n" + "\n".join(failures),
                RuntimeWarning,
                stacklevel=2,
            )
        return library, path
    tried = "\n".join(failures) if failures else "  (no candidates)"
    raise LibraryNotFoundError(
        f"could not load the bdlcore shared library ({LIBRARY_NAME}). Tried, in order:\n{tried}\n"
        f"Build it with `swift build -c release -Xswiftc -static-stdlib` in the repository, "
        f"or set {LIBRARY_ENV_VAR} to its path."
    )


lib, library_path = load_library(library_candidates())

# ---------------------------------------------------------------------------------------------
# Constants of bdlcore.h
# ---------------------------------------------------------------------------------------------

BDL_VERSION_MAJOR = 0
BDL_VERSION_MINOR = 1
BDL_VERSION_PATCH = 0

BDL_OK = 0
BDL_INVALID_ARGUMENT = 1
BDL_SHAPE_MISMATCH = 2
BDL_NON_FINITE_INPUT = 3
BDL_NOT_POSITIVE_DEFINITE = 4
BDL_NOT_CONVERGED = 5
BDL_OUT_OF_MEMORY = 6
BDL_IO_ERROR = 7
BDL_CORRUPT_DATA = 8
BDL_WRONG_STATE = 9
BDL_UNSUPPORTED = 10
BDL_INTERNAL = 11

#: Every status constant by its header name, in value order.
STATUS_CONSTANTS = {
    "BDL_OK": BDL_OK,
    "BDL_INVALID_ARGUMENT": BDL_INVALID_ARGUMENT,
    "BDL_SHAPE_MISMATCH": BDL_SHAPE_MISMATCH,
    "BDL_NON_FINITE_INPUT": BDL_NON_FINITE_INPUT,
    "BDL_NOT_POSITIVE_DEFINITE": BDL_NOT_POSITIVE_DEFINITE,
    "BDL_NOT_CONVERGED": BDL_NOT_CONVERGED,
    "BDL_OUT_OF_MEMORY": BDL_OUT_OF_MEMORY,
    "BDL_IO_ERROR": BDL_IO_ERROR,
    "BDL_CORRUPT_DATA": BDL_CORRUPT_DATA,
    "BDL_WRONG_STATE": BDL_WRONG_STATE,
    "BDL_UNSUPPORTED": BDL_UNSUPPORTED,
    "BDL_INTERNAL": BDL_INTERNAL,
}

BDL_BLAS_CORE_FROM_OPENBLAS = 0
BDL_BLAS_CORE_FROM_USER = 1
BDL_BLAS_CORE_FROM_BDLCORE = 2
BDL_BLAS_CORE_PRELOADED = 3

#: Every BLAS core source constant by its header name.
BLAS_CORE_CONSTANTS = {
    "BDL_BLAS_CORE_FROM_OPENBLAS": BDL_BLAS_CORE_FROM_OPENBLAS,
    "BDL_BLAS_CORE_FROM_USER": BDL_BLAS_CORE_FROM_USER,
    "BDL_BLAS_CORE_FROM_BDLCORE": BDL_BLAS_CORE_FROM_BDLCORE,
    "BDL_BLAS_CORE_PRELOADED": BDL_BLAS_CORE_PRELOADED,
}

BDL_LAYER_LINEAR = 1
BDL_LAYER_CONV2D = 2
BDL_LAYER_RELU = 3
BDL_LAYER_TANH = 4
BDL_LAYER_SIGMOID = 5
BDL_LAYER_GELU = 6
BDL_LAYER_IDENTITY = 7
BDL_LAYER_FLATTEN = 8
BDL_LAYER_AVG_POOL2D = 9
BDL_LAYER_GLOBAL_AVG_POOL2D = 10
BDL_LAYER_MEAN_OVER_SEQUENCE = 11
BDL_LAYER_CONV_FC_MIXTURE = 12

#: Every layer kind (``bdl_layer_spec.kind``) by its header name.
LAYER_CONSTANTS = {
    "BDL_LAYER_LINEAR": BDL_LAYER_LINEAR,
    "BDL_LAYER_CONV2D": BDL_LAYER_CONV2D,
    "BDL_LAYER_RELU": BDL_LAYER_RELU,
    "BDL_LAYER_TANH": BDL_LAYER_TANH,
    "BDL_LAYER_SIGMOID": BDL_LAYER_SIGMOID,
    "BDL_LAYER_GELU": BDL_LAYER_GELU,
    "BDL_LAYER_IDENTITY": BDL_LAYER_IDENTITY,
    "BDL_LAYER_FLATTEN": BDL_LAYER_FLATTEN,
    "BDL_LAYER_AVG_POOL2D": BDL_LAYER_AVG_POOL2D,
    "BDL_LAYER_GLOBAL_AVG_POOL2D": BDL_LAYER_GLOBAL_AVG_POOL2D,
    "BDL_LAYER_MEAN_OVER_SEQUENCE": BDL_LAYER_MEAN_OVER_SEQUENCE,
    "BDL_LAYER_CONV_FC_MIXTURE": BDL_LAYER_CONV_FC_MIXTURE,
}

BDL_LIKELIHOOD_CLASSIFICATION = 1
BDL_LIKELIHOOD_REGRESSION = 2

#: Every likelihood by its header name.
LIKELIHOOD_CONSTANTS = {
    "BDL_LIKELIHOOD_CLASSIFICATION": BDL_LIKELIHOOD_CLASSIFICATION,
    "BDL_LIKELIHOOD_REGRESSION": BDL_LIKELIHOOD_REGRESSION,
}

BDL_OPTIMIZER_ADAM = 1
BDL_OPTIMIZER_SGD = 2

#: Every optimiser by its header name.
OPTIMIZER_CONSTANTS = {
    "BDL_OPTIMIZER_ADAM": BDL_OPTIMIZER_ADAM,
    "BDL_OPTIMIZER_SGD": BDL_OPTIMIZER_SGD,
}

BDL_SCHEDULE_CONSTANT = 1
BDL_SCHEDULE_COSINE = 2

#: Every learning-rate schedule by its header name.
SCHEDULE_CONSTANTS = {
    "BDL_SCHEDULE_CONSTANT": BDL_SCHEDULE_CONSTANT,
    "BDL_SCHEDULE_COSINE": BDL_SCHEDULE_COSINE,
}

BDL_CURVATURE_KFAC = 1
BDL_CURVATURE_EKFAC = 2
BDL_CURVATURE_DIAG_GGN = 3
BDL_CURVATURE_GGN = 4

#: Every curvature kind (``bdl_curvature_params.kind``) by its header name.
CURVATURE_CONSTANTS = {
    "BDL_CURVATURE_KFAC": BDL_CURVATURE_KFAC,
    "BDL_CURVATURE_EKFAC": BDL_CURVATURE_EKFAC,
    "BDL_CURVATURE_DIAG_GGN": BDL_CURVATURE_DIAG_GGN,
    "BDL_CURVATURE_GGN": BDL_CURVATURE_GGN,
}

BDL_FISHER_EXACT = 1
BDL_FISHER_MC = 2
BDL_FISHER_EMPIRICAL = 3

#: Every Fisher source (``bdl_curvature_params.fisher``) by its header name.
FISHER_CONSTANTS = {
    "BDL_FISHER_EXACT": BDL_FISHER_EXACT,
    "BDL_FISHER_MC": BDL_FISHER_MC,
    "BDL_FISHER_EMPIRICAL": BDL_FISHER_EMPIRICAL,
}

BDL_KFAC_EXPAND = 1
BDL_KFAC_REDUCE = 2
BDL_KFAC_DAMPING_EXACT = 1
BDL_KFAC_DAMPING_FACTORED = 2
BDL_KFAC_DAMPING_PI = 3

#: Every K-FAC constant by its header name: the approximations (``bdl_curvature_params.approximation``)
#: and the damping modes (``bdl_curvature_set_kfac_damping``).
KFAC_CONSTANTS = {
    "BDL_KFAC_EXPAND": BDL_KFAC_EXPAND,
    "BDL_KFAC_REDUCE": BDL_KFAC_REDUCE,
    "BDL_KFAC_DAMPING_EXACT": BDL_KFAC_DAMPING_EXACT,
    "BDL_KFAC_DAMPING_FACTORED": BDL_KFAC_DAMPING_FACTORED,
    "BDL_KFAC_DAMPING_PI": BDL_KFAC_DAMPING_PI,
}

BDL_LAPLACE_FULL = 1
BDL_LAPLACE_DIAG = 2
BDL_LAPLACE_KRON = 3

#: Every posterior structure (``bdl_laplace_params.structure``) by its header name.
LAPLACE_CONSTANTS = {
    "BDL_LAPLACE_FULL": BDL_LAPLACE_FULL,
    "BDL_LAPLACE_DIAG": BDL_LAPLACE_DIAG,
    "BDL_LAPLACE_KRON": BDL_LAPLACE_KRON,
}

BDL_SUBSET_ALL = 1
BDL_SUBSET_LAST_LAYER = 2

#: Every parameter subset (``bdl_laplace_params.subset``) by its header name.
SUBSET_CONSTANTS = {
    "BDL_SUBSET_ALL": BDL_SUBSET_ALL,
    "BDL_SUBSET_LAST_LAYER": BDL_SUBSET_LAST_LAYER,
}

BDL_PRIOR_SCALAR = 1
BDL_PRIOR_LAYERWISE = 2
BDL_PRIOR_DIAG = 3
BDL_PRIOR_UNITWISE = 4

#: Every prior-precision structure (``bdl_laplace_optimize_prior_precision``) by its header name.
PRIOR_CONSTANTS = {
    "BDL_PRIOR_SCALAR": BDL_PRIOR_SCALAR,
    "BDL_PRIOR_LAYERWISE": BDL_PRIOR_LAYERWISE,
    "BDL_PRIOR_DIAG": BDL_PRIOR_DIAG,
    "BDL_PRIOR_UNITWISE": BDL_PRIOR_UNITWISE,
}

BDL_OBJECTIVE_LAPLACE = 1
BDL_OBJECTIVE_NTK_BOUND = 2

#: What bdl_train_marglik's hyperparameter steps maximise, by header name.
OBJECTIVE_CONSTANTS = {
    "BDL_OBJECTIVE_LAPLACE": BDL_OBJECTIVE_LAPLACE,
    "BDL_OBJECTIVE_NTK_BOUND": BDL_OBJECTIVE_NTK_BOUND,
}

BDL_LINK_PROBIT = 1
BDL_LINK_BRIDGE = 2
BDL_LINK_MC = 3

#: Every classification predictive link (``bdl_laplace_predict``) by its header name.
LINK_CONSTANTS = {
    "BDL_LINK_PROBIT": BDL_LINK_PROBIT,
    "BDL_LINK_BRIDGE": BDL_LINK_BRIDGE,
    "BDL_LINK_MC": BDL_LINK_MC,
}

BDL_INFLUENCE_GGN = 1
BDL_INFLUENCE_DIAG = 2
BDL_INFLUENCE_KFAC = 3
BDL_INFLUENCE_EKFAC = 4
BDL_INFLUENCE_IDENTITY = 5

#: Every influence curvature (``bdl_influence_params.curvature``) by its header name.
INFLUENCE_CONSTANTS = {
    "BDL_INFLUENCE_GGN": BDL_INFLUENCE_GGN,
    "BDL_INFLUENCE_DIAG": BDL_INFLUENCE_DIAG,
    "BDL_INFLUENCE_KFAC": BDL_INFLUENCE_KFAC,
    "BDL_INFLUENCE_EKFAC": BDL_INFLUENCE_EKFAC,
    "BDL_INFLUENCE_IDENTITY": BDL_INFLUENCE_IDENTITY,
}

BDL_MEASURE_LOSS = 1
BDL_MEASURE_LOG_PROB = 2
BDL_MEASURE_MARGIN = 3
BDL_MEASURE_COTANGENT = 4

#: Every query measurement (``bdl_influence_scores`` and the evaluations) by its header name.
MEASURE_CONSTANTS = {
    "BDL_MEASURE_LOSS": BDL_MEASURE_LOSS,
    "BDL_MEASURE_LOG_PROB": BDL_MEASURE_LOG_PROB,
    "BDL_MEASURE_MARGIN": BDL_MEASURE_MARGIN,
    "BDL_MEASURE_COTANGENT": BDL_MEASURE_COTANGENT,
}

BDL_PRUNING_OPD = 1
BDL_PRUNING_OBD = 2
BDL_PRUNING_MAGNITUDE = 3
BDL_PRUNING_RANDOM = 4
BDL_PRUNING_KFAC_OBS = 5

#: Every pruning criterion (``bdl_pruning_scores``) by its header name.
PRUNING_CONSTANTS = {
    "BDL_PRUNING_OPD": BDL_PRUNING_OPD,
    "BDL_PRUNING_OBD": BDL_PRUNING_OBD,
    "BDL_PRUNING_MAGNITUDE": BDL_PRUNING_MAGNITUDE,
    "BDL_PRUNING_RANDOM": BDL_PRUNING_RANDOM,
    "BDL_PRUNING_KFAC_OBS": BDL_PRUNING_KFAC_OBS,
}

# ---------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------

bdl_status = c_int32
_dptr = POINTER(c_double)
_fptr = POINTER(c_float)
_i64ptr = POINTER(c_int64)
_handle = c_void_p  # bdl_kron_factor*, bdl_model*, bdl_layer_statistics*, bdl_curvature*, bdl_kfac_accumulator*,
#                    bdl_laplace*, bdl_influence*: opaque


class bdl_blas_info_t(Structure):
    """Mirror of ``bdl_blas_info_t``, field by field."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("num_threads", c_int32),
        ("core_source", c_int32),
        ("core", c_char * 64),
        ("requested_core", c_char * 64),
        ("openblas_library", c_char * 512),
        ("lapacke_library", c_char * 512),
        ("config", c_char * 256),
    ]


class bdl_layer_spec(Structure):
    """Mirror of ``bdl_layer_spec``, field by field (one layer of a ``bdl_model``)."""

    _fields_ = [
        ("kind", c_int32),
        ("bias", c_int32),
        ("in_features", c_int64),
        ("out_features", c_int64),
        ("kernel_size", c_int64),
        ("stride", c_int64),
        ("padding", c_int64),
    ]


class bdl_train_params(Structure):
    """Mirror of ``bdl_train_params``, field by field; fill with ``bdl_train_params_init``."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("likelihood", c_int32),
        ("sigma", c_double),
        ("optimizer", c_int32),
        ("schedule", c_int32),
        ("learning_rate", c_double),
        ("momentum", c_double),
        ("beta1", c_double),
        ("beta2", c_double),
        ("epsilon", c_double),
        ("epochs", c_int64),
        ("batch_size", c_int64),
        ("prior_precision", POINTER(c_double)),
        ("prior_precision_count", c_int64),
        ("seed", c_uint64),
        ("mask", POINTER(c_double)),
        ("mask_count", c_int64),
    ]


class bdl_train_progress(Structure):
    """Mirror of ``bdl_train_progress``: what ``bdl_model_train`` reports after each epoch."""

    _fields_ = [
        ("epoch", c_int64),
        ("epochs", c_int64),
        ("objective", c_double),
        ("mean_negative_log_likelihood", c_double),
    ]


class bdl_curvature_params(Structure):
    """Mirror of ``bdl_curvature_params``, field by field; fill with ``bdl_curvature_params_init``."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("kind", c_int32),
        ("fisher", c_int32),
        ("approximation", c_int32),
        ("likelihood", c_int32),
        ("mc_samples", c_int64),
        ("seed", c_uint64),
        ("batch_size", c_int64),
    ]


class bdl_laplace_params(Structure):
    """Mirror of ``bdl_laplace_params``, field by field; fill with ``bdl_laplace_params_init``."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("likelihood", c_int32),
        ("structure", c_int32),
        ("subset", c_int32),
        ("fisher", c_int32),
        ("approximation", c_int32),
        ("damped", c_int32),
        ("mc_samples", c_int64),
        ("seed", c_uint64),
        ("batch_size", c_int64),
        ("prior_precision", POINTER(c_double)),
        ("prior_precision_count", c_int64),
        ("prior_mean", POINTER(c_double)),
        ("prior_mean_count", c_int64),
        ("sigma_noise", c_double),
        ("temperature", c_double),
    ]


class bdl_evidence_optimum(Structure):
    """Mirror of ``bdl_evidence_optimum``: the outcome of ``bdl_laplace_optimize_prior_precision``."""

    _fields_ = [
        ("log_marginal_likelihood", c_double),
        ("gradient_norm", c_double),
        ("iterations", c_int64),
        ("converged", c_int32),
    ]


class bdl_marglik_params(Structure):
    """Mirror of ``bdl_marglik_params``; fill with ``bdl_marglik_params_init``."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("train", bdl_train_params),
        ("laplace", bdl_laplace_params),
        ("prior_structure", c_int32),
        ("optimize_sigma", c_int32),
        ("frequency", c_int64),
        ("burnin", c_int64),
        ("tolerance", c_double),
        ("max_hyper_iterations", c_int64),
        ("objective", c_int32),
        ("bound_batch_size", c_int64),
        ("independent_outputs", c_int32),
        ("group_by_class", c_int32),
    ]


class bdl_marglik_progress(Structure):
    """Mirror of ``bdl_marglik_progress``: what ``bdl_train_marglik`` reports after each epoch."""

    _fields_ = [
        ("epoch", c_int64),
        ("epochs", c_int64),
        ("objective", c_double),
        ("mean_negative_log_likelihood", c_double),
        ("hyperparameter_step", c_int32),
        ("log_marginal_likelihood", c_double),
        ("sigma_noise", c_double),
    ]


#: ``typedef int32_t (*bdl_marglik_progress_fn)(const bdl_marglik_progress *progress, void *user_data);``
BDL_MARGLIK_PROGRESS_FN = CFUNCTYPE(c_int32, POINTER(bdl_marglik_progress), c_void_p)


class bdl_layer_data(Structure):
    """Mirror of ``bdl_layer_data``: one layer's captured statistics (pointers into caller arrays)."""

    _fields_ = [("a", POINTER(c_double)), ("g", POINTER(c_double)), ("positions", c_int64)]


class bdl_influence_params(Structure):
    """Mirror of ``bdl_influence_params``, field by field; fill with ``bdl_influence_params_init``."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("likelihood", c_int32),
        ("curvature", c_int32),
        ("fisher", c_int32),
        ("approximation", c_int32),
        ("relative_damping", c_int32),
        ("damping", c_double),
        ("mc_samples", c_int64),
        ("seed", c_uint64),
        ("batch_size", c_int64),
    ]


#: ``typedef int32_t (*bdl_progress_fn)(const bdl_train_progress *progress, void *user_data);``
BDL_PROGRESS_FN = CFUNCTYPE(c_int32, POINTER(bdl_train_progress), c_void_p)

#: ``typedef void (*bdl_pass_progress_fn)(int64_t done, int64_t total, void *user_data);``
BDL_PASS_PROGRESS_FN = CFUNCTYPE(None, c_int64, c_int64, c_void_p)


class bdl_layer_sparsity(Structure):
    """Mirror of ``bdl_layer_sparsity``: parameters and multiply-accumulates of one Linear/Conv2d layer."""

    _fields_ = [
        ("layer", c_int64),
        ("weights", c_int64),
        ("weights_kept", c_int64),
        ("biases", c_int64),
        ("biases_kept", c_int64),
        ("units", c_int64),
        ("units_kept", c_int64),
        ("macs", c_int64),
        ("macs_kept", c_int64),
    ]


class bdl_ntk_bound_params(Structure):
    """Mirror of ``bdl_ntk_bound_params``, field by field; fill with ``bdl_ntk_bound_params_init``."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("likelihood", c_int32),
        ("prior_precision", POINTER(c_double)),
        ("prior_precision_count", c_int64),
        ("prior_mean", POINTER(c_double)),
        ("prior_mean_count", c_int64),
        ("sigma_noise", c_double),
        ("temperature", c_double),
        ("batch_size", c_int64),
        ("independent_outputs", c_int32),
        ("group_by_class", c_int32),
        ("seed", c_uint64),
        ("batch_index", c_int64),
        ("output_index", c_int64),
    ]


# ---------------------------------------------------------------------------------------------
# Functions, in header order
# ---------------------------------------------------------------------------------------------

_declared: List[str] = []
_missing: List[str] = []


def _declare(name: str, restype, argtypes) -> None:
    try:
        function = getattr(lib, name)
    except AttributeError:
        _missing.append(name)
        return
    function.restype = restype
    function.argtypes = list(argtypes)
    _declared.append(name)


# const char *bdl_version_string(void);
_declare("bdl_version_string", c_char_p, [])

# int32_t bdl_version_number(void);
_declare("bdl_version_number", c_int32, [])

# const char *bdl_status_string(bdl_status status);
_declare("bdl_status_string", c_char_p, [bdl_status])

# const char *bdl_last_error_message(void);
_declare("bdl_last_error_message", c_char_p, [])

# int64_t bdl_debug_live_handles(void);
_declare("bdl_debug_live_handles", c_int64, [])

# bdl_status bdl_blas_info(bdl_blas_info_t *out_info);
_declare("bdl_blas_info", bdl_status, [POINTER(bdl_blas_info_t)])

# bdl_status bdl_kron_logdet(const double *B, int64_t nb, const double *A, int64_t na,
#                            double scale, double delta, double *out_logdet);
_declare("bdl_kron_logdet", bdl_status, [_dptr, c_int64, _dptr, c_int64, c_double, c_double, _dptr])

# bdl_status bdl_kron_solve(const double *B, int64_t nb, const double *A, int64_t na,
#                           double scale, double delta, const double *X, int64_t k,
#                           double *out_Y);
_declare(
    "bdl_kron_solve",
    bdl_status,
    [_dptr, c_int64, _dptr, c_int64, c_double, c_double, _dptr, c_int64, _dptr],
)

# bdl_status bdl_kron_diagonal(const double *B, int64_t nb, const double *A, int64_t na,
#                              double scale, double delta, double exponent,
#                              double *out_diag);
_declare(
    "bdl_kron_diagonal",
    bdl_status,
    [_dptr, c_int64, _dptr, c_int64, c_double, c_double, c_double, _dptr],
)

# bdl_status bdl_kron_factor_create(const double *B, int64_t nb, const double *A, int64_t na,
#                                   bdl_kron_factor **out_factor);
_declare("bdl_kron_factor_create", bdl_status, [_dptr, c_int64, _dptr, c_int64, POINTER(_handle)])

# void bdl_kron_factor_free(bdl_kron_factor *factor);
_declare("bdl_kron_factor_free", None, [_handle])

# bdl_status bdl_kron_factor_shape(const bdl_kron_factor *factor, int64_t *out_nb,
#                                  int64_t *out_na);
_declare("bdl_kron_factor_shape", bdl_status, [_handle, POINTER(c_int64), POINTER(c_int64)])

# bdl_status bdl_kron_factor_eigenvalues(const bdl_kron_factor *factor, double *out_beta,
#                                        int64_t beta_capacity, double *out_alpha,
#                                        int64_t alpha_capacity);
_declare("bdl_kron_factor_eigenvalues", bdl_status, [_handle, _dptr, c_int64, _dptr, c_int64])

# bdl_status bdl_kron_factor_logdet(const bdl_kron_factor *factor, double scale, double delta,
#                                   double *out_logdet);
_declare("bdl_kron_factor_logdet", bdl_status, [_handle, c_double, c_double, _dptr])

# bdl_status bdl_kron_factor_apply_power(const bdl_kron_factor *factor, double scale,
#                                        double delta, double exponent, const double *X,
#                                        int64_t k, double *out_Y, int64_t out_capacity);
_declare(
    "bdl_kron_factor_apply_power",
    bdl_status,
    [_handle, c_double, c_double, c_double, _dptr, c_int64, _dptr, c_int64],
)

# bdl_status bdl_kron_factor_diagonal(const bdl_kron_factor *factor, double scale,
#                                     double delta, double exponent, double *out_diag,
#                                     int64_t out_capacity);
_declare("bdl_kron_factor_diagonal", bdl_status, [_handle, c_double, c_double, c_double, _dptr, c_int64])

# bdl_status bdl_model_create(const bdl_layer_spec *layers, int64_t n_layers,
#                             const int64_t *input_shape, int64_t input_rank, uint64_t seed,
#                             bdl_model **out_model);
_declare(
    "bdl_model_create",
    bdl_status,
    [POINTER(bdl_layer_spec), c_int64, _i64ptr, c_int64, c_uint64, POINTER(_handle)],
)

# void bdl_model_free(bdl_model *model);
_declare("bdl_model_free", None, [_handle])

# bdl_status bdl_model_sizes(const bdl_model *model, int64_t *out_num_parameters,
#                            int64_t *out_num_outputs, int64_t *out_input_size);
_declare("bdl_model_sizes", bdl_status, [_handle, _i64ptr, _i64ptr, _i64ptr])

# bdl_status bdl_model_get_parameters(const bdl_model *model, double *out_parameters,
#                                     int64_t capacity);
_declare("bdl_model_get_parameters", bdl_status, [_handle, _dptr, c_int64])

# bdl_status bdl_model_set_parameters(bdl_model *model, const double *parameters,
#                                     int64_t count);
_declare("bdl_model_set_parameters", bdl_status, [_handle, _dptr, c_int64])

# bdl_status bdl_model_forward(const bdl_model *model, const double *X, int64_t n,
#                              double *out_outputs, int64_t capacity);
_declare("bdl_model_forward", bdl_status, [_handle, _dptr, c_int64, _dptr, c_int64])

# bdl_status bdl_model_jacobian(const bdl_model *model, const double *X, int64_t n,
#                               double *out_jacobian, int64_t capacity);
_declare("bdl_model_jacobian", bdl_status, [_handle, _dptr, c_int64, _dptr, c_int64])

# bdl_status bdl_model_loss_gradient(const bdl_model *model, const double *X, int64_t n,
#                                    const double *y, int32_t likelihood, double sigma,
#                                    double *out_loss, double *out_gradient,
#                                    int64_t capacity);
_declare(
    "bdl_model_loss_gradient",
    bdl_status,
    [_handle, _dptr, c_int64, _dptr, c_int32, c_double, _dptr, _dptr, c_int64],
)

# bdl_status bdl_model_backward_vectors(const bdl_model *model, const double *X, int64_t n,
#                                       const double *V, int64_t k,
#                                       bdl_layer_statistics **out_statistics);
_declare("bdl_model_backward_vectors", bdl_status, [_handle, _dptr, c_int64, _dptr, c_int64, POINTER(_handle)])

# bdl_status bdl_model_per_example_gradients(const bdl_model *model, const double *X, int64_t n,
#                                            const double *V, int64_t k, double *out_gradients,
#                                            int64_t capacity)
_declare("bdl_model_per_example_gradients", bdl_status, [_handle, _dptr, c_int64, _dptr, c_int64, _dptr, c_int64])

# void bdl_layer_statistics_free(bdl_layer_statistics *statistics);
_declare("bdl_layer_statistics_free", None, [_handle])

# bdl_status bdl_layer_statistics_count(const bdl_layer_statistics *statistics,
#                                       int64_t *out_count);
_declare("bdl_layer_statistics_count", bdl_status, [_handle, _i64ptr])

# bdl_status bdl_layer_statistics_shape(const bdl_layer_statistics *statistics,
#                                       int64_t index, int64_t *out_layer,
#                                       int64_t *out_n, int64_t *out_k,
#                                       int64_t *out_positions, int64_t *out_d_in,
#                                       int64_t *out_d_out, int32_t *out_has_bias);
_declare(
    "bdl_layer_statistics_shape",
    bdl_status,
    [_handle, c_int64, _i64ptr, _i64ptr, _i64ptr, _i64ptr, _i64ptr, _i64ptr, POINTER(c_int32)],
)

# bdl_status bdl_layer_statistics_get(const bdl_layer_statistics *statistics, int64_t index,
#                                     double *out_a, int64_t a_capacity, double *out_g,
#                                     int64_t g_capacity);
_declare("bdl_layer_statistics_get", bdl_status, [_handle, c_int64, _dptr, c_int64, _dptr, c_int64])

# bdl_status bdl_layer_statistics_data(const bdl_layer_statistics *statistics, int64_t index,
#                                      const double **out_a, const double **out_g);
_declare("bdl_layer_statistics_data", bdl_status, [_handle, c_int64, POINTER(_dptr), POINTER(_dptr)])

# bdl_status bdl_train_params_init(bdl_train_params *params);
_declare("bdl_train_params_init", bdl_status, [POINTER(bdl_train_params)])

# bdl_status bdl_model_train(bdl_model *model, const double *X, int64_t n, const double *y,
#                            const bdl_train_params *params, bdl_progress_fn progress,
#                            void *user_data, bdl_train_progress *out_last);
_declare(
    "bdl_model_train",
    bdl_status,
    [
        _handle,
        _dptr,
        c_int64,
        _dptr,
        POINTER(bdl_train_params),
        BDL_PROGRESS_FN,
        c_void_p,
        POINTER(bdl_train_progress),
    ],
)

# bdl_status bdl_curvature_params_init(bdl_curvature_params *params);
_declare("bdl_curvature_params_init", bdl_status, [POINTER(bdl_curvature_params)])

# bdl_status bdl_curvature_fit(const bdl_model *model, const double *X, int64_t n,
#                              const double *y, const bdl_curvature_params *params,
#                              bdl_curvature **out_curvature);
_declare(
    "bdl_curvature_fit",
    bdl_status,
    [_handle, _dptr, c_int64, _dptr, POINTER(bdl_curvature_params), POINTER(_handle)],
)

# void bdl_curvature_free(bdl_curvature *curvature);
_declare("bdl_curvature_free", None, [_handle])

# bdl_status bdl_curvature_set_kfac_damping(bdl_curvature *curvature, int32_t mode);
_declare("bdl_curvature_set_kfac_damping", bdl_status, [_handle, c_int32])

# bdl_status bdl_curvature_info(const bdl_curvature *curvature, int32_t *out_kind,
#                               int64_t *out_num_parameters, int64_t *out_num_layers);
_declare("bdl_curvature_info", bdl_status, [_handle, POINTER(c_int32), _i64ptr, _i64ptr])

# bdl_status bdl_curvature_logdet(const bdl_curvature *curvature, double scale, double damping,
#                                 double *out_logdet);
_declare("bdl_curvature_logdet", bdl_status, [_handle, c_double, c_double, _dptr])

# bdl_status bdl_curvature_apply_power(const bdl_curvature *curvature, double scale,
#                                      double damping, double exponent, const double *V,
#                                      int64_t k, double *out_result, int64_t capacity);
_declare(
    "bdl_curvature_apply_power",
    bdl_status,
    [_handle, c_double, c_double, c_double, _dptr, c_int64, _dptr, c_int64],
)

# bdl_status bdl_curvature_diagonal(const bdl_curvature *curvature, double scale,
#                                   double damping, double exponent, double *out_diagonal,
#                                   int64_t capacity);
_declare("bdl_curvature_diagonal", bdl_status, [_handle, c_double, c_double, c_double, _dptr, c_int64])

# bdl_status bdl_curvature_dense(const bdl_curvature *curvature, double scale, double damping,
#                                double *out_matrix, int64_t capacity);
_declare("bdl_curvature_dense", bdl_status, [_handle, c_double, c_double, _dptr, c_int64])

# bdl_status bdl_curvature_kfac_factors(const bdl_curvature *curvature, int64_t index,
#                                       int64_t *out_layer, int64_t *out_d_out,
#                                       int64_t *out_d_in, double *out_B, int64_t b_capacity,
#                                       double *out_A, int64_t a_capacity);
_declare(
    "bdl_curvature_kfac_factors",
    bdl_status,
    [_handle, c_int64, _i64ptr, _i64ptr, _i64ptr, _dptr, c_int64, _dptr, c_int64],
)

# bdl_status bdl_curvature_kfac_accumulation(const bdl_curvature *curvature, double *out_flops,
#                                            double *out_thread_seconds, int64_t *out_workers);
_declare("bdl_curvature_kfac_accumulation", bdl_status, [_handle, _dptr, _dptr, _i64ptr])

# bdl_status bdl_kfac_accumulator_create(const int64_t *d_in, const int64_t *d_out,
#                                        const int32_t *has_bias, int64_t n_layers,
#                                        int32_t approximation,
#                                        bdl_kfac_accumulator **out_accumulator);
_declare(
    "bdl_kfac_accumulator_create",
    bdl_status,
    [_i64ptr, _i64ptr, POINTER(c_int32), c_int64, c_int32, POINTER(_handle)],
)

# void bdl_kfac_accumulator_free(bdl_kfac_accumulator *accumulator);
_declare("bdl_kfac_accumulator_free", None, [_handle])

# bdl_status bdl_kfac_accumulator_info(const bdl_kfac_accumulator *accumulator,
#                                      int64_t *out_num_layers, int32_t *out_approximation);
_declare("bdl_kfac_accumulator_info", bdl_status, [_handle, POINTER(c_int64), POINTER(c_int32)])

# bdl_status bdl_kfac_accumulator_layer(const bdl_kfac_accumulator *accumulator, int64_t index,
#                                       int64_t *out_d_in, int64_t *out_d_out,
#                                       int32_t *out_has_bias, int64_t *out_examples);
_declare("bdl_kfac_accumulator_layer", bdl_status, [_handle, c_int64, POINTER(c_int64), POINTER(c_int64), POINTER(c_int32), POINTER(c_int64)])

# bdl_status bdl_kfac_accumulator_add(bdl_kfac_accumulator *accumulator, int64_t layer,
#                                     const double *a, int64_t n, int64_t positions,
#                                     const double *g, int64_t k);
_declare("bdl_kfac_accumulator_add", bdl_status, [_handle, c_int64, _dptr, c_int64, c_int64, _dptr, c_int64])

# bdl_status bdl_kfac_accumulator_add_f32(bdl_kfac_accumulator *accumulator, int64_t layer,
#                                         const float *a, int64_t n, int64_t positions,
#                                         const float *g, int64_t k);
_declare("bdl_kfac_accumulator_add_f32", bdl_status, [_handle, c_int64, _fptr, c_int64, c_int64, _fptr, c_int64])

# bdl_status bdl_kfac_accumulator_merge(bdl_kfac_accumulator *accumulator,
#                                       const bdl_kfac_accumulator *other);
_declare("bdl_kfac_accumulator_merge", bdl_status, [_handle, _handle])

# bdl_status bdl_kfac_accumulator_save(const bdl_kfac_accumulator *accumulator,
#                                      const char *path);
_declare("bdl_kfac_accumulator_save", bdl_status, [_handle, c_char_p])

# bdl_status bdl_kfac_accumulator_load(const char *path, bdl_kfac_accumulator **out_accumulator);
_declare("bdl_kfac_accumulator_load", bdl_status, [c_char_p, POINTER(_handle)])

# bdl_status bdl_kfac_accumulator_finalize(const bdl_kfac_accumulator *accumulator,
#                                          bdl_curvature **out_curvature);
_declare("bdl_kfac_accumulator_finalize", bdl_status, [_handle, POINTER(_handle)])

# bdl_status bdl_laplace_params_init(bdl_laplace_params *params);
_declare("bdl_laplace_params_init", bdl_status, [POINTER(bdl_laplace_params)])

# bdl_status bdl_laplace_fit(const bdl_model *model, const double *X, int64_t n,
#                            const double *y, const bdl_laplace_params *params,
#                            bdl_pass_progress_fn progress, void *user_data,
#                            bdl_laplace **out_laplace);
_declare(
    "bdl_laplace_fit",
    bdl_status,
    [_handle, _dptr, c_int64, _dptr, POINTER(bdl_laplace_params), BDL_PASS_PROGRESS_FN, c_void_p, POINTER(_handle)],
)

# bdl_status bdl_laplace_from_curvature(const bdl_curvature *curvature, const double *theta,
#                                       int64_t num_parameters, const int64_t *tensor_sizes,
#                                       int64_t n_tensors, double loss, int64_t n_data,
#                                       int64_t n_outputs, const bdl_laplace_params *params,
#                                       bdl_laplace **out_laplace);
_declare(
    "bdl_laplace_from_curvature",
    bdl_status,
    [_handle, _dptr, c_int64, _i64ptr, c_int64, c_double, c_int64, c_int64, POINTER(bdl_laplace_params), POINTER(_handle)],
)

# void bdl_laplace_free(bdl_laplace *laplace);
_declare("bdl_laplace_free", None, [_handle])

# bdl_status bdl_laplace_info(const bdl_laplace *laplace, int32_t *out_structure,
#                             int32_t *out_subset, int32_t *out_likelihood,
#                             int64_t *out_num_parameters, int64_t *out_num_tensors,
#                             int64_t *out_first_parameter);
_declare(
    "bdl_laplace_info",
    bdl_status,
    [_handle, POINTER(c_int32), POINTER(c_int32), POINTER(c_int32), _i64ptr, _i64ptr, _i64ptr],
)

# bdl_status bdl_laplace_set_hyperparameters(bdl_laplace *laplace,
#                                            const double *prior_precision,
#                                            int64_t prior_precision_count,
#                                            const double *prior_mean,
#                                            int64_t prior_mean_count, double sigma_noise,
#                                            double temperature);
_declare("bdl_laplace_set_hyperparameters", bdl_status, [_handle, _dptr, c_int64, _dptr, c_int64, c_double, c_double])

# bdl_status bdl_laplace_hyperparameters(const bdl_laplace *laplace, double *out_prior,
#                                        int64_t prior_capacity, int64_t *out_prior_count,
#                                        double *out_prior_mean, int64_t mean_capacity,
#                                        int64_t *out_mean_count, double *out_sigma_noise,
#                                        double *out_temperature);
_declare("bdl_laplace_hyperparameters", bdl_status,
         [_handle, _dptr, c_int64, _i64ptr, _dptr, c_int64, _i64ptr, _dptr, _dptr])

# bdl_status bdl_laplace_log_marginal_likelihood(const bdl_laplace *laplace,
#                                                const double *prior_precision,
#                                                int64_t prior_precision_count,
#                                                const double *sigma_noise,
#                                                double *out_value);
_declare("bdl_laplace_log_marginal_likelihood", bdl_status, [_handle, _dptr, c_int64, _dptr, _dptr])

# bdl_status bdl_laplace_log_marginal_likelihood_grad(
#     const bdl_laplace *laplace, const double *prior_precision, int64_t prior_precision_count,
#     const double *sigma_noise, double *out_value, double *out_grad_log_prior, int64_t capacity,
#     double *out_grad_log_sigma);
_declare(
    "bdl_laplace_log_marginal_likelihood_grad",
    bdl_status,
    [_handle, _dptr, c_int64, _dptr, _dptr, _dptr, c_int64, _dptr],
)

# bdl_status bdl_laplace_optimize_prior_precision(bdl_laplace *laplace,
#                                                 int32_t prior_structure,
#                                                 int32_t optimize_sigma, double tolerance,
#                                                 int64_t max_iterations,
#                                                 bdl_evidence_optimum *out);
_declare(
    "bdl_laplace_optimize_prior_precision",
    bdl_status,
    [_handle, c_int32, c_int32, c_double, c_int64, POINTER(bdl_evidence_optimum)],
)

# bdl_status bdl_laplace_functional_variance(const bdl_laplace *laplace,
#                                            const bdl_model *model, const double *X,
#                                            int64_t n, double *out_mean,
#                                            int64_t mean_capacity, double *out_variance,
#                                            int64_t variance_capacity);
_declare(
    "bdl_laplace_functional_variance",
    bdl_status,
    [_handle, _handle, _dptr, c_int64, _dptr, c_int64, _dptr, c_int64],
)

# bdl_status bdl_laplace_predict(const bdl_laplace *laplace, const bdl_model *model,
#                                const double *X, int64_t n, int32_t link,
#                                int64_t n_samples, uint64_t seed, double *out_probs,
#                                int64_t capacity);
_declare(
    "bdl_laplace_predict",
    bdl_status,
    [_handle, _handle, _dptr, c_int64, c_int32, c_int64, c_uint64, _dptr, c_int64],
)

# bdl_status bdl_laplace_predict_regression(const bdl_laplace *laplace,
#                                           const bdl_model *model, const double *X,
#                                           int64_t n, int32_t include_noise,
#                                           double *out_mean, int64_t mean_capacity,
#                                           double *out_variance, int64_t variance_capacity);
_declare(
    "bdl_laplace_predict_regression",
    bdl_status,
    [_handle, _handle, _dptr, c_int64, c_int32, _dptr, c_int64, _dptr, c_int64],
)

# bdl_status bdl_laplace_predict_sampling(const bdl_laplace *laplace, const bdl_model *model,
#                                         const double *X, int64_t n, int64_t n_samples,
#                                         uint64_t seed, int32_t include_noise,
#                                         double *out_mean, int64_t mean_capacity,
#                                         double *out_variance, int64_t variance_capacity);
_declare(
    "bdl_laplace_predict_sampling",
    bdl_status,
    [_handle, _handle, _dptr, c_int64, c_int64, c_uint64, c_int32, _dptr, c_int64, _dptr, c_int64],
)

# bdl_status bdl_laplace_sample(const bdl_laplace *laplace, int64_t n_samples, uint64_t seed,
#                               double *out_samples, int64_t capacity);
_declare("bdl_laplace_sample", bdl_status, [_handle, c_int64, c_uint64, _dptr, c_int64])

# bdl_status bdl_laplace_log_prob(const bdl_laplace *laplace, const double *theta,
#                                 int64_t num_parameters, double *out_value);
_declare("bdl_laplace_log_prob", bdl_status, [_handle, _dptr, c_int64, _dptr])

# bdl_status bdl_laplace_save(const bdl_laplace *laplace, const char *path);
_declare("bdl_laplace_save", bdl_status, [_handle, c_char_p])

# bdl_status bdl_laplace_load(const char *path, const bdl_model *model,
#                             bdl_laplace **out_laplace);
_declare("bdl_laplace_load", bdl_status, [c_char_p, _handle, POINTER(_handle)])

# bdl_status bdl_marglik_params_init(bdl_marglik_params *params);
_declare("bdl_marglik_params_init", bdl_status, [POINTER(bdl_marglik_params)])

# bdl_status bdl_train_marglik(bdl_model *model, const double *X, int64_t n, const double *y,
#                              const bdl_marglik_params *params,
#                              bdl_marglik_progress_fn progress, void *user_data,
#                              bdl_laplace **out_laplace, bdl_marglik_progress *out_history,
#                              int64_t history_capacity, int64_t *out_best_epoch);
_declare(
    "bdl_train_marglik",
    bdl_status,
    [
        _handle, _dptr, c_int64, _dptr, POINTER(bdl_marglik_params), BDL_MARGLIK_PROGRESS_FN, c_void_p,
        POINTER(c_void_p), POINTER(bdl_marglik_progress), c_int64, _i64ptr,
    ],
)

# bdl_status bdl_metrics_accuracy(const double *probs, int64_t n, int64_t n_classes,
#                                 const int64_t *labels, double *out_value);
_declare("bdl_metrics_accuracy", bdl_status, [_dptr, c_int64, c_int64, _i64ptr, _dptr])

# bdl_status bdl_metrics_nll(const double *probs, int64_t n, int64_t n_classes,
#                            const int64_t *labels, double *out_value);
_declare("bdl_metrics_nll", bdl_status, [_dptr, c_int64, c_int64, _i64ptr, _dptr])

# bdl_status bdl_metrics_brier(const double *probs, int64_t n, int64_t n_classes,
#                              const int64_t *labels, double *out_value);
_declare("bdl_metrics_brier", bdl_status, [_dptr, c_int64, c_int64, _i64ptr, _dptr])

# bdl_status bdl_metrics_ece(const double *probs, int64_t n, int64_t n_classes,
#                            const int64_t *labels, int64_t bins, double *out_value);
_declare("bdl_metrics_ece", bdl_status, [_dptr, c_int64, c_int64, _i64ptr, c_int64, _dptr])

# bdl_status bdl_metrics_reliability(const double *probs, int64_t n, int64_t n_classes,
#                                    const int64_t *labels, int64_t bins,
#                                    int64_t *out_counts, double *out_confidence,
#                                    double *out_accuracy);
_declare("bdl_metrics_reliability", bdl_status, [_dptr, c_int64, c_int64, _i64ptr, c_int64, _i64ptr, _dptr, _dptr])

# bdl_status bdl_influence_params_init(bdl_influence_params *params);
_declare("bdl_influence_params_init", bdl_status, [POINTER(bdl_influence_params)])

# bdl_status bdl_influence_fit(const bdl_model *model, const double *X, int64_t n,
#                              const double *y, const bdl_influence_params *params,
#                              bdl_pass_progress_fn progress, void *user_data,
#                              bdl_influence **out_influence);
_declare(
    "bdl_influence_fit",
    bdl_status,
    [_handle, _dptr, c_int64, _dptr, POINTER(bdl_influence_params), BDL_PASS_PROGRESS_FN, c_void_p, POINTER(_handle)],
)

# void bdl_influence_free(bdl_influence *influence);
_declare("bdl_influence_free", None, [_handle])

# bdl_status bdl_influence_info(const bdl_influence *influence, int32_t *out_curvature,
#                               int64_t *out_n_train, int64_t *out_num_parameters);
_declare("bdl_influence_info", bdl_status, [_handle, POINTER(c_int32), _i64ptr, _i64ptr])

# bdl_status bdl_influence_scores(const bdl_influence *influence, const bdl_model *model,
#                                 const double *X_query, int64_t n_queries,
#                                 const double *y_query, int32_t measurement,
#                                 const double *cotangents, bdl_pass_progress_fn progress,
#                                 void *user_data, double *out_scores, int64_t capacity);
_declare(
    "bdl_influence_scores",
    bdl_status,
    [_handle, _handle, _dptr, c_int64, _dptr, c_int32, _dptr, BDL_PASS_PROGRESS_FN, c_void_p, _dptr, c_int64],
)

# bdl_status bdl_influence_damping(const bdl_influence *influence, double *out_damping,
#                                  int64_t capacity);
_declare("bdl_influence_damping", bdl_status, [_handle, _dptr, c_int64])

# bdl_status bdl_influence_self(const bdl_influence *influence, const bdl_model *model,
#                               bdl_pass_progress_fn progress, void *user_data,
#                               double *out_scores, int64_t capacity);
_declare("bdl_influence_self", bdl_status, [_handle, _handle, BDL_PASS_PROGRESS_FN, c_void_p, _dptr, c_int64])

# bdl_status bdl_influence_scores_from_statistics(
#     const bdl_curvature *curvature, double damping, int32_t relative_damping, int64_t n_layers,
#     const bdl_layer_data *queries, int64_t n_queries, const bdl_layer_data *train, int64_t n_train,
#     double *out_scores, int64_t capacity);
_declare(
    "bdl_influence_scores_from_statistics",
    bdl_status,
    [_handle, c_double, c_int32, c_int64, POINTER(bdl_layer_data), c_int64, POINTER(bdl_layer_data), c_int64, _dptr, c_int64],
)

# bdl_status bdl_influence_top_k(const double *scores, int64_t n_rows, int64_t n_cols,
#                                int64_t k, int64_t *out_helpful, int64_t *out_harmful);
_declare("bdl_influence_top_k", bdl_status, [_dptr, c_int64, c_int64, c_int64, _i64ptr, _i64ptr])

# bdl_status bdl_evaluation_lds(const bdl_model *model, const double *X, int64_t n,
#                               const double *y, const double *X_query,
#                               int64_t n_queries, const double *y_query,
#                               int32_t measurement, const double *cotangents,
#                               const double *scores, int64_t subsets, double fraction,
#                               const bdl_train_params *train, uint64_t seed,
#                               bdl_pass_progress_fn progress, void *user_data,
#                               double *out_per_query, double *out_mean,
#                               uint64_t *out_subset_seeds);
_declare(
    "bdl_evaluation_lds",
    bdl_status,
    [
        _handle, _dptr, c_int64, _dptr, _dptr, c_int64, _dptr, c_int32, _dptr, _dptr, c_int64, c_double,
        POINTER(bdl_train_params), c_uint64, BDL_PASS_PROGRESS_FN, c_void_p, _dptr, _dptr, POINTER(c_uint64),
    ],
)

# bdl_status bdl_evaluation_retrain_without_top_k(
#     const bdl_model *model, const double *X, int64_t n, const double *y, const double *X_query,
#     int64_t n_queries, const double *y_query, int32_t measurement,
#     const double *cotangents, const double *scores, int64_t k, const bdl_train_params *train,
#     uint64_t seed, bdl_pass_progress_fn progress, void *user_data, double *out_without_top_k,
#     double *out_without_random);
_declare(
    "bdl_evaluation_retrain_without_top_k",
    bdl_status,
    [
        _handle, _dptr, c_int64, _dptr, _dptr, c_int64, _dptr, c_int32, _dptr, _dptr, c_int64,
        POINTER(bdl_train_params), c_uint64, BDL_PASS_PROGRESS_FN, c_void_p, _dptr, _dptr,
    ],
)

# bdl_status bdl_pruning_scores(const bdl_laplace *laplace, const bdl_model *model,
#                               int32_t criterion, int32_t structured, uint64_t seed,
#                               double *out_scores, int64_t capacity, int64_t *out_count);
_declare("bdl_pruning_scores", bdl_status, [_handle, _handle, c_int32, c_int32, c_uint64, _dptr, c_int64, _i64ptr])

# bdl_status bdl_pruning_mask(const bdl_model *model, const double *scores, int64_t n_scores,
#                             double sparsity, int32_t structured, const double *per_layer,
#                             int64_t n_per_layer, int32_t include_biases,
#                             double *out_mask, int64_t capacity);
_declare(
    "bdl_pruning_mask",
    bdl_status,
    [_handle, _dptr, c_int64, c_double, c_int32, _dptr, c_int64, c_int32, _dptr, c_int64],
)

# bdl_status bdl_model_apply_mask(bdl_model *model, const double *mask, int64_t count);
_declare("bdl_model_apply_mask", bdl_status, [_handle, _dptr, c_int64])

# bdl_status bdl_pruning_sparsity_curve(const bdl_model *model, const double *scores,
#                                       int64_t n_scores, const double *sparsities,
#                                       int64_t n_sparsities, const double *X_test,
#                                       int64_t n_test, const double *y_test,
#                                       const bdl_train_params *fine_tune,
#                                       const double *X_train, int64_t n_train,
#                                       const double *y_train, double *out_accuracy,
#                                       double *out_nll, double *out_ece);
_declare(
    "bdl_pruning_sparsity_curve",
    bdl_status,
    [
        _handle, _dptr, c_int64, _dptr, c_int64, _dptr, c_int64, _dptr, POINTER(bdl_train_params), _dptr, c_int64,
        _dptr, _dptr, _dptr, _dptr,
    ],
)

# bdl_status bdl_model_sparsity(const bdl_model *model, const double *mask, int64_t count,
#                               bdl_layer_sparsity *out_layers, int64_t capacity,
#                               int64_t *out_count);
_declare("bdl_model_sparsity", bdl_status, [_handle, _dptr, c_int64, POINTER(bdl_layer_sparsity), c_int64, _i64ptr])

# bdl_status bdl_model_layers(const bdl_model *model, bdl_layer_spec *out_layers,
#                             int64_t capacity, int64_t *out_count,
#                             int64_t *out_input_shape, int64_t shape_capacity,
#                             int64_t *out_input_rank);
_declare("bdl_model_layers", bdl_status, [_handle, POINTER(bdl_layer_spec), c_int64, _i64ptr, _i64ptr, c_int64, _i64ptr])

# bdl_status bdl_model_save(const bdl_model *model, const double *mask, int64_t mask_count,
#                           const char *path);
_declare("bdl_model_save", bdl_status, [_handle, _dptr, c_int64, c_char_p])

# bdl_status bdl_model_file_info(const char *path, int64_t *out_num_parameters,
#                                int32_t *out_has_mask);
_declare("bdl_model_file_info", bdl_status, [c_char_p, _i64ptr, POINTER(c_int32)])

# bdl_status bdl_model_load(const char *path, bdl_model **out_model, double *out_mask,
#                           int64_t mask_capacity, int32_t *out_has_mask);
_declare("bdl_model_load", bdl_status, [c_char_p, POINTER(c_void_p), _dptr, c_int64, POINTER(c_int32)])

# bdl_status bdl_ntk_bound_params_init(bdl_ntk_bound_params *params);
_declare("bdl_ntk_bound_params_init", bdl_status, [POINTER(bdl_ntk_bound_params)])

# bdl_status bdl_ntk_evidence_bound(const bdl_model *model, const double *X, int64_t n,
#                                   const double *y, const bdl_ntk_bound_params *params,
#                                   double *out_value, double *out_grad_log_prior,
#                                   double *out_grad_log_sigma, int64_t *out_num_batches);
_declare(
    "bdl_ntk_evidence_bound",
    bdl_status,
    [_handle, _dptr, c_int64, _dptr, POINTER(bdl_ntk_bound_params), _dptr, _dptr, _dptr, _i64ptr],
)

#: The C functions declared above, in header order (compared with the header by the tests).
DECLARED_FUNCTIONS: Tuple[str, ...] = tuple(_declared)

if _missing:
    raise LibraryNotFoundError(
        f"{library_path} is not a compatible bdlcore library: it lacks "
        + ", ".join(_missing)
        + " (rebuild it from the same source tree as this package)"
    )


def as_pointer(array) -> "ctypes._Pointer":
    """``double*`` to the data of a C-contiguous float64 numpy array."""
    return array.ctypes.data_as(_dptr)
