"""Pruning (bdlcore.pruning, Sequential.apply_mask/save/load) against laplace-torch 0.3 and its definitions.

Reference scores are the fixtures in Tests/Fixtures/pruning (made by
scripts/generate_pruning_fixtures.py; see the README there): OPD, OBD and K-FAC-OBS from
laplace-torch's own posterior precision and variances, so no PyTorch is needed. Each model is
rebuilt from its `spec` and `parameters` and fitted here with batches smaller than N. Masks,
reports and files are checked against their definitions.
"""

import ctypes
import os

import numpy as np
import pytest

import bdlcore
from bdlcore import (
    BDLIOError,
    Conv2d,
    CorruptDataError,
    Flatten,
    InvalidArgumentError,
    Laplace,
    Linear,
    NonFiniteInputError,
    ReLU,
    Sequential,
    ShapeMismatchError,
    Tanh,
    _lib,
    pruning,
)

from _support import REPO_ROOT, model_from_fixture, read_fixture, rng
from test_abi import CTYPES_OF_FIELD, header_enum_constants, header_struct_declarations

FIXTURE_DIR = os.path.join(REPO_ROOT, "Tests", "Fixtures", "pruning")
FIXTURES = sorted(name[: -len(".npz")] for name in os.listdir(FIXTURE_DIR) if name.endswith(".npz"))
STRUCTURES = ("full", "diag", "kron")
CRITERIA = ("opd", "obd", "kfac_obs")

# The contract: scores equal laplace-torch's to 1e-10 relative. Each score is θ² times one
# diagonal entry of P, H or P⁻¹, computed by the same sums in another order, so ~1e-14 is observed.
# An absolute floor of 1e-14·max|score| keeps entries that are zero in exact arithmetic (a dead
# ReLU unit's curvature) from failing on rounding alone.
FIXTURE_RTOL = 1e-10
FIXTURE_FLOOR = 1e-14
# Two formulas for the same few products (OPD = 2·OBD + δθ², unit sums): rounding only.
ROUNDING = 1e-13


def load_fixture(name):
    return read_fixture(os.path.join(FIXTURE_DIR, name + ".npz"))


@pytest.fixture(scope="module", params=FIXTURES)
def fixture(request):
    return load_fixture(request.param)


def fitted(fixture, structure):
    """The fixture's network and a posterior of `structure` at its hyperparameters (batches < N)."""
    net = model_from_fixture(fixture)
    la = Laplace(
        net, fixture["likelihood"], structure=structure,
        prior_precision=fixture["prior_precision"], sigma_noise=float(fixture["sigma_noise"]),
        temperature=float(fixture["temperature"]),
    )
    la.fit(fixture["X"], fixture["y"], batch_size=3)
    return net, la


def assert_scores_close(got, expected, what):
    floor = FIXTURE_FLOOR * np.abs(expected).max()
    error = np.abs(got - expected) - FIXTURE_RTOL * np.abs(expected)
    worst = int(np.argmax(error))
    assert error[worst] <= floor, f"{what}: entry {worst}: {got[worst]!r} vs {expected[worst]!r}"


def per_parameter(values, net):
    """One prior precision per parameter from one per parameter tensor."""
    sizes = [int(np.prod(shape)) for layer in net.layers if layer.has_weight for shape in _shapes(layer)]
    return np.repeat(values, sizes)


def _shapes(layer):
    if isinstance(layer, Linear):
        weight = (layer.out_features, layer.in_features)
        return [weight, (layer.out_features,)] if layer.bias else [weight]
    weight = (layer.out_channels, layer.in_channels, layer.kernel_size, layer.kernel_size)
    return [weight, (layer.out_channels,)] if layer.bias else [weight]


def cnn(seed=0):
    """Conv2d(2, 3, k3, p1) → ReLU → Conv2d(3, 4, k2, s2) → Tanh → Flatten → Linear(36, 3) on 2×6×6."""
    net = Sequential(
        [Conv2d(2, 3, 3, padding=1), ReLU(), Conv2d(3, 4, 2, stride=2), Tanh(), Flatten(), Linear(36, 3)],
        input_shape=(2, 6, 6), seed=seed,
    )
    net.set_parameters(rng(seed + 1).standard_normal(net.num_parameters) * 0.5)
    return net


# -- scores ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("structure", STRUCTURES)
def test_scores_equal_laplace_torch(fixture, structure):
    net, la = fitted(fixture, structure)
    with net, la:
        for criterion in CRITERIA:
            got = pruning.scores(la, criterion)
            assert_scores_close(got, fixture[f"{criterion}__{structure}"], f"{criterion} {structure}")


def test_opd_is_twice_obd_plus_prior_for_diag(fixture):
    net, la = fitted(fixture, "diag")
    with net, la:
        theta = net.parameters
        delta = per_parameter(fixture["prior_precision"], net)
        opd, obd = pruning.scores(la, "opd"), pruning.scores(la, "obd")
        np.testing.assert_allclose(opd, 2 * obd + delta * theta**2, rtol=ROUNDING, atol=0)
        # Without the ½, OBS equals OPD on a diagonal posterior ([P⁻¹]_ii = 1/P_ii).
        np.testing.assert_allclose(pruning.scores(la, "kfac_obs"), opd, rtol=ROUNDING, atol=0)


def test_magnitude_and_random_need_only_the_model():
    with cnn() as net:
        assert np.array_equal(pruning.scores(net, "magnitude"), np.abs(net.parameters))
        a, b, c = (pruning.scores(net, "random", seed=s) for s in (3, 3, 4))
        assert np.array_equal(a, b) and not np.array_equal(a, c)
        assert a.shape == (net.num_parameters,) and a.min() >= 0 and a.max() < 1


def test_structured_scores_are_unit_sums():
    with cnn(2) as net:
        X = rng(5).standard_normal((7, 2, 6, 6))
        y = np.arange(7) % 3
        with Laplace(net, "classification", structure="kron", prior_precision=0.8).fit(X, y, batch_size=3) as la:
            flat = pruning.scores(la, "opd")
            units = pruning.scores(la, "opd", structured=True)  # the posterior's own model
            assert np.array_equal(units, pruning.scores(la, "opd", structured=True, model=net))
        units_list = pruning.groups(net)
        assert units_list == [(0, j) for j in range(3)] + [(2, j) for j in range(4)]
        expected, offset = [], 0
        for index, layer in enumerate(net.layers):
            if not layer.has_weight:
                continue
            weight, bias = _shapes(layer)
            row = int(np.prod(weight[1:]))
            if index != 5:  # the output layer has no units
                for j in range(weight[0]):
                    expected.append(flat[offset + j * row: offset + (j + 1) * row].sum() + flat[offset + weight[0] * row + j])
            offset += int(np.prod(weight)) + bias[0]
        np.testing.assert_allclose(units, expected, rtol=ROUNDING, atol=0)


# -- masks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sparsity", [0.2, 0.5, 0.9, 0.99])
def test_unstructured_mask_reaches_the_sparsity(sparsity):
    with cnn() as net:
        scores = pruning.scores(net, "magnitude")
        mask = pruning.mask(scores, sparsity, model=net)
        report = pruning.sparsity_report(net, mask)
        n = report.weights
        assert n - report.weights_kept == round(sparsity * n)
        assert all(layer.biases_kept == layer.biases for layer in report.layers)
        assert abs(report.sparsity - sparsity) <= 0.5 / n
        weights = np.concatenate([np.arange(o, o + w) for o, w in weight_runs(net)])
        pruned, kept = weights[mask[weights] == 0], weights[mask[weights] == 1]
        assert scores[pruned].max() <= scores[kept].min()
        with_biases = pruning.mask(scores, sparsity, model=net, include_biases=True)
        assert (with_biases == 0).sum() == round(sparsity * net.num_parameters)


def weight_runs(net):
    """(offset, size) of every weight tensor in θ."""
    runs, offset = [], 0
    for layer in net.layers:
        if layer.has_weight:
            shapes = _shapes(layer)
            runs.append((offset, int(np.prod(shapes[0]))))
            offset += sum(int(np.prod(s)) for s in shapes)
    return runs


def test_zero_sparsity_is_bit_identical():
    with cnn() as net:
        before = net.parameters
        for mask in (
            pruning.mask(pruning.scores(net, "random"), 0.0, model=net, include_biases=True),
            pruning.mask(np.ones(7), 0.0, structured=True, model=net),
        ):
            assert np.array_equal(mask, np.ones(net.num_parameters))
            net.apply_mask(mask)
            assert net.parameters.tobytes() == before.tobytes()


def test_ties_prune_the_earliest_parameters():
    with cnn() as net:
        mask = pruning.mask(np.full(net.num_parameters, 2.0), 0.25, model=net, include_biases=True)
        k = round(0.25 * net.num_parameters)
        assert np.array_equal(mask, np.r_[np.zeros(k), np.ones(net.num_parameters - k)])


def test_structured_mask_removes_whole_units_per_layer():
    with cnn() as net:
        units = pruning.scores(net, "magnitude", structured=True)
        mask = pruning.mask(units, structured=True, per_layer=[0.34, 0.5], model=net)
        report = pruning.sparsity_report(net, mask)
        assert [layer.units_kept for layer in report.layers] == [2, 2, 3]
        assert [layer.biases_kept for layer in report.layers] == [2, 2, 3]
        assert report.layers[0].weights_kept == 2 * 18 and report.layers[1].weights_kept == 2 * 12
        uniform = pruning.mask(units, 0.5, structured=True, model=net)
        assert [layer.units_kept for layer in pruning.sparsity_report(net, uniform).layers] == [1, 2, 3]


def test_apply_mask_and_report():
    with cnn() as net:
        theta = net.parameters
        mask = pruning.mask(pruning.scores(net, "magnitude"), 0.6, model=net)
        net.apply_mask(mask)
        after = net.parameters
        assert np.array_equal(after[mask == 1], theta[mask == 1])
        assert np.all(after[mask == 0] == 0) and not np.signbit(after[mask == 0]).any()
        assert pruning.sparsity_report(net) == pruning.sparsity_report(net, mask)
        dense = pruning.sparsity_report(net, np.ones(net.num_parameters))
        # 6×6 positions for the first conv, 3×3 for the second, one for the Linear.
        assert [layer.macs for layer in dense.layers] == [36 * 3 * 18, 9 * 4 * 12, 3 * 36]
        sparse = pruning.sparsity_report(net, mask)
        assert [layer.macs_kept for layer in sparse.layers] == [
            positions * layer.weights_kept for positions, layer in zip((36, 9, 1), sparse.layers)
        ]
        assert sparse.macs_kept < sparse.macs == dense.macs


# -- model files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("with_mask", [False, True])
def test_save_load_round_trip(tmp_path, with_mask):
    with cnn(4) as net:
        mask = pruning.mask(pruning.scores(net, "magnitude"), 0.7, model=net)
        net.apply_mask(mask)
        path = tmp_path / "model.bdl"
        net.save(path, mask=mask if with_mask else None)
        loaded, loaded_mask = Sequential.load(path, return_mask=True)
        with loaded:
            assert loaded.parameters.tobytes() == net.parameters.tobytes()
            assert loaded.layers == net.layers and loaded.input_shape == net.input_shape
            X = rng(6).standard_normal((3, 2, 6, 6))
            assert np.array_equal(loaded(X), net(X))
            if with_mask:
                assert loaded_mask.tobytes() == mask.tobytes()
            else:
                assert loaded_mask is None
        with Sequential.load(str(path)) as plain:
            assert plain.num_parameters == net.num_parameters


def test_damaged_files_are_refused(tmp_path):
    with cnn() as net:
        path = tmp_path / "model.bdl"
        net.save(path, mask=np.ones(net.num_parameters))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(CorruptDataError):
            Sequential.load(path)
        damaged = bytearray(data)
        damaged[40] ^= 0x08
        path.write_bytes(bytes(damaged))
        with pytest.raises(CorruptDataError, match="checksum"):
            Sequential.load(path)
        with pytest.raises(BDLIOError):
            Sequential.load(tmp_path / "missing.bdl")
        with pytest.raises(BDLIOError):
            net.save(tmp_path / "no" / "such" / "dir.bdl")


# -- bad input ------------------------------------------------------------------------------------


def test_bad_input_is_a_clear_error():
    with cnn() as net, Sequential([Linear(3, 2)]) as single:
        scores = pruning.scores(net, "magnitude")
        for s in (-0.1, 1.0, 2.0, float("nan")):
            with pytest.raises(InvalidArgumentError, match="sparsity"):
                pruning.mask(scores, s, model=net)
        with pytest.raises(ShapeMismatchError, match="scores"):
            pruning.mask(scores[:-1], 0.5, model=net)
        with pytest.raises(NonFiniteInputError):
            pruning.mask(np.r_[np.nan, scores[1:]], 0.5, model=net)
        with pytest.raises(InvalidArgumentError, match="all 3 units"):  # round(0.9·3) = 3
            pruning.mask(np.ones(7), structured=True, per_layer=[0.9, 0.0], model=net)
        with pytest.raises(ShapeMismatchError, match="prunable layers"):
            pruning.mask(np.ones(7), structured=True, per_layer=[0.1, 0.2, 0.3], model=net)
        with pytest.raises(InvalidArgumentError, match="per_layer"):
            pruning.mask(scores, per_layer=[0.1, 0.2], model=net)
        with pytest.raises(InvalidArgumentError, match="model"):
            pruning.mask(scores, 0.5)
        with pytest.raises(InvalidArgumentError, match="output layer"):
            pruning.scores(single, "magnitude", structured=True)
        with pytest.raises(InvalidArgumentError, match="Laplace posterior"):
            pruning.scores(net, "opd")
        with pytest.raises(InvalidArgumentError, match="criterion"):
            pruning.scores(net, "snip")
        with pytest.raises(ShapeMismatchError):
            net.apply_mask(np.ones(net.num_parameters - 1))
        with pytest.raises(InvalidArgumentError, match="0 \\(pruned\\) or 1"):
            net.apply_mask(np.full(net.num_parameters, 0.5))
        with pytest.raises(ShapeMismatchError):
            pruning.sparsity_report(single, np.ones(net.num_parameters))
        with pytest.raises(ShapeMismatchError):
            single.save("/tmp/unused.bdl", mask=np.ones(3))


def test_posterior_and_model_must_agree(fixture):
    net, la = fitted(fixture, "diag")
    with net, la, Sequential([Linear(net.input_shape[0], 2), Tanh(), Linear(2, net.num_outputs)]) as other:
        with pytest.raises(ShapeMismatchError):
            pruning.scores(la, "opd", model=other)
        X, y = fixture["X"], fixture["y"]
        with Laplace(net, fixture["likelihood"], structure="diag", subset="last_layer").fit(X, y) as last:
            assert pruning.scores(last, "opd").size == last.n_params
            with pytest.raises(InvalidArgumentError, match="every parameter"):
                pruning.scores(last, "opd", structured=True)


# -- ABI mirror -----------------------------------------------------------------------------------


def test_pruning_constants_and_struct_mirror_header():
    constants = header_enum_constants()
    assert {k: v for k, v in constants.items() if k.startswith("BDL_PRUNING_")} == _lib.PRUNING_CONSTANTS
    header = header_struct_declarations("bdl_layer_sparsity")
    fields = _lib.bdl_layer_sparsity._fields_
    assert [name for _, name, _ in header] == [name for name, _ in fields]
    for (ctype, name, _), (_, pytype) in zip(header, fields):
        assert pytype is CTYPES_OF_FIELD[ctype], name
    assert ctypes.sizeof(_lib.bdl_layer_sparsity) == 9 * 8
    assert set(pruning.CRITERIA) == {"opd", "obd", "magnitude", "random", "kfac_obs"}
    assert bdlcore.pruning is pruning
