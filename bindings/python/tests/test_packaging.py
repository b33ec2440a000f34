"""The shipped library: self-contained (no Swift runtime needed) and exporting only the C API."""
import shutil
import subprocess

import pytest

import bdlcore._lib as lib


def library_path():
    return lib.library_path


@pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd not available")
def test_library_needs_no_swift_runtime():
    out = subprocess.run(["ldd", library_path()], capture_output=True, text=True, check=True).stdout
    assert "swift" not in out.lower(), out
    # OpenBLAS/LAPACKE are loaded on first use, not at link time (see the header's BLAS section).
    assert "openblas" not in out and "lapacke" not in out, out


@pytest.mark.skipif(shutil.which("nm") is None, reason="nm not available")
def test_only_bdl_c_symbols_are_exported():
    out = subprocess.run(["nm", "-D", "--defined-only", library_path()], capture_output=True, text=True, check=True).stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    # Swift's mangled names ($s…) are exported by the Swift compiler for the module's public
    # declarations; they are not C symbols. Everything else must carry the bdl_ prefix, apart
    # from the linker's section markers.
    linker_markers = {"_edata", "_end", "__bss_start", "_init", "_fini"}
    foreign = [n for n in names if not (n.startswith("bdl_") or n.startswith("$s") or n in linker_markers)]
    assert foreign == [], foreign
