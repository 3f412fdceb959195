"""What the command is reading at this moment, for the last-resort error message
(generator.cli.main): a crash names the input it happened in, so that the bug report
can include it and the user can try without it. Entries are one-line descriptions
("input 'a.jsonl'", "snapshot 'cluster.json'"): names in them are repr()s."""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Iterator

_lock = threading.Lock()
_open: list[str] = []
# The input whose reading an exception ended: its context closes it while the exception
# unwinds, before the handler in generator.cli.main asks. Forgotten at the next open.
_left_by_exception: str | None = None


def opened(what: str) -> None:
    global _left_by_exception
    with _lock:
        _open.append(what)
        _left_by_exception = None


def closed(what: str) -> None:
    global _left_by_exception
    with _lock:
        for i in range(len(_open) - 1, -1, -1):
            if _open[i] == what:
                del _open[i]
                break
        if sys.exc_info()[0] is not None:  # closed by an exception on its way out
            _left_by_exception = what


def current() -> str | None:
    """The input opened last and not closed yet, else the one an exception left."""
    with _lock:
        return _open[-1] if _open else _left_by_exception


@contextlib.contextmanager
def reading(what: str) -> Iterator[None]:
    opened(what)
    try:
        yield
    finally:
        closed(what)
