"""The table of input sources. Every reader streams records from one file.

A source registers a name, a ``sniff`` function that recognises its content from a
line or the first bytes (already decompressed), and a ``read`` function.
``read_inputs`` expands directories, opens gzip transparently (``gzipped``: like
gunzip), detects formats (a capture by its magic, text by most of its first lines) and
chains the readers. Junk before the records (NULs from copytruncate rotation, a stray
line) is counted as bad items, never the reason a file is refused.
"""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

from recorder.errors import InputError, UsageError
from recorder.report import ReadReport
from recorder.schema import LogRecord
from recorder.sources.base import (
    BLANK, MAX_LINE, READ_BUFFER, SNIFF_BYTES, ReadOptions, Source, skip_blank, watching,
)
from recorder.sources.gzipped import (
    GZIP_MAGIC, CompressedDataError, open_gzip, problem_of, produced_nothing,
)
from recorder.sources.jsonframes import first_object
from recorder.sources.notflows import flow_files, unknown_format_error

__all__ = ["READ_BUFFER", "SNIFF_BYTES", "ReadOptions", "Source", "detect_format",
           "expand_inputs", "flow_files", "open_input", "read_inputs", "sources"]


def _registry() -> dict[str, Source]:
    # Imported here so that a reader's heavy imports happen only when a command reads.
    from recorder.sources import conntrack, flowlog, hubble, pcap

    # binary magic first: cheapest and unambiguous
    table = [pcap.SOURCE, flowlog.SOURCE, hubble.SOURCE, conntrack.SOURCE]
    return {s.name: s for s in table}


_SOURCES: dict[str, Source] | None = None


def sources() -> dict[str, Source]:
    global _SOURCES
    if _SOURCES is None:
        _SOURCES = _registry()
    return _SOURCES


def open_input(path: Path, lenient: bool = False) -> BinaryIO:
    """Open a file for reading, decompressing gzip by its magic, not its name.

    Bad gzip data raises ``CompressedDataError`` (an InputError naming the file) after
    the bytes before it were read; ``lenient``: the stream just ends there and
    ``gzipped.problem_of(stream)`` says why (the flow readers count it as a bad item)."""
    try:
        f = open(path, "rb", buffering=READ_BUFFER)
    except OSError as e:
        raise InputError(f"cannot open: {e.strerror}", str(path)) from None
    head = f.peek(2)[:2]  # not read and seek back: a pipe cannot seek
    if head == GZIP_MAGIC:
        return open_gzip(f, str(path), lenient, READ_BUFFER)
    return f


def expand_inputs(inputs: list[str], regular_only: bool = True) -> list[Path]:
    """Files as given; directories walked recursively in sorted order (hidden skipped).
    ``regular_only`` (flow inputs): only regular files, since a flow input is opened more
    than once (its format is told from its first lines, then it is read), which a pipe
    cannot give twice, and a FIFO found in a directory would block the run. A snapshot
    is read once: ``--snapshot <(kubectl get ...)`` works."""
    out: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        path = Path(root) / name
                        out.append(_regular(path, str(path)) if regular_only else path)
        elif p.exists():
            out.append(_regular(p, raw) if regular_only else p)
        else:
            raise InputError("no such file or directory", raw)
    return out


def _regular(path: Path, display: str) -> Path:
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", display) from None
    if not stat.S_ISREG(mode):
        raise InputError(
            "not a regular file (a pipe, a process substitution such as <(zcat ...), a "
            "device or a socket): flowpol reads each input more than once; write it to a "
            "file first (e.g. zcat x.gz > x.json; gzip inputs are read as they are)", display)
    return path


def detect_format(path: Path) -> str | None:
    """The format of a file: a capture by its magic number; text by what most of its
    first lines are, so that junk at the start (a partial line, NULs left by
    copytruncate rotation, a stray line of another format, whitespace of any length)
    does not decide it. None: no format, or nothing but blank bytes."""
    table = sources()
    with open_input(path, lenient=True) as f:
        try:
            head = f.read(12)
            if table["pcap"].sniff(head):
                return "pcap"
            head = head.lstrip(BLANK)
            if not head:
                skip_blank(f)
            head += f.read(SNIFF_BYTES - len(head))
        except (OSError, EOFError) as e:
            raise InputError(f"cannot read: {e}", str(path)) from None
        if produced_nothing(f) and problem_of(f) is not None:
            raise problem_of(f)  # type: ignore[misc]  # starts with 1f 8b, is no gzip
    if not head:
        return None
    with open_input(path, lenient=True) as f:
        skip_blank(f)
        votes = _line_votes(f)
    if votes:
        # most lines; a tie goes to the format of the earlier line
        return min(votes, key=lambda name: (-votes[name][0], votes[name][1]))
    # Whole-file forms no single line shows: a JSON array, conntrack XML, and one JSON
    # object over many lines (`hubble observe -o json | jq .`), judged by its first one.
    for src in table.values():
        if src.sniff(head):
            return src.name
    first = first_object(head)
    if first is not None and table["hubble"].sniff(first):
        return "hubble"
    return None


SNIFF_LINES = 32  # non-blank lines that vote
# bytes looked through at most: several over-long lines (which the readers skip, so they
# do not vote); blank bytes do not count (the readers pass over them, however many)
SNIFF_SCAN = 16 * MAX_LINE


def _line_votes(f: BinaryIO) -> dict[str, tuple[int, int]]:
    """{format: (lines it claims, number of its first such line)} over the first
    SNIFF_LINES lines that the readers read: not blank (whitespace, NULs), not longer
    than MAX_LINE. A line longer than SNIFF_BYTES is judged by its start (the sniffs
    accept a cut-off line)."""
    text_sources = [s for s in sources().values() if s.name != "pcap"]
    votes: dict[str, tuple[int, int]] = {}
    scanned = nonblank = 0
    while nonblank < SNIFF_LINES and scanned < SNIFF_SCAN:
        line = f.readline(SNIFF_BYTES)
        if not line:
            break
        blank = not line.strip(BLANK)
        size = len(line)
        counted = 0 if blank else size
        rest = line
        while (len(rest) == SNIFF_BYTES and not rest.endswith(b"\n")
               and scanned + counted < SNIFF_SCAN):
            rest = f.readline(SNIFF_BYTES)
            size += len(rest)
            if rest.strip(BLANK):
                blank = False
                counted += len(rest)
        scanned += counted
        if blank or size > MAX_LINE:
            continue
        nonblank += 1
        for src in text_sources:
            if src.sniff(line):
                n, first = votes.get(src.name, (0, nonblank))
                votes[src.name] = (n + 1, first)
                break
    return votes


def skip_leading_nuls(stream: BinaryIO) -> int:
    """Pass over NUL bytes at the start of ``stream`` (copytruncate log rotation leaves
    the old file's length as NULs before what the writer wrote next), holding at most
    one buffer of them; how many there were."""
    n = 0
    while True:
        buf = stream.peek(READ_BUFFER)  # type: ignore[attr-defined]
        k = len(buf) - len(buf.lstrip(b"\0"))
        if k:
            stream.read(k)
            n += k
        if not buf or k < len(buf):
            return n


def read_inputs(
    inputs: list[str],
    report: ReadReport,
    options: ReadOptions = ReadOptions(),
    fmt: str | None = None,
) -> Iterator[LogRecord]:
    """Stream records from every input. Unknown formats and empty files are errors
    (exit 2): an input the user named that yields nothing is never silently dropped."""
    table = sources()
    if fmt is not None and fmt not in table:
        raise UsageError(f"unknown --format {fmt!r}; choose one of: {', '.join(sorted(table))}")
    for path in expand_inputs(inputs):
        display = str(path)
        name = fmt or detect_format(path)
        if name is None:
            if path.stat().st_size == 0 or _is_blank(path):
                raise InputError(
                    "the file is empty; give a file with flows or leave it out", display
                )
            raise unknown_format_error(path, display, ", ".join(
                f"{s.name} ({s.description})" for s in table.values()))
        report.formats[display] = name
        with open_input(path, lenient=True) as stream, watching(options, display, stream):
            if name != "pcap":
                nuls = skip_leading_nuls(stream)
                if nuls:
                    report.skip(display, 1, "nul-bytes",
                                f"{nuls} NUL bytes before the first line (as copytruncate log "
                                "rotation leaves them); the rest of the line was read")
            try:
                yield from table[name].read(stream, display, report, options)
            except CompressedDataError as e:
                report.skip(display, None, e.reason, e.message)
            except (EOFError, gzip.BadGzipFile) as e:
                report.skip(display, None, "truncated-compressed-file", str(e))
            except UnicodeDecodeError as e:
                report.skip(display, None, "not-text", str(e))
            else:
                bad = problem_of(stream)
                if bad is not None:
                    report.skip(display, None, bad.reason, bad.message)


def _is_blank(path: Path) -> bool:
    """Only whitespace in the whole file (read through, a buffer at a time)?"""
    with open_input(path, lenient=True) as f:
        while True:
            chunk = f.read(READ_BUFFER)
            if not chunk:
                return True
            if chunk.strip():
                return False
