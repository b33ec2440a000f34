r"""Kronecker-factored matrices  M = scale · B ⊗ A + delta · I.

This is the posterior precision of one layer under a K-FAC Laplace approximation: B (nb × nb) is
the output-gradient factor and A (na × na) the input-activation factor of a Linear layer whose
weight has PyTorch's shape (nb, na) = (out_features, in_features); ``scale`` is the likelihood
weight h (1/σ² for Gaussian regression, 1/T with a temperature) and ``delta`` the prior precision
δ. In laplace-torch this is a ``Kron``/``KronDecomposed`` block (``prior_precision`` = delta,
``temperature`` folded into scale); in curvlinops the factors are those of ``KFACLinearOperator``
(remember that curvlinops with ``MSELoss(reduction='sum')`` returns 2·B).

Vectors of length nb·na are nb × na row-major matrices X, so (B ⊗ A) vec(X) = vec(B X Aᵀ).
With B = Q_B diag(β) Q_Bᵀ and A = Q_A diag(α) Q_Aᵀ, every function here works on
d_ij = scale·β_i·α_j + delta and never forms the (nb·na)² matrix.

Input rules (checked by the library, which names the argument): B and A symmetric
(|B_ij − B_ji| ≤ 1e-10·max|B|) and positive semi-definite up to rounding, finite; scale ≥ 0 and
finite; delta and exponent finite. Powers with exponent ≤ 0 (solve, logdet, whitening) need every
d_ij > 0, so a rank-deficient factor needs delta > 0. Shapes are checked here and raise
:class:`~bdlcore.ShapeMismatchError`.
"""

from __future__ import annotations

from ctypes import byref, c_double, c_int64, c_void_p
from typing import Tuple

import numpy as np

from . import _lib
from ._errors import ShapeMismatchError, _check
from ._handle import _OwnedHandle

__all__ = ["kron_logdet", "kron_solve", "kron_diagonal", "KronFactor"]

_ptr = _lib.as_pointer


def _square(matrix, name: str) -> np.ndarray:
    """``matrix`` as a C-contiguous float64 array of shape (n, n), n ≥ 1."""
    array = np.ascontiguousarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] < 1:
        raise ShapeMismatchError(f"{name}: expected a square matrix of shape (n, n) with n ≥ 1, got shape {array.shape}")
    return array


def _right_hand_sides(X, nb: int, na: int) -> Tuple[np.ndarray, int]:
    """``X`` as a C-contiguous float64 array of shape (nb, na) or (k, nb, na), and k."""
    array = np.ascontiguousarray(X, dtype=np.float64)
    if array.ndim == 2 and array.shape == (nb, na):
        return array, 1
    if array.ndim == 3 and array.shape[1:] == (nb, na):
        return array, array.shape[0]
    raise ShapeMismatchError(
        f"X: expected shape ({nb}, {na}) or (k, {nb}, {na}) for B of order {nb} and A of order {na}, "
        f"got shape {array.shape}"
    )


def kron_logdet(B, A, scale: float = 1.0, delta: float = 0.0) -> float:
    r"""log det(scale · B ⊗ A + delta · I) = Σ_ij log(scale·β_i·α_j + delta).

    The log-determinant term of the Laplace log marginal likelihood for one K-FAC block
    (laplace-torch's ``KronDecomposed.logdet``), computed from the eigenvalues β of B and α of A.

    Args:
        B: output-side factor, shape (nb, nb), symmetric PSD.
        A: input-side factor, shape (na, na), symmetric PSD.
        scale: h ≥ 0, e.g. 1/σ² for Gaussian regression.
        delta: δ, e.g. the prior precision; every scale·β_i·α_j + δ must be > 0.

    Returns:
        The log-determinant, a Python float.

    Raises:
        ShapeMismatchError: B or A is not a non-empty square matrix.
        NonFiniteInputError: NaN/Inf in B or A.
        NotPositiveDefiniteError: a factor is not symmetric PSD, or some d_ij ≤ 0
            (e.g. a rank-deficient factor with delta ≤ 0).
        InvalidArgumentError: scale < 0, or scale/delta not finite.
    """
    B = _square(B, "B")
    A = _square(A, "A")
    out = c_double()
    _check(_lib.lib.bdl_kron_logdet(_ptr(B), B.shape[0], _ptr(A), A.shape[0], float(scale), float(delta), byref(out)))
    return out.value


def kron_solve(B, A, X, scale: float = 1.0, delta: float = 0.0) -> np.ndarray:
    r"""Y = (scale · B ⊗ A + delta · I)⁻¹ X, for one or k right-hand sides.

    Each X_t is an nb × na matrix (a weight-shaped vector), and
    Y_t = Q_B [(Q_Bᵀ X_t Q_A) ⊘ d] Q_Aᵀ with d_ij = scale·β_i·α_j + delta. This is the posterior
    covariance (inverse precision) of a K-FAC Laplace block applied to X, e.g. for the
    Newton/influence direction of a layer.

    Args:
        B: output-side factor, shape (nb, nb), symmetric PSD.
        A: input-side factor, shape (na, na), symmetric PSD.
        X: shape (nb, na), or (k, nb, na) for k ≥ 1 right-hand sides.
        scale: h ≥ 0.
        delta: δ; every d_ij must be > 0.

    Returns:
        A new float64 array with the shape of X.

    Raises:
        ShapeMismatchError: B or A not square, or X not of shape (nb, na) / (k, nb, na).
        NonFiniteInputError: NaN/Inf in B, A or X.
        NotPositiveDefiniteError: a factor is not symmetric PSD, or some d_ij ≤ 0.
        InvalidArgumentError: scale < 0, non-finite scale/delta, or k = 0.
    """
    B = _square(B, "B")
    A = _square(A, "A")
    nb, na = B.shape[0], A.shape[0]
    X, k = _right_hand_sides(X, nb, na)
    Y = np.empty_like(X)
    _check(_lib.lib.bdl_kron_solve(_ptr(B), nb, _ptr(A), na, float(scale), float(delta), _ptr(X), k, _ptr(Y)))
    return Y


def kron_diagonal(B, A, scale: float = 1.0, delta: float = 0.0, exponent: float = 1.0) -> np.ndarray:
    r"""diag((scale · B ⊗ A + delta · I)^exponent), shaped (nb, na) like the layer's weight.

    diag(M^e)_(i,j) = Σ_pq Q_B[i,p]² Q_A[j,q]² d_pq^e. exponent = 1 gives scale·B_ii·A_jj + delta;
    exponent = -1 gives the marginal posterior variances of a K-FAC Laplace block (the diagonal
    of its posterior covariance).

    Args:
        B: output-side factor, shape (nb, nb), symmetric PSD.
        A: input-side factor, shape (na, na), symmetric PSD.
        scale: h ≥ 0.
        delta: δ.
        exponent: any finite e; e ≤ 0 needs every d_ij > 0, e > 0 needs every d_ij ≥ 0.

    Returns:
        A new float64 array of shape (nb, na).

    Raises:
        ShapeMismatchError, NonFiniteInputError, NotPositiveDefiniteError, InvalidArgumentError:
            as :func:`kron_logdet`, plus InvalidArgumentError for a non-finite exponent.
    """
    B = _square(B, "B")
    A = _square(A, "A")
    nb, na = B.shape[0], A.shape[0]
    out = np.empty((nb, na), dtype=np.float64)
    _check(
        _lib.lib.bdl_kron_diagonal(
            _ptr(B), nb, _ptr(A), na, float(scale), float(delta), float(exponent), _ptr(out)
        )
    )
    return out


class KronFactor(_OwnedHandle):
    r"""A Kronecker pair B ⊗ A eigendecomposed once, for many (scale, delta, exponent).

    Owns one ``bdl_kron_factor`` handle holding the eigenvectors of B and A
    (8·(nb² + na² + nb + na) bytes). Use it where laplace-torch would keep a ``KronDecomposed``
    block: evaluate the evidence at many prior precisions, solve, whiten samples, read marginal
    variances, all for M = scale · B ⊗ A + delta · I.

    Release it with :meth:`close` or a ``with`` block; otherwise it is released when garbage
    collected (``weakref.finalize``), exactly once. Any use after :meth:`close` raises
    :class:`~bdlcore.WrongStateError` without reaching the library. One object may be shared by
    threads: calls on it are serialised.

    Args:
        B: output-side factor, shape (nb, nb), symmetric PSD.
        A: input-side factor, shape (na, na), symmetric PSD.

    Raises:
        ShapeMismatchError: B or A is not a non-empty square matrix.
        NonFiniteInputError: NaN/Inf in B or A.
        NotPositiveDefiniteError: a factor is not symmetric positive semi-definite.
        NotConvergedError: the eigendecomposition (LAPACK) failed.
        UnsupportedError: OpenBLAS/LAPACKE could not be loaded.
    """

    _owner_name = "KronFactor"

    def __init__(self, B, A):
        super().__init__()
        B = _square(B, "B")
        A = _square(A, "A")
        handle = c_void_p()
        _check(_lib.lib.bdl_kron_factor_create(_ptr(B), B.shape[0], _ptr(A), A.shape[0], byref(handle)))
        self._adopt(handle.value, _lib.lib.bdl_kron_factor_free)
        nb, na = c_int64(), c_int64()
        _check(_lib.lib.bdl_kron_factor_shape(self._handle, byref(nb), byref(na)))
        self._shape = (nb.value, na.value)

    # -- lifetime (close, closed and the with block come from _OwnedHandle) ---------------------

    def __repr__(self) -> str:
        if self._handle is None:
            return "<KronFactor (closed)>"
        return f"<KronFactor nb={self._shape[0]} na={self._shape[1]}>"

    # -- queries --------------------------------------------------------------------------------

    @property
    def shape(self) -> Tuple[int, int]:
        """(nb, na): the orders of B and A, i.e. the layer weight's shape."""
        self._live()
        return self._shape

    @property
    def eigenvalues(self) -> Tuple[np.ndarray, np.ndarray]:
        """(β, α): eigenvalues of B and A, ascending, with rounding-level negatives set to 0."""
        nb, na = self._shape
        beta = np.empty(nb, dtype=np.float64)
        alpha = np.empty(na, dtype=np.float64)
        with self._use() as handle:
            _check(_lib.lib.bdl_kron_factor_eigenvalues(handle, _ptr(beta), nb, _ptr(alpha), na))
        return beta, alpha

    def logdet(self, scale: float = 1.0, delta: float = 0.0) -> float:
        """log det(scale · B ⊗ A + delta · I) = Σ_ij log(scale·β_i·α_j + delta).

        Raises:
            NotPositiveDefiniteError: some d_ij ≤ 0.
            InvalidArgumentError: scale < 0 or non-finite scale/delta.
        """
        out = c_double()
        with self._use() as handle:
            _check(_lib.lib.bdl_kron_factor_logdet(handle, float(scale), float(delta), byref(out)))
        return out.value

    def apply_power(self, X, exponent: float, scale: float = 1.0, delta: float = 0.0) -> np.ndarray:
        """Y_t = (scale · B ⊗ A + delta · I)^exponent X_t = Q_B [(Q_Bᵀ X_t Q_A) ∘ d^e] Q_Aᵀ.

        exponent -1 solves, -0.5 whitens (M^(-1/2) z with z ~ N(0, I) is a sample of the K-FAC
        Laplace posterior N(0, M⁻¹), what laplace-torch's ``KronDecomposed.bmm(W, exponent=-0.5)``
        is used for when sampling), 0.5 and 1 multiply (``exponent=1`` is ``KronDecomposed.bmm``).

        Args:
            X: shape (nb, na) or (k, nb, na), k ≥ 1.
            exponent: any finite e.
            scale: h ≥ 0.
            delta: δ.

        Returns:
            A new float64 array with the shape of X.

        Raises:
            ShapeMismatchError: X has the wrong shape.
            NonFiniteInputError: NaN/Inf in X.
            NotPositiveDefiniteError: some d_ij ≤ 0 with exponent ≤ 0, or < 0 with exponent > 0.
            InvalidArgumentError: scale < 0, non-finite scale/delta/exponent, or k = 0.
        """
        nb, na = self._shape
        X, k = _right_hand_sides(X, nb, na)
        Y = np.empty_like(X)
        with self._use() as handle:
            _check(
                _lib.lib.bdl_kron_factor_apply_power(
                    handle, float(scale), float(delta), float(exponent), _ptr(X), k, _ptr(Y), Y.size
                )
            )
        return Y

    def solve(self, X, scale: float = 1.0, delta: float = 0.0) -> np.ndarray:
        """(scale · B ⊗ A + delta · I)⁻¹ X: :meth:`apply_power` with exponent -1."""
        return self.apply_power(X, -1.0, scale, delta)

    def diagonal(self, scale: float = 1.0, delta: float = 0.0, exponent: float = 1.0) -> np.ndarray:
        """diag((scale · B ⊗ A + delta · I)^exponent), shape (nb, na).

        exponent -1 gives the marginal posterior variances of the K-FAC Laplace block.
        Raises as :meth:`apply_power`.
        """
        nb, na = self._shape
        out = np.empty((nb, na), dtype=np.float64)
        with self._use() as handle:
            _check(
                _lib.lib.bdl_kron_factor_diagonal(
                    handle, float(scale), float(delta), float(exponent), _ptr(out), out.size
                )
            )
        return out
