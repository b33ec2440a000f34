"""Progress reporting shared by the long-running calls (training, fitting, scoring).

A ``progress`` argument is ``None`` (a text bar on stderr when it is interactive, else nothing),
``True`` (always a bar), ``False`` (nothing) or a callable receiving the progress. Callbacks run
inside the library's loops, so nothing may propagate into it: an exception raised by the user's
callable is kept and re-raised once the call has returned.
"""
from __future__ import annotations

import sys
from typing import Callable, List, Optional, Tuple

from . import _lib
from ._errors import InvalidArgumentError, error_for_status


class TextBar:
    """A one-line text bar on a stream, redrawn with '\\r'; ``describe(done, total)`` gives the
    text after the bar (empty by default)."""

    WIDTH = 24

    def __init__(self, stream, label: str, describe: Optional[Callable[..., str]] = None):
        self._stream = stream
        self._label = label
        self._describe = describe
        self._drawn = False

    def draw(self, done: int, total: int, suffix: str = "") -> None:
        total = max(total, 1)
        filled = min(self.WIDTH, int(round(self.WIDTH * done / total)))
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        width = len(str(total))
        self._stream.write(f"\r{self._label} {done:>{width}}/{total} [{bar}]{suffix}")
        self._stream.flush()
        self._drawn = True

    def __call__(self, done: int, total: int) -> None:
        self.draw(done, total)

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


def _interactive(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed or detached stream
        return False


def reporter(progress, make_bar: Callable[[object], TextBar]) -> Tuple[Optional[Callable], Optional[TextBar]]:
    """(callable or None, bar to close or None) for a ``progress`` argument."""
    if progress is None:
        if not _interactive(sys.stderr):
            return None, None
        bar = make_bar(sys.stderr)
        return bar, bar
    if progress is True:
        bar = make_bar(sys.stderr)
        return bar, bar
    if progress is False:
        return None, None
    if callable(progress):
        return progress, None
    raise InvalidArgumentError(f"progress: expected None, False, True or a callable, got {progress!r}")


def call_with_progress(progress, label: str, call: Callable[[object], int]) -> Optional[BaseException]:
    """Runs ``call(callback)`` — a C call taking a ``bdl_pass_progress_fn`` and returning its status.

    Raises the library's error if the status is not OK. Otherwise returns the first exception
    the progress callable raised (kept, not propagated into the library), or None; the caller
    discards the call's result and re-raises it.
    """
    report, bar = reporter(progress, lambda stream: TextBar(stream, label))
    failures: List[BaseException] = []

    def on_step(done, total, _user_data) -> None:
        if failures or report is None:
            return
        try:
            report(int(done), int(total))
        except BaseException as error:  # noqa: BLE001 — includes KeyboardInterrupt
            failures.append(error)

    # A default-constructed function pointer is NULL: the library then reports nothing.
    callback = _lib.BDL_PASS_PROGRESS_FN(on_step) if report is not None else _lib.BDL_PASS_PROGRESS_FN()
    error = None
    try:
        status = call(callback)
        if status != _lib.BDL_OK:
            message = _lib.lib.bdl_last_error_message().decode("utf-8", "replace")
            error = error_for_status(status, message)
    finally:
        if bar is not None:
            bar.close()
    del callback
    if error is not None:
        raise error
    return failures[0] if failures else None
