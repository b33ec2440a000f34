"""Networks (bdlcore.Sequential) against PyTorch reference values, training, and bad input.

The reference values are the engine fixtures in Tests/Fixtures/engine (made by
scripts/generate_engine_fixtures.py with PyTorch in float64; see the README there for the keys),
so these tests need no PyTorch. Only the from_torch/to_torch round trip needs it and is skipped
without it.
"""

import gc
import os

import numpy as np
import pytest

import bdlcore
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
    _lib,
)

from _support import REPO_ROOT, hessian_square_root, model_from_fixture, read_fixture, rng

FIXTURE_DIR = os.path.join(REPO_ROOT, "Tests", "Fixtures", "engine")
FIXTURES = sorted(name[: -len(".npz")] for name in os.listdir(FIXTURE_DIR) if name.endswith(".npz"))

# PyTorch and bdlcore evaluate the same float64 sums in different orders on tiny models with O(1)
# values: they differ by a few hundred ulps at most, far below 1e-10 of the largest reference entry.
REFERENCE_TOL = 1e-10
# Digits MLP (64-128-10, Adam, lr 1e-3, 30 epochs) reaches about 96% test accuracy; 95% is the bar.
DIGITS_ACCURACY = 0.95


def assert_close(got, want, what, tol=REFERENCE_TOL):
    """max|got − want| ≤ tol · max(1, max|want|), reporting the worst entry."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, reference {want.shape}"
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    err = np.abs(got - want)
    worst = np.unravel_index(np.argmax(err), err.shape) if err.ndim else ()
    assert err[worst] <= tol * scale, (
        f"{what}: worst entry {worst} got {got[worst]!r} want {want[worst]!r} "
        f"(|err| {err[worst]:.3g} > {tol:.0e} · {scale:.3g})"
    )


def load_fixture(name):
    return read_fixture(os.path.join(FIXTURE_DIR, name + ".npz"))


build = model_from_fixture


@pytest.fixture(scope="module", params=FIXTURES)
def fixture(request):
    return load_fixture(request.param)


@pytest.fixture
def net(fixture):
    model = build(fixture)
    yield model
    model.close()


def per_example_gradients(net, statistics):
    """(N, K, P): the gradient of ⟨f(x_n), V[n, k]⟩ rebuilt from the per-layer (a, g), in θ order.

    Per layer: weight Σ_r g[n, k, r] a[n, r]ᵀ flattened row-major (out, in), then bias Σ_r g[n, k, r].
    """
    blocks = []
    for layer_index, a, g in statistics:
        n, k = g.shape[:2]
        blocks.append(np.einsum("nkro,nri->nkoi", g, a).reshape(n, k, -1))
        if net.layers[layer_index].bias:
            blocks.append(g.sum(axis=2))
    return np.concatenate(blocks, axis=2)


def hessian_square_root_vectors(fixture):
    """V (N, K, C) whose rows V[n, k] are the columns of S_n, S_n S_nᵀ = Λ_n (DESIGN §4)."""
    return hessian_square_root(fixture["outputs"], fixture["likelihood"])


# ---------------------------------------------------------------------------------------------
# Reference values
# ---------------------------------------------------------------------------------------------


def test_fixtures_are_found():
    assert {"mlp", "mlp_regression", "cnn", "cnn_global", "sequence"} <= set(FIXTURES)


def test_sizes_and_parameter_layout(fixture, net):
    n, c = fixture["outputs"].shape
    assert net.num_parameters == fixture["parameters"].size
    assert net.num_outputs == c
    assert net.input_shape == fixture["input_shape"]
    # θ round-trips bit for bit, and its length is Σ over layers of weight (+ bias) sizes.
    assert np.array_equal(net.parameters, fixture["parameters"])
    sizes = 0
    for layer in net.layers:
        if isinstance(layer, Linear):
            sizes += layer.out_features * layer.in_features + (layer.out_features if layer.bias else 0)
        elif isinstance(layer, Conv2d):
            sizes += layer.out_channels * layer.in_channels * layer.kernel_size**2 + (layer.out_channels if layer.bias else 0)
    assert sizes == net.num_parameters


def test_outputs(fixture, net):
    assert_close(net.forward(fixture["X"]), fixture["outputs"], "outputs")
    assert_close(net(fixture["X"]), fixture["outputs"], "__call__ outputs")


def test_loss_and_gradient(fixture, net):
    X, y = fixture["X"], fixture["y"]
    loss, gradient = net.loss_and_gradient(X, y, likelihood=fixture["likelihood"], sigma=1.0)
    want = float(fixture["loss"])
    if fixture["likelihood"] == "regression":
        # Our Gaussian NLL at σ = 1 includes the constant N·C·log√(2π); the fixture's 0.5·Σ(f − y)² does not.
        n, c = fixture["outputs"].shape
        want += n * c * np.log(np.sqrt(2 * np.pi))
    assert_close(loss, want, "loss")
    assert_close(gradient, fixture["gradient"], "gradient")


def test_jacobian(fixture, net):
    J = net.jacobian(fixture["X"])
    assert_close(J, fixture["jacobian"], "jacobian")
    assert_close(np.einsum("ncp,nkc->nkp", J, fixture["V"]), fixture["vjp"], "Jᵀ V from our Jacobian")


def test_backward_vectors_match_layer_statistics(fixture, net):
    statistics = net.backward_vectors(fixture["X"], fixture["V"])
    expected_layers = sorted(int(key[2:]) for key in fixture if key.startswith("a_"))
    assert [layer for layer, _, _ in statistics] == expected_layers
    for layer, a, g in statistics:
        assert_close(a, fixture[f"a_{layer}"], f"a of layer {layer}")
        assert_close(g, fixture[f"g_{layer}"], f"g of layer {layer}")
    assert_close(per_example_gradients(net, statistics), fixture["vjp"], "vjp rebuilt from (a, g)")


def test_per_example_gradients_match_pytorch(fixture, net):
    """The library's own contraction of (a, g) equals PyTorch's per-example vector-Jacobian products."""
    assert_close(net.per_example_gradients(fixture["X"], fixture["V"]), fixture["vjp"], "per-example gradients")


def test_per_example_gradients_reject_bad_vectors(net, fixture):
    with pytest.raises(bdlcore.ShapeMismatchError):
        net.per_example_gradients(fixture["X"], fixture["V"][:, :, :-1])


def test_ggn_from_backward_vectors(fixture, net):
    V = hessian_square_root_vectors(fixture)
    gradients = per_example_gradients(net, net.backward_vectors(fixture["X"], V))
    n, k, p = gradients.shape
    flat = gradients.reshape(n * k, p)
    assert_close(flat.T @ flat, fixture["ggn"], "GGN Σ_n J_nᵀ S_n S_nᵀ J_n")


def test_backward_vectors_frees_its_statistics(fixture, net):
    before = bdlcore.debug_live_handles()
    net.backward_vectors(fixture["X"], fixture["V"])
    assert bdlcore.debug_live_handles() == before


def test_backward_vectors_arrays_keep_the_library_memory_they_view(fixture):
    """The arrays are views of the library's statistics: valid as long as any of them lives
    (also after the model is closed), released with the last one."""
    before = bdlcore.debug_live_handles()
    with build(fixture) as model:
        statistics = model.backward_vectors(fixture["X"], fixture["V"])
        copies = [(a.copy(), g.copy()) for _, a, g in statistics]
    assert bdlcore.debug_live_handles() == before + 1  # the model is closed; the statistics live
    g_last = statistics[-1][2][1:]  # a view of a view
    del statistics
    gc.collect()
    assert bdlcore.debug_live_handles() == before + 1
    np.testing.assert_array_equal(g_last, copies[-1][1][1:])
    g_last[:] = 0  # the memory is the caller's to use
    del g_last
    gc.collect()
    assert bdlcore.debug_live_handles() == before


# ---------------------------------------------------------------------------------------------
# Layers and construction
# ---------------------------------------------------------------------------------------------


def test_layer_reprs_follow_pytorch():
    assert repr(Linear(64, 128)) == "Linear(in_features=64, out_features=128, bias=True)"
    assert repr(Conv2d(2, 4, 3, padding=1)) == "Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    assert repr(Conv2d(1, 3, 2, bias=False)) == "Conv2d(1, 3, kernel_size=(2, 2), stride=(1, 1), bias=False)"
    assert repr(ReLU()) == "ReLU()"
    assert repr(GELU()) == "GELU(approximate='none')"
    assert repr(Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(AvgPool2d(2)) == "AvgPool2d(kernel_size=2, stride=2, padding=0)"
    assert repr(MeanOverSequence()) == "MeanOverSequence()"
    with Sequential([Linear(3, 2), Tanh()]) as net:
        assert repr(net) == "Sequential(\n  (0): Linear(in_features=3, out_features=2, bias=True)\n  (1): Tanh()\n)"


def test_layers_are_frozen_values():
    assert Linear(3, 2) == Linear(3, 2) and hash(Linear(3, 2)) == hash(Linear(3, 2))
    assert Linear(3, 2) != Linear(3, 2, bias=False)
    with pytest.raises(AttributeError):
        Linear(3, 2).in_features = 4
    with pytest.raises(bdlcore.InvalidArgumentError, match="Linear.in_features"):
        Linear(3.5, 2)


def test_layer_specs():
    spec = Conv2d(2, 4, 3, stride=2, padding=1, bias=False).to_spec()
    assert (spec.kind, spec.bias, spec.in_features, spec.out_features, spec.kernel_size, spec.stride, spec.padding) == (
        _lib.BDL_LAYER_CONV2D, 0, 2, 4, 3, 2, 1
    )
    spec = Linear(5, 7).to_spec()
    assert (spec.kind, spec.bias, spec.in_features, spec.out_features) == (_lib.BDL_LAYER_LINEAR, 1, 5, 7)
    assert AvgPool2d(3).to_spec().kernel_size == 3
    kinds = {
        ReLU: _lib.BDL_LAYER_RELU, Tanh: _lib.BDL_LAYER_TANH, Sigmoid: _lib.BDL_LAYER_SIGMOID,
        GELU: _lib.BDL_LAYER_GELU, Identity: _lib.BDL_LAYER_IDENTITY, Flatten: _lib.BDL_LAYER_FLATTEN,
        GlobalAvgPool2d: _lib.BDL_LAYER_GLOBAL_AVG_POOL2D, MeanOverSequence: _lib.BDL_LAYER_MEAN_OVER_SEQUENCE,
    }
    for cls, kind in kinds.items():
        assert cls().to_spec().kind == kind


def test_input_shape_is_inferred_from_a_first_linear_layer():
    with Sequential([Linear(5, 3)]) as net:
        assert net.input_shape == (5,)
        assert net.forward(np.ones((2, 5))).shape == (2, 3)
    with Sequential([Linear(5, 3), MeanOverSequence()], input_shape=(4, 5)) as net:
        assert net.input_shape == (4, 5)
        assert net.forward(np.ones((2, 4, 5))).shape == (2, 3)


def test_input_shape_is_required_otherwise():
    with pytest.raises(bdlcore.ShapeMismatchError, match="input_shape is required.*Conv2d"):
        Sequential([Conv2d(1, 2, 3), GlobalAvgPool2d()])
    assert issubclass(bdlcore.ShapeMismatchError, ValueError)


def test_seeded_initialisation_follows_pytorch_bounds():
    with Sequential([Linear(50, 40), ReLU(), Linear(40, 3)], seed=7) as a, Sequential(
        [Linear(50, 40), ReLU(), Linear(40, 3)], seed=7
    ) as b, Sequential([Linear(50, 40), ReLU(), Linear(40, 3)], seed=8) as c:
        assert np.array_equal(a.parameters, b.parameters)
        assert not np.array_equal(a.parameters, c.parameters)
        theta = a.parameters
        first = theta[: 40 * 50 + 40]
        second = theta[40 * 50 + 40 :]
        assert np.max(np.abs(first)) <= 1 / np.sqrt(50) and np.max(np.abs(second)) <= 1 / np.sqrt(40)
        assert np.max(np.abs(first)) > 0.9 / np.sqrt(50)  # U(±1/√fan_in) fills its range


def test_regression_targets_may_be_a_vector_when_there_is_one_output():
    g = rng(3)
    X, y = g.standard_normal((6, 4)), g.standard_normal(6)
    with Sequential([Linear(4, 1)]) as net:
        loss_vector, gradient_vector = net.loss_and_gradient(X, y, likelihood="regression")
        loss_matrix, gradient_matrix = net.loss_and_gradient(X, y[:, None], likelihood="regression")
    assert loss_vector == loss_matrix and np.array_equal(gradient_vector, gradient_matrix)


def test_regression_loss_formula_with_sigma():
    g = rng(4)
    X, y = g.standard_normal((5, 3)), g.standard_normal((5, 2))
    sigma = 0.7
    with Sequential([Linear(3, 4), Tanh(), Linear(4, 2)]) as net:
        f = net(X)
        loss, gradient = net.loss_and_gradient(X, y, likelihood="regression", sigma=sigma)
        J = net.jacobian(X)
    want = 0.5 * np.sum((y - f) ** 2) / sigma**2 + y.size * np.log(sigma * np.sqrt(2 * np.pi))
    assert_close(loss, want, "regression NLL with σ")
    assert_close(gradient, np.einsum("ncp,nc->p", J, (f - y) / sigma**2), "regression gradient Jᵀ(f − y)/σ²")


def test_classification_labels_of_any_integer_dtype():
    g = rng(5)
    X = g.standard_normal((6, 4))
    labels = np.array([0, 1, 2, 2, 1, 0])
    with Sequential([Linear(4, 3)]) as net:
        reference = net.loss_and_gradient(X, labels.astype(np.int64))
        for dtype in (np.int8, np.uint8, np.int32, np.uint64, np.float64):
            loss, gradient = net.loss_and_gradient(X, labels.astype(dtype))
            assert loss == reference[0] and np.array_equal(gradient, reference[1]), dtype
        assert net.loss_and_gradient(X, list(labels))[0] == reference[0]


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    X_train, y_train, X_test, y_test = bdlcore.datasets.load_digits()
    return X_train / 16.0, y_train, X_test / 16.0, y_test


def digits_mlp(seed=0):
    return Sequential([Linear(64, 128), ReLU(), Linear(128, 10)], seed=seed)


def test_training_on_digits_reaches_95_percent(digits):
    X_train, y_train, X_test, y_test = digits
    with digits_mlp() as net:
        history = net.fit(X_train, y_train, epochs=30, lr=1e-3, batch_size=32, progress=False)
        accuracy = float(np.mean(net(X_test).argmax(axis=1) == y_test))
    assert len(history) == 30
    assert [entry["epoch"] for entry in history] == list(range(1, 31))
    assert history[-1]["mean_nll"] < history[0]["mean_nll"]
    assert accuracy >= DIGITS_ACCURACY, f"test accuracy {accuracy:.4f} < {DIGITS_ACCURACY}"


def test_training_is_reproducible(digits):
    X_train, y_train, _, _ = digits
    kwargs = dict(epochs=2, lr=1e-3, batch_size=32, progress=False)
    with digits_mlp() as a, digits_mlp() as b, digits_mlp() as c:
        history_a = a.fit(X_train, y_train, seed=0, **kwargs)
        history_b = b.fit(X_train, y_train, seed=0, **kwargs)
        c.fit(X_train, y_train, seed=1, **kwargs)
        assert np.array_equal(a.parameters, b.parameters), "same seed, different parameters"
        assert history_a == history_b
        assert not np.array_equal(a.parameters, c.parameters), "different shuffling seeds gave the same parameters"


def test_training_options_are_passed_through(digits):
    X_train, y_train, X_test, y_test = digits
    X, y = X_train[:300], y_train[:300]
    with digits_mlp() as adam, digits_mlp() as sgd, digits_mlp() as cosine, digits_mlp() as prior:
        runs = [
            adam.fit(X, y, epochs=3, progress=False),
            sgd.fit(X, y, epochs=3, optimizer="sgd", lr=0.05, momentum=0.5, progress=False),
            cosine.fit(X, y, epochs=3, schedule="cosine", progress=False),
            prior.fit(X, y, epochs=3, prior_precision=[1.0, 2.0, 3.0, 4.0], progress=False),
        ]
        thetas = [m.parameters for m in (adam, sgd, cosine, prior)]
    for i in range(len(thetas)):
        for j in range(i):
            assert not np.array_equal(thetas[i], thetas[j]), (i, j)
    # With a prior the objective exceeds the mean NLL by ½ θᵀ diag(δ) θ / N > 0.
    assert runs[3][-1]["objective"] > runs[3][-1]["mean_nll"]


def test_regression_training_reduces_the_loss():
    g = rng(6)
    X = g.standard_normal((64, 3))
    y = np.sin(X @ np.array([[1.0], [-0.5], [0.25]])) + 0.05 * g.standard_normal((64, 1))
    with Sequential([Linear(3, 16), Tanh(), Linear(16, 1)], seed=2) as net:
        before = net.loss_and_gradient(X, y, likelihood="regression")[0]
        history = net.fit(X, y, likelihood="regression", lr=1e-2, epochs=50, batch_size=16, progress=False)
        after = net.loss_and_gradient(X, y, likelihood="regression")[0]
    assert after < before
    assert history[-1]["mean_nll"] < history[0]["mean_nll"]


def test_progress_callback_is_called_once_per_epoch(digits):
    X_train, y_train, _, _ = digits
    calls = []
    with digits_mlp() as net:
        history = net.fit(X_train[:200], y_train[:200], epochs=4, progress=calls.append)
    assert [c["epoch"] for c in calls] == [1, 2, 3, 4]
    assert all(c["epochs"] == 4 for c in calls)
    assert set(calls[0]) == {"epoch", "epochs", "objective", "mean_nll"}
    assert calls == history


def test_progress_callback_can_stop_early(digits):
    X_train, y_train, _, _ = digits
    calls = []

    def stop_after_two(report):
        calls.append(report)
        return report["epoch"] == 2

    with digits_mlp() as net, digits_mlp() as reference:
        history = net.fit(X_train[:200], y_train[:200], epochs=10, progress=stop_after_two)
        reference.fit(X_train[:200], y_train[:200], epochs=2, progress=False)
        assert np.array_equal(net.parameters, reference.parameters), "stopping after epoch 2 is training 2 epochs"
    assert len(calls) == 2 and len(history) == 2


def test_exception_in_progress_callback_propagates(digits):
    X_train, y_train, X_test, _ = digits

    class Stop(Exception):
        pass

    def fail(report):
        if report["epoch"] == 2:
            raise Stop("from the callback")

    with digits_mlp() as net, digits_mlp() as reference:
        with pytest.raises(Stop, match="from the callback"):
            net.fit(X_train[:200], y_train[:200], epochs=10, progress=fail)
        reference.fit(X_train[:200], y_train[:200], epochs=2, progress=False)
        assert np.array_equal(net.parameters, reference.parameters)
        assert net(X_test[:3]).shape == (3, 10)  # still usable


def test_model_cannot_be_used_inside_its_progress_callback(digits):
    X_train, y_train, _, _ = digits
    with digits_mlp() as net:
        with pytest.raises(bdlcore.WrongStateError, match="progress callback"):
            net.fit(X_train[:100], y_train[:100], epochs=3, progress=lambda report: net.parameters)
        assert net.parameters.shape == (net.num_parameters,)


def test_progress_bar_and_silence(digits, capsys):
    X_train, y_train, _, _ = digits
    with digits_mlp() as net:
        net.fit(X_train[:100], y_train[:100], epochs=2, progress=False)
        assert capsys.readouterr().err == ""
        net.fit(X_train[:100], y_train[:100], epochs=2)  # stderr is not a terminal under pytest
        assert capsys.readouterr().err == ""
        net.fit(X_train[:100], y_train[:100], epochs=3, progress=True)
        err = capsys.readouterr().err
    assert "\repoch 1/3" in err and "\repoch 3/3" in err and err.endswith("\n")
    assert err.count("\n") == 1


def test_zero_epochs_is_a_no_op(digits):
    X_train, y_train, _, _ = digits
    with digits_mlp() as net:
        before = net.parameters
        assert net.fit(X_train[:50], y_train[:50], epochs=0, progress=False) == []
        assert np.array_equal(net.parameters, before)


def test_divergence_restores_the_parameters():
    g = rng(7)
    X, y = g.standard_normal((20, 4)), g.standard_normal((20, 2))
    with Sequential([Linear(4, 8), Tanh(), Linear(8, 2)]) as net:
        before = net.parameters
        with pytest.raises(bdlcore.NotConvergedError, match="diverged"):
            net.fit(X, y, likelihood="regression", optimizer="sgd", lr=1e200, epochs=5, progress=False)
        assert np.array_equal(net.parameters, before)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def mlp():
    net = Sequential([Linear(8, 6), ReLU(), Linear(6, 3)], seed=1)
    yield net
    net.close()


def data(n=5, width=8, classes=3, seed=8):
    g = rng(seed)
    return g.standard_normal((n, width)), np.arange(n) % classes


def test_wrong_input_width_or_rank(mlp):
    X, y = data()
    for bad in (X[:, :7], X[:, :, None], X[0]):
        with pytest.raises(bdlcore.ShapeMismatchError, match=r"X: expected shape \(N, 8\)"):
            mlp.forward(bad)
        with pytest.raises(bdlcore.ShapeMismatchError, match=r"X: expected shape \(N, 8\)"):
            mlp.fit(bad, y, progress=False)
    with pytest.raises(bdlcore.ShapeMismatchError, match=r"got shape \(5, 7\)"):
        mlp.jacobian(X[:, :7])
    with Sequential([Conv2d(2, 3, 3), GlobalAvgPool2d()], input_shape=(2, 5, 5)) as cnn:
        with pytest.raises(bdlcore.ShapeMismatchError, match=r"\(N, 2, 5, 5\).*\(4, 5, 5\)"):
            cnn.forward(np.zeros((4, 5, 5)))


def test_wrong_target_shapes(mlp):
    X, y = data()
    with pytest.raises(bdlcore.ShapeMismatchError, match="N = 5 class labels"):
        mlp.loss_and_gradient(X, y[:4])
    with pytest.raises(bdlcore.ShapeMismatchError, match=r"\(N, C\) = \(5, 3\)"):
        mlp.loss_and_gradient(X, np.zeros((5, 2)), likelihood="regression")
    with pytest.raises(bdlcore.ShapeMismatchError, match=r"V: expected shape \(N, K, C\)"):
        mlp.backward_vectors(X, np.zeros((5, 2, 2)))


@pytest.mark.parametrize("label", [3, -1, 1.5, 1e300])
def test_bad_labels(mlp, label):
    X, y = data()
    y = y.astype(np.float64)
    y[2] = label
    before = mlp.parameters
    with pytest.raises(bdlcore.InvalidArgumentError, match=r"label .* of example 2 is not an integer in \[0, 3\)"):
        mlp.loss_and_gradient(X, y)
    with pytest.raises(bdlcore.InvalidArgumentError, match=r"example 2"):
        mlp.fit(X, y, progress=False)
    assert np.array_equal(mlp.parameters, before)


def test_integer_labels_out_of_range(mlp):
    X, y = data()
    y[0] = 3
    with pytest.raises(bdlcore.InvalidArgumentError, match=r"label 3(\.0)? of example 0"):
        mlp.loss_and_gradient(X, y)
    with pytest.raises(bdlcore.InvalidArgumentError, match="labels must be integers"):
        mlp.loss_and_gradient(X, np.array(["a"] * 5))


def test_non_finite_inputs(mlp):
    X, y = data()
    X[1, 3] = np.nan
    before = mlp.parameters
    with pytest.raises(bdlcore.NonFiniteInputError, match="X"):
        mlp.forward(X)
    with pytest.raises(bdlcore.NonFiniteInputError, match="X"):
        mlp.loss_and_gradient(X, y)
    with pytest.raises(bdlcore.NonFiniteInputError, match="X"):
        mlp.jacobian(X)
    with pytest.raises(bdlcore.NonFiniteInputError, match="X"):
        mlp.backward_vectors(X, np.ones((5, 1, 3)))
    with pytest.raises(bdlcore.NonFiniteInputError, match="X"):
        mlp.fit(X, y, progress=False)
    X, _ = data()
    with pytest.raises(bdlcore.NonFiniteInputError, match="V"):
        mlp.backward_vectors(X, np.full((5, 1, 3), np.inf))
    targets = np.zeros((5, 3))
    targets[0, 0] = np.inf
    with pytest.raises(bdlcore.NonFiniteInputError):
        mlp.loss_and_gradient(X, targets, likelihood="regression")
    assert np.array_equal(mlp.parameters, before)


def test_empty_batch(mlp):
    X = np.zeros((0, 8))
    for call in (
        lambda: mlp.forward(X),
        lambda: mlp.jacobian(X),
        lambda: mlp.loss_and_gradient(X, np.zeros(0, dtype=np.int64)),
        lambda: mlp.backward_vectors(X, np.zeros((0, 1, 3))),
        lambda: mlp.fit(X, np.zeros(0, dtype=np.int64), progress=False),
    ):
        with pytest.raises(bdlcore.InvalidArgumentError, match="n = 0"):
            call()
    with pytest.raises(bdlcore.InvalidArgumentError, match="k = 0"):
        mlp.backward_vectors(np.zeros((2, 8)), np.zeros((2, 0, 3)))


def test_wrong_parameter_vector(mlp):
    before = mlp.parameters
    P = mlp.num_parameters
    with pytest.raises(bdlcore.ShapeMismatchError, match=f"count = {P - 1}; the model has {P} parameters"):
        mlp.set_parameters(np.zeros(P - 1))
    with pytest.raises(bdlcore.ShapeMismatchError, match=f"count = {P + 1}"):
        mlp.set_parameters(np.zeros(P + 1))
    with pytest.raises(bdlcore.ShapeMismatchError, match=r"got an array of shape \(1, %d\)" % P):
        mlp.set_parameters(np.zeros((1, P)))
    bad = before.copy()
    bad[-1] = np.nan
    with pytest.raises(bdlcore.NonFiniteInputError, match="parameters"):
        mlp.set_parameters(bad)
    assert np.array_equal(mlp.parameters, before)


def test_layers_that_do_not_fit_together():
    with pytest.raises(bdlcore.ShapeMismatchError, match=r"layer 3 of 3: Conv2d.*expects input \(4, H, W\), got \(36\)"):
        Sequential([Conv2d(1, 4, 3), Flatten(), Conv2d(4, 2, 1)], input_shape=(1, 5, 5))
    with pytest.raises(bdlcore.ShapeMismatchError, match=r"layer 2 of 2: Linear\(4, 2\)"):
        Sequential([Linear(4, 3), Linear(4, 2)])
    with pytest.raises(bdlcore.ShapeMismatchError, match="smaller than the kernel"):
        Sequential([Conv2d(1, 2, 7), Flatten()], input_shape=(1, 5, 5))
    with pytest.raises(bdlcore.ShapeMismatchError, match="MeanOverSequence"):
        Sequential([MeanOverSequence(), Linear(4, 2)], input_shape=(4,))


def test_output_that_is_not_a_vector():
    """The header: an output that is not a vector per example is BDL_SHAPE_MISMATCH."""
    with pytest.raises(bdlcore.ShapeMismatchError, match="output"):
        Sequential([Conv2d(1, 2, 3)], input_shape=(1, 5, 5))


def test_bad_layer_fields_and_input_shapes():
    with pytest.raises(bdlcore.InvalidArgumentError, match="stride"):
        Sequential([Conv2d(1, 2, 3, stride=0), Flatten()], input_shape=(1, 5, 5))
    with pytest.raises(bdlcore.InvalidArgumentError, match="input_rank = 4"):
        Sequential([Linear(4, 3)], input_shape=(1, 2, 3, 4))
    with pytest.raises(bdlcore.InvalidArgumentError, match="at least one layer"):
        Sequential([], input_shape=(3,))
    with pytest.raises(bdlcore.InvalidArgumentError, match="seed"):
        Sequential([Linear(4, 3)], seed=-1)
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        Sequential([Linear(4, 3), "relu"])


def test_unknown_option_strings(mlp):
    X, y = data()
    before = mlp.parameters
    with pytest.raises(bdlcore.InvalidArgumentError, match="likelihood: expected 'classification' or 'regression', got 'poisson'"):
        mlp.loss_and_gradient(X, y, likelihood="poisson")
    with pytest.raises(bdlcore.InvalidArgumentError, match="likelihood"):
        mlp.fit(X, y, likelihood="Classification", progress=False)
    with pytest.raises(bdlcore.InvalidArgumentError, match="optimizer"):
        mlp.fit(X, y, optimizer="lbfgs", progress=False)
    with pytest.raises(bdlcore.InvalidArgumentError, match="schedule"):
        mlp.fit(X, y, schedule="step", progress=False)
    with pytest.raises(bdlcore.InvalidArgumentError, match="progress"):
        mlp.fit(X, y, progress="yes")
    assert np.array_equal(mlp.parameters, before)


@pytest.mark.parametrize(
    "options, error, pattern",
    [
        (dict(lr=-1.0), bdlcore.InvalidArgumentError, "learning rate"),
        (dict(lr=float("nan")), bdlcore.InvalidArgumentError, "learning rate"),
        (dict(batch_size=0), bdlcore.InvalidArgumentError, "batch_size"),
        (dict(epochs=-1), bdlcore.InvalidArgumentError, "epochs"),
        (dict(epochs=2**64), bdlcore.InvalidArgumentError, "epochs"),
        (dict(optimizer="sgd", momentum=1.0), bdlcore.InvalidArgumentError, "momentum"),
        (dict(prior_precision=[1.0, 2.0, 3.0]), bdlcore.ShapeMismatchError, "prior precision has 3 entries.*\\(4\\)"),
        (dict(prior_precision=-1.0), bdlcore.InvalidArgumentError, "prior precision"),
        (dict(prior_precision=[[1.0]]), bdlcore.ShapeMismatchError, "prior_precision"),
        (dict(seed=-1), bdlcore.InvalidArgumentError, "seed"),
    ],
)
def test_bad_training_options_leave_the_model_unchanged(mlp, options, error, pattern):
    X, y = data()
    before = mlp.parameters
    with pytest.raises(error, match=pattern):
        mlp.fit(X, y, progress=False, **options)
    assert np.array_equal(mlp.parameters, before)


def test_bad_sigma(mlp):
    X, _ = data()
    with pytest.raises(bdlcore.InvalidArgumentError, match="sigma"):
        mlp.loss_and_gradient(X, np.zeros((5, 3)), likelihood="regression", sigma=0.0)
    with pytest.raises(bdlcore.InvalidArgumentError, match="sigma"):
        mlp.fit(X, np.zeros((5, 3)), likelihood="regression", sigma=-1.0, progress=False)


# ---------------------------------------------------------------------------------------------
# Lifetime
# ---------------------------------------------------------------------------------------------


def test_close_is_idempotent_and_later_use_fails():
    net = Sequential([Linear(3, 2)])
    before = bdlcore.debug_live_handles()
    net.close()
    net.close()
    assert net.closed and bdlcore.debug_live_handles() == before - 1
    for call in (
        lambda: net.parameters,
        lambda: net.num_parameters,
        lambda: net.forward(np.ones((1, 3))),
        lambda: net.set_parameters(np.zeros(8)),
        lambda: net.fit(np.ones((2, 3)), [0, 1], progress=False),
        lambda: net.backward_vectors(np.ones((1, 3)), np.ones((1, 1, 2))),
    ):
        with pytest.raises(bdlcore.WrongStateError, match="closed"):
            call()
    assert "closed" in repr(net)


def test_garbage_collection_frees_the_handle():
    import gc

    before = bdlcore.debug_live_handles()
    net = Sequential([Linear(3, 2)])
    assert bdlcore.debug_live_handles() == before + 1
    del net
    gc.collect()
    assert bdlcore.debug_live_handles() == before


# ---------------------------------------------------------------------------------------------
# PyTorch round trip (skipped without torch)
# ---------------------------------------------------------------------------------------------


def test_from_torch_and_to_torch_round_trip():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)

    class MeanOverSequence(nn.Module):
        def forward(self, x):
            return x.mean(dim=1)

    cases = [
        (nn.Sequential(nn.Linear(6, 10), nn.Sigmoid(), nn.Linear(10, 10), nn.GELU(), nn.Linear(10, 3)), None, (4, 6)),
        (
            nn.Sequential(
                nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 3, 3, stride=2),
                nn.Tanh(), nn.Flatten(), nn.Linear(12, 4),
            ),
            (2, 10, 10),
            (3, 2, 10, 10),
        ),
        (
            nn.Sequential(nn.Conv2d(1, 3, 2, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)),
            (1, 6, 7),
            (3, 1, 6, 7),
        ),
        (nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Identity(), MeanOverSequence(), nn.Linear(6, 3)), (3, 4), (2, 3, 4)),
    ]
    for module, input_shape, x_shape in cases:
        module = module.to(torch.float64)
        x = torch.randn(x_shape, dtype=torch.float64)
        with torch.no_grad():
            want = module(x).numpy()
        theta = torch.nn.utils.parameters_to_vector(module.parameters()).detach().numpy()
        with bdlcore.from_torch(module, input_shape=input_shape) as net:
            assert np.array_equal(net.parameters, theta)
            assert_close(net(x.numpy()), want, f"from_torch outputs of {module}")
            back = net.to_torch()
            assert np.array_equal(torch.nn.utils.parameters_to_vector(back.parameters()).detach().numpy(), theta)
            with torch.no_grad():
                assert_close(back(x).numpy(), want, f"to_torch outputs of {module}")
            with bdlcore.from_torch(back, input_shape=input_shape) as again:
                assert again.layers == net.layers


def test_from_torch_gradient_matches_autograd():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(1)
    module = nn.Sequential(nn.Conv2d(1, 3, 3, padding="same"), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(18, 4))
    module = module.to(torch.float64)
    x = torch.randn((5, 1, 4, 6), dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 2, 3])
    loss = nn.CrossEntropyLoss(reduction="sum")(module(x), y)
    gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(module.parameters()))])
    with bdlcore.from_torch(module, input_shape=(1, 4, 6)) as net:
        assert net.layers[0] == Conv2d(1, 3, 3, padding=1)
        ours_loss, ours_gradient = net.loss_and_gradient(x.numpy(), y.numpy())
    assert_close(ours_loss, loss.item(), "cross-entropy of a from_torch model")
    assert_close(ours_gradient, gradient.numpy(), "gradient of a from_torch model vs autograd")


def test_to_torch_reproduces_the_fixtures(fixture):
    torch = pytest.importorskip("torch")
    with build(fixture) as net:
        module = net.to_torch()
    with torch.no_grad():
        assert_close(module(torch.from_numpy(fixture["X"])).numpy(), fixture["outputs"], "to_torch outputs")


def test_from_torch_rejects_unsupported_modules():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    for module, pattern in [
        (nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)), "BatchNorm1d"),
        (nn.Sequential(nn.Conv2d(1, 2, (3, 2)), nn.Flatten()), "kernel_size"),
        (nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2), nn.Flatten()), "dilation"),
        (nn.Sequential(nn.Conv2d(2, 2, 3, groups=2), nn.Flatten()), "groups"),
        (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten()), "padding_mode"),
        (nn.Sequential(nn.Linear(4, 3), nn.GELU(approximate="tanh")), "GELU"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(start_dim=2)), "Flatten"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, stride=1), nn.Flatten()), "AvgPool2d"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten()), "AdaptiveAvgPool2d"),
    ]:
        before = bdlcore.debug_live_handles()
        with pytest.raises(bdlcore.UnsupportedError, match=pattern):
            bdlcore.from_torch(module, input_shape=(1, 6, 6))
        assert bdlcore.debug_live_handles() == before


def test_conv_fc_mixture_averages_a_convolution_and_a_dense_map(tmp_path):
    """y = ½(conv(x) + reshape(W·vec(x) + b)), parameters conv W, b then FC W, b; two engine layers."""
    from bdlcore import ConvFCMixture, Flatten

    with Sequential([ConvFCMixture(2, 3, 3, padding=1), Flatten()], input_shape=(2, 4, 5), seed=3) as net:
        conv_w, conv_b = 3 * 2 * 9, 3
        U, D = 3 * 4 * 5, 2 * 4 * 5
        assert net.num_parameters == conv_w + conv_b + U * D + U
        theta = net.parameters
        W = theta[:conv_w].reshape(3, 2, 3, 3)
        b = theta[conv_w:conv_w + conv_b]
        F = theta[conv_w + conv_b:conv_w + conv_b + U * D].reshape(U, D)
        c = theta[conv_w + conv_b + U * D:]
        x = np.random.default_rng(0).standard_normal((2, 2, 4, 5))
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        conv = np.zeros((2, 3, 4, 5))
        for i in range(4):
            for j in range(5):
                conv[:, :, i, j] = np.einsum("ncuv,ocuv->no", padded[:, :, i:i + 3, j:j + 3], W) + b
        expected = 0.5 * (conv.reshape(2, -1) + x.reshape(2, -1) @ F.T + c)
        np.testing.assert_allclose(net(x), expected, rtol=1e-12, atol=1e-12)
        path = tmp_path / "mixture.bdl"
        net.save(path)
        with Sequential.load(path) as back:
            assert isinstance(back.layers[0], ConvFCMixture)
            np.testing.assert_array_equal(back(x), net(x))
