"""Marginal-likelihood training (bdlcore.train_marglik) and unit-wise priors.

Checked against their definitions: the evidence rises from one hyperparameter step to the next
and the kept posterior is the best step's and stationary; with no step the MAP part is
bit-identical to Sequential.fit; on the diabetes data a linear model's learned (δ, σ) equal the
closed-form optimum of Bayesian linear regression (MacKay's fixed point, computed here in numpy).
"""

import numpy as np
import pytest

import bdlcore
from bdlcore import InvalidArgumentError, Laplace, Linear, Sequential, ShapeMismatchError, Tanh, train_marglik

# Stationarity of each solve: the library's default tolerance for train_marglik.
STATIONARY = 1e-6


def problem(seed=0, n=40):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 0.7)
    return X, y


def network(seed=3):
    return Sequential([Linear(4, 8), Tanh(), Linear(8, 3)], seed=seed)


@pytest.mark.parametrize("prior_structure", ["scalar", "layerwise", "diag", "unitwise"])
def test_evidence_rises_and_the_best_step_is_kept(prior_structure):
    X, y = problem()
    with network() as net:
        reports = []
        result = train_marglik(
            net, X, y, prior_structure=prior_structure, epochs=10, marglik_frequency=2, burnin=2, lr=0.03,
            batch_size=8, progress=lambda r: reports.append(r),
        )
        with result.laplace as la:
            assert result.model is net and reports == result.history and len(reports) == 10
            steps = [r["log_marglik"] for r in result.history if r["log_marglik"] is not None]
            assert [r["epoch"] for r in result.history if r["log_marglik"] is not None] == [4, 6, 8, 10]
            assert all(b > a for a, b in zip(steps, steps[1:])), steps
            assert result.history[result.best_epoch - 1]["log_marglik"] == max(steps)
            assert la.log_marginal_likelihood() == pytest.approx(max(steps), rel=1e-12)
            expected = {"scalar": 1, "layerwise": 4, "diag": net.num_parameters, "unitwise": net.num_parameters}
            assert la.prior_precision.size == expected[prior_structure]
            if prior_structure != "unitwise":
                _, grad, _ = la.log_marginal_likelihood_grad()
                assert np.linalg.norm(grad) < STATIONARY


def test_without_hyperparameter_steps_the_map_part_equals_fit():
    X, y = problem(1)
    options = dict(epochs=4, lr=0.01, batch_size=8, seed=5, prior_precision=0.5)
    with network() as a, network() as b:
        result = train_marglik(a, X, y, burnin=4, progress=False, **options)
        b.fit(X, y, progress=False, **options)
        assert result.best_epoch == 0 and all(r["log_marglik"] is None for r in result.history)
        np.testing.assert_array_equal(a.parameters, b.parameters)
        result.laplace.close()


def test_linear_model_learns_the_closed_form_optimum():
    X, y, _, _ = bdlcore.datasets.load_diabetes()
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    n, d = X.shape
    # MacKay's fixed point δ = γ/‖θ‖², σ² = RSS/(N − γ) for y = Xθ + ε, θ ~ N(0, I/δ).
    s, V = np.linalg.eigh(X.T @ X)
    delta, sigma = 1.0, 1.0
    for _ in range(10000):
        theta = V @ ((V.T @ X.T @ y) / (s + delta * sigma**2))
        gamma = np.sum(s / (s + delta * sigma**2))
        delta, sigma = gamma / (theta @ theta), np.sqrt(np.sum((y - X @ theta) ** 2) / (n - gamma))
    with Sequential([Linear(d, 1, bias=False)]) as net:
        result = train_marglik(
            net, X, y[:, None], likelihood="regression", structure="full", prior_structure="scalar", epochs=2000,
            marglik_frequency=50, optimizer="sgd", momentum=0.9, lr=0.1, batch_size=n, tol=1e-10, progress=False,
        )
        with result.laplace as la:
            np.testing.assert_allclose([la.prior_precision[0], la.sigma_noise], [delta, sigma], rtol=1e-6)


def test_masks_survive_training_and_unitwise_beats_layerwise():
    X, y = problem(2)
    with network() as net:
        mask = (np.arange(net.num_parameters) % 4 != 1).astype(float)
        result = train_marglik(net, X, y, epochs=3, lr=0.02, batch_size=8, mask=mask, progress=False)
        result.laplace.close()
        assert np.all(net.parameters[mask == 0] == 0)
        net.fit(X, y, epochs=2, mask=mask, progress=False)
        assert np.all(net.parameters[mask == 0] == 0) and np.all(net.parameters[mask == 1] != 0)
        with Laplace(net, structure="full").fit(X, y) as la:
            layerwise = la.optimize_prior_precision("layerwise", tol=1e-9).log_marginal_likelihood
            unitwise = la.optimize_prior_precision("unitwise")
            assert unitwise.converged and unitwise.log_marginal_likelihood >= layerwise - 1e-9 * abs(layerwise)
        with pytest.raises(ShapeMismatchError):
            net.fit(X, y, epochs=1, mask=mask[:-1], progress=False)
        with pytest.raises(InvalidArgumentError):
            net.fit(X, y, epochs=1, mask=0.5 * mask, progress=False)


@pytest.mark.parametrize(
    "bad",
    [dict(marglik_frequency=0), dict(burnin=-1), dict(prior_structure="rows"), dict(structure="dense"),
     dict(prior_precision=0.0), dict(approx="both"), dict(lr=-1.0), dict(optimize_sigma=2)],
)
def test_bad_options_leave_the_model_unchanged(bad):
    X, y = problem(3)
    with network() as net:
        before = net.parameters.copy()
        with pytest.raises(InvalidArgumentError):
            train_marglik(net, X, y, epochs=2, progress=False, **bad)
        np.testing.assert_array_equal(net.parameters, before)
    with network() as net, pytest.raises(ShapeMismatchError):
        train_marglik(net, X, y[:-1], epochs=1, progress=False)
    with pytest.raises(TypeError):
        train_marglik("net", X, y)


def test_ntk_bound_objective_with_one_batch_follows_the_full_laplace_evidence():
    X, y = problem(4, n=20)
    options = dict(epochs=4, marglik_frequency=2, lr=0.02, batch_size=5, structure="full", tol=1e-9, progress=False)
    with network() as a, network() as b:
        laplace = train_marglik(a, X, y, **options)
        bound = train_marglik(b, X, y, objective="ntk_bound", **options)
        steps = [[r["log_marglik"] for r in res.history if r["log_marglik"] is not None] for res in (laplace, bound)]
        np.testing.assert_allclose(steps[1], steps[0], rtol=1e-7)
        np.testing.assert_allclose(bound.laplace.prior_precision, laplace.laplace.prior_precision, rtol=1e-5)
        laplace.laplace.close()
        bound.laplace.close()
        # Batches of 5: each step maximises a lower bound of that step's full evidence.
        partitioned = train_marglik(b, X, y, objective="ntk_bound", bound_batch_size=5, group_by_class=True, **options)
        with partitioned.laplace as la:
            assert la.prior_precision.size == 4
        with pytest.raises(InvalidArgumentError):
            train_marglik(b, X, y, objective="ntk_bound", prior_structure="diag", epochs=1, progress=False)
        with pytest.raises(InvalidArgumentError):
            train_marglik(b, X, y, objective="bound", epochs=1, progress=False)
