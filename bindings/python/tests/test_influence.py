"""Influence scores (bdlcore.Influence) and their evaluation (bdlcore.evaluation).

Scores are checked against the definition τ = ∇m_qᵀ (G + λI)⁻¹ ∇ℓ_j evaluated densely in numpy:
per-example gradients from Sequential.per_example_gradients, G from the curvature objects'
dense matrices (KFAC/EKFAC/DiagGGN/GGN.to_dense), λ recomputed from G for relative damping.
Against kronfluence through the fixtures in Tests/Fixtures/influence (made by
scripts/generate_influence_fixtures.py; see the README there), so no PyTorch is needed.
The evaluations retrain small logistic regressions.
"""

import gc
import json
import os

import numpy as np
import pytest

import bdlcore
from bdlcore import (
    EKFAC,
    GGN,
    KFAC,
    DiagGGN,
    Influence,
    InvalidArgumentError,
    Linear,
    MeanOverSequence,
    NonFiniteInputError,
    NotPositiveDefiniteError,
    Sequential,
    ShapeMismatchError,
    Tanh,
    UnsupportedError,
    WrongStateError,
)
from bdlcore import evaluation

from _support import REPO_ROOT, model_from_fixture, read_fixture, rng

# Scores vs the dense float64 formula. Both sides solve the same P ≤ 60 system (condition
# ≤ ~1e4 with λ = 0.1 × the mean eigenvalue), so the observed error is ~1e-14 relative to the
# largest score; 1e-10 (the bound) still catches any missing factor, transposition or
# wrong λ by many orders.
DENSE_RTOL = 1e-10
# Identities between two routes through the library (margin vs its cotangent, logprob vs loss,
# self-influence vs the diagonal of the training scores): the same arithmetic up to summation
# order, observed ≤ 1e-15 relative.
ROUTE_RTOL = 1e-12
# kronfluence on the bias-free model: the README's mapping is exact (it verified 1e-14 itself).
KRONFLUENCE_RTOL = 1e-10
# kronfluence with biases (appended-bias blocks vs our separate bias blocks): ranks only. The
# README reports Spearman over all pairs ≥ 0.90 and per query row ≥ 0.83 (EK-FAC, exact and
# empirical Fisher); these bounds leave a margin for summation-order noise and still fail for
# unrelated or sign-flipped scores (Spearman ≈ 0 or −0.9).
KRONFLUENCE_SPEARMAN_ALL = 0.85
KRONFLUENCE_SPEARMAN_ROW = 0.75

FIXTURE_DIR = os.path.join(REPO_ROOT, "Tests", "Fixtures", "influence")
CURVATURES = ("ekfac", "kfac", "diag", "ggn")


# ---------------------------------------------------------------------------------------------
# Problems and dense references
# ---------------------------------------------------------------------------------------------


def make_problem(likelihood="classification", sequence=False, n=24, queries=4, seed=0):
    """A small trained network with training set and queries: (net, X, y, Xq, yq)."""
    g = rng(seed)
    C = 3 if likelihood == "classification" else 2
    if sequence:
        shape = (3, 2)
        layers = [Linear(2, 4), Tanh(), MeanOverSequence(), Linear(4, C)]
    else:
        shape = (3,)
        layers = [Linear(3, 5), Tanh(), Linear(5, C)]
    X = g.standard_normal((n,) + shape)
    Xq = g.standard_normal((queries,) + shape)
    if likelihood == "classification":
        y, yq = g.integers(0, C, n), g.integers(0, C, queries)
    else:
        y, yq = g.standard_normal((n, C)), g.standard_normal((queries, C))
    net = Sequential(layers, input_shape=shape, seed=seed + 1)
    net.fit(X, y, likelihood=likelihood, epochs=20, lr=0.05, batch_size=8, progress=False)
    return net, X, y, Xq, yq


@pytest.fixture(scope="module")
def classification():
    problem = make_problem("classification")
    yield problem
    problem[0].close()


@pytest.fixture(scope="module")
def regression():
    problem = make_problem("regression", seed=5)
    yield problem
    problem[0].close()


def softmax(f):
    z = np.exp(f - f.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def loss_cotangent(net, X, y, likelihood="classification"):
    """∂ℓ/∂f at the labels: p − e_y, or f − y."""
    f = net(X)
    if likelihood == "regression":
        return f - np.asarray(y, dtype=np.float64).reshape(f.shape)
    return softmax(f) - np.eye(f.shape[1])[np.asarray(y)]


def margin_cotangent(net, X, y):
    """e_y − e_{c*}, c* the largest other logit."""
    f = net(X)
    V = np.zeros_like(f)
    for q, label in enumerate(y):
        others = f[q].copy()
        others[label] = -np.inf
        V[q, label] = 1.0
        V[q, int(np.argmax(others))] = -1.0
    return V


def gradients(net, X, V):
    """Rows ∇_θ⟨f(x_n), V_n⟩, (N, P), from the library's per-example gradients."""
    return net.per_example_gradients(X, V[:, None, :])[:, 0, :]


def tensor_ranges(net):
    """The parameter tensors' index ranges in θ: each Linear weight, then its bias."""
    ranges, start = [], 0
    for layer in net.layers:
        if isinstance(layer, Linear):
            sizes = [layer.out_features * layer.in_features] + ([layer.out_features] if layer.bias else [])
            for size in sizes:
                ranges.append(range(start, start + size))
                start += size
    assert start == net.num_parameters
    return ranges


def dense_curvature(net, X, y, likelihood, curvature, fisher="exact", approx="expand", mc_samples=1, seed=0, batch_size=256):
    """G (P × P) of the curvature object that Influence uses."""
    common = dict(likelihood=likelihood, fisher=fisher, mc_samples=mc_samples, seed=seed, batch_size=batch_size)
    if curvature in ("kfac", "ekfac"):
        cls = KFAC if curvature == "kfac" else EKFAC
        with cls(net, X, y, approx=approx, **common) as G:
            return G.to_dense()
    cls = DiagGGN if curvature == "diag" else GGN
    with cls(net, X, y, **common) as G:
        return G.to_dense()


def damping_vector(net, G, damping, relative):
    """λ per parameter: damping, or damping × mean diag(G) over each parameter tensor."""
    lam = np.full(G.shape[0], float(damping))
    if relative:
        d = np.diag(G)
        for r in tensor_ranges(net):
            lam[list(r)] = damping * d[list(r)].mean()
    return lam


def dense_scores(query_gradients, G, lam, train_gradients):
    """∇m_q (G + diag λ)⁻¹ ∇ℓ_jᵀ for all pairs."""
    return query_gradients @ np.linalg.solve(G + np.diag(lam), train_gradients.T)


def assert_close(got, want, what, rtol):
    """max|got − want| ≤ rtol · max|want|, reporting the worst entry."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    scale = float(np.max(np.abs(want))) or 1.0
    err = np.abs(got - want)
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert err[worst] <= rtol * scale, (
        f"{what}: max |error| {err[worst]:.3e} at {worst} (got {got[worst]!r}, want {want[worst]!r}) "
        f"> {rtol:g} × max|want| {scale:.3e}"
    )
    return err[worst] / scale


def ranks(values):
    """1-based ranks, ties averaged."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    result = np.empty(values.size)
    i = 0
    while i < values.size:
        j = i
        while j + 1 < values.size and values[order[j + 1]] == values[order[i]]:
            j += 1
        result[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return result


def spearman(a, b):
    return float(np.corrcoef(ranks(np.ravel(a)), ranks(np.ravel(b)))[0, 1])


# ---------------------------------------------------------------------------------------------
# Scores against their definition
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("likelihood", ["classification", "regression"])
def test_identity_scores_are_gradient_dot_products(classification, regression, likelihood):
    net, X, y, Xq, yq = classification if likelihood == "classification" else regression
    Gq = gradients(net, Xq, loss_cotangent(net, Xq, yq, likelihood))
    Gt = gradients(net, X, loss_cotangent(net, X, y, likelihood))
    # The damping is unused by the identity curvature, whatever its value.
    with Influence(
        net, X, y, likelihood=likelihood, curvature="identity", damping=5.0, batch_size=5, progress=False
    ) as influence:
        assert influence.curvature == "identity" and influence.n_train == len(X)
        assert_close(influence.scores(Xq, yq), Gq @ Gt.T, "identity scores", ROUTE_RTOL)
        assert_close(influence.self_influence(), np.einsum("np,np->n", Gt, Gt), "identity self-influence", ROUTE_RTOL)


@pytest.mark.parametrize("curvature", CURVATURES)
@pytest.mark.parametrize("relative", [True, False])
@pytest.mark.parametrize("likelihood", ["classification", "regression"])
def test_scores_equal_the_dense_formula(classification, regression, curvature, relative, likelihood):
    net, X, y, Xq, yq = classification if likelihood == "classification" else regression
    damping = 0.1 if relative else 0.7
    with Influence(
        net, X, y, likelihood=likelihood, curvature=curvature, damping=damping, relative_damping=relative,
        batch_size=5, progress=False,
    ) as influence:
        got = influence.scores(Xq, yq)
        got_self = influence.self_influence()
        assert influence.curvature == curvature
    G = dense_curvature(net, X, y, likelihood, curvature)
    lam = damping_vector(net, G, damping, relative)
    Gt = gradients(net, X, loss_cotangent(net, X, y, likelihood))
    want = dense_scores(gradients(net, Xq, loss_cotangent(net, Xq, yq, likelihood)), G, lam, Gt)
    assert_close(got, want, f"{curvature} scores", DENSE_RTOL)
    want_self = np.einsum("np,np->n", Gt, np.linalg.solve(G + np.diag(lam), Gt.T).T)
    assert_close(got_self, want_self, f"{curvature} self-influence", DENSE_RTOL)


@pytest.mark.parametrize("curvature", ["kfac", "ekfac"])
@pytest.mark.parametrize("approx", ["expand", "reduce"])
def test_kronecker_scores_on_sequences_follow_the_approximation(curvature, approx):
    """A Linear shared over T positions: expand and reduce give different G; each matches its own."""
    net, X, y, Xq, yq = make_problem(sequence=True, seed=11)
    with net:
        with Influence(net, X, y, curvature=curvature, approx=approx, batch_size=7, progress=False) as influence:
            got = influence.scores(Xq, yq)
        G = dense_curvature(net, X, y, "classification", curvature, approx=approx)
        other = dense_curvature(net, X, y, "classification", curvature, approx="reduce" if approx == "expand" else "expand")
        assert np.abs(G - other).max() > 1e-3 * np.abs(G).max(), "expand and reduce should differ here"
        lam = damping_vector(net, G, 0.1, True)
        want = dense_scores(
            gradients(net, Xq, loss_cotangent(net, Xq, yq)), G, lam, gradients(net, X, loss_cotangent(net, X, y))
        )
        assert_close(got, want, f"{curvature}/{approx} scores", DENSE_RTOL)


@pytest.mark.parametrize("fisher", ["empirical", "mc"])
@pytest.mark.parametrize("curvature", ["ekfac", "ggn"])
def test_fisher_variants_equal_the_dense_formula(classification, fisher, curvature):
    net, X, y, Xq, yq = classification
    options = dict(fisher=fisher, mc_samples=3, seed=17, batch_size=5)
    with Influence(net, X, y, curvature=curvature, progress=False, **options) as influence:
        got = influence.scores(Xq, yq)
    G = dense_curvature(net, X, y, "classification", curvature, **options)
    lam = damping_vector(net, G, 0.1, True)
    want = dense_scores(gradients(net, Xq, loss_cotangent(net, Xq, yq)), G, lam, gradients(net, X, loss_cotangent(net, X, y)))
    assert_close(got, want, f"{curvature}/{fisher} scores", DENSE_RTOL)
    if fisher == "empirical":
        # The empirical Fisher differs from the exact GGN: a wrong `fisher` mapping would pass
        # the comparison above only by accident.
        exact = dense_curvature(net, X, y, "classification", curvature, batch_size=5)
        assert np.abs(exact - G).max() > 1e-3 * np.abs(G).max()


@pytest.mark.parametrize("curvature", CURVATURES + ("identity",))
def test_self_influence_is_the_diagonal_of_training_scores(classification, curvature):
    net, X, y, _, _ = classification
    with Influence(net, X, y, curvature=curvature, batch_size=5, progress=False) as influence:
        assert_close(influence.self_influence(), np.diag(influence.scores(X, y)), f"{curvature} self vs diag", ROUTE_RTOL)


def test_sign_positive_means_removing_raises_the_measurement():
    """Exact-Hessian influence of L2-regularised logistic regression vs leave-one-out retraining:
    same sign and close values (the first-order prediction of removing one example)."""
    g = rng(21)
    n, d, prior = 60, 2, 1.0
    X = g.standard_normal((n, d))
    y = (1.5 * X[:, 0] - X[:, 1] + 0.5 * g.standard_normal(n) > 0).astype(np.int64)
    Xq, yq = np.array([[0.3, -0.2], [-1.0, 0.4]]), np.array([1, 0])
    options = dict(epochs=400, lr=0.1, batch_size=n, prior_precision=prior, progress=False)
    with Sequential([Linear(d, 2)], seed=3) as net:
        net.fit(X, y, **options)
        theta = net.parameters
        # The Hessian of Σℓ + ½δ‖θ‖² is G + δI: the GGN with absolute damping δ.
        with Influence(net, X, y, curvature="ggn", damping=prior, relative_damping=False, progress=False) as influence:
            tau = influence.scores(Xq, yq)
        before = -np.log(softmax(net(Xq))[np.arange(2), yq])
        predicted, actual = [], []
        for j in range(0, n, 6):
            keep = np.arange(n) != j
            net.set_parameters(theta)
            net.fit(X[keep], y[keep], **dict(options, batch_size=n - 1))
            after = -np.log(softmax(net(Xq))[np.arange(2), yq])
            predicted.append(tau[:, j])
            actual.append(after - before)
    predicted, actual = np.array(predicted).ravel(), np.array(actual).ravel()
    r = np.corrcoef(predicted, actual)[0, 1]
    assert r > 0.95, f"Pearson {r} between predicted and actual leave-one-out changes"
    big = np.abs(actual) > 0.1 * np.abs(actual).max()
    assert np.all(np.sign(predicted[big]) == np.sign(actual[big])), (predicted, actual)


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def test_measurements(classification):
    net, X, y, Xq, yq = classification
    with Influence(net, X, y, curvature="kfac", batch_size=5, progress=False) as influence:
        loss = influence.scores(Xq, yq)
        # log p = −loss, for its gradient and hence its scores.
        assert_close(influence.scores(Xq, yq, measurement="logprob"), -loss, "logprob = −loss", ROUTE_RTOL)
        # The margin is defined by its cotangent e_y − e_{c*}.
        margin = influence.scores(Xq, yq, measurement="margin")
        V = margin_cotangent(net, Xq, yq)
        assert_close(influence.scores(Xq, cotangents=V), margin, "margin = its cotangent", ROUTE_RTOL)
        assert_close(influence.scores(Xq, None, "cotangent", V), margin, "explicit 'cotangent'", ROUTE_RTOL)
        # The loss as a cotangent p − e_y.
        assert_close(influence.scores(Xq, cotangents=loss_cotangent(net, Xq, yq)), loss, "loss as a cotangent", ROUTE_RTOL)
        assert np.abs(margin - loss).max() > 1e-3 * np.abs(loss).max()
    with Influence(net, X, y, curvature="kfac", measurement="margin", batch_size=5, progress=False) as influence:
        assert influence.measurement == "margin"
        assert_close(influence.scores(Xq, yq), margin, "constructor's measurement", ROUTE_RTOL)
        # top_k follows the constructor's measurement.
        assert np.array_equal(influence.top_k(Xq, yq, 3)[0], bdlcore.influence.top_k(margin, 3)[0])


def test_regression_measurements(regression):
    net, X, y, Xq, yq = regression
    with pytest.raises(UnsupportedError):
        Influence(net, X, y, likelihood="regression", measurement="margin")
    with Influence(net, X, y, likelihood="regression", curvature="diag", progress=False) as influence:
        with pytest.raises(UnsupportedError):
            influence.scores(Xq, yq, measurement="logprob")
        loss = influence.scores(Xq, yq)
        assert_close(influence.scores(Xq, cotangents=net(Xq) - yq), loss, "regression loss = cotangent f − y", ROUTE_RTOL)


# ---------------------------------------------------------------------------------------------
# Top-k
# ---------------------------------------------------------------------------------------------


def test_top_k_order_and_ties():
    scores = np.array([[0.3, -1.0, 2.0, 0.3], [-0.5, 0.1, 0.0, 0.2]])
    helpful, harmful = bdlcore.influence.top_k(scores, 2)
    assert helpful.dtype == np.int64 and helpful.shape == (2, 2)
    assert helpful.tolist() == [[2, 0], [3, 1]]  # 0.3 at 0 and 3: the lower index first
    assert harmful.tolist() == [[1, 0], [0, 2]]
    helpful, harmful = bdlcore.influence.top_k(scores, 4)
    assert helpful.tolist() == [[2, 0, 3, 1], [3, 1, 2, 0]]
    assert harmful.tolist() == [[1, 0, 3, 2], [0, 2, 1, 3]]
    helpful, harmful = bdlcore.influence.top_k(np.zeros(5), 3)  # all tied: index order both ways
    assert helpful.tolist() == [0, 1, 2] and harmful.tolist() == [0, 1, 2]
    with pytest.raises(InvalidArgumentError):
        bdlcore.influence.top_k(scores, 5)
    with pytest.raises(InvalidArgumentError):
        bdlcore.influence.top_k(scores, 0)
    with pytest.raises(NonFiniteInputError):
        bdlcore.influence.top_k(np.array([[1.0, np.nan]]), 1)
    with pytest.raises(ShapeMismatchError):
        bdlcore.influence.top_k(np.zeros((2, 2, 2)), 1)


def test_top_k_method_matches_a_stable_sort_of_the_scores(classification):
    net, X, y, Xq, yq = classification
    with Influence(net, X, y, batch_size=5, progress=False) as influence:
        scores = influence.scores(Xq, yq)
        helpful, harmful = influence.top_k(Xq, yq, 5)
        assert helpful.shape == harmful.shape == (len(Xq), 5)
        assert np.array_equal(helpful, np.argsort(-scores, axis=1, kind="stable")[:, :5])
        assert np.array_equal(harmful, np.argsort(scores, axis=1, kind="stable")[:, :5])
        assert np.all(np.diff(np.take_along_axis(scores, helpful, 1), axis=1) <= 0)
        with pytest.raises(InvalidArgumentError):
            influence.top_k(Xq, yq, len(X) + 1)


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def logistic_problem(seed=31, n=40, queries=6):
    """Logistic regression with features on different scales (so that the curvature matters)."""
    g = rng(seed)
    scales = np.array([3.0, 1.0, 0.3, 0.1])
    X = g.standard_normal((n, 4)) * scales
    y = (X[:, 0] / 3 + 7 * X[:, 2] + 0.6 * g.standard_normal(n) > 0).astype(np.int64)
    Xq = g.standard_normal((queries, 4)) * scales
    yq = (Xq[:, 0] / 3 + 7 * Xq[:, 2] > 0).astype(np.int64)
    return X, y, Xq, yq


#: Full-batch training that converges (so retraining from the same start is well-posed).
LOGISTIC_TRAINING = dict(epochs=300, lr=0.05, batch_size=40, prior_precision=1.0)


def exact_influence_scores(init, X, y, Xq, yq):
    """Scores of the exact Hessian of the MAP objective Σℓ + ½‖θ‖² at the trained parameters."""
    with Sequential(init.layers, seed=0) as trained:
        trained.set_parameters(init.parameters)
        trained.fit(X, y, progress=False, **LOGISTIC_TRAINING)
        with Influence(trained, X, y, curvature="ggn", damping=1.0, relative_damping=False, progress=False) as influence:
            return influence.scores(Xq, yq), influence.self_influence()


def test_lds_is_reproducible_bounded_and_high_for_exact_influence():
    X, y, Xq, yq = logistic_problem()
    with Sequential([Linear(4, 2)], seed=2) as init:
        theta0 = init.parameters
        scores, _ = exact_influence_scores(init, X, y, Xq, yq)
        steps = []
        result = evaluation.lds(
            init, X, y, Xq, yq, scores, subsets=12, seed=7, progress=lambda done, total: steps.append((done, total)),
            **LOGISTIC_TRAINING,
        )
        again = evaluation.lds(init, X, y, Xq, yq, scores, 12, 0.5, 7, progress=False, **LOGISTIC_TRAINING)
        other = evaluation.lds(init, X, y, Xq, yq, scores, subsets=12, seed=8, progress=False, **LOGISTIC_TRAINING)
        assert np.array_equal(init.parameters, theta0), "the model itself is not retrained"
        # Gradient dot products ignore the very different feature scales.
        with Sequential([Linear(4, 2)], seed=2) as trained:
            trained.set_parameters(theta0)
            trained.fit(X, y, progress=False, **LOGISTIC_TRAINING)
            with Influence(trained, X, y, curvature="identity", progress=False) as influence:
                dot = evaluation.lds(
                    init, X, y, Xq, yq, influence.scores(Xq, yq), subsets=12, seed=7, progress=False, **LOGISTIC_TRAINING
                )
    assert steps == [(m, 12) for m in range(1, 13)]
    assert result.subset_seeds.shape == (12,) and result.subset_seeds.dtype == np.uint64
    assert np.array_equal(result.subset_seeds, again.subset_seeds) and len(set(result.subset_seeds.tolist())) == 12
    assert not np.array_equal(result.subset_seeds, other.subset_seeds)
    assert result.per_query.shape == (len(Xq),)
    assert np.array_equal(result.per_query, again.per_query) and result.mean == again.mean, "reproducible from its seed"
    assert not np.array_equal(result.per_query, other.per_query), "another seed draws other subsets"
    for r in (result, other, dot):
        defined = r.per_query[~np.isnan(r.per_query)]
        assert defined.size == len(Xq)
        assert np.all(np.abs(defined) <= 1) and abs(r.mean) <= 1
        assert r.mean == pytest.approx(defined.mean(), rel=1e-15)
    assert result.mean > 0.8, f"LDS of exact-Hessian influence {result.mean}"
    assert result.mean > dot.mean, f"exact Hessian {result.mean} vs gradient dot products {dot.mean}"


def test_retrain_without_top_k_removes_more_than_random():
    """Removing each query's top-k helpful examples raises its loss more than removing k random
    ones. Per query this could fail by chance for a query the model barely depends on, so the
    check is statistical: on average over 6 queries, and for at least 5 of them."""
    X, y, Xq, yq = logistic_problem(seed=41)
    with Sequential([Linear(4, 2)], seed=2) as init:
        theta0 = init.parameters
        scores, _ = exact_influence_scores(init, X, y, Xq, yq)
        result = evaluation.retrain_without_top_k(init, X, y, Xq, yq, scores, 5, seed=3, **LOGISTIC_TRAINING)
        again = evaluation.retrain_without_top_k(init, X, y, Xq, yq, scores, k=5, seed=3, **LOGISTIC_TRAINING)
        assert np.array_equal(init.parameters, theta0)
    top, random = result
    assert top.shape == random.shape == (len(Xq),)
    assert np.all(np.isfinite(top)) and np.all(np.isfinite(random))
    assert np.array_equal(top, again.without_top_k) and np.array_equal(random, again.without_random)
    assert np.all(top > 0), f"removing helpful examples raises the loss: {top}"
    assert top.mean() > random.mean() + 0.05, (top, random)
    assert np.sum(top > random) >= 5, (top, random)


def test_evaluation_bad_input():
    X, y, Xq, yq = logistic_problem(n=12, queries=2)
    scores = np.zeros((2, 12))
    quick = dict(epochs=2, batch_size=12)
    with Sequential([Linear(4, 2)], seed=2) as init:
        with pytest.raises(ShapeMismatchError):
            evaluation.lds(init, X, y, Xq, yq, scores.T, subsets=3, **quick)
        with pytest.raises(ShapeMismatchError):
            evaluation.retrain_without_top_k(init, X, y, Xq[:, :3], yq, scores, 2, **quick)
        with pytest.raises(InvalidArgumentError):
            evaluation.lds(init, X, y, Xq, yq, scores, subsets=1, **quick)
        with pytest.raises(InvalidArgumentError):
            evaluation.lds(init, X, y, Xq, yq, scores, subsets=3, fraction=1.5, **quick)
        with pytest.raises(InvalidArgumentError):
            evaluation.lds(init, X, y, Xq, None, scores, subsets=3, **quick)
        with pytest.raises(InvalidArgumentError):
            evaluation.lds(init, X, y, Xq, yq, scores, subsets=3, optimizer="lbfgs", **quick)
        with pytest.raises(InvalidArgumentError):
            evaluation.retrain_without_top_k(init, X, y, Xq, yq, scores, 12, **quick)
        with pytest.raises(InvalidArgumentError):
            evaluation.retrain_without_top_k(init, X, y, Xq, yq, scores, 0, **quick)
        with pytest.raises(ShapeMismatchError):
            evaluation.lds(init, X, y, Xq, None, scores, subsets=3, measurement="cotangent", cotangents=np.zeros((2, 3)), **quick)
        with pytest.raises(TypeError):
            evaluation.lds("net", X, y, Xq, yq, scores, subsets=3, **quick)
        # A cotangent measurement needs no labels.
        result = evaluation.lds(
            init, X, y, Xq, None, scores + np.arange(12), subsets=3, measurement="cotangent",
            cotangents=np.array([[1.0, -1.0], [0.0, 1.0]]), progress=False, **quick,
        )
        assert result.per_query.shape == (2,)
    with pytest.raises(WrongStateError):
        evaluation.lds(init, X, y, Xq, yq, scores, subsets=3, **quick)


# ---------------------------------------------------------------------------------------------
# Errors, lifetime, progress
# ---------------------------------------------------------------------------------------------


def test_bad_input(classification):
    net, X, y, Xq, yq = classification
    with pytest.raises(InvalidArgumentError):
        Influence(net, X, y, damping=-0.1)
    with pytest.raises(InvalidArgumentError):
        Influence(net, X, y, damping=-1.0, relative_damping=False)
    with pytest.raises(NonFiniteInputError):
        Influence(net, X, y, damping=np.nan)
    with pytest.raises(InvalidArgumentError):
        Influence(net, X, y, curvature="hessian")
    with pytest.raises(InvalidArgumentError):
        Influence(net, X, y, measurement="cotangent")
    with pytest.raises(InvalidArgumentError):
        Influence(net, X, y, batch_size=0)
    with pytest.raises(InvalidArgumentError):
        Influence(net, X, y, damping="big")
    with pytest.raises(ShapeMismatchError):
        Influence(net, X, y[:-1])
    with pytest.raises(InvalidArgumentError):
        Influence(net, X, np.full(len(X), 7))
    with pytest.raises(TypeError):
        Influence("net", X, y)
    # λ = 0 with a singular curvature: softmax is shift-invariant, so the GGN has a null space.
    with pytest.raises(NotPositiveDefiniteError):
        with Influence(net, X, y, curvature="ggn", damping=0.0, relative_damping=False, progress=False) as influence:
            influence.scores(Xq, yq)
    with Influence(net, X, y, curvature="kfac", progress=False) as influence:
        with pytest.raises(ShapeMismatchError):
            influence.scores(np.zeros((2, 4)), yq[:2])  # wrong query width
        with pytest.raises(ShapeMismatchError):
            influence.scores(Xq, yq[:-1])
        with pytest.raises(InvalidArgumentError):
            influence.scores(Xq)  # the loss needs y_query
        with pytest.raises(InvalidArgumentError):
            influence.scores(Xq, measurement="cotangent")
        with pytest.raises(InvalidArgumentError):
            influence.scores(Xq, yq, measurement="loss", cotangents=np.zeros((len(Xq), 3)))
        with pytest.raises(ShapeMismatchError):
            influence.scores(Xq, cotangents=np.zeros((len(Xq), 2)))
        with pytest.raises(NonFiniteInputError):
            influence.scores(Xq, cotangents=np.full((len(Xq), 3), np.inf))
        with pytest.raises(InvalidArgumentError):
            influence.top_k(Xq, yq, len(X) + 1)  # k > n_train
        with Sequential([Linear(3, 4), Tanh(), Linear(4, 3)]) as other:  # same inputs, another size
            with pytest.raises(ShapeMismatchError):
                influence.scores(Xq, yq, model=other)
            with pytest.raises(ShapeMismatchError):
                influence.self_influence(model=other)


def test_closed_objects(classification):
    net, X, y, Xq, yq = classification
    influence = Influence(net, X, y, curvature="diag", progress=False)
    influence.close()
    influence.close()  # idempotent
    assert influence.closed and "closed" in repr(influence)
    for call in (lambda: influence.scores(Xq, yq), influence.self_influence, lambda: influence.top_k(Xq, yq, 2)):
        with pytest.raises(WrongStateError):
            call()
    with pytest.raises(WrongStateError):
        influence.n_train
    with pytest.raises(WrongStateError):
        with influence:
            pass
    with Sequential(net.layers) as doomed:
        doomed.set_parameters(net.parameters)
        with Influence(doomed, X, y, curvature="diag", progress=False) as live:
            doomed.close()
            with pytest.raises(WrongStateError):
                live.scores(Xq, yq)
    with pytest.raises(WrongStateError):
        Influence(doomed, X, y)


def test_live_handles_return_to_zero(classification):
    net, X, y, Xq, yq = classification
    gc.collect()
    before = bdlcore.debug_live_handles()
    with Influence(net, X, y, progress=False) as influence:
        assert bdlcore.debug_live_handles() == before + 1
        influence.scores(Xq, yq)
    assert bdlcore.debug_live_handles() == before
    Influence(net, X, y, curvature="kfac", progress=False)  # dropped: freed by garbage collection
    gc.collect()
    assert bdlcore.debug_live_handles() == before
    with pytest.raises(InvalidArgumentError):
        Influence(net, X, y, damping=-1)
    assert bdlcore.debug_live_handles() == before


def test_progress(classification):
    net, X, y, Xq, yq = classification
    fit_steps, score_steps = [], []
    with Influence(net, X, y, curvature="kfac", batch_size=5, progress=lambda d, t: fit_steps.append((d, t))) as influence:
        influence.scores(Xq, yq, progress=lambda d, t: score_steps.append((d, t)))
    n = len(X)
    assert fit_steps and fit_steps[-1] == (n, n) and all(t == n for _, t in fit_steps)
    assert score_steps == [(min(e, n), n) for e in range(5, n + 5, 5)]
    self_steps = []
    with Influence(net, X, y, curvature="ekfac", batch_size=5, progress=lambda d, t: fit_steps.append((d, t))) as influence:
        assert fit_steps[-1] == (2 * n, 2 * n), "EK-FAC reports both passes"
        influence.self_influence(progress=lambda d, t: self_steps.append((d, t)))
    assert self_steps and self_steps[-1] == (n, n)

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop

    gc.collect()
    before = bdlcore.debug_live_handles()
    with pytest.raises(Stop):
        Influence(net, X, y, curvature="kfac", progress=stop)
    assert bdlcore.debug_live_handles() == before, "the fitted handle is freed when the callback failed"
    with Influence(net, X, y, curvature="diag", progress=False) as influence:
        with pytest.raises(Stop):
            influence.scores(Xq, yq, progress=stop)
        with pytest.raises(InvalidArgumentError):
            influence.scores(Xq, yq, progress="yes")


# ---------------------------------------------------------------------------------------------
# kronfluence
# ---------------------------------------------------------------------------------------------

KRONFLUENCE_FISHERS = {"empirical": "empirical", "type2": "exact"}  # fixture key → our fisher


def kronfluence_fixture(name):
    path = os.path.join(FIXTURE_DIR, name + ".npz")
    if not os.path.exists(path):
        pytest.skip(f"{name}.npz not generated")
    return read_fixture(path)


@pytest.mark.parametrize("strategy", ["kfac", "ekfac"])
@pytest.mark.parametrize("fixture_fisher", sorted(KRONFLUENCE_FISHERS))
def test_kronfluence_bias_free_scores(strategy, fixture_fisher):
    """kronfluence(d) = N × τ(λ = N·d), exactly, on a bias-free model (README "Definition and mapping")."""
    fixture = kronfluence_fixture("mlp_nobias_classification")
    conversions = json.loads(str(fixture["conversions"]))
    n = fixture["X"].shape[0]
    assert conversions["N"] == n and conversions["lambda_times_damping"] == n
    with model_from_fixture(fixture) as net:
        for index, lam in enumerate(fixture["lambda_bdlcore"]):
            assert lam == pytest.approx(n * fixture["damping"][index], rel=1e-15)
            with Influence(
                net, fixture["X"], fixture["y"], curvature=strategy, fisher=KRONFLUENCE_FISHERS[fixture_fisher],
                damping=lam, relative_damping=False, batch_size=7, progress=False,
            ) as influence:
                pairwise = n * influence.scores(fixture["X_query"], fixture["y_query"])
                self_scores = n * influence.self_influence()
            what = f"{strategy}/{fixture_fisher}/d={fixture['damping'][index]}"
            key = f"{strategy}__{fixture_fisher}"
            assert_close(pairwise, fixture[key + "__pairwise"][index], what + " pairwise", KRONFLUENCE_RTOL)
            assert_close(self_scores, fixture[key + "__self"][index], what + " self", KRONFLUENCE_RTOL)


@pytest.mark.parametrize("strategy", ["kfac", "ekfac"])
def test_kronfluence_bias_free_mc_variant_through_the_curvature(strategy):
    """The fixture's `mc` variant fits the curvature on (X, mc_labels) with the empirical Fisher
    but takes the training gradients at y; an Influence object scores the set it was fitted on,
    so this checks the mapping through the curvature object's dense matrix instead."""
    fixture = kronfluence_fixture("mlp_nobias_classification")
    n = fixture["X"].shape[0]
    with model_from_fixture(fixture) as net:
        G = dense_curvature(net, fixture["X"], fixture["mc_labels"], "classification", strategy, fisher="empirical")
        Gq = gradients(net, fixture["X_query"], loss_cotangent(net, fixture["X_query"], fixture["y_query"]))
        Gt = gradients(net, fixture["X"], loss_cotangent(net, fixture["X"], fixture["y"]))
    for index, lam in enumerate(fixture["lambda_bdlcore"]):
        lam_vector = np.full(G.shape[0], lam)
        assert_close(
            n * dense_scores(Gq, G, lam_vector, Gt), fixture[f"{strategy}__mc__pairwise"][index], f"{strategy}/mc pairwise",
            KRONFLUENCE_RTOL,
        )


@pytest.mark.parametrize("fixture_fisher", sorted(KRONFLUENCE_FISHERS))
def test_kronfluence_biased_scores_rank_alike(fixture_fisher):
    """With biases kronfluence folds each bias into its layer's input factor; the rankings agree."""
    fixture = kronfluence_fixture("mlp_bias_classification")
    n = fixture["X"].shape[0]
    with model_from_fixture(fixture) as net:
        for index, lam in enumerate(fixture["lambda_bdlcore"]):
            with Influence(
                net, fixture["X"], fixture["y"], curvature="ekfac", fisher=KRONFLUENCE_FISHERS[fixture_fisher],
                damping=lam, relative_damping=False, progress=False,
            ) as influence:
                ours = n * influence.scores(fixture["X_query"], fixture["y_query"])
            theirs = fixture[f"ekfac__{fixture_fisher}__pairwise"][index]
            overall = spearman(ours, theirs)
            worst_row = min(spearman(a, b) for a, b in zip(ours, theirs))
            assert overall >= KRONFLUENCE_SPEARMAN_ALL, f"d={fixture['damping'][index]}: Spearman {overall}"
            assert worst_row >= KRONFLUENCE_SPEARMAN_ROW, f"d={fixture['damping'][index]}: worst row Spearman {worst_row}"


@pytest.mark.parametrize("curvature", CURVATURES)
def test_damping_reports_lambda_per_parameter(classification, curvature):
    net, X, y, _, _ = classification
    G = dense_curvature(net, X, y, "classification", curvature)
    for relative in (True, False):
        with Influence(net, X, y, curvature=curvature, damping=0.2, relative_damping=relative, progress=False) as influence:
            assert_close(influence.damping, damping_vector(net, G, 0.2, relative), f"{curvature} λ relative={relative}", 1e-12)


@pytest.mark.parametrize("curvature", ["kfac", "ekfac"])
@pytest.mark.parametrize("relative", [True, False])
def test_scores_from_captured_statistics_equal_the_engine(classification, curvature, relative):
    """A PyTorch user's route: per-layer (a, g) captured with hooks + a K-FAC/EK-FAC curvature."""
    net, X, y, Xq, yq = classification
    def statistics(inputs, labels):
        V = loss_cotangent(net, inputs, labels)[:, None, :]
        return [(a, g[:, 0]) for _, a, g in net.backward_vectors(inputs, V)]
    cls = KFAC if curvature == "kfac" else EKFAC
    with Influence(net, X, y, curvature=curvature, damping=0.3, relative_damping=relative, progress=False) as influence, \
            cls(net, X, y) as G:
        expected = influence.scores(Xq, yq)
        got = bdlcore.influence.scores_from_statistics(G, statistics(Xq, yq), statistics(X, y), damping=0.3, relative_damping=relative)
        assert_close(got, expected, f"{curvature} from statistics", 1e-12)
        # Training examples in two batches fill the same columns.
        halves = [bdlcore.influence.scores_from_statistics(G, statistics(Xq, yq), statistics(X[s], y[s]), 0.3, relative)
                  for s in (slice(0, 10), slice(10, None))]
        assert_close(np.hstack(halves), expected, "batched", 1e-12)
        with pytest.raises(ShapeMismatchError):
            bdlcore.influence.scores_from_statistics(G, statistics(Xq, yq)[:1], statistics(X, y))
    with DiagGGN(net, X, y) as D, pytest.raises(TypeError):
        bdlcore.influence.scores_from_statistics(D, statistics(Xq, yq), statistics(X, y))
