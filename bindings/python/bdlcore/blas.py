"""Which BLAS/LAPACK bdlcore runs on.

bdlcore loads OpenBLAS and LAPACKE lazily. Unless ``OPENBLAS_CORETYPE`` is set, it first picks the
OpenBLAS kernel family ("core") from the CPU's features (AVX-512 → SkylakeX, AVX2+FMA → Haswell),
because some OpenBLAS builds misdetect recent CPUs and run several times slower; it then removes the
variable again, so child processes do not inherit its choice. A value you set yourself always wins.
:func:`blas_info` reports what is in use.
"""

from __future__ import annotations

from ctypes import byref, sizeof
from dataclasses import dataclass

from . import _lib
from ._errors import _check

__all__ = ["BLASInfo", "blas_info", "CORE_SOURCES"]

#: Names of the BDL_BLAS_CORE_* values, as reported in :attr:`BLASInfo.core_source`.
CORE_SOURCES = {
    _lib.BDL_BLAS_CORE_FROM_OPENBLAS: "openblas",
    _lib.BDL_BLAS_CORE_FROM_USER: "user",
    _lib.BDL_BLAS_CORE_FROM_BDLCORE: "bdlcore",
    _lib.BDL_BLAS_CORE_PRELOADED: "preloaded",
}


@dataclass(frozen=True)
class BLASInfo:
    """Description of the BLAS/LAPACK libraries in use.

    Attributes:
        core: ``openblas_get_corename()``, e.g. "Haswell", "SkylakeX".
        requested_core: the ``OPENBLAS_CORETYPE`` in effect when OpenBLAS was loaded ("" if none).
        core_source: where the core came from: "bdlcore" (chosen from the CPU features), "user"
            (``OPENBLAS_CORETYPE`` was set), "openblas" (OpenBLAS's own detection), or "preloaded"
            (OpenBLAS was already in the process, its core chosen then).
        num_threads: OpenBLAS's thread count (bound it with ``OPENBLAS_NUM_THREADS``).
        openblas_library: the loaded OpenBLAS file.
        lapacke_library: the loaded LAPACKE file.
        config: ``openblas_get_config()``, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ...".
    """

    core: str
    requested_core: str
    core_source: str
    num_threads: int
    openblas_library: str
    lapacke_library: str
    config: str


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def blas_info() -> BLASInfo:
    """Loads OpenBLAS and LAPACKE if not yet loaded and describes them.

    Raises:
        UnsupportedError: OpenBLAS or LAPACKE could not be loaded (the message lists the files tried).
    """
    info = _lib.bdl_blas_info_t()
    info.struct_size = sizeof(_lib.bdl_blas_info_t)
    _check(_lib.lib.bdl_blas_info(byref(info)))
    return BLASInfo(
        core=_text(info.core),
        requested_core=_text(info.requested_core),
        core_source=CORE_SOURCES.get(info.core_source, f"unknown ({info.core_source})"),
        num_threads=int(info.num_threads),
        openblas_library=_text(info.openblas_library),
        lapacke_library=_text(info.lapacke_library),
        config=_text(info.config),
    )
