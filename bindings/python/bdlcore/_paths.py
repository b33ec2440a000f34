"""The three-step file search shared by the library loader (``_lib``) and the datasets.

In order: the path named by an environment variable (if set and non-empty), a path inside the
package directory, and a path inside the source tree the package sits in
(``<package dir>/../../..``).
"""

from __future__ import annotations

import os
from typing import List, Mapping, Optional, Tuple

#: Origin of the candidate inside the package directory.
PACKAGE_ORIGIN = "package directory"


def search_candidates(
    env_var: str,
    package_dir: str,
    package_relative: str,
    repo_relative: str,
    repo_origin: str,
    environ: Optional[Mapping[str, str]] = None,
) -> List[Tuple[str, str]]:
    """The paths to try, in order, as ``(origin, path)`` pairs.

    1. ``(env_var, absolute path of environ[env_var])``, only if that variable is set and
       non-empty;
    2. ``("package directory", package_dir/package_relative)``;
    3. ``(repo_origin, normalised package_dir/../../../repo_relative)``.

    ``package_relative`` is relative to ``package_dir`` and ``repo_relative`` to the source tree's
    root. ``environ`` defaults to ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    candidates = []
    override = environ.get(env_var, "")
    if override:
        candidates.append((env_var, os.path.abspath(override)))
    candidates.append((PACKAGE_ORIGIN, os.path.join(package_dir, package_relative)))
    repo_path = os.path.join(package_dir, os.pardir, os.pardir, os.pardir, repo_relative)
    candidates.append((repo_origin, os.path.normpath(repo_path)))
    return candidates
