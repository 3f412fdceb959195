"""JSON objects written over many lines, one after the other: `hubble observe -o json |
jq .`, documentation examples, a flow copied from a terminal. Each object is handed to
the Hubble reader as the one compact line Hubble itself writes, so that it is read by
the same code, fast path included, and counts the same as the compact form.

Framing follows the JSON grammar's strings and brackets (a brace inside a string does
not count); memory holds one chunk and one object. Text between objects that is not
whitespace (or a comma, as between the elements of an example list) is skipped as bad
input with its line number; an object cut off by the end of the file likewise.
"""

from __future__ import annotations

import re
from typing import BinaryIO, Iterable, Iterator

import orjson

from recorder.report import ReadReport
from recorder.sources.base import MAX_LINE, numbered_lines, to_first_content

# A string (escapes included), a quote that starts a string running past the buffer,
# or a bracket: the tokens that decide where an object ends.
# Possessive: a string running past the buffer fails in one pass, without backtracking.
_TOKEN = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"|"|[{}\[\]]', re.DOTALL)
_CHUNK = 1 << 20
_BETWEEN = b" \t\r\n,"
MAX_OBJECT = 16 << 20  # a flow is a few kB; more is no flow, and is not held in memory


def is_multiline(first: bytes, second: bytes) -> bool:
    """Do the first two non-blank lines of a file start one object over many lines?

    The first line opens an object it does not close (`{` alone, or `{"flow": {`), and
    the second does not start an object of its own: a compact line cut off by a crash
    is followed by the next compact line, which does."""
    first = first.strip()
    if not first.startswith(b"{"):
        return False
    try:
        orjson.loads(first)
        return False  # a whole object on one line: the compact form
    except orjson.JSONDecodeError:
        pass
    return not second.lstrip().startswith(b"{")


def _compact(obj: bytes) -> bytes:
    """The object as Hubble prints it, one line; unchanged when it is not valid JSON
    (the reader then reports it with its line number)."""
    try:
        return orjson.dumps(orjson.loads(obj)) + b"\n"
    except orjson.JSONDecodeError:
        return obj


def objects(buf: bytes, stream: BinaryIO, path: str, report: ReadReport
            ) -> Iterator[tuple[int, bytes]]:
    """(line of the object's first byte, the object as one compact line) for every
    top-level object in ``buf`` and the rest of ``stream``."""
    line = 1  # the line of buf[pos]
    pos = 0
    eof = False
    # how far the object at ``pos`` was scanned, and its bracket depth there: more input
    # continues the scan instead of starting it again
    scanned = depth = 0
    while True:
        n = len(buf)
        i = pos
        while i < n and buf[i] in _BETWEEN:
            i += 1
        line += buf.count(b"\n", pos, i)
        pos = i
        if pos < n and buf[pos] == 0x7B:  # {
            end, scanned, depth = _scan(buf, max(pos, scanned), depth)
            if end is not None:
                yield line, _compact(buf[pos:end])
                line += buf.count(b"\n", pos, end)
                pos = end
                continue
            if eof or n - pos > MAX_OBJECT:
                report.skip(path, line, "invalid-json",
                            "the JSON object is cut off here (truncated file?)" if eof else
                            f"a JSON object longer than {MAX_OBJECT >> 20} MiB")
                nxt = _next_object(buf, pos + 1, n)
                line += buf.count(b"\n", pos, nxt)
                pos = nxt
                scanned = depth = 0
                continue
        elif pos < n:  # not an object: up to the next line that starts one
            nxt = _next_object(buf, pos, n)
            if nxt < n or eof or n - pos > MAX_OBJECT:
                report.skip(path, line, "invalid-json", "not a JSON object: "
                            + repr(buf[pos:min(nxt, pos + 60)].decode("utf-8", "replace")))
                line += buf.count(b"\n", pos, nxt)
                pos = nxt
                continue
        elif eof:
            return
        chunk = stream.read(_CHUNK)
        eof = not chunk
        buf = buf[pos:] + chunk
        scanned = max(0, scanned - pos)
        pos = 0


def _next_object(buf: bytes, pos: int, n: int) -> int:
    """The start of the next line that opens an object, or ``n``."""
    nxt = buf.find(b"\n{", pos)
    return n if nxt == -1 else nxt + 1


def _scan(buf: bytes, pos: int, depth: int) -> tuple[int | None, int, int]:
    """Scan an object from ``buf[pos]`` at bracket ``depth`` (0 at its ``{``): (its end,
    or None when it runs past ``buf``; where to go on from once more is read; the depth
    there)."""
    for m in _TOKEN.finditer(buf, pos):
        tok = m.group()
        c = tok[0]
        if c == 0x22:  # "
            if len(tok) == 1:
                return None, m.start(), depth  # a string running past the buffer
            continue
        if c == 0x7B or c == 0x5B:  # { [
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return m.end(), m.end(), 0
    return None, len(buf), depth


def _object_end(buf: bytes, start: int) -> int | None:
    """The end of the object starting at ``buf[start]`` (``{``), or None when it runs
    past the end of ``buf``."""
    return _scan(buf, start, 0)[0]


def first_object(head: bytes) -> bytes | None:
    """The first object of ``head`` as one compact line, when ``head`` starts with a
    whole object over several lines (for format detection); else None."""
    lines = [ln for ln in head.split(b"\n", 8) if ln.strip()]
    if len(lines) < 2 or not is_multiline(lines[0], lines[1]):
        return None
    start = len(head) - len(head.lstrip())
    end = _object_end(head, start)
    if end is None:
        return None
    compact = _compact(head[start:end])
    return compact if compact.endswith(b"\n") else None


# How far the first element of a JSON array is looked for (see ``opens_objects``): a flow
# is a few kB, pretty-printed a few times that.
FIRST_ELEMENT = MAX_LINE


def opens_objects(pending: list[bytes], stream: BinaryIO) -> bool:
    """Does the JSON array opened on the last line of ``pending`` (its ``[``) go on as
    an array of objects: the array closes at once, or its first element is an object
    that closes (within FIRST_ELEMENT bytes, no string running past its line) and is
    followed by ``,`` or ``]``? Lines read to tell are appended to ``pending``.

    A ``[`` line of junk followed by compact lines is not: the object after it is
    followed by the next object, without a comma."""
    piece = pending[-1]
    pos = piece.index(b"[") + 1
    depth = looked = 0
    closed = False  # the first element was scanned to its end
    while True:
        if depth == 0:
            rest = piece[pos:].lstrip()
            if not rest:
                piece = to_first_content(stream.readline, pending)
                pos = 0
                if not piece:
                    return False
                continue
            if closed or rest[:1] == b"]":
                return rest[:1] in (b",", b"]")
            if rest[:1] != b"{":
                return False
            pos = len(piece) - len(rest)
        end, resume, depth = _scan(piece, pos, depth)
        if end is not None:
            closed, pos = True, end
            continue
        looked += len(piece)
        if resume < len(piece) or not piece.endswith(b"\n") or looked > FIRST_ELEMENT:
            # a string not closed on its line (JSON has none), a line longer than any
            # flow, or no end within FIRST_ELEMENT: not an array of flows
            return False
        piece = stream.readline(MAX_LINE)
        pending.append(piece)
        pos = 0
        if not piece:
            return False


def lines_or_objects(pending: list[bytes], stream: BinaryIO, path: str, report: ReadReport
                     ) -> Iterable[tuple[int, bytes]]:
    """The items of a file that is not a JSON array: its lines, numbered, or - when its
    first non-blank line (the last of ``pending``, the lines read so far) opens an
    object over many lines - its objects as compact lines (``objects``)."""
    first = pending[-1]
    # the next non-blank line tells the two apart
    if is_multiline(first, to_first_content(stream.readline, pending)):
        return objects(b"".join(pending), stream, path, report)
    return numbered_lines(stream.readline, path, report, pending)
