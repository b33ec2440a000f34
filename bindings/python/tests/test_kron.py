"""Kronecker-factored M = scale · B ⊗ A + delta · I against its dense materialisation.

Every structured result (logdet, solve, diagonal, powers) is compared with numpy on the dense
(nb·na) × (nb·na) matrix, with LAPACK-style tolerances scaled by size, ε and conditioning.
"""


import numpy as np
import pytest

import bdlcore
from bdlcore import _lib

from _support import EPS, condition, dense, dense_power, rank_deficient, rng, spd

# Scaled residual ||M Y − X||_F / (||M||_F ||Y||_F n ε) of a backward-stable solve; 30 is the
# threshold LAPACK's own test suite uses for such ratios.
SOLVE_RESIDUAL_TOL = 30.0
# |logdet − reference| ≤ LOGDET_TOL · n · ε · (Σ|log d_ij| + Σ λ_max/d_ij): the first-order effect of
# O(n·ε·||M||) backward errors on every d_ij (ours) and on the LU factors (numpy's slogdet).
LOGDET_TOL = 10.0
# ||f(M) − f_ref(M)|| ≤ POWER_TOL · n · ε · cond(M) · ||M^e||₂: first-order perturbation bound of x ↦ x^e
# on [λ_min, λ_max] under O(n·ε·||M||) backward errors in both eigendecompositions.
POWER_TOL = 10.0
# exponent = 1 diagonal is scale·B_ii·A_jj + delta: only a few roundings per entry, relative to ||M||.
EXACT_DIAGONAL_TOL = 10.0

SIZES = [(1, 1), (1, 4), (3, 2), (5, 7), (12, 9)]
CASES = ["spd", "spd_scaled", "rank_deficient", "negative_delta"]
EXPONENTS = [1.0, -1.0, 0.5, -0.5, 2.0]


def make_case(case, nb, na, seed):
    """(B, A, scale, delta) for one regime; every case keeps M positive definite."""
    g = rng(seed)
    if case == "spd":
        return spd(g, nb), spd(g, na), 1.0, 0.0
    if case == "spd_scaled":
        return spd(g, nb), spd(g, na), 2.5, 0.3
    if case == "rank_deficient":
        # Rank-deficient factors (fewer samples than dimensions) need delta > 0.
        return rank_deficient(g, nb), rank_deficient(g, na), 1.3, 0.7
    if case == "negative_delta":
        B, A, scale = spd(g, nb), spd(g, na), 0.8
        smallest = scale * np.linalg.eigvalsh(B)[0] * np.linalg.eigvalsh(A)[0]
        return B, A, scale, -0.5 * smallest  # every d_ij ≥ smallest/2 > 0
    raise AssertionError(case)


def spectrum(B, A, scale, delta):
    """d_ij = scale·β_i·α_j + delta from numpy's eigenvalues of the factors."""
    return scale * np.outer(np.linalg.eigvalsh(B), np.linalg.eigvalsh(A)) + delta


def assert_solve_residual(M, Y, X, label=""):
    n = M.shape[0]
    Ys = Y.reshape(-1, n)
    Xs = X.reshape(-1, n)
    for t, (y, x) in enumerate(zip(Ys, Xs)):
        ratio = np.linalg.norm(M @ y - x) / (np.linalg.norm(M) * np.linalg.norm(y) * n * EPS)
        assert ratio < SOLVE_RESIDUAL_TOL, f"{label} rhs {t}: scaled residual {ratio:.3g} ≥ {SOLVE_RESIDUAL_TOL}"


def assert_power_close(got, want, M, exponent, scale_by=1.0, label=""):
    n = M.shape[0]
    tol = POWER_TOL * n * EPS * condition(M) * np.linalg.norm(dense_power(M, exponent), 2) * scale_by
    err = np.abs(got - want)
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert err[worst] <= tol, (
        f"{label} exponent {exponent}: worst entry {worst} got {got[worst]!r} want {want[worst]!r} "
        f"(|err| {err[worst]:.3g} > tol {tol:.3g})"
    )


def assert_logdet_close(got, B, A, scale, delta, label=""):
    M = dense(B, A, scale, delta)
    sign, want = np.linalg.slogdet(M)
    assert sign == 1.0
    d = np.linalg.eigvalsh(M)
    n = M.shape[0]
    tol = LOGDET_TOL * n * EPS * (np.abs(np.log(d)).sum() + (d[-1] / d).sum())
    assert abs(got - want) <= tol, f"{label}: logdet {got!r} vs dense {want!r} (|err| {abs(got - want):.3g} > tol {tol:.3g})"


# ---------------------------------------------------------------------------------------------
# one-shot functions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("nb,na", SIZES)
def test_logdet_matches_dense(nb, na, case):
    B, A, scale, delta = make_case(case, nb, na, seed=100 + 10 * nb + na)
    got = bdlcore.kron_logdet(B, A, scale=scale, delta=delta)
    assert isinstance(got, float)
    assert_logdet_close(got, B, A, scale, delta, label=f"{case} {nb}x{na}")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("nb,na", SIZES)
@pytest.mark.parametrize("k", [1, 3])
def test_solve_matches_dense(nb, na, case, k):
    B, A, scale, delta = make_case(case, nb, na, seed=200 + 10 * nb + na)
    X = rng(300 + k).standard_normal((k, nb, na))
    M = dense(B, A, scale, delta)
    Y = bdlcore.kron_solve(B, A, X, scale=scale, delta=delta)
    assert Y.shape == X.shape and Y.dtype == np.float64
    assert_solve_residual(M, Y, X, label=f"{case} {nb}x{na} k={k}")
    # The same numbers as a dense solve, within the forward error that conditioning allows.
    want = np.linalg.solve(M, X.reshape(k, -1).T).T.reshape(X.shape)
    assert_power_close(Y, want, M, -1.0, scale_by=np.abs(X).max() * np.sqrt(M.shape[0]), label=f"{case} {nb}x{na}")


@pytest.mark.parametrize("nb,na", SIZES)
def test_solve_single_matrix_shape(nb, na):
    """X of shape (nb, na) gives Y of shape (nb, na), equal to the k = 1 batch."""
    B, A, scale, delta = make_case("spd_scaled", nb, na, seed=400 + nb * na)
    X = rng(401).standard_normal((nb, na))
    Y = bdlcore.kron_solve(B, A, X, scale=scale, delta=delta)
    assert Y.shape == (nb, na)
    np.testing.assert_array_equal(Y, bdlcore.kron_solve(B, A, X[None], scale=scale, delta=delta)[0])
    assert_solve_residual(dense(B, A, scale, delta), Y, X)


def test_solve_layout_is_row_major_vec():
    """(B ⊗ A) vec(X) = vec(B X Aᵀ): solving for B X Aᵀ + delta·X gives back X."""
    g = rng(7)
    B, A, X = spd(g, 4), spd(g, 3), g.standard_normal((4, 3))
    delta = 0.25
    rhs = B @ X @ A.T + delta * X
    Y = bdlcore.kron_solve(B, A, rhs, delta=delta)
    np.testing.assert_allclose(Y, X, rtol=0, atol=1e3 * EPS * np.abs(X).max() * condition(dense(B, A, 1.0, delta)))


@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("nb,na", SIZES)
def test_diagonal_matches_dense_power(nb, na, case, exponent):
    B, A, scale, delta = make_case(case, nb, na, seed=500 + 10 * nb + na)
    M = dense(B, A, scale, delta)
    got = bdlcore.kron_diagonal(B, A, scale=scale, delta=delta, exponent=exponent)
    assert got.shape == (nb, na) and got.dtype == np.float64
    want = np.diag(dense_power(M, exponent)).reshape(nb, na)
    assert_power_close(got, want, M, exponent, label=f"{case} {nb}x{na}")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("nb,na", SIZES)
def test_diagonal_exponent_one_is_exact_formula(nb, na, case):
    B, A, scale, delta = make_case(case, nb, na, seed=600 + 10 * nb + na)
    got = bdlcore.kron_diagonal(B, A, scale=scale, delta=delta)  # exponent defaults to 1
    want = scale * np.outer(np.diag(B), np.diag(A)) + delta
    tol = EXACT_DIAGONAL_TOL * nb * na * EPS * np.linalg.norm(dense(B, A, scale, delta), 2)
    assert np.abs(got - want).max() <= tol


def test_inputs_are_converted():
    """Lists, integers, Fortran order and strided views are accepted (converted to C float64)."""
    g = rng(8)
    B, A = spd(g, 3), spd(g, 2)
    X = g.standard_normal((3, 2))
    want = bdlcore.kron_solve(B, A, X, delta=0.5)
    np.testing.assert_array_equal(bdlcore.kron_solve(B.tolist(), np.asfortranarray(A), X.tolist(), delta=0.5), want)
    wide = np.zeros((3, 4))
    wide[:, ::2] = X
    np.testing.assert_array_equal(bdlcore.kron_solve(B, A, wide[:, ::2], delta=0.5), want)
    I3 = np.eye(3, dtype=np.int64)
    assert bdlcore.kron_logdet(I3, I3, delta=1) == pytest.approx(9 * np.log(2.0), rel=1e-15)


def test_logdet_known_values():
    """Hand-checked values: identity factors and scale = 0 give closed forms."""
    I2, I3 = np.eye(2), np.eye(3)
    assert bdlcore.kron_logdet(I2, I3) == 0.0
    assert bdlcore.kron_logdet(I2, I3, scale=3.0, delta=1.0) == pytest.approx(6 * np.log(4.0), rel=4 * EPS)
    assert bdlcore.kron_logdet(I2, I3, scale=0.0, delta=2.0) == pytest.approx(6 * np.log(2.0), rel=4 * EPS)
    D = np.diag([1.0, 4.0])
    assert bdlcore.kron_logdet(D, np.diag([2.0]), scale=0.5) == pytest.approx(np.log(1.0) + np.log(4.0), abs=4 * EPS)


# ---------------------------------------------------------------------------------------------
# KronFactor
# ---------------------------------------------------------------------------------------------

PAIRS = [(1.0, 0.0), (2.5, 0.3), (0.1, 4.0), (1.0, 1e-3), (7.0, 0.0)]


@pytest.mark.parametrize("nb,na", SIZES)
def test_factor_reused_for_several_scales_and_deltas(nb, na):
    g = rng(700 + 10 * nb + na)
    B, A = spd(g, nb), spd(g, na)
    X = g.standard_normal((3, nb, na))
    with bdlcore.KronFactor(B, A) as F:
        assert F.shape == (nb, na)
        for scale, delta in PAIRS:
            M = dense(B, A, scale, delta)
            label = f"{nb}x{na} scale={scale} delta={delta}"
            logdet = F.logdet(scale=scale, delta=delta)
            assert_logdet_close(logdet, B, A, scale, delta, label=label)
            assert logdet == bdlcore.kron_logdet(B, A, scale, delta)  # same code path, same numbers
            Y = F.solve(X, scale, delta)
            assert_solve_residual(M, Y, X, label=label)
            for exponent in EXPONENTS:
                diag = F.diagonal(scale=scale, delta=delta, exponent=exponent)
                want = np.diag(dense_power(M, exponent)).reshape(nb, na)
                assert_power_close(diag, want, M, exponent, label=label)


@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("nb,na", SIZES)
def test_factor_apply_power_matches_dense(nb, na, case, exponent):
    B, A, scale, delta = make_case(case, nb, na, seed=800 + 10 * nb + na)
    M = dense(B, A, scale, delta)
    X = rng(801).standard_normal((2, nb, na))
    with bdlcore.KronFactor(B, A) as F:
        Y = F.apply_power(X, exponent, scale=scale, delta=delta)
    assert Y.shape == X.shape
    P = dense_power(M, exponent)
    want = (X.reshape(2, -1) @ P.T).reshape(X.shape)
    assert_power_close(Y, want, M, exponent, scale_by=np.abs(X).max() * np.sqrt(M.shape[0]), label=f"{case} {nb}x{na}")


def test_factor_whitening_is_inverse_square_root():
    """M^(−½) M^(−½) X = M⁻¹ X and M^(½) M^(−½) X = X (sampling from N(0, M⁻¹) relies on it)."""
    g = rng(9)
    B, A = spd(g, 5), spd(g, 4)
    X = g.standard_normal((5, 4))
    with bdlcore.KronFactor(B, A) as F:
        W = F.apply_power(X, -0.5, scale=2.0, delta=0.1)
        np.testing.assert_allclose(F.apply_power(W, -0.5, scale=2.0, delta=0.1), F.solve(X, 2.0, 0.1), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(F.apply_power(W, 0.5, scale=2.0, delta=0.1), X, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("nb,na", SIZES)
def test_factor_eigenvalues(nb, na, case):
    B, A, _, _ = make_case(case, nb, na, seed=900 + 10 * nb + na)
    with bdlcore.KronFactor(B, A) as F:
        beta, alpha = F.eigenvalues
    for got, M, name in ((beta, B, "beta"), (alpha, A, "alpha")):
        want = np.linalg.eigvalsh(M)
        assert got.shape == want.shape, name
        assert np.all(np.diff(got) >= 0), f"{name} not ascending: {got}"
        assert np.all(got >= 0), f"{name} has negative entries: {got}"
        tol = POWER_TOL * M.shape[0] * EPS * max(np.abs(want).max(), 1.0)
        assert np.abs(got - want).max() <= tol, f"{name}: {got} vs {want}"


@pytest.mark.parametrize("k", [1, 3])
def test_factor_apply_power_in_place(k):
    """out_Y may be the same buffer as X (raw API through the factor handle)."""
    g = rng(10 + k)
    B, A = spd(g, 5), spd(g, 7)
    X = g.standard_normal((k, 5, 7))
    scale, delta = 1.5, 0.2
    with bdlcore.KronFactor(B, A) as F:
        want = F.solve(X, scale, delta)
        buffer = X.copy()
        status = _lib.lib.bdl_kron_factor_apply_power(
            F._handle, scale, delta, -1.0, _lib.as_pointer(buffer), k, _lib.as_pointer(buffer), buffer.size
        )
    assert status == _lib.BDL_OK, bdlcore.last_error_message()
    np.testing.assert_array_equal(buffer, want)
    assert_solve_residual(dense(B, A, scale, delta), buffer, X)


@pytest.mark.parametrize("k", [1, 3])
def test_kron_solve_in_place(k):
    """bdl_kron_solve with out_Y == X."""
    g = rng(20 + k)
    B, A = spd(g, 6), spd(g, 3)
    X = g.standard_normal((k, 6, 3))
    scale, delta = 0.7, 0.05
    want = bdlcore.kron_solve(B, A, X, scale, delta)
    buffer = X.copy()
    p = _lib.as_pointer
    status = _lib.lib.bdl_kron_solve(p(B), 6, p(A), 3, scale, delta, p(buffer), k, p(buffer))
    assert status == _lib.BDL_OK, bdlcore.last_error_message()
    np.testing.assert_array_equal(buffer, want)
    assert_solve_residual(dense(B, A, scale, delta), buffer, X)


def test_factor_lifetime():
    """close() frees the handle once; the finalizer does not free it again; use after close raises."""
    g = rng(11)
    base = bdlcore.debug_live_handles()
    F = bdlcore.KronFactor(spd(g, 2), spd(g, 3))
    assert bdlcore.debug_live_handles() == base + 1
    assert not F.closed
    F.close()
    assert F.closed
    assert bdlcore.debug_live_handles() == base
    F.close()  # idempotent
    assert bdlcore.debug_live_handles() == base
    with pytest.raises(bdlcore.WrongStateError, match="closed"):
        F.logdet()
    del F


def test_factor_freed_by_garbage_collection():
    import gc

    g = rng(12)
    base = bdlcore.debug_live_handles()
    F = bdlcore.KronFactor(spd(g, 3), spd(g, 3))
    assert bdlcore.debug_live_handles() == base + 1
    del F
    gc.collect()
    assert bdlcore.debug_live_handles() == base


def test_factor_context_manager_closes():
    g = rng(13)
    base = bdlcore.debug_live_handles()
    with bdlcore.KronFactor(spd(g, 2), spd(g, 2)) as F:
        assert bdlcore.debug_live_handles() == base + 1
    assert F.closed and bdlcore.debug_live_handles() == base


def test_failed_create_leaves_no_handle():
    base = bdlcore.debug_live_handles()
    with pytest.raises(bdlcore.NotPositiveDefiniteError):
        bdlcore.KronFactor(np.array([[1.0, 2.0], [0.0, 1.0]]), np.eye(2))
    assert bdlcore.debug_live_handles() == base


def test_version_and_status_functions():
    assert bdlcore.__version__ == f"{_lib.BDL_VERSION_MAJOR}.{_lib.BDL_VERSION_MINOR}.{_lib.BDL_VERSION_PATCH}"
    assert bdlcore.version_number() == _lib.BDL_VERSION_MAJOR * 10000 + _lib.BDL_VERSION_MINOR * 100 + _lib.BDL_VERSION_PATCH
    assert bdlcore.status_string(0) == "ok"
    assert bdlcore.status_string(1) == "invalid argument"
    assert bdlcore.status_string(99) == "unknown status"
    with pytest.raises(bdlcore.InvalidArgumentError):
        bdlcore.kron_logdet(np.eye(2), np.eye(2), scale=-1.0)
    assert "scale" in bdlcore.last_error_message()


def test_module_quickstart_runs():
    """The quickstart in the package docstring runs and computes what its comments say."""
    doc = bdlcore.__doc__
    block = doc.split("Quickstart::", 1)[1].split("\n\n", 2)[1]
    lines = [line[4:] for line in block.splitlines()]
    assert 5 <= len(lines) <= 12
    namespace = {}
    exec("\n".join(lines), namespace)
    B, A, W, Y, var = (namespace[name] for name in ("B", "A", "W", "Y", "var"))
    M = dense(B, A, 1.0, 0.5)
    assert_solve_residual(M, Y, W)
    np.testing.assert_allclose(var.ravel(), np.diag(np.linalg.inv(M)), rtol=1e-12)
