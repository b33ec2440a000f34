"""Test support: seeded factors, dense references and scaled error measures."""

import os

import numpy as np

#: The repository root, found from this file (bindings/python/tests/_support.py).
REPO_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir))
HEADER = os.path.join(REPO_ROOT, "include", "bdlcore.h")
PACKAGE_ROOT = os.path.join(REPO_ROOT, "bindings", "python")

EPS = np.finfo(np.float64).eps


def rng(seed):
    """The one way tests get randomness."""
    return np.random.default_rng(seed)


def spd(generator, n):
    """A random symmetric positive definite n × n factor: G Gᵀ / m with G n × m, m = 2n + 2."""
    m = 2 * n + 2
    G = generator.standard_normal((n, m))
    B = G @ G.T / m
    return (B + B.T) / 2


def rank_deficient(generator, n):
    """A random symmetric PSD n × n factor of rank n − 1 (the zero matrix for n = 1)."""
    if n == 1:
        return np.zeros((1, 1))
    G = generator.standard_normal((n, n - 1))
    B = G @ G.T / (n - 1)
    return (B + B.T) / 2


def dense(B, A, scale=1.0, delta=0.0):
    """M = scale · B ⊗ A + delta · I as a dense matrix."""
    n = B.shape[0] * A.shape[0]
    return scale * np.kron(B, A) + delta * np.eye(n)


def dense_power(M, exponent):
    """M^exponent for symmetric positive (semi-)definite M, via eigh of the dense matrix."""
    w, Q = np.linalg.eigh(M)
    if exponent > 0:
        w = np.clip(w, 0.0, None)  # rounding-level negatives of a PSD matrix
    return (Q * w**exponent) @ Q.T


def condition(M):
    """2-norm condition number of a symmetric positive definite M."""
    w = np.linalg.eigvalsh(M)
    return w[-1] / w[0]
