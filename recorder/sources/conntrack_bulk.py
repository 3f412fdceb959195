"""The conntrack reader's block path: a ``conntrack -L`` dump read a block at a time.

The reader's fast path (``conntrack._LIST_LINE``) still costs a Python loop per line:
readline, a match, its groups, five cache lookups, the tuple. Here a block of lines is
matched with one ``findall`` and everything after that is done a column at a time
(``map``, ``zip``, set operations: loops in C). A block goes that way only when that
is provably what the line-by-line reader would do, and otherwise its lines go to the
line-by-line reader:

* every line of the block matched (``len(found)`` is the block's line count: the
  pattern is anchored at a line's start and cannot cross a newline, so each match is
  one whole line: a match that took in a newline of its own would be one of fewer
  matches than lines), and no line has ``[start=`` (-o ktimestamp, which the fast path
  leaves to the general parser). What the pattern accepts of one line is what
  ``_LIST_LINE`` accepts;
* no tuple of the block was counted before and none repeats within it (so no line is
  a repeat, whatever protocol it is of);
* every port and address is in the reader's caches (they hold only valid ones, so
  nothing in the block would go to the general parser), and every client port is at
  most 65535.

Lines come from the same TextIOWrapper the line-by-line reader reads (latin-1,
universal newlines), in blocks cut after the last newline; numbers and over-long
lines are as ``numbered_lines`` gives them (a line that may be too long hands the rest
of the input over to it).
"""

from __future__ import annotations

import re
from operator import itemgetter
from typing import Callable, Iterator

from recorder.report import ReadReport
from recorder.sources.base import MAX_LINE, numbered_lines

BLOCK = 256 * 1024  # characters read at a time: less than MAX_LINE (see blocks())


def block_pattern(list_line: re.Pattern[str]) -> re.Pattern[str]:
    """``list_line`` (anchored at the start, ending in ``\\Z``) for a whole block: each
    match one line, through its newline."""
    # The tail's class must stop at the newline (it would run into the next line and
    # back); the others may stay open (cheaper in sre): a match that ran over a newline
    # would be one of fewer matches than lines, and the block is not taken.
    pattern = list_line.pattern.replace("[^[]", "[^[\\n]")
    if not pattern.endswith("\\Z"):
        raise ValueError("the line pattern must end at the end of the line")
    return re.compile("^(?:" + pattern[:-2] + ")\\n", re.M)


class Blocks:
    """(line number, line) as ``numbered_lines`` gives them, and for a block that may
    go the block path (line number before it, its matches, the block) instead of its
    lines. A block the reader turns down (``reject``) comes again as lines."""

    def __init__(self, read: Callable[[int], str], readline: Callable[[int], str],
                 path: str, report: ReadReport, pattern: re.Pattern[str]) -> None:
        self._read = read
        self._readline = readline
        self._path = path
        self._report = report
        self._findall = pattern.findall
        self._rejected: str | None = None

    def reject(self, block: str) -> None:
        self._rejected = block

    def __iter__(self) -> Iterator[tuple[int, object]]:
        lineno = 0
        pending = ""
        findall = self._findall
        while True:
            data = self._read(BLOCK)
            if not data:
                break
            if pending:
                data = pending + data
            cut = data.rfind("\n") + 1
            # Only the first line can be MAX_LINE long (the others began in this read,
            # of fewer characters); for it numbered_lines decides.
            if (data.find("\n") if cut else len(data)) >= MAX_LINE - 1:
                pending = data
                break
            if not cut:
                pending = data
                continue
            block, pending = data[:cut], data[cut:]
            n = block.count("\n")
            if "[start=" not in block:
                found = findall(block)
                if len(found) == n:
                    yield lineno, (found, block)
                    if self._rejected is None:
                        lineno += n
                        continue
                    self._rejected = None
            for line in block[:-1].split("\n"):
                lineno += 1
                yield lineno, line + "\n"
        if pending:
            # the rest through numbered_lines, the first piece of it already read
            rest = [pending]
            readline = self._readline

            def first_then_stream(limit: int) -> str:
                """``readline(limit)`` of what was read ahead, then of the stream."""
                if not rest:
                    return readline(limit)
                buf = rest.pop()
                nl = buf.find("\n", 0, limit)
                take = nl + 1 if nl >= 0 else min(limit, len(buf))
                if take < len(buf):
                    rest.append(buf[take:])
                    return buf[:take]
                if take < limit and not buf.endswith("\n"):
                    buf += readline(limit - take)
                return buf

            yield from numbered_lines(first_then_stream, self._path, self._report,
                                      end="", start=lineno)


def bulk_rows(found: list[tuple[str, ...]], tracked: dict[object, str], max_tracked: int,
              ip_cache: dict[str, str], port_cache: dict[str, int],
              protocols: dict[str, tuple[str, str]],
              forget_oldest_half: Callable[[dict[object, str]], dict[object, str]],
              ) -> tuple[list[tuple[object, ...]], dict[object, str]] | None:
    """The rows (recorder.listed.Row) of a block's matches and the tracked tuples after
    them, or None when the block must be read line by line (see the module's text).
    ``tracked`` is changed only when rows are returned."""
    names, keys, a, b, sp, dp, r, rsp = zip(*found)
    if len(set(keys)) != len(keys) or not tracked.keys().isdisjoint(keys):
        return None
    ports = port_cache.keys()
    ips = ip_cache.keys()
    if not (ports >= set(dp) and ports >= set(rsp) and ips >= set(a) and ips >= set(b)
            and ips >= set(r)):
        return None
    sports = list(map(int, sp))
    if max(sports) > 65535:
        return None
    dports = list(map(port_cache.__getitem__, dp))
    rsports = list(map(port_cache.__getitem__, rsp))
    srcs = list(map(ip_cache.__getitem__, a))
    dsts = list(map(ip_cache.__getitem__, b))
    rsrcs = list(map(ip_cache.__getitem__, r))
    kinds = list(map(protocols.__getitem__, map(itemgetter(0), names)))
    markers = list(map(itemgetter(1), kinds))
    # Counted as the line-by-line reader counts them: one at a time, the oldest half
    # forgotten whenever there are more than max_tracked.
    i = 0
    while i < len(keys):
        room = max_tracked + 1 - len(tracked)
        tracked.update(zip(keys[i:i + room], markers[i:i + room]))
        i += room
        if len(tracked) > max_tracked:
            tracked = forget_oldest_half(tracked)
    xips = [x if x != d or xp != p else None
            for x, d, xp, p in zip(rsrcs, dsts, rsports, dports)]
    xports = [xp if x != d or xp != p else None
              for x, d, xp, p in zip(rsrcs, dsts, rsports, dports)]
    return list(zip(map(itemgetter(0), kinds), srcs, dsts, dports, sports, xips,
                    xports)), tracked
