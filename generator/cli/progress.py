"""Progress while the inputs are read: bytes read of the bytes there are, on a terminal
only (nothing at all when stderr is piped or redirected).

The readers are not asked to count: each open input's file offset is read from the
kernel a few times a second (``os.lseek`` on a duplicate of its descriptor, which
shares the offset), so the fast paths do nothing per line for it. A gzipped input
counts its compressed bytes against its compressed size. Inputs that are not regular
files (a pipe) have no size: the display then counts bytes without a total.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from typing import TYPE_CHECKING, BinaryIO, Iterator

from generator import now_reading
from recorder.errors import InputError

if TYPE_CHECKING:  # imported when shown: OpenInputs alone needs no rich (start-up)
    from rich.console import Console

POLL_S = 0.1


def _total_size(inputs: list[str]) -> tuple[int | None, int]:
    """The bytes of every input file (None when one has no size: a pipe) and the number
    of files."""
    from recorder.report import ReadReport
    from recorder.sources import flow_files

    total: int | None = 0
    files = 0
    for raw in inputs:
        try:
            paths = flow_files(raw, ReadReport())  # the files that will be read
        except InputError:
            continue  # the reading reports it
        for p in paths:
            try:
                st = os.stat(p)
            except OSError:
                continue
            files += 1
            if total is not None:
                total = total + st.st_size if stat.S_ISREG(st.st_mode) else None
    return total, files


class BytesRead:
    """An ``InputWatcher`` (recorder.sources.base) that sums the offsets of the open
    inputs and the sizes of the finished ones, and what reading workers report
    (``--jobs``: generator/parallel.py gives each worker a watcher of its own, made by
    ``for_worker``, and hands what it read to ``read_elsewhere``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id of an open input's stream -> (a duplicate of its fd, its size)
        self._open: dict[int, tuple[int, int]] = {}
        self._done = 0
        self.files_done = 0
        # an input a worker is reading -> the bytes read of it so far; those it finished
        self._elsewhere: dict[object, int] = {}
        self._finished_elsewhere: set[object] = set()

    @staticmethod
    def for_worker() -> BytesRead:
        """The watcher a worker process follows its inputs with (never this one: its
        lock may have been held by the display's thread when the worker forked)."""
        return BytesRead()

    def read_elsewhere(self, key: object, bytes_read: int, done: bool) -> None:
        """A worker read ``bytes_read`` of its input ``key`` so far; ``done``: all."""
        with self._lock:
            if key in self._finished_elsewhere:
                return
            if done:
                self._finished_elsewhere.add(key)
                self._elsewhere.pop(key, None)
                self._done += bytes_read
                self.files_done += 1
            else:
                self._elsewhere[key] = bytes_read

    def opened(self, path: str, stream: BinaryIO) -> None:
        now_reading.opened(f"input {path!r}")
        try:
            fd = os.dup(stream.fileno())
        except (OSError, ValueError, AttributeError):
            return
        st = os.fstat(fd)
        with self._lock:
            self._open[id(stream)] = (fd, st.st_size if stat.S_ISREG(st.st_mode) else 0)

    def closed(self, path: str, stream: BinaryIO) -> None:
        now_reading.closed(f"input {path!r}")
        with self._lock:
            entry = self._open.pop(id(stream), None)
            self.files_done += 1
            if entry is None:
                return
            fd, size = entry
            self._done += size or self._offset(fd)
        os.close(fd)

    @staticmethod
    def _offset(fd: int) -> int:
        try:
            return os.lseek(fd, 0, os.SEEK_CUR)
        except OSError:  # a pipe has no offset
            return 0

    def bytes_read(self) -> int:
        with self._lock:
            return (self._done + sum(self._elsewhere.values())
                    + sum(min(self._offset(fd), size) if size else self._offset(fd)
                          for fd, size in self._open.values()))

    def close(self) -> None:
        with self._lock:
            for fd, _ in self._open.values():
                os.close(fd)
            self._open.clear()


class OpenInputs:
    """The watcher when nothing is displayed: it only notes which input is open, for
    the message of a crash (generator.now_reading)."""

    def opened(self, path: str, stream: BinaryIO) -> None:
        now_reading.opened(f"input {path!r}")

    def closed(self, path: str, stream: BinaryIO) -> None:
        now_reading.closed(f"input {path!r}")


@contextlib.contextmanager
def input_progress(console: Console, inputs: list[str],
                   what: str = "reading flows") -> Iterator[BytesRead | None]:
    """A ``BytesRead`` shown live on ``console`` while the block runs, when it is a
    terminal; else an ``OpenInputs``."""
    if not console.is_terminal:
        yield OpenInputs()
        return
    from rich.progress import (
        BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn,
    )

    watcher = BytesRead()
    total, files = _total_size(inputs)
    stop = threading.Event()
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        DownloadColumn(), TextColumn("{task.fields[files]}"),
                        TimeRemainingColumn(), console=console, transient=True)
    task = progress.add_task(what, total=total, files=f"0/{files:,} inputs")

    def poll() -> None:
        while not stop.wait(POLL_S):
            progress.update(task, completed=watcher.bytes_read(),
                            files=f"{watcher.files_done:,}/{files:,} inputs")

    thread = threading.Thread(target=poll, name="flowpol-progress", daemon=True)
    with progress:
        thread.start()
        try:
            yield watcher
        finally:
            stop.set()
            thread.join()
            # The last frame shows everything read: a short run (or workers that report
            # only when they finish) can end between two polls.
            progress.update(task, completed=watcher.bytes_read(),
                            files=f"{watcher.files_done:,}/{files:,} inputs")
            progress.refresh()
            watcher.close()
