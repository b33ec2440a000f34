"""Exceptions for bdlcore statuses.

Every fallible C function returns a ``bdl_status``; :func:`_check` turns a non-zero one into the
matching :class:`BDLError` subclass, carrying the library's last error message (which names the
argument and value at fault). The subclasses also derive from the built-in exception a Python
caller would expect: shape and value problems are ``ValueError``, allocation failures
``MemoryError``, file problems ``OSError``.
"""

from __future__ import annotations

import enum
from typing import Dict, Optional, Type

from . import _lib

__all__ = [
    "Status",
    "BDLError",
    "InvalidArgumentError",
    "ShapeMismatchError",
    "NonFiniteInputError",
    "NotPositiveDefiniteError",
    "NotConvergedError",
    "OutOfMemoryError",
    "BDLIOError",
    "CorruptDataError",
    "WrongStateError",
    "UnsupportedError",
    "InternalError",
]


class Status(enum.IntEnum):
    """The pinned ``bdl_status`` values of bdlcore.h."""

    OK = _lib.BDL_OK
    INVALID_ARGUMENT = _lib.BDL_INVALID_ARGUMENT
    SHAPE_MISMATCH = _lib.BDL_SHAPE_MISMATCH
    NON_FINITE_INPUT = _lib.BDL_NON_FINITE_INPUT
    NOT_POSITIVE_DEFINITE = _lib.BDL_NOT_POSITIVE_DEFINITE
    NOT_CONVERGED = _lib.BDL_NOT_CONVERGED
    OUT_OF_MEMORY = _lib.BDL_OUT_OF_MEMORY
    IO_ERROR = _lib.BDL_IO_ERROR
    CORRUPT_DATA = _lib.BDL_CORRUPT_DATA
    WRONG_STATE = _lib.BDL_WRONG_STATE
    UNSUPPORTED = _lib.BDL_UNSUPPORTED
    INTERNAL = _lib.BDL_INTERNAL


def _status_text(status: int) -> str:
    return _lib.lib.bdl_status_string(status).decode("utf-8", "replace")


class BDLError(Exception):
    """A failed bdlcore call.

    Attributes:
        status: the ``bdl_status`` code (an ``int``; see :class:`Status`).
        message: the library's description, naming the argument and value at fault.
    """

    #: The status this class stands for (``None`` on the base class).
    status_code: Optional[int] = None

    def __init__(self, message: str, status: Optional[int] = None):
        if status is None:
            status = self.status_code if self.status_code is not None else _lib.BDL_INTERNAL
        self.status = int(status)
        self.message = message or _status_text(self.status)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


class InvalidArgumentError(BDLError, ValueError):
    """``BDL_INVALID_ARGUMENT``: a caller bug (NULL pointer, bad size, non-finite or negative scalar)."""

    status_code = _lib.BDL_INVALID_ARGUMENT


class ShapeMismatchError(BDLError, ValueError):
    """``BDL_SHAPE_MISMATCH``: dimensions disagree, or an output buffer is too small."""

    status_code = _lib.BDL_SHAPE_MISMATCH


class NonFiniteInputError(BDLError, ValueError):
    """``BDL_NON_FINITE_INPUT``: NaN or ±Inf in an input array."""

    status_code = _lib.BDL_NON_FINITE_INPUT


class NotPositiveDefiniteError(BDLError):
    """``BDL_NOT_POSITIVE_DEFINITE``: a factor is not symmetric PSD, or some eigenvalue is ≤ 0 where it must not be."""

    status_code = _lib.BDL_NOT_POSITIVE_DEFINITE


class NotConvergedError(BDLError):
    """``BDL_NOT_CONVERGED``: an iterative method (e.g. LAPACK's eigensolver) stopped before its tolerance."""

    status_code = _lib.BDL_NOT_CONVERGED


class OutOfMemoryError(BDLError, MemoryError):
    """``BDL_OUT_OF_MEMORY``: an allocation failed or would exceed the machine's memory."""

    status_code = _lib.BDL_OUT_OF_MEMORY


class BDLIOError(BDLError, OSError):
    """``BDL_IO_ERROR``: a file could not be opened, read or written."""

    status_code = _lib.BDL_IO_ERROR


class CorruptDataError(BDLError):
    """``BDL_CORRUPT_DATA``: a file or buffer is malformed, truncated or fails its checksum."""

    status_code = _lib.BDL_CORRUPT_DATA


class WrongStateError(BDLError):
    """``BDL_WRONG_STATE``: the object does not allow the call in its state (e.g. it was closed)."""

    status_code = _lib.BDL_WRONG_STATE


class UnsupportedError(BDLError):
    """``BDL_UNSUPPORTED``: this build or platform cannot serve the request (e.g. OpenBLAS missing)."""

    status_code = _lib.BDL_UNSUPPORTED


class InternalError(BDLError):
    """``BDL_INTERNAL``: a bug in bdlcore; please report it with the message."""

    status_code = _lib.BDL_INTERNAL


#: The exception class of each non-OK status.
ERROR_CLASSES: Dict[int, Type[BDLError]] = {
    cls.status_code: cls
    for cls in (
        InvalidArgumentError,
        ShapeMismatchError,
        NonFiniteInputError,
        NotPositiveDefiniteError,
        NotConvergedError,
        OutOfMemoryError,
        BDLIOError,
        CorruptDataError,
        WrongStateError,
        UnsupportedError,
        InternalError,
    )
}


def error_for_status(status: int, message: str) -> BDLError:
    """The exception for a non-OK ``status``; an unknown status gives a plain :class:`BDLError`."""
    cls = ERROR_CLASSES.get(int(status), BDLError)
    return cls(message, status)


def _check(status: int) -> None:
    """Raises the :class:`BDLError` subclass of ``status`` with ``bdl_last_error_message()``; returns on ``BDL_OK``.

    Call it right after the C call, on the same thread: the message is thread-local and valid until
    the next bdlcore call.
    """
    if status == _lib.BDL_OK:
        return
    message = _lib.lib.bdl_last_error_message().decode("utf-8", "replace")
    raise error_for_status(status, message)
