"""Every failure path of the C API, called through the raw ctypes declarations and through the wrapper.

For each failing raw call the test checks the status, that the last error message names the
argument at fault, that every output buffer is byte-for-byte unchanged (they are filled with a
sentinel pattern first) and that no input buffer was modified.
"""

import ctypes
import re

import numpy as np
import pytest

import bdlcore
from bdlcore import _errors, _lib

from _support import rng, spd

lib = _lib.lib
OK = _lib.BDL_OK
INVALID = _lib.BDL_INVALID_ARGUMENT
SHAPE = _lib.BDL_SHAPE_MISMATCH
NONFINITE = _lib.BDL_NON_FINITE_INPUT
NPD = _lib.BDL_NOT_POSITIVE_DEFINITE

NB, NA, K = 3, 2, 2
HUGE = 2**62  # nb² or k·nb·na overflows int64: must be rejected before any read of the tiny buffer
GARBAGE_HANDLE = 12345678  # an address no handle ever had

# Output names per C function: these buffers must be untouched on failure.
OUTPUTS = {"out_logdet", "out_Y", "out_diag", "out_factor", "out_nb", "out_na", "out_beta", "out_alpha"}


def sentinel(count, dtype=np.float64):
    """A buffer of `count` elements filled with the byte pattern 0xAB."""
    itemsize = np.dtype(dtype).itemsize
    return np.full(count * itemsize, 0xAB, dtype=np.uint8).view(dtype)


def to_c(value):
    """numpy arrays become typed pointers (double*, int64_t*, or void** for out_factor); None is NULL."""
    if isinstance(value, np.ndarray):
        if value.dtype == np.float64:
            return value.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        if value.dtype == np.int64:
            return value.ctypes.data_as(ctypes.POINTER(ctypes.c_int64))
        if value.dtype == np.uint64:
            return value.ctypes.data_as(ctypes.POINTER(ctypes.c_void_p))
        raise AssertionError(value.dtype)
    return value


def nonsymmetric(n):
    M = spd(rng(31), n)
    M[0, n - 1] += 0.5
    return M


def indefinite(n):
    M = spd(rng(32), n)
    w, Q = np.linalg.eigh(M)
    w[0] = -1.0
    return (Q * w) @ Q.T


def with_value(M, index, value):
    M = M.copy()
    M[index] = value
    return M


def good_B():
    return spd(rng(1), NB)


def good_A():
    return spd(rng(2), NA)


def good_X():
    return rng(3).standard_normal((K, NB, NA))


class Result:
    """What a raw call did: status, last error message, and which buffers it modified."""

    def __init__(self, status, message, arrays, before):
        self.status = status
        self.message = message
        changed = sorted(name for name, a in arrays.items() if a.tobytes() != before[name])
        self.changed_outputs = [n for n in changed if n in OUTPUTS]
        self.changed_inputs = [n for n in changed if n not in OUTPUTS]
        self.written = {n: arrays[n].ravel()[:6].tolist() for n in self.changed_outputs}

    def __iter__(self):  # status, message, changed outputs, changed inputs
        return iter((self.status, self.message, self.changed_outputs, self.changed_inputs))


def call(function, order, args):
    """Calls `function` with args[name] for name in order and returns its Result."""
    arrays = {name: value for name, value in args.items() if isinstance(value, np.ndarray)}
    before = {name: a.tobytes() for name, a in arrays.items()}
    status = getattr(lib, function)(*[to_c(args[name]) for name in order])
    message = lib.bdl_last_error_message().decode() if status != OK else ""
    return Result(status, message, arrays, before)


def cases(rows):
    """pytest params (overrides, status, pattern) with the row's label as id."""
    return [pytest.param(overrides, status, pattern, id=label) for label, overrides, status, pattern in rows]


def assert_fails(result, status, name_pattern):
    got, message, changed_outputs, changed_inputs = result
    if got == OK:
        pytest.fail(
            f"call returned BDL_OK, expected {status} ({bdlcore.status_string(status)}); "
            f"it wrote {result.written or 'nothing'}"
        )
    assert got == status, f"status {got} ({bdlcore.status_string(got)}), expected {status} ({bdlcore.status_string(status)}); message: {message!r}"
    assert re.search(name_pattern, message), f"message {message!r} does not name {name_pattern!r}"
    assert not changed_outputs, f"failed call modified output buffer(s) {changed_outputs}"
    assert not changed_inputs, f"call modified const input buffer(s) {changed_inputs}"


# ---------------------------------------------------------------------------------------------
# Failures shared by every function that takes (B, nb, A, na): logdet, solve, diagonal, create
# ---------------------------------------------------------------------------------------------

# (label, overrides, expected status, pattern the message must contain)
FACTOR_FAILURES = [
    ("B NULL", dict(B=None), INVALID, r"\bB\b"),
    ("A NULL", dict(A=None), INVALID, r"\bA\b"),
    ("nb = 0", dict(nb=0), INVALID, r"\bnb\b"),
    ("nb < 0", dict(nb=-1), INVALID, r"\bnb\b"),
    ("na < 0", dict(na=-3), INVALID, r"\bna\b"),
    # "nb²" in the message: no trailing \b, since Python counts "²" as a word character.
    ("nb overflows", dict(nb=HUGE, B=np.ones(1)), INVALID, r"\bnb.*overflows"),
    ("na overflows", dict(na=HUGE, A=np.ones(1)), INVALID, r"\bna.*overflows"),
    ("nb = INT64_MAX", dict(nb=2**63 - 1, B=np.ones(1)), INVALID, r"\bnb.*overflows"),
    ("NaN in B", dict(B=with_value(good_B(), (1, 2), np.nan)), NONFINITE, r"\bB\b"),
    ("Inf in A", dict(A=with_value(good_A(), (0, 0), np.inf)), NONFINITE, r"\bA\b"),
    ("-Inf in B", dict(B=with_value(good_B(), (2, 2), -np.inf)), NONFINITE, r"\bB\b"),
    ("B not symmetric", dict(B=nonsymmetric(NB)), NPD, r"\bB\b"),
    ("A not symmetric", dict(A=nonsymmetric(NA)), NPD, r"\bA\b"),
    ("B indefinite", dict(B=indefinite(NB)), NPD, r"\bB\b"),
    ("A indefinite", dict(A=indefinite(NA)), NPD, r"\bA\b"),
]

# Failures of the scalar arguments (not for create, which has none).
SCALAR_FAILURES = [
    ("scale < 0", dict(scale=-1.0), INVALID, r"\bscale\b"),
    ("scale NaN", dict(scale=np.nan), INVALID, r"\bscale\b"),
    ("scale Inf", dict(scale=np.inf), INVALID, r"\bscale\b"),
    ("delta NaN", dict(delta=np.nan), INVALID, r"\bdelta\b"),
    ("delta -Inf", dict(delta=-np.inf), INVALID, r"\bdelta\b"),
]


def singular_factor_exact():
    """diag(2, 1, 0): a zero eigenvalue that is exactly 0."""
    return np.diag([2.0, 1.0, 0.0])


def singular_factor_random(seed, n=NB, rank=NB - 1):
    """G Gᵀ with G n × rank: what a K-FAC factor is with fewer samples than dimensions."""
    G = rng(seed).standard_normal((n, rank))
    B = G @ G.T
    return (B + B.T) / 2


# A rank-deficient factor makes some d_ij = delta; with delta ≤ 0 every e ≤ 0 operation must fail.
SINGULAR_FAILURES = [
    ("rank-deficient (exact zero), delta = 0", dict(B=singular_factor_exact(), delta=0.0), NPD, r"delta"),
    ("rank-deficient (exact zero), delta < 0", dict(B=singular_factor_exact(), delta=-0.1), NPD, r"delta"),
    ("rank-deficient (G G^T, seed 0), delta = 0", dict(B=singular_factor_random(0), delta=0.0), NPD, r"delta"),
    ("rank-deficient (G G^T, seed 0), delta < 0", dict(B=singular_factor_random(0), delta=-0.1), NPD, r"delta"),
    ("rank-deficient (G G^T, seed 5), delta = 0", dict(B=singular_factor_random(5), delta=0.0), NPD, r"delta"),
    ("rank-deficient A (G G^T 2x1), delta = 0", dict(A=singular_factor_random(6, NA, 1), delta=0.0), NPD, r"delta"),
    ("scale = 0, delta = 0", dict(scale=0.0, delta=0.0), NPD, r"delta"),
]


def logdet_args(**overrides):
    args = dict(B=good_B(), nb=NB, A=good_A(), na=NA, scale=1.0, delta=0.5, out_logdet=sentinel(1))
    args.update(overrides)
    return args


LOGDET_ORDER = ["B", "nb", "A", "na", "scale", "delta", "out_logdet"]


@pytest.mark.parametrize(
    "overrides,status,pattern",
    cases(FACTOR_FAILURES + SCALAR_FAILURES + SINGULAR_FAILURES + [("out NULL", dict(out_logdet=None), INVALID, r"out_logdet")]),
)
def test_kron_logdet_failures(overrides, status, pattern):
    assert_fails(call("bdl_kron_logdet", LOGDET_ORDER, logdet_args(**overrides)), status, pattern)


def test_kron_logdet_raw_success_writes_output():
    args = logdet_args()
    status, message, changed, changed_inputs = call("bdl_kron_logdet", LOGDET_ORDER, args)
    assert status == OK, message
    assert changed == ["out_logdet"] and not changed_inputs
    assert args["out_logdet"][0] == bdlcore.kron_logdet(args["B"], args["A"], 1.0, 0.5)


SOLVE_ORDER = ["B", "nb", "A", "na", "scale", "delta", "X", "k", "out_Y"]


def solve_args(**overrides):
    args = dict(B=good_B(), nb=NB, A=good_A(), na=NA, scale=1.0, delta=0.5, X=good_X(), k=K, out_Y=sentinel(K * NB * NA))
    args.update(overrides)
    return args


RHS_FAILURES = [
    ("X NULL", dict(X=None), INVALID, r"\bX\b"),
    ("k = 0", dict(k=0), INVALID, r"\bk\b"),
    ("k < 0", dict(k=-2), INVALID, r"\bk\b"),
    ("k*nb*na overflows", dict(k=HUGE, X=np.ones(1)), INVALID, r"\bk\b"),
    ("NaN in X", dict(X=with_value(good_X(), (1, 2, 0), np.nan)), NONFINITE, r"\bX\b"),
    ("Inf in X", dict(X=with_value(good_X(), (0, 0, 1), -np.inf)), NONFINITE, r"\bX\b"),
]


@pytest.mark.parametrize(
    "overrides,status,pattern",
    cases(FACTOR_FAILURES + SCALAR_FAILURES + SINGULAR_FAILURES + RHS_FAILURES + [("out NULL", dict(out_Y=None), INVALID, r"out_Y")]),
)
def test_kron_solve_failures(overrides, status, pattern):
    assert_fails(call("bdl_kron_solve", SOLVE_ORDER, solve_args(**overrides)), status, pattern)


DIAGONAL_ORDER = ["B", "nb", "A", "na", "scale", "delta", "exponent", "out_diag"]


def diagonal_args(**overrides):
    args = dict(B=good_B(), nb=NB, A=good_A(), na=NA, scale=1.0, delta=0.5, exponent=-1.0, out_diag=sentinel(NB * NA))
    args.update(overrides)
    return args


EXPONENT_FAILURES = [
    ("exponent NaN", dict(exponent=np.nan), INVALID, r"\bexponent\b"),
    ("exponent Inf", dict(exponent=np.inf), INVALID, r"\bexponent\b"),
    # e > 0 needs every d_ij ≥ 0: delta < 0 on a singular factor makes some d_ij = delta < 0.
    ("exponent 0.5, singular, delta < 0", dict(exponent=0.5, B=singular_factor_exact(), delta=-0.1), NPD, r"delta"),
    ("exponent 0 needs d > 0", dict(exponent=0.0, B=singular_factor_exact(), delta=0.0), NPD, r"delta"),
]


@pytest.mark.parametrize(
    "overrides,status,pattern",
    cases(FACTOR_FAILURES + SCALAR_FAILURES + SINGULAR_FAILURES + EXPONENT_FAILURES + [("out NULL", dict(out_diag=None), INVALID, r"out_diag")]),
)
def test_kron_diagonal_failures(overrides, status, pattern):
    assert_fails(call("bdl_kron_diagonal", DIAGONAL_ORDER, diagonal_args(**overrides)), status, pattern)


def test_kron_diagonal_positive_exponent_allows_singular_factor():
    """e > 0 needs d_ij ≥ 0 only: a singular factor with delta = 0 is fine for exponent 0.5."""
    B, A = singular_factor_exact(), good_A()
    got = bdlcore.kron_diagonal(B, A, delta=0.0, exponent=0.5)
    want = np.sqrt(np.diag([2.0, 1.0, 0.0]))  # diag(B)^(1/2) ⊗ A^(1/2): compare via the dense power
    w, Q = np.linalg.eigh(np.kron(want**2, A))
    dense_half = (Q * np.sqrt(np.clip(w, 0, None))) @ Q.T
    np.testing.assert_allclose(got.ravel(), np.diag(dense_half), rtol=1e-13, atol=1e-14)
    assert np.all(got[2] == 0.0)


CREATE_ORDER = ["B", "nb", "A", "na", "out_factor"]


def create_args(**overrides):
    args = dict(B=good_B(), nb=NB, A=good_A(), na=NA, out_factor=sentinel(1, np.uint64))
    args.update(overrides)
    return args


@pytest.mark.parametrize(
    "overrides,status,pattern",
    cases(FACTOR_FAILURES + [("out NULL", dict(out_factor=None), INVALID, r"out_factor")]),
)
def test_kron_factor_create_failures(overrides, status, pattern):
    before = bdlcore.debug_live_handles()
    assert_fails(call("bdl_kron_factor_create", CREATE_ORDER, create_args(**overrides)), status, pattern)
    assert bdlcore.debug_live_handles() == before


def test_kron_factor_create_accepts_singular_factor():
    """A PSD factor with a zero eigenvalue is a valid factor; only e ≤ 0 uses with delta ≤ 0 fail."""
    with bdlcore.KronFactor(singular_factor_exact(), good_A()) as F:
        beta, _ = F.eigenvalues
        np.testing.assert_allclose(beta, [0.0, 1.0, 2.0], atol=1e-15)
        with pytest.raises(bdlcore.NotPositiveDefiniteError):
            F.logdet(delta=0.0)
        assert np.isfinite(F.logdet(delta=1e-3))


# ---------------------------------------------------------------------------------------------
# Functions on a handle
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def factor():
    """A live raw handle of B (NB × NB) and A (NA × NA); freed after the test."""
    out = ctypes.c_void_p()
    B, A = good_B(), good_A()
    status = lib.bdl_kron_factor_create(to_c(B), NB, to_c(A), NA, ctypes.byref(out))
    assert status == OK, bdlcore.last_error_message()
    yield out.value
    lib.bdl_kron_factor_free(out.value)


@pytest.fixture
def singular_factor():
    out = ctypes.c_void_p()
    status = lib.bdl_kron_factor_create(to_c(singular_factor_random(0)), NB, to_c(good_A()), NA, ctypes.byref(out))
    assert status == OK, bdlcore.last_error_message()
    yield out.value
    lib.bdl_kron_factor_free(out.value)


@pytest.fixture
def freed_handle():
    out = ctypes.c_void_p()
    assert lib.bdl_kron_factor_create(to_c(good_B()), NB, to_c(good_A()), NA, ctypes.byref(out)) == OK
    lib.bdl_kron_factor_free(out.value)
    return out.value


BAD_HANDLES = ["NULL", "garbage", "freed"]


def bad_handle(kind, freed_handle):
    return {"NULL": None, "garbage": GARBAGE_HANDLE, "freed": freed_handle}[kind]


HANDLE_FUNCTIONS = {
    "bdl_kron_factor_shape": (
        ["factor", "out_nb", "out_na"],
        lambda: dict(out_nb=sentinel(1, np.int64), out_na=sentinel(1, np.int64)),
    ),
    "bdl_kron_factor_eigenvalues": (
        ["factor", "out_beta", "beta_capacity", "out_alpha", "alpha_capacity"],
        lambda: dict(out_beta=sentinel(NB), beta_capacity=NB, out_alpha=sentinel(NA), alpha_capacity=NA),
    ),
    "bdl_kron_factor_logdet": (
        ["factor", "scale", "delta", "out_logdet"],
        lambda: dict(scale=1.0, delta=0.5, out_logdet=sentinel(1)),
    ),
    "bdl_kron_factor_apply_power": (
        ["factor", "scale", "delta", "exponent", "X", "k", "out_Y", "out_capacity"],
        lambda: dict(scale=1.0, delta=0.5, exponent=-1.0, X=good_X(), k=K, out_Y=sentinel(K * NB * NA), out_capacity=K * NB * NA),
    ),
    "bdl_kron_factor_diagonal": (
        ["factor", "scale", "delta", "exponent", "out_diag", "out_capacity"],
        lambda: dict(scale=1.0, delta=0.5, exponent=-1.0, out_diag=sentinel(NB * NA), out_capacity=NB * NA),
    ),
}


def handle_call(function, handle, **overrides):
    order, defaults = HANDLE_FUNCTIONS[function]
    args = dict(factor=handle, **defaults())
    args.update(overrides)
    return call(function, order, args)


@pytest.mark.parametrize("function", sorted(HANDLE_FUNCTIONS))
def test_handle_functions_succeed_on_live_handle(function, factor):
    status, message, changed, changed_inputs = handle_call(function, factor)
    assert status == OK, message
    order, defaults = HANDLE_FUNCTIONS[function]
    assert changed == sorted(name for name in defaults() if name in OUTPUTS)
    assert not changed_inputs


@pytest.mark.parametrize("kind", BAD_HANDLES)
@pytest.mark.parametrize("function", sorted(HANDLE_FUNCTIONS))
def test_handle_functions_reject_bad_handles(function, kind, freed_handle):
    before = bdlcore.debug_live_handles()
    assert_fails(handle_call(function, bad_handle(kind, freed_handle)), INVALID, r"\bfactor\b")
    assert bdlcore.debug_live_handles() == before


@pytest.mark.parametrize(
    "overrides,pattern",
    [(dict(out_nb=None), "out_nb"), (dict(out_na=None), "out_na")],
    ids=["out_nb NULL", "out_na NULL"],
)
def test_factor_shape_failures(factor, overrides, pattern):
    assert_fails(handle_call("bdl_kron_factor_shape", factor, **overrides), INVALID, pattern)


@pytest.mark.parametrize(
    "overrides,status,pattern",
    cases(
        [
            ("out_beta NULL", dict(out_beta=None), INVALID, "out_beta"),
            ("out_alpha NULL", dict(out_alpha=None), INVALID, "out_alpha"),
            ("beta_capacity < nb", dict(beta_capacity=NB - 1), SHAPE, "out_beta"),
            ("alpha_capacity < na", dict(alpha_capacity=NA - 1), SHAPE, "out_alpha"),
            ("beta_capacity = 0", dict(beta_capacity=0), SHAPE, "out_beta"),
        ]
    ),
)
def test_factor_eigenvalues_failures(factor, overrides, status, pattern):
    assert_fails(handle_call("bdl_kron_factor_eigenvalues", factor, **overrides), status, pattern)


def test_factor_eigenvalues_negative_capacity(factor):
    """A negative capacity is both "a negative size" (invalid argument, header conventions) and
    "smaller than nb" (shape mismatch, the function's own doc); either status, nothing written."""
    status, message, changed, _ = handle_call("bdl_kron_factor_eigenvalues", factor, beta_capacity=-1)
    assert status in (INVALID, SHAPE) and "out_beta" in message and not changed
    status, message, changed, _ = handle_call("bdl_kron_factor_eigenvalues", factor, alpha_capacity=-5)
    assert status in (INVALID, SHAPE) and "out_alpha" in message and not changed


def test_factor_eigenvalues_larger_capacity_writes_only_nb(factor):
    out_beta, out_alpha = sentinel(NB + 2), sentinel(NA + 1)
    status, message, _, _ = handle_call(
        "bdl_kron_factor_eigenvalues", factor, out_beta=out_beta, beta_capacity=NB + 2, out_alpha=out_alpha, alpha_capacity=NA + 1
    )
    assert status == OK, message
    assert out_beta[NB:].tobytes() == sentinel(2).tobytes()
    assert out_alpha[NA:].tobytes() == sentinel(1).tobytes()
    np.testing.assert_allclose(out_beta[:NB], np.linalg.eigvalsh(good_B()), rtol=1e-13)


SCALAR_HANDLE_FAILURES = cases(SCALAR_FAILURES)


@pytest.mark.parametrize(
    "overrides,status,pattern",
    SCALAR_HANDLE_FAILURES + cases([("out NULL", dict(out_logdet=None), INVALID, "out_logdet")]),
)
def test_factor_logdet_failures(factor, overrides, status, pattern):
    assert_fails(handle_call("bdl_kron_factor_logdet", factor, **overrides), status, pattern)


@pytest.mark.parametrize("delta", [0.0, -0.1])
def test_factor_logdet_singular(singular_factor, delta):
    assert_fails(handle_call("bdl_kron_factor_logdet", singular_factor, delta=delta), NPD, "delta")


@pytest.mark.parametrize(
    "overrides,status,pattern",
    SCALAR_HANDLE_FAILURES
    + cases(
        RHS_FAILURES
        + [
            ("exponent NaN", dict(exponent=np.nan), INVALID, r"\bexponent\b"),
            ("exponent -Inf", dict(exponent=-np.inf), INVALID, r"\bexponent\b"),
            ("out NULL", dict(out_Y=None), INVALID, r"out_Y"),
            ("out_capacity < k*nb*na", dict(out_capacity=K * NB * NA - 1), SHAPE, r"out_Y"),
            ("out_capacity = 0", dict(out_capacity=0), SHAPE, r"out_Y"),
        ]
    ),
)
def test_factor_apply_power_failures(factor, overrides, status, pattern):
    assert_fails(handle_call("bdl_kron_factor_apply_power", factor, **overrides), status, pattern)


@pytest.mark.parametrize(
    "overrides",
    [dict(exponent=-1.0, delta=0.0), dict(exponent=-0.5, delta=0.0), dict(exponent=-1.0, delta=-0.1), dict(exponent=0.5, delta=-0.1)],
    ids=lambda o: f"exponent={o['exponent']},delta={o['delta']}",
)
def test_factor_apply_power_singular(singular_factor, overrides):
    assert_fails(handle_call("bdl_kron_factor_apply_power", singular_factor, **overrides), NPD, "delta")


@pytest.mark.parametrize(
    "overrides,status,pattern",
    SCALAR_HANDLE_FAILURES
    + cases(
        [
            ("exponent NaN", dict(exponent=np.nan), INVALID, r"\bexponent\b"),
            ("out NULL", dict(out_diag=None), INVALID, r"out_diag"),
            ("out_capacity < nb*na", dict(out_capacity=NB * NA - 1), SHAPE, r"out_diag"),
        ]
    ),
)
def test_factor_diagonal_failures(factor, overrides, status, pattern):
    assert_fails(handle_call("bdl_kron_factor_diagonal", factor, **overrides), status, pattern)


@pytest.mark.parametrize(
    "overrides",
    [dict(exponent=-1.0, delta=0.0), dict(exponent=2.0, delta=-0.1)],
    ids=lambda o: f"exponent={o['exponent']},delta={o['delta']}",
)
def test_factor_diagonal_singular(singular_factor, overrides):
    assert_fails(handle_call("bdl_kron_factor_diagonal", singular_factor, **overrides), NPD, "delta")


def test_factor_free_null_garbage_and_double_free():
    before = bdlcore.debug_live_handles()
    lib.bdl_kron_factor_free(None)
    lib.bdl_kron_factor_free(GARBAGE_HANDLE)
    out = ctypes.c_void_p()
    assert lib.bdl_kron_factor_create(to_c(good_B()), NB, to_c(good_A()), NA, ctypes.byref(out)) == OK
    assert bdlcore.debug_live_handles() == before + 1
    lib.bdl_kron_factor_free(out.value)
    assert bdlcore.debug_live_handles() == before
    lib.bdl_kron_factor_free(out.value)  # double free: reported, not a crash
    assert bdlcore.debug_live_handles() == before
    assert "factor" in bdlcore.last_error_message()


# ---------------------------------------------------------------------------------------------
# bdl_blas_info
# ---------------------------------------------------------------------------------------------


def blas_info_buffer(struct_size):
    """A bdl_blas_info_t whose bytes are all 0xAB except struct_size."""
    info = _lib.bdl_blas_info_t()
    ctypes.memset(ctypes.byref(info), 0xAB, ctypes.sizeof(info))
    info.struct_size = struct_size
    return info


def test_blas_info_null():
    assert lib.bdl_blas_info(None) == INVALID
    assert "out_info" in bdlcore.last_error_message()


@pytest.mark.parametrize("struct_size", [0, 1, _lib.bdl_blas_info_t.requested_core.offset - 1])
def test_blas_info_too_small_struct(struct_size):
    info = blas_info_buffer(struct_size)
    before = bytes(info)
    assert lib.bdl_blas_info(ctypes.byref(info)) == INVALID
    assert "struct_size" in bdlcore.last_error_message()
    assert bytes(info) == before


# ---------------------------------------------------------------------------------------------
# The Python surface: shape checks, exception classes, closed factors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "B,A,pattern",
    [
        (np.ones((2, 3)), np.eye(2), r"B: expected a square matrix .* got shape \(2, 3\)"),
        (np.eye(2), np.ones(4), r"A: expected a square matrix .* got shape \(4,\)"),
        (np.eye(2), np.ones((2, 2, 2)), r"A: .* got shape \(2, 2, 2\)"),
        (np.zeros((0, 0)), np.eye(2), r"B: .* n ≥ 1, got shape \(0, 0\)"),
    ],
)
def test_python_shape_checks_on_factors(B, A, pattern):
    for call_ in (
        lambda: bdlcore.kron_logdet(B, A),
        lambda: bdlcore.kron_solve(B, A, np.ones((2, 2))),
        lambda: bdlcore.kron_diagonal(B, A),
        lambda: bdlcore.KronFactor(B, A),
    ):
        with pytest.raises(bdlcore.ShapeMismatchError, match=pattern) as info:
            call_()
        assert isinstance(info.value, ValueError)
        assert info.value.status == _lib.BDL_SHAPE_MISMATCH


@pytest.mark.parametrize("shape", [(2, 3), (3,), (6,), (2, 3, 2, 1), (1, 2, 3), (4, 3, 3)])
def test_python_shape_checks_on_right_hand_sides(shape):
    B, A = good_B(), good_A()
    pattern = re.escape(f"X: expected shape ({NB}, {NA}) or (k, {NB}, {NA})") + r".*" + re.escape(str(shape))
    with pytest.raises(bdlcore.ShapeMismatchError, match=pattern):
        bdlcore.kron_solve(B, A, np.ones(shape))
    with bdlcore.KronFactor(B, A) as F:
        with pytest.raises(bdlcore.ShapeMismatchError, match=pattern):
            F.apply_power(np.ones(shape), 0.5)
        with pytest.raises(bdlcore.ShapeMismatchError, match=pattern):
            F.solve(np.ones(shape))


def test_python_empty_batch_is_rejected_by_the_library():
    with pytest.raises(bdlcore.InvalidArgumentError, match=r"\bk = 0"):
        bdlcore.kron_solve(good_B(), good_A(), np.ones((0, NB, NA)), delta=0.5)


@pytest.mark.parametrize(
    "kwargs,error,pattern",
    [
        (dict(B=with_value(good_B(), (0, 1), np.nan)), bdlcore.NonFiniteInputError, r"^B: "),
        (dict(A=nonsymmetric(NA)), bdlcore.NotPositiveDefiniteError, r"^A: .*symmetric"),
        (dict(B=indefinite(NB)), bdlcore.NotPositiveDefiniteError, r"^B: .*negative"),
        (dict(scale=-2.0), bdlcore.InvalidArgumentError, r"^scale = -2"),
        (dict(delta=np.nan), bdlcore.InvalidArgumentError, r"^delta = nan"),
        (dict(B=singular_factor_exact(), delta=0.0), bdlcore.NotPositiveDefiniteError, r"delta"),
    ],
)
def test_python_errors_carry_library_messages(kwargs, error, pattern):
    args = dict(B=good_B(), A=good_A(), scale=1.0, delta=0.5)
    args.update(kwargs)
    with pytest.raises(error, match=pattern) as info:
        bdlcore.kron_logdet(**args)
    assert info.value.message == str(info.value) == bdlcore.last_error_message()
    assert info.value.status == error.status_code


def test_python_nonfinite_right_hand_side():
    with pytest.raises(bdlcore.NonFiniteInputError, match=r"^X: "):
        bdlcore.kron_solve(good_B(), good_A(), with_value(good_X(), (1, 0, 0), np.inf), delta=0.5)


def test_exception_hierarchy():
    expected = {
        _lib.BDL_INVALID_ARGUMENT: (bdlcore.InvalidArgumentError, ValueError),
        _lib.BDL_SHAPE_MISMATCH: (bdlcore.ShapeMismatchError, ValueError),
        _lib.BDL_NON_FINITE_INPUT: (bdlcore.NonFiniteInputError, ValueError),
        _lib.BDL_NOT_POSITIVE_DEFINITE: (bdlcore.NotPositiveDefiniteError, bdlcore.BDLError),
        _lib.BDL_NOT_CONVERGED: (bdlcore.NotConvergedError, bdlcore.BDLError),
        _lib.BDL_OUT_OF_MEMORY: (bdlcore.OutOfMemoryError, MemoryError),
        _lib.BDL_IO_ERROR: (bdlcore.BDLIOError, OSError),
        _lib.BDL_CORRUPT_DATA: (bdlcore.CorruptDataError, bdlcore.BDLError),
        _lib.BDL_WRONG_STATE: (bdlcore.WrongStateError, bdlcore.BDLError),
        _lib.BDL_UNSUPPORTED: (bdlcore.UnsupportedError, bdlcore.BDLError),
        _lib.BDL_INTERNAL: (bdlcore.InternalError, bdlcore.BDLError),
    }
    assert set(expected) == set(range(1, 12))
    for status, (cls, builtin) in expected.items():
        error = _errors.error_for_status(status, f"message {status}")
        assert type(error) is cls
        assert isinstance(error, bdlcore.BDLError) and isinstance(error, builtin)
        assert error.status == status and error.message == f"message {status}" == str(error)
    unknown = _errors.error_for_status(99, "")
    assert type(unknown) is bdlcore.BDLError and unknown.status == 99 and unknown.message == "unknown status"
    _errors._check(_lib.BDL_OK)  # no exception


def test_check_raises_with_last_error_message():
    status = lib.bdl_kron_logdet(None, 2, None, 2, 1.0, 0.0, None)
    with pytest.raises(bdlcore.InvalidArgumentError) as info:
        _errors._check(status)
    assert info.value.message == bdlcore.last_error_message() != ""


class _NoCalls:
    """Stands in for the library: any call of a C function fails the test."""

    def __getattr__(self, name):
        def fail(*args):
            raise AssertionError(f"{name} was called on a closed factor")

        return fail


def test_closed_factor_never_reaches_the_library(monkeypatch):
    F = bdlcore.KronFactor(good_B(), good_A())
    F.close()
    monkeypatch.setattr(_lib, "lib", _NoCalls())
    for use in (
        lambda: F.shape,
        lambda: F.eigenvalues,
        lambda: F.logdet(),
        lambda: F.apply_power(good_X(), 0.5),
        lambda: F.solve(good_X(), 1.0, 0.5),
        lambda: F.diagonal(),
        lambda: F.__enter__(),
    ):
        with pytest.raises(bdlcore.WrongStateError, match="closed") as info:
            use()
        assert info.value.status == _lib.BDL_WRONG_STATE
    F.close()  # still idempotent


# ---------------------------------------------------------------------------------------------
# Boundaries of the input checks stated in the header
# ---------------------------------------------------------------------------------------------

# The header's symmetry tolerance: |B_ij − B_ji| ≤ 1e-10·max|B| is accepted (and symmetrised).
SYMMETRY_TOLERANCE = 1e-10


def test_symmetry_tolerance_boundary():
    B, A = good_B(), good_A()
    scale = np.abs(B).max()
    inside = B.copy()
    inside[0, 2] += 0.5 * SYMMETRY_TOLERANCE * scale
    outside = B.copy()
    outside[0, 2] += 2.0 * SYMMETRY_TOLERANCE * scale
    # Accepted, and exactly the result for the symmetrised matrix.
    assert bdlcore.kron_logdet(inside, A, delta=0.5) == bdlcore.kron_logdet((inside + inside.T) / 2, A, delta=0.5)
    with pytest.raises(bdlcore.NotPositiveDefiniteError, match=r"^B: entry \((2, 0|0, 2)\).*symmetric"):
        bdlcore.kron_logdet(outside, A, delta=0.5)


def test_negative_eigenvalue_floor_boundary():
    """Eigenvalues down to −n·100·ε·max|λ| are rounding (set to 0); below that the factor is indefinite."""
    n, largest = 3, 2.0
    floor = n * 100 * np.finfo(float).eps * largest
    A = good_A()
    with bdlcore.KronFactor(np.diag([largest, 1.0, -0.5 * floor]), A) as F:
        beta, _ = F.eigenvalues
        assert beta.tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(bdlcore.NotPositiveDefiniteError, match=r"^B: eigenvalue .* negative"):
        bdlcore.KronFactor(np.diag([largest, 1.0, -2.0 * floor]), A)
    with pytest.raises(bdlcore.NotPositiveDefiniteError, match=r"^A: eigenvalue .* negative"):
        bdlcore.kron_logdet(np.eye(2), np.diag([largest, 1.0, -2.0 * floor]), delta=1.0)


@pytest.mark.parametrize("nb", [2**31, 10**6], ids=["nb^2*8 overflows", "nb^2 exceeds memory"])
def test_huge_sizes_are_refused_before_reading(nb):
    """Sizes whose products fit int64 but not in memory: refused (invalid argument or out of memory), no read."""
    out = sentinel(1)
    tiny = np.ones(1)
    status = lib.bdl_kron_logdet(to_c(tiny), nb, to_c(good_A()), NA, 1.0, 0.5, to_c(out))
    assert status in (INVALID, _lib.BDL_OUT_OF_MEMORY), bdlcore.status_string(status)
    assert re.search(r"\bB\b|\bnb", bdlcore.last_error_message())
    assert out.tobytes() == sentinel(1).tobytes()


def test_last_error_message_is_per_thread():
    import threading

    seen = {}

    def other():
        lib.bdl_kron_logdet(to_c(good_B()), NB, to_c(good_A()), NA, -3.0, 0.0, to_c(sentinel(1)))
        seen["other"] = bdlcore.last_error_message()

    assert lib.bdl_kron_logdet(None, NB, to_c(good_A()), NA, 1.0, 0.0, to_c(sentinel(1))) == INVALID
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert "scale" in seen["other"]
    assert re.match(r"^B\b", bdlcore.last_error_message()), bdlcore.last_error_message()
