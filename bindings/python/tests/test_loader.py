"""Finding the shared library: BDLCORE_LIBRARY, the package directory, the source tree's build."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import bdlcore
from bdlcore import _lib

from _support import PACKAGE_ROOT, REPO_ROOT

BUILT_LIBRARY = os.path.join(REPO_ROOT, ".build", "release", "libbdlcore.so")


def test_candidates_in_documented_order(tmp_path):
    package_dir = tmp_path / "a" / "b" / "bdlcore"
    candidates = _lib.library_candidates(environ={"BDLCORE_LIBRARY": "/nonexistent/libbdlcore.so"}, package_dir=str(package_dir))
    assert candidates == [
        ("BDLCORE_LIBRARY", "/nonexistent/libbdlcore.so"),
        ("package directory", str(package_dir / "libbdlcore.so")),
        ("source tree build", str(tmp_path / ".build" / "release" / "libbdlcore.so")),
    ]
    without_env = _lib.library_candidates(environ={}, package_dir=str(package_dir))
    assert [origin for origin, _ in without_env] == ["package directory", "source tree build"]


def test_default_candidates_point_at_this_source_tree():
    origin, path = _lib.library_candidates(environ={})[-1]
    assert origin == "source tree build"
    assert os.path.samefile(os.path.dirname(path), os.path.dirname(BUILT_LIBRARY))


def test_error_lists_every_path_and_reason(tmp_path):
    not_elf = tmp_path / "pkg" / "libbdlcore.so"
    not_elf.parent.mkdir()
    not_elf.write_text("not a shared library")
    candidates = [
        ("BDLCORE_LIBRARY", "/nonexistent/libbdlcore.so"),
        ("package directory", str(not_elf)),
        ("source tree build", str(tmp_path / ".build" / "release" / "libbdlcore.so")),
    ]
    with pytest.raises(_lib.LibraryNotFoundError) as info:
        _lib.load_library(candidates)
    assert isinstance(info.value, ImportError)
    message = str(info.value)
    lines = message.splitlines()
    for origin, path in candidates:
        matching = [line for line in lines if path in line]
        assert len(matching) == 1, f"{path} not listed exactly once in:\n{message}"
        assert matching[0].strip().startswith(f"{origin}:")
    assert "/nonexistent/libbdlcore.so (no such file)" in message
    assert str(tmp_path / ".build" / "release" / "libbdlcore.so") + " (no such file)" in message
    not_elf_line = next(line for line in lines if str(not_elf) in line)
    assert "no such file" not in not_elf_line and "(" in not_elf_line  # dlopen's own reason, e.g. "invalid ELF header"
    assert "BDLCORE_LIBRARY" in lines[-1]  # tells how to fix it


def test_a_library_that_is_not_bdlcore_is_refused():
    import _ctypes  # a shared object every CPython has, which exports no bdl_ function

    with pytest.raises(_lib.LibraryNotFoundError, match="does not export bdl_version_string"):
        _lib.load_library([("BDLCORE_LIBRARY", _ctypes.__file__)])


def test_loads_first_working_candidate_and_warns_about_a_bad_override():
    with pytest.warns(RuntimeWarning, match="BDLCORE_LIBRARY could not be loaded"):
        library, path = _lib.load_library([("BDLCORE_LIBRARY", "/nonexistent/libbdlcore.so"), ("source tree build", _lib.library_path)])
    assert path == _lib.library_path
    assert library.bdl_version_number() == bdlcore.version_number()


def run_python(code, env_changes, cwd):
    env = dict(os.environ)
    env.pop("BDLCORE_LIBRARY", None)
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def copy_package(destination):
    """The Python files of the package, without any shared library, at destination/bdlcore."""
    source = os.path.join(PACKAGE_ROOT, "bdlcore")
    target = destination / "bdlcore"
    target.mkdir(parents=True)
    for name in os.listdir(source):
        if name.endswith(".py"):
            shutil.copy(os.path.join(source, name), target / name)
    return target


def test_import_fails_with_every_path_when_nothing_loads(tmp_path):
    """A copy of the package outside the source tree, without the library, and a bad override."""
    site = tmp_path / "a" / "b"
    package = copy_package(site)
    result = run_python("import bdlcore", {"BDLCORE_LIBRARY": "/nonexistent/libbdlcore.so", "PYTHONPATH": str(site)}, cwd=str(tmp_path))
    assert result.returncode != 0
    assert "LibraryNotFoundError" in result.stderr
    for path in ("/nonexistent/libbdlcore.so", str(package / "libbdlcore.so"), str(tmp_path / ".build" / "release" / "libbdlcore.so")):
        assert path in result.stderr, f"{path} not listed in:\n{result.stderr}"


def test_env_var_library_is_the_one_used(tmp_path):
    copy = tmp_path / "elsewhere" / "libbdlcore.so"
    copy.parent.mkdir()
    shutil.copy(_lib.library_path, copy)
    code = (
        "import json, os, bdlcore\n"
        "from bdlcore import _lib\n"
        "maps = open('/proc/self/maps').read() if os.path.exists('/proc/self/maps') else None\n"
        "print(json.dumps([_lib.library_path, bdlcore.__version__, maps]))\n"
    )
    result = run_python(code, {"BDLCORE_LIBRARY": str(copy), "PYTHONPATH": PACKAGE_ROOT}, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    path, version, maps = json.loads(result.stdout.strip().splitlines()[-1])
    assert path == str(copy)
    assert version == bdlcore.__version__
    if maps is not None:  # the process really mapped that file, and no other libbdlcore
        mapped = {line.split()[-1] for line in maps.splitlines() if line.endswith("libbdlcore.so")}
        assert mapped == {str(copy)}, mapped


def test_package_directory_library_is_used_before_the_build(tmp_path):
    site = tmp_path / "a" / "b"
    package = copy_package(site)
    shutil.copy(_lib.library_path, package / "libbdlcore.so")
    code = "from bdlcore import _lib; print(_lib.library_path)"
    result = run_python(code, {"PYTHONPATH": str(site)}, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(package / "libbdlcore.so")


def test_fallback_to_the_build_warns_about_a_bad_override(tmp_path):
    code = (
        "import warnings, json\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from bdlcore import _lib\n"
        "print(json.dumps([_lib.library_path, [str(w.message) for w in caught]]))\n"
    )
    result = run_python(code, {"BDLCORE_LIBRARY": "/nonexistent/libbdlcore.so", "PYTHONPATH": PACKAGE_ROOT}, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    path, messages = json.loads(result.stdout.strip().splitlines()[-1])
    expected = next(p for _, p in _lib.library_candidates(environ={}) if os.path.exists(p))
    assert path == expected
    assert any("/nonexistent/libbdlcore.so" in m for m in messages), messages
