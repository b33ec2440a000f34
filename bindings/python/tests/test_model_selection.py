"""The NTK evidence bound (bdlcore.ntk_evidence_bound) against the full-GGN Laplace evidence.

Oracles: with one batch the bound is the evidence of Laplace(structure="full") and its gradient;
every data partition lies below it (Fischer's inequality); the per-batch estimates average to the
partitioned value; gradients equal central finite differences; the independent-outputs variant
is exact for one regression output. No reference outside the library is needed.
"""

import ctypes

import numpy as np
import pytest

import bdlcore
from bdlcore import (
    Conv2d,
    Flatten,
    InvalidArgumentError,
    Laplace,
    Linear,
    MeanOverSequence,
    NonFiniteInputError,
    ReLU,
    Sequential,
    ShapeMismatchError,
    Tanh,
    UnsupportedError,
    _lib,
    ntk_evidence_bound,
)

from _support import rng
from test_abi import CTYPES_OF_FIELD, header_struct_declarations, test_struct_layout_matches_c_compiler

# The kernel form and the P × P Cholesky differ only in rounding (≈ 1e-13 observed); 1e-8 is the
# contract, still far below any convention slip (a missing ½, h or log det P0 term).
KERNEL_FORM_RTOL = 1e-8
# Fischer's inequality is exact; the slack covers rounding of log-determinants of size ≈ 10–100.
FISCHER_SLACK = 1e-9
# Central differences in log δ / log σ with step 1e-5: truncation ~1e-10, rounding ~ε·|value|/step.
FD_STEP = 1e-5
FD_TOL = 1e-6


def relative(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.maximum(1.0, np.abs(np.asarray(b))))


def problem(kind):
    """(model, X, y, likelihood, number of parameter tensors) at random parameters."""
    g = rng({"mlp": 1, "regression": 2, "sequence": 3, "cnn": 4}[kind])
    if kind == "mlp":
        net, X, likelihood = Sequential([Linear(3, 5), Tanh(), Linear(5, 3)]), g.standard_normal((10, 3)), "classification"
        y = np.arange(10) % 3
    elif kind == "regression":
        net, X, likelihood = Sequential([Linear(3, 5), ReLU(), Linear(5, 2)]), g.standard_normal((9, 3)), "regression"
        y = g.standard_normal((9, 2))
    elif kind == "sequence":
        net = Sequential([Linear(4, 5), ReLU(), MeanOverSequence(), Linear(5, 3)], input_shape=(6, 4))
        X, y, likelihood = g.standard_normal((7, 6, 4)), np.arange(7) % 3, "classification"
    else:
        net = Sequential([Conv2d(2, 3, 3, padding=1), Tanh(), Flatten(), Linear(3 * 5 * 5, 3)], input_shape=(2, 5, 5))
        X, y, likelihood = g.standard_normal((6, 2, 5, 5)), np.arange(6) % 3, "classification"
    net.set_parameters(0.5 * g.standard_normal(net.num_parameters))
    return net, X, y, likelihood, 4


KINDS = ("mlp", "regression", "sequence", "cnn")


def prior_cases(tensors):
    return [
        {"prior_precision": 0.8},
        {"prior_precision": [0.5, 1.5, 0.8, 2.5][:tensors]},
        {"prior_precision": 1.3, "prior_mean": 0.2, "temperature": 2.0},
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_one_batch_equals_full_laplace_evidence(kind):
    net, X, y, likelihood, tensors = problem(kind)
    sigma = 0.7 if likelihood == "regression" else 1.0
    with net:
        for case in prior_cases(tensors):
            prior_mean = case.get("prior_mean", 0.0)
            temperature = case.get("temperature", 1.0)
            value, grad = ntk_evidence_bound(
                net, X, y, likelihood, case["prior_precision"], sigma_noise=sigma, temperature=temperature, prior_mean=prior_mean
            )
            with Laplace(
                net, likelihood, structure="full", prior_precision=case["prior_precision"], sigma_noise=sigma,
                temperature=temperature, prior_mean=prior_mean,
            ).fit(X, y, batch_size=4, progress=False) as la:
                expected, expected_grad, _ = la.log_marginal_likelihood_grad()
            assert abs(value - expected) <= KERNEL_FORM_RTOL * abs(expected), (case, value, expected)
            assert relative(grad, expected_grad) <= KERNEL_FORM_RTOL, (case, grad, expected_grad)


@pytest.mark.parametrize("kind", KINDS)
def test_partitions_are_lower_bounds(kind):
    net, X, y, likelihood, tensors = problem(kind)
    n = X.shape[0]
    with net:
        for case in prior_cases(tensors)[:2]:
            full, _ = ntk_evidence_bound(net, X, y, likelihood, case["prior_precision"])
            for batch_size in range(1, n):
                for grouped in (False, True) if likelihood == "classification" else (False,):
                    value, _ = ntk_evidence_bound(
                        net, X, y, likelihood, case["prior_precision"], batch_size=batch_size, group_by_class=grouped, seed=3
                    )
                    assert value <= full + FISCHER_SLACK * abs(full), (batch_size, grouped, value, full)


@pytest.mark.parametrize("independent", (False, True))
def test_batch_estimates_average_to_the_partitioned_value(independent):
    net, X, y, likelihood, _ = problem("mlp")
    with net:
        prior = [0.5, 1.5, 0.8, 2.5]
        value, grad = ntk_evidence_bound(net, X, y, likelihood, prior, batch_size=5, independent_outputs=independent, seed=1)
        outputs = range(net.num_outputs) if independent else (None,)
        estimates = [
            ntk_evidence_bound(
                net, X, y, likelihood, prior, batch_size=5, independent_outputs=independent, seed=1, batch_index=b, output_index=c
            )
            for b in range(2)
            for c in outputs
        ]
        assert abs(np.mean([e[0] for e in estimates]) - value) <= 1e-11 * abs(value)
        assert relative(np.mean([e[1] for e in estimates], axis=0), grad) <= 1e-11


@pytest.mark.parametrize("kind", ("mlp", "regression"))
@pytest.mark.parametrize("independent", (False, True))
def test_gradient_matches_finite_differences(kind, independent):
    net, X, y, likelihood, _ = problem(kind)
    prior = np.array([0.5, 1.5, 0.8, 2.5])
    options = dict(batch_size=4, independent_outputs=independent, seed=2, sigma_noise=0.7)
    with net:
        _, grad = ntk_evidence_bound(net, X, y, likelihood, prior, **options)
        numeric = []
        for k in range(prior.size):
            up, down = prior.copy(), prior.copy()
            up[k] *= np.exp(FD_STEP)
            down[k] *= np.exp(-FD_STEP)
            numeric.append(
                (ntk_evidence_bound(net, X, y, likelihood, up, **options)[0] - ntk_evidence_bound(net, X, y, likelihood, down, **options)[0])
                / (2 * FD_STEP)
            )
    assert relative(grad, numeric) <= FD_TOL, (grad, numeric)


def test_independent_outputs_exact_for_one_regression_output():
    g = rng(5)
    with Sequential([Linear(3, 5), Tanh(), Linear(5, 1)]) as net:
        net.set_parameters(0.5 * g.standard_normal(net.num_parameters))
        X, y = g.standard_normal((8, 3)), g.standard_normal(8)
        for batch_size in (None, 3):
            exact = ntk_evidence_bound(net, X, y, "regression", [0.5, 2.0, 1.5, 3.0], 0.4, batch_size=batch_size)
            independent = ntk_evidence_bound(
                net, X, y, "regression", [0.5, 2.0, 1.5, 3.0], 0.4, batch_size=batch_size, independent_outputs=True
            )
            assert abs(independent[0] - exact[0]) <= KERNEL_FORM_RTOL * abs(exact[0])
            assert relative(independent[1], exact[1]) <= KERNEL_FORM_RTOL


def test_bad_input():
    net, X, y, likelihood, _ = problem("mlp")
    with net:
        with pytest.raises(TypeError):
            ntk_evidence_bound("not a model", X, y)
        with pytest.raises(ShapeMismatchError):
            ntk_evidence_bound(net, X[:, :2], y)
        with pytest.raises(ShapeMismatchError):
            ntk_evidence_bound(net, X, y[:4])
        with pytest.raises(ShapeMismatchError, match="one per parameter tensor"):
            ntk_evidence_bound(net, X, y, prior_precision=[1.0, 2.0, 3.0])
        with pytest.raises(UnsupportedError, match="per parameter"):
            ntk_evidence_bound(net, X, y, prior_precision=np.ones(net.num_parameters))
        with pytest.raises(InvalidArgumentError):
            ntk_evidence_bound(net, X, y, prior_precision=0.0)
        with pytest.raises(InvalidArgumentError):
            ntk_evidence_bound(net, X, y, batch_size=0)
        with pytest.raises(InvalidArgumentError):
            ntk_evidence_bound(net, X, y, likelihood="poisson")
        with pytest.raises(InvalidArgumentError):
            ntk_evidence_bound(net, X, y + 1)  # label 3 of 3 classes
        with pytest.raises(InvalidArgumentError, match="batch_index"):
            ntk_evidence_bound(net, X, y, batch_size=5, batch_index=2)
        with pytest.raises(InvalidArgumentError, match="independent outputs"):
            ntk_evidence_bound(net, X, y, batch_size=5, batch_index=0, output_index=0)
        with pytest.raises(InvalidArgumentError, match="group_by_class"):
            ntk_evidence_bound(net, X, np.zeros((10, 3)), "regression", group_by_class=True)
        with pytest.raises(NonFiniteInputError):
            bad = X.copy()
            bad[1, 1] = np.nan
            ntk_evidence_bound(net, bad, y)
        with pytest.raises(NonFiniteInputError):
            ntk_evidence_bound(net, X, y, prior_precision=np.inf)


def test_params_struct_mirrors_header(tmp_path):
    struct = _lib.bdl_ntk_bound_params
    header = header_struct_declarations(struct.__name__)
    assert [name for _, name, _ in header] == [name for name, _ in struct._fields_]
    for (ctype, name, is_pointer), (_, pytype) in zip(header, struct._fields_):
        expected = ctypes.POINTER(CTYPES_OF_FIELD[ctype]) if is_pointer else CTYPES_OF_FIELD[ctype]
        assert pytype is expected, name
    test_struct_layout_matches_c_compiler(tmp_path, struct)
    defaults = struct()
    assert _lib.lib.bdl_ntk_bound_params_init(ctypes.byref(defaults)) == 0
    assert (defaults.batch_size, defaults.batch_index, defaults.output_index) == (0, -1, -1)
    assert bdlcore.ntk_evidence_bound is ntk_evidence_bound
