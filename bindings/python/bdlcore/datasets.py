"""The datasets shipped with bdlcore (``data/``), loaded as numpy arrays with a fixed split.

Each loader returns ``(X_train, y_train, X_test, y_test)``. The split is the one the whole project
uses: row ``i`` of the file (counting data rows from 0, the header excluded) belongs to the test
set when ``i % 5 == 4`` — rows 4, 9, 14, … — and to the training set otherwise; both parts keep
the file's row order. Values are returned as stored, without scaling or centring.

* :func:`load_digits` — UCI optical handwritten digits, 1,797 8×8 images in 10 classes
  (``data/digits.csv``); 1,438 training and 359 test images.
* :func:`load_diabetes` — Efron et al.'s 442 diabetes patients, 10 features and a quantitative
  target (``data/diabetes.csv``); 354 training and 88 test patients.

``data/README.md`` documents the files, their sources and licences.

The data folder is looked for, in this order, and the first one holding the requested file is
used:

1. the directory named by the environment variable ``BDLCORE_DATA``;
2. ``data/`` next to this file (an installed wheel would ship the files there);
3. ``data/`` of the source tree this package sits in (``<package dir>/../../../data``).

If none holds the file, the loader raises :class:`DataNotFoundError` (a ``FileNotFoundError``)
whose message lists every path tried. A ``BDLCORE_DATA`` that lacks the file while a later folder
has it gives a ``RuntimeWarning``, since the caller asked for that folder explicitly.
"""

from __future__ import annotations

import os
import warnings
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ._paths import search_candidates

__all__ = [
    "DataNotFoundError",
    "data_candidates",
    "find_data_file",
    "load_digits",
    "load_diabetes",
]

#: Environment variable naming the data directory, tried before anything else.
DATA_ENV_VAR = "BDLCORE_DATA"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class DataNotFoundError(FileNotFoundError):
    """No candidate data folder holds the requested file; the message lists each path tried."""


def data_candidates(
    environ: Optional[Mapping[str, str]] = None, package_dir: Optional[str] = None
) -> List[Tuple[str, str]]:
    """The data folders to try, in order, as ``(origin, directory)`` pairs.

    ``environ`` defaults to ``os.environ`` and ``package_dir`` to this package's directory; both
    are parameters so that the search can be exercised without touching the real ones.
    """
    package_dir = _PACKAGE_DIR if package_dir is None else package_dir
    return search_candidates(DATA_ENV_VAR, package_dir, "data", "data", "source tree", environ)


def find_data_file(filename: str, candidates: Optional[Sequence[Tuple[str, str]]] = None) -> str:
    """The path of ``filename`` in the first candidate folder that holds it.

    ``candidates`` defaults to :func:`data_candidates`. Raises :class:`DataNotFoundError` listing
    every ``origin: path`` tried when no folder holds the file.
    """
    return _find_data_file(filename, candidates, stacklevel=3)


def _find_data_file(filename: str, candidates: Optional[Sequence[Tuple[str, str]]], stacklevel: int) -> str:
    """:func:`find_data_file`, warning ``stacklevel`` frames up (1 is this function)."""
    candidates = data_candidates() if candidates is None else candidates
    failures = []
    for origin, directory in candidates:
        path = os.path.join(directory, filename)
        if not os.path.isfile(path):
            failures.append(f"  {origin}: {path} (no such file)")
            continue
        if failures and any(line.startswith(f"  {DATA_ENV_VAR}:") for line in failures):
            warnings.warn(
                f"{DATA_ENV_VAR} does not hold {filename}, using {path} instead:\n" + "\n".join(failures),
                RuntimeWarning,
                stacklevel=stacklevel,
            )
        return path
    tried = "\n".join(failures) if failures else "  (no candidates)"
    raise DataNotFoundError(
        f"could not find the bdlcore data file {filename}. Tried, in order:\n{tried}\n"
        f"Set {DATA_ENV_VAR} to the directory holding it (the repository's data/ folder)."
    )


def _load_table(filename: str, columns: int) -> np.ndarray:
    """The numeric rows of a shipped CSV (header skipped) as a float64 array of ``columns`` columns."""
    path = _find_data_file(filename, None, stacklevel=4)  # warn at the caller of load_*
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    if table.shape[1] != columns:
        raise ValueError(f"{path}: expected {columns} columns, found {table.shape[1]}")
    return table


def _split(X: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, y_train, X_test, y_test)`` with row ``i`` in the test set iff ``i % 5 == 4``."""
    test = np.arange(X.shape[0]) % 5 == 4
    return X[~test], y[~test], X[test], y[test]


def load_digits() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The UCI optical handwritten digits, split into training and test sets.

    Returns ``(X_train, y_train, X_test, y_test)``:

    * ``X_train`` — float64, shape (1438, 64); ``X_test`` — float64, shape (359, 64). Row ``k`` is
      one 8×8 image flattened row by row (column ``8 r + c`` is image row ``r``, column ``c``;
      ``X.reshape(-1, 8, 8)`` recovers the images). Pixels are the stored integer counts 0..16 as
      they are, **not scaled** — divide by 16 for values in [0, 1].
    * ``y_train`` — int64, shape (1438,); ``y_test`` — int64, shape (359,): the digit, 0..9.

    Split: image ``i`` of ``digits.csv`` (0-based) is a test image iff ``i % 5 == 4``; both parts
    keep the file's order. The split is not stratified (test images per class range from 21 to
    52).

    Source: E. Alpaydin and C. Kaynak (1998), "Optical Recognition of Handwritten Digits", UCI
    Machine Learning Repository (CC BY 4.0), as bundled with scikit-learn (BSD-3-Clause); see
    ``data/README.md``. Raises :class:`DataNotFoundError` if ``digits.csv`` cannot be found.
    """
    table = _load_table("digits.csv", 65)
    labels = table[:, 64]
    if not (np.all(labels == np.round(labels)) and labels.min() >= 0 and labels.max() <= 9):
        raise ValueError("digits.csv: labels must be integers 0..9")
    X = np.ascontiguousarray(table[:, :64])
    y = labels.astype(np.int64)
    return _split(X, y)


def load_diabetes() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Efron et al.'s diabetes data, split into training and test sets.

    Returns ``(X_train, y_train, X_test, y_test)``:

    * ``X_train`` — float64, shape (354, 10); ``X_test`` — float64, shape (88, 10). Columns, in
      order: age, sex, bmi, bp, s1, s2, s3, s4, s5, s6 — the raw baseline values as stored,
      **not scaled or centred** (unlike scikit-learn's default ``load_diabetes``).
    * ``y_train`` — float64, shape (354,); ``y_test`` — float64, shape (88,): the disease
      progression one year after baseline.

    Split: patient ``i`` of ``diabetes.csv`` (0-based) is a test patient iff ``i % 5 == 4``, the
    rule ``bdl demo`` uses; both parts keep the file's order.

    Source: B. Efron, T. Hastie, I. Johnstone and R. Tibshirani (2004), "Least Angle Regression",
    *Annals of Statistics* 32(2), as bundled with scikit-learn (BSD-3-Clause); see
    ``data/README.md``. Raises :class:`DataNotFoundError` if ``diabetes.csv`` cannot be found.
    """
    table = _load_table("diabetes.csv", 11)
    X = np.ascontiguousarray(table[:, :10])
    y = np.ascontiguousarray(table[:, 10])
    return _split(X, y)
