"""What every input source is made of: its table entry and the options readers share.

Kept apart from the table itself (``recorder.sources``), which imports every reader:
the readers import this module, never the table.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from typing import AnyStr, BinaryIO, Callable, Iterable, Iterator, Protocol

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
    # Readers may yield recorder.listed.ListedRows batches besides records (only a
    # consumer that adds them to an Aggregator may ask for them).
    listed_batches: bool = False


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


# A flow is a few kB on one line; a longer line is no flow (junk, a binary file, NULs
# without a newline) and is passed over rather than held in memory.
MAX_LINE = 1 << 20
# Bytes that are no content when telling a format or whether a file is empty: whitespace
# and NULs (copytruncate rotation leaves NULs; the readers count those as bad items).
BLANK = b" \t\r\n\v\f\0"


def skip_blank(stream: BinaryIO) -> None:
    """Pass over the blank bytes (``BLANK``) at the start of ``stream``, holding at most
    one buffer of them: a line of spaces may be longer than any window a format is told
    by, and must not be read into memory."""
    while True:
        buf = stream.peek(READ_BUFFER)  # type: ignore[attr-defined]
        k = len(buf) - len(buf.lstrip(BLANK))
        if k:
            stream.read(k)
        if not buf or k < len(buf):
            return


def to_first_content(readline: Callable[[int], bytes], pending: list[bytes]) -> bytes:
    """Read lines (``readline(MAX_LINE)``) onto ``pending`` up to the first that is not
    whitespace, and return that one (``b""`` at the end). A blank line goes on as just
    its newline, a blank piece of an over-long line not at all: numbering is kept, and
    whitespace of any length is not held for a reader's look ahead."""
    while True:
        piece = readline(MAX_LINE)
        if not piece or piece.strip():
            pending.append(piece)
            return piece
        if piece.endswith(b"\n"):
            pending.append(b"\n")


def numbered_lines(readline: Callable[[int], AnyStr], path: str, report: ReadReport,
                   first: Iterable[AnyStr] = (), end: AnyStr = b"",  # type: ignore[assignment]
                   ) -> Iterator[tuple[int, AnyStr]]:
    """(line number, line) of a stream, each at most MAX_LINE long: a longer line is
    skipped as one bad item (``line-too-long``) and read past without being held; a
    longer one of only whitespace is a blank line, no bad item, and is not yielded.
    ``first``: lines already read with ``readline(MAX_LINE)`` (a reader's look ahead);
    ``end``: what ``readline`` returns at the end (``""`` for a text stream)."""
    lineno = 0
    pieces = chain(first, iter(partial(readline, MAX_LINE), end))
    for line in pieces:
        lineno += 1
        if len(line) >= MAX_LINE and line[-1:] not in ("\n", b"\n"):
            rest = line
            blank = not line.strip()
            while len(rest) >= MAX_LINE and rest[-1:] not in ("\n", b"\n"):
                rest = next(pieces, rest[:0])
                blank = blank and not rest.strip()
            if blank:
                continue  # a blank line, however long, is no bad item
            report.skip(path, lineno, "line-too-long",
                        f"a line longer than {MAX_LINE >> 20} MiB is no flow (junk or a "
                        "binary file?); it was passed over")
            continue
        yield lineno, line
