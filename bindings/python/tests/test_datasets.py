"""bdlcore.datasets: shapes, dtypes, contents, the i % 5 == 4 split and the data-folder search."""
import os
import shutil
import warnings

import numpy as np
import pytest

import bdlcore
from bdlcore import datasets

from _support import REPO_ROOT

DATA_DIR = os.path.join(REPO_ROOT, "data")
#: Images per digit 0..9 in data/digits.csv (data/README.md).
DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def raw(filename):
    """The file's data rows, read directly."""
    return np.loadtxt(os.path.join(DATA_DIR, filename), delimiter=",", skiprows=1)


@pytest.fixture
def no_data_override(monkeypatch):
    """Run with BDLCORE_DATA unset, so the package finds the source tree's data/ folder."""
    monkeypatch.delenv(datasets.DATA_ENV_VAR, raising=False)


def test_exported_from_the_package():
    assert bdlcore.datasets is datasets
    assert callable(bdlcore.datasets.load_digits) and callable(bdlcore.datasets.load_diabetes)


def test_digits_shapes_and_dtypes(no_data_override):
    X_train, y_train, X_test, y_test = datasets.load_digits()
    assert X_train.shape == (1438, 64) and X_test.shape == (359, 64)
    assert y_train.shape == (1438,) and y_test.shape == (359,)
    assert X_train.dtype == np.float64 and X_test.dtype == np.float64
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    for array in (X_train, y_train, X_test, y_test):
        assert array.flags.c_contiguous


def test_digits_values_are_unscaled_integer_pixels(no_data_override):
    X_train, _, X_test, _ = datasets.load_digits()
    X = np.vstack([X_train, X_test])
    assert np.all(X == np.round(X))
    assert X.min() == 0 and X.max() == 16


def test_digits_labels_and_class_counts(no_data_override):
    _, y_train, _, y_test = datasets.load_digits()
    for y in (y_train, y_test):
        assert y.min() >= 0 and y.max() <= 9
    train_counts = np.bincount(y_train, minlength=10)
    test_counts = np.bincount(y_test, minlength=10)
    assert len(train_counts) == 10 and len(test_counts) == 10
    assert np.all(test_counts > 0), "every class appears in the test set"
    assert train_counts.sum() == 1438 and test_counts.sum() == 359
    assert (train_counts + test_counts).tolist() == DIGIT_COUNTS
    assert sum(DIGIT_COUNTS) == 1797


def test_digits_first_row(no_data_override):
    X_train, y_train, _, _ = datasets.load_digits()
    assert y_train[0] == 0
    first = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0,
             0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0,
             0, 6, 13, 10, 0, 0, 0]
    np.testing.assert_array_equal(X_train[0], first)


def test_diabetes_shapes_and_dtypes(no_data_override):
    X_train, y_train, X_test, y_test = datasets.load_diabetes()
    assert X_train.shape == (354, 10) and X_test.shape == (88, 10)
    assert y_train.shape == (354,) and y_test.shape == (88,)
    for array in (X_train, y_train, X_test, y_test):
        assert array.dtype == np.float64
        assert array.flags.c_contiguous


def test_diabetes_first_row_is_raw(no_data_override):
    X_train, y_train, _, _ = datasets.load_diabetes()
    np.testing.assert_array_equal(X_train[0], [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87])
    assert y_train[0] == 151


@pytest.mark.parametrize(
    "loader, filename, features",
    [(datasets.load_digits, "digits.csv", 64), (datasets.load_diabetes, "diabetes.csv", 10)],
)
def test_split_is_every_fifth_row(no_data_override, loader, filename, features):
    table = raw(filename)
    X_train, y_train, X_test, y_test = loader()
    rows = np.arange(table.shape[0])
    test, train = rows[rows % 5 == 4], rows[rows % 5 != 4]
    assert test[:3].tolist() == [4, 9, 14]
    np.testing.assert_array_equal(X_test, table[test, :features])
    np.testing.assert_array_equal(y_test, table[test, features])
    np.testing.assert_array_equal(X_train, table[train, :features])
    np.testing.assert_array_equal(y_train, table[train, features])
    assert len(X_train) + len(X_test) == table.shape[0]


def test_repeated_calls_return_independent_arrays(no_data_override):
    first = datasets.load_diabetes()
    first[0][0, 0] = -1.0
    assert datasets.load_diabetes()[0][0, 0] == 59


def test_data_override_is_used(monkeypatch, tmp_path):
    """BDLCORE_DATA comes first: a folder holding its own diabetes.csv is read instead."""
    lines = open(os.path.join(DATA_DIR, "diabetes.csv")).read().splitlines()
    (tmp_path / "diabetes.csv").write_text("\n".join(lines[:11]) + "\n")  # header + 10 patients
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(tmp_path))
    X_train, y_train, X_test, y_test = datasets.load_diabetes()
    assert X_train.shape == (8, 10) and X_test.shape == (2, 10)
    np.testing.assert_array_equal(X_test, raw("diabetes.csv")[[4, 9], :10])


def test_missing_data_lists_every_path_tried(monkeypatch, tmp_path):
    """BDLCORE_DATA at an empty folder, and no data next to the package or in its source tree."""
    empty = tmp_path / "empty"
    empty.mkdir()
    package_dir = tmp_path / "a" / "b" / "c" / "bdlcore"  # source-tree fallback: tmp_path/a/data
    package_dir.mkdir(parents=True)
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(empty))
    monkeypatch.setattr(datasets, "_PACKAGE_DIR", str(package_dir))
    for loader, filename in ((datasets.load_digits, "digits.csv"), (datasets.load_diabetes, "diabetes.csv")):
        with pytest.raises(datasets.DataNotFoundError) as caught:
            loader()
        message = str(caught.value)
        assert isinstance(caught.value, FileNotFoundError)
        tried = [
            os.path.join(str(empty), filename),
            os.path.join(str(package_dir), "data", filename),
            os.path.join(str(tmp_path), "a", "data", filename),
        ]
        positions = [message.find(path) for path in tried]
        assert all(p >= 0 for p in positions), message
        assert positions == sorted(positions), "listed in search order"
        assert datasets.DATA_ENV_VAR in message


def test_candidate_order():
    candidates = datasets.data_candidates(environ={datasets.DATA_ENV_VAR: "/x/data"}, package_dir="/r/bindings/python/bdlcore")
    assert candidates == [
        (datasets.DATA_ENV_VAR, "/x/data"),
        ("package directory", "/r/bindings/python/bdlcore/data"),
        ("source tree", "/r/data"),
    ]
    assert [origin for origin, _ in datasets.data_candidates(environ={}, package_dir="/p")] == ["package directory", "source tree"]


def test_empty_override_with_working_fallback_warns(monkeypatch, tmp_path):
    """An explicit BDLCORE_DATA that lacks the file is reported, then the fallback is used."""
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(tmp_path))
    with pytest.warns(RuntimeWarning, match=datasets.DATA_ENV_VAR) as record:
        X_train, _, _, _ = datasets.load_diabetes()
    assert X_train.shape == (354, 10)
    assert record[0].filename == __file__, "the warning points at the caller of load_diabetes"


def test_no_warning_without_override(no_data_override):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        datasets.load_digits()


def test_package_data_folder_is_found(monkeypatch, tmp_path):
    """An installed layout: <package dir>/data/digits.csv, no source tree around it."""
    monkeypatch.delenv(datasets.DATA_ENV_VAR, raising=False)
    package_dir = tmp_path / "site-packages" / "bdlcore"
    (package_dir / "data").mkdir(parents=True)
    shutil.copy(os.path.join(DATA_DIR, "digits.csv"), package_dir / "data" / "digits.csv")
    monkeypatch.setattr(datasets, "_PACKAGE_DIR", str(package_dir))
    assert datasets.find_data_file("digits.csv") == str(package_dir / "data" / "digits.csv")
    assert datasets.load_digits()[0].shape == (1438, 64)
