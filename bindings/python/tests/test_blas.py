"""bdl_blas_info: the OpenBLAS kernel bdlcore runs on suits the CPU, and a user's choice wins."""

import ctypes
import json
import os
import subprocess
import sys

import pytest

import bdlcore
from bdlcore import _lib

from _support import PACKAGE_ROOT

AVX512_CORES = {"skylakex", "cooperlake", "sapphirerapids"}
AVX2_CORES = {"haswell", "zen"} | AVX512_CORES


def cpu_flags():
    """The CPU feature flags of /proc/cpuinfo (empty if there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


FLAGS = cpu_flags()
HAS_AVX512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= FLAGS
HAS_AVX2 = {"avx2", "fma"} <= FLAGS


def cpu_vendor():
    """The vendor_id of /proc/cpuinfo ("AuthenticAMD", "GenuineIntel", or "")."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


#: The core bdlcore asks for on this CPU when the user has not (see bdlcore.h, "BLAS kernel selection").
PREFERRED_CORE = "SkylakeX" if HAS_AVX512 else ("Zen" if cpu_vendor() == "AuthenticAMD" else "Haswell")


def expected_cores():
    """OpenBLAS cores that use this CPU's widest vector units, or None when bdlcore keys on none."""
    if HAS_AVX512:
        return AVX512_CORES
    if HAS_AVX2:
        return AVX2_CORES
    return None


def test_blas_info_describes_loaded_libraries():
    info = bdlcore.blas_info()
    assert isinstance(info, bdlcore.BLASInfo)
    assert info.core_source in {"openblas", "user", "bdlcore", "preloaded"}
    assert info.core, info
    assert info.num_threads >= 1
    assert os.path.isfile(info.openblas_library) and "openblas" in os.path.basename(info.openblas_library).lower(), info
    assert os.path.isfile(info.lapacke_library) and "lapacke" in os.path.basename(info.lapacke_library).lower(), info
    assert info.config.startswith("OpenBLAS"), info.config
    assert bdlcore.blas_info() == info  # loaded once: the same answer every time
    with pytest.raises(Exception):
        info.core = "x"  # frozen


def test_blas_core_suits_cpu():
    info = bdlcore.blas_info()
    user_core = os.environ.get("OPENBLAS_CORETYPE", "")
    if info.core_source == "user":
        assert user_core, "core_source is 'user' but OPENBLAS_CORETYPE was not set"
        assert info.core.lower() == user_core.lower() == info.requested_core.lower(), info
        return
    if info.core_source == "preloaded":
        pytest.skip(f"OpenBLAS was loaded into this process before bdlcore; its core {info.core} was chosen then")
    assert not user_core, f"OPENBLAS_CORETYPE={user_core} is set but core_source is {info.core_source}"
    allowed = expected_cores()
    if allowed is None:
        assert info.core_source == "openblas" and info.requested_core == ""
        return
    assert info.core_source == "bdlcore", info
    assert info.core.lower() in allowed, f"core {info.core} does not use this CPU's vector units (allowed: {sorted(allowed)})"
    assert info.requested_core == PREFERRED_CORE


def test_blas_info_fills_at_most_struct_size():
    """An older caller's smaller struct (fields up to `core`) is filled without writing past it."""
    full = bdlcore.blas_info()
    size = _lib.bdl_blas_info_t.requested_core.offset
    buffer = (ctypes.c_uint8 * ctypes.sizeof(_lib.bdl_blas_info_t))()
    ctypes.memset(buffer, 0xAB, ctypes.sizeof(buffer))
    info = _lib.bdl_blas_info_t.from_buffer(buffer)
    info.struct_size = size
    assert _lib.lib.bdl_blas_info(ctypes.byref(info)) == _lib.BDL_OK, bdlcore.last_error_message()
    assert bytes(buffer)[size:] == b"\xab" * (ctypes.sizeof(buffer) - size)
    assert info.struct_size == size
    assert info.core.decode() == full.core


def test_blas_info_larger_struct_is_accepted():
    """A newer caller's larger struct: the known fields are filled, the bytes after them untouched."""
    own = ctypes.sizeof(_lib.bdl_blas_info_t)
    buffer = (ctypes.c_uint8 * (own + 64))()
    ctypes.memset(buffer, 0xAB, ctypes.sizeof(buffer))
    info = _lib.bdl_blas_info_t.from_buffer(buffer)
    info.struct_size = own + 64
    assert _lib.lib.bdl_blas_info(ctypes.byref(info)) == _lib.BDL_OK, bdlcore.last_error_message()
    assert bytes(buffer)[own:] == b"\xab" * 64
    assert info.config.decode() == bdlcore.blas_info().config


PROBE = r"""
import ctypes, json, os, subprocess
import bdlcore
info = bdlcore.blas_info()
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
value = libc.getenv(b"OPENBLAS_CORETYPE")
child = subprocess.run(["sh", "-c", 'echo "${OPENBLAS_CORETYPE-<unset>}"'], capture_output=True, text=True).stdout.strip()
print(json.dumps(dict(
    core=info.core, core_source=info.core_source, requested_core=info.requested_core,
    in_os_environ="OPENBLAS_CORETYPE" in os.environ,
    getenv=None if value is None else value.decode(), child=child)))
"""


def probe(coretype):
    """Runs PROBE in a fresh interpreter with OPENBLAS_CORETYPE set to `coretype` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if coretype is not None:
        env["OPENBLAS_CORETYPE"] = coretype
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not HAS_AVX2, reason="bdlcore chooses a core only on CPUs with AVX2+FMA or AVX-512")
def test_bdlcore_chooses_core_and_removes_its_variable():
    report = probe(None)
    assert report["core_source"] == "bdlcore", report
    assert report["requested_core"] == PREFERRED_CORE, report
    assert report["core"].lower() in expected_cores(), report
    # The library removed its own choice: not in os.environ, not in the C environment, not inherited.
    assert not report["in_os_environ"], report
    assert report["getenv"] is None, report
    assert report["child"] == "<unset>", report


@pytest.mark.skipif(not HAS_AVX2, reason="forcing the Haswell core needs a CPU with AVX2+FMA")
def test_user_coretype_wins():
    report = probe("Haswell")
    assert report["core_source"] == "user", report
    assert report["core"].lower() == "haswell", report
    assert report["requested_core"] == "Haswell", report
    assert report["getenv"] == "Haswell" and report["child"] == "Haswell", "the user's variable must be left in place"
