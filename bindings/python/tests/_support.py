"""Test support: seeded factors, dense references, scaled error measures and fixture files."""

import json
import os

import numpy as np

from bdlcore import (
    GELU,
    AvgPool2d,
    Conv2d,
    Flatten,
    GlobalAvgPool2d,
    Identity,
    Linear,
    MeanOverSequence,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)

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


def layer_from_spec(entry):
    """Our layer for one dict of a fixture's `spec` (keys as in the fixture READMEs)."""
    kind = entry["type"]
    if kind == "Linear":
        return Linear(entry["in_features"], entry["out_features"], bias=entry["bias"])
    if kind == "Conv2d":
        return Conv2d(
            entry["in_channels"], entry["out_channels"], entry["kernel_size"],
            stride=entry["stride"], padding=entry["padding"], bias=entry["bias"],
        )
    if kind == "AvgPool2d":
        return AvgPool2d(entry["kernel_size"])
    simple = {
        "ReLU": ReLU, "Tanh": Tanh, "Sigmoid": Sigmoid, "GELU": GELU, "Identity": Identity,
        "Flatten": Flatten, "GlobalAvgPool2d": GlobalAvgPool2d, "MeanOverSequence": MeanOverSequence,
    }
    return simple[kind]()


def read_fixture(path):
    """A fixture .npz as a dict; `spec` parsed from JSON, `likelihood` a str, `input_shape` a tuple."""
    with np.load(path) as data:
        fixture = {key: data[key] for key in data.files}
    fixture["spec"] = json.loads(str(fixture["spec"]))
    fixture["likelihood"] = str(fixture["likelihood"])
    fixture["input_shape"] = tuple(int(d) for d in fixture["input_shape"])
    return fixture


def model_from_fixture(fixture):
    """Our network from a fixture's spec and input shape, holding its parameters."""
    net = Sequential([layer_from_spec(entry) for entry in fixture["spec"]], input_shape=fixture["input_shape"])
    net.set_parameters(fixture["parameters"])
    return net


def hessian_square_root(f, likelihood):
    """V (N, C, C) whose rows V[n, k] are the columns of S_n, S_n S_nᵀ = Λ_n (DESIGN §4), at outputs f (N, C).

    Categorical: column k of S_n is √p_k (e_k − p), p = softmax(f_n). Gaussian at σ = 1: S_n = I.
    """
    n, c = f.shape
    if likelihood == "regression":
        return np.broadcast_to(np.eye(c), (n, c, c)).copy()
    z = f - f.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    # V[n, k, c] = √p_k (δ_kc − p_c)
    return np.sqrt(p)[:, :, None] * (np.eye(c)[None, :, :] - p[:, None, :])
