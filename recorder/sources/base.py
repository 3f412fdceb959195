"""What every input source is made of: its table entry and the options readers share.

Kept apart from the table itself (``recorder.sources``), which imports every reader:
the readers import this module, never the table.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator, Protocol

from recorder.report import ReadReport
from recorder.schema import LogRecord

SNIFF_BYTES = 64 * 1024
# Inputs are read line by line through a BufferedReader: with the default 8 KiB buffer
# reading a large capture costs one system call per 8 KiB, about as much again as
# splitting it into lines.
READ_BUFFER = 256 * 1024


class InputWatcher(Protocol):
    """Told when an input is opened and closed (a progress display: it follows the
    file's offset itself, so that the readers do nothing per line for it)."""

    def opened(self, path: str, stream: BinaryIO) -> None: ...

    def closed(self, path: str, stream: BinaryIO) -> None: ...


@dataclass(frozen=True, slots=True)
class ReadOptions:
    include_dropped: bool = False
    dump_time: int | None = None  # ns; stamps records of time-less inputs (conntrack -L)
    # UDP/ICMP: packets of one 5-tuple closer together than this count as one flow.
    udp_window_ns: int = 60 * 1_000_000_000
    watcher: InputWatcher | None = field(default=None, compare=False)


@contextlib.contextmanager
def watching(options: ReadOptions, path: str, stream: BinaryIO) -> Iterator[None]:
    if options.watcher is None:
        yield
        return
    options.watcher.opened(path, stream)
    try:
        yield
    finally:
        options.watcher.closed(path, stream)


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    description: str
    sniff: Callable[[bytes], bool]
    # read(stream, display_path, report, options) -> records. The stream is binary and
    # already decompressed; readers must stream (never read it whole).
    read: Callable[[BinaryIO, str, ReadReport, ReadOptions], Iterator[LogRecord]]
