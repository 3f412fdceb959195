"""gzip input read the way gunzip reads it: every member, one after the other, with
whatever went wrong said once and the data before it kept.

Python's ``gzip.GzipFile`` raises on trailing garbage (``BadGzipFile``) and on corrupt
deflate data (``zlib.error``, which no caller expects), and where in the file that
happens decides whether a reader has yielded anything yet: a small file is refused
whole, a large one is read. gunzip (GNU gzip 1.12, gzip.c/unzip.c) decompresses every
member and, on anything after the last one that is not a gzip member, warns "decompression
OK, trailing garbage ignored" (exit status 2: a warning). Zero bytes after the last member
(tape-block padding) are accepted silently by both Python's gzip module (``_read_eof``)
and, in effect, us.

The decompressor here is zlib's own gzip mode (``wbits = 16 + MAX_WBITS``: zlib parses
the header and checks the CRC-32 and length trailer of each member, zlib manual,
inflateInit2), fed in chunks with ``max_length``: memory holds one chunk in and one out.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO

from recorder.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 256 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class CompressedDataError(InputError, gzip.BadGzipFile):
    """Bad gzip data. An InputError (exit 2, names the file) that callers catching
    ``gzip.BadGzipFile`` also catch."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 reason: str = "bad-compressed-data"):
        super().__init__(message, path, line)
        self.reason = reason

    def __reduce__(self):  # noqa: ANN204 - pickled as it was made
        return (type(self), (self.message, self.path, self.line, self.reason), self.__dict__)


class GzipRaw(io.RawIOBase):
    """The decompressed bytes of a gzip file (all members).

    On bad data: the bytes decompressed before it are delivered first; then, when
    ``lenient``, the stream ends and ``problem`` says what was wrong (the caller counts
    it), else the next read raises ``CompressedDataError``."""

    def __init__(self, f: BinaryIO, display: str, lenient: bool) -> None:
        self._f = f
        self._display = display
        self._lenient = lenient
        self._d = zlib.decompressobj(_GZIP_WBITS)
        self._in = b""
        self._done = False
        self._members = 1
        self.produced = 0
        self.problem: CompressedDataError | None = None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()

    def readinto(self, b) -> int:  # noqa: ANN001 - a writable buffer
        out = self._more(len(b))
        n = len(out)
        b[:n] = out
        if not n and self.problem is not None and not self._lenient:
            raise self.problem
        return n

    def _fail(self, reason: str, what: str) -> bytes:
        self._done = True
        self.problem = CompressedDataError(
            what,
            self._display, None, reason)
        return b""

    def _more(self, n: int) -> bytes:
        while not self._done:
            d = self._d
            if d.eof:
                if not self._next_member():
                    return b""
                continue
            if not self._in:
                self._in = self._f.read(_CHUNK)
                if not self._in:
                    return self._fail(
                        "truncated-compressed-file",
                        "the gzip data ends in the middle of a member (a cut-off copy?); "
                        "copy the whole file again")
            try:
                out = d.decompress(self._in, n)
            except zlib.error as e:
                if self._members == 1 and self.produced == 0:
                    what = (f"the file starts like gzip (bytes 1f 8b) but is not gzip data "
                            f"(zlib: {e}); give the file uncompressed or gzip it again")
                else:
                    what = (f"the gzip data of member {self._members} is corrupt (zlib: {e});"
                            " copy or compress the file again")
                return self._fail("bad-compressed-data", what)
            self._in = d.unused_data if d.eof else d.unconsumed_tail
            if out:
                self.produced += len(out)
                return out
        return b""

    def _next_member(self) -> bool:
        """After a member's end: start the next one. False at the end of the file or
        at trailing garbage (``problem`` set)."""
        rest = self._in
        while True:
            # zero padding after the last member is accepted (see the module doc)
            rest = rest.lstrip(b"\0")
            if len(rest) >= 2:
                break
            more = self._f.read(_CHUNK)
            if not more:
                if not rest:
                    self._done = True
                    return False
                break
            rest += more
        if rest[:2] != GZIP_MAGIC:
            self._fail("trailing-garbage",
                       f"data after gzip member {self._members} is not gzip data and was "
                       "ignored (gunzip: 'trailing garbage ignored'); remove it or compress "
                       "the file again")
            return False
        self._members += 1
        self._d = zlib.decompressobj(_GZIP_WBITS)
        self._in = rest
        return True


def open_gzip(f: BinaryIO, display: str, lenient: bool, buffering: int) -> io.BufferedReader:
    return io.BufferedReader(GzipRaw(f, display, lenient), buffering)


def problem_of(stream: BinaryIO) -> CompressedDataError | None:
    """What went wrong in a stream ``open_gzip`` made (None: nothing, or not gzip)."""
    raw = getattr(stream, "raw", None)
    return raw.problem if isinstance(raw, GzipRaw) else None


def produced_nothing(stream: BinaryIO) -> bool:
    raw = getattr(stream, "raw", None)
    return isinstance(raw, GzipRaw) and raw.produced == 0
