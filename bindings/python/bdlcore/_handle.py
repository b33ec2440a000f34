"""The lifetime of one opaque library handle owned by a Python object.

:class:`~bdlcore.KronFactor` and :class:`~bdlcore.Sequential` both derive from
:class:`_OwnedHandle`, which holds the handle, the lock that serialises calls on it, and the
``weakref.finalize`` that frees it.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Callable, Iterator, Optional, TypeVar

from ._errors import WrongStateError

_Owner = TypeVar("_Owner", bound="_OwnedHandle")


class _OwnedHandle:
    """Owns one library handle, freed exactly once by the C function given to :meth:`_adopt`.

    A subclass calls ``super().__init__()`` before anything can fail, creates its handle and
    passes it to :meth:`_adopt` together with its C free function. The handle is then freed by
    :meth:`close` (or at the end of a ``with`` block), or else by a ``weakref.finalize`` when
    the object is garbage collected — never twice. After :meth:`close`, :meth:`_live` and
    :meth:`_use` raise :class:`~bdlcore.WrongStateError` naming :attr:`_owner_name`.

    Subclasses set :attr:`_owner_name` and may override :meth:`_guard`, which runs first in
    :meth:`close` and :meth:`_use`.
    """

    #: The class name used in the "is closed" message.
    _owner_name = "object"

    def __init__(self) -> None:
        self._handle: Optional[int] = None
        self._lock = threading.Lock()

    def _adopt(self, handle: int, free: Callable[[int], None]) -> None:
        """Takes ownership of ``handle``, to be released by calling ``free(handle)`` once."""
        self._handle = handle
        self._finalizer = weakref.finalize(self, free, handle)

    def _guard(self) -> None:
        """Runs at the start of :meth:`close` and :meth:`_use`; raise here to refuse both.

        Does nothing by default.
        """

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Releases the handle. Idempotent; later method calls raise WrongStateError."""
        self._guard()
        with self._lock:
            if self._handle is not None:
                self._handle = None
                self._finalizer()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._handle is None

    def __enter__(self: _Owner) -> _Owner:
        self._live()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _live(self) -> int:
        """The handle; raises WrongStateError if it was released."""
        handle = self._handle
        if handle is None:
            raise WrongStateError(f"{self._owner_name} is closed; create a new one")
        return handle

    @contextlib.contextmanager
    def _use(self) -> Iterator[int]:
        """Holds the lock and yields the live handle."""
        self._guard()
        with self._lock:
            yield self._live()
