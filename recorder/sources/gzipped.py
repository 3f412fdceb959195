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

The decompressor is zlib's gzip mode (``wbits = 16 + MAX_WBITS``: zlib parses the header
and checks the CRC-32 and length trailer of each member, zlib manual, inflateInit2), fed
in chunks with ``max_length``: memory holds a chunk in and a few out.

On bad data the bytes kept are all that zlib decompresses before the point where it
finds the data bad: the last call's output, which Python's zlib drops when it raises, is
found again from a copy of the decompressor taken before the call, by bisecting
``max_length`` (a call that stops before the bad point succeeds). So what is kept does
not depend on how the input was cut into calls.

Where python-isal is installed (a dependency on x86_64 and aarch64) a file that can seek
is inflated by ISA-L (``isal_zlib``, zlib's API and gzip mode): about twice as fast
(in-process diagnostic: 1.4 GB of Hubble JSON in 0.8 s instead of 1.65 s). A valid deflate stream has exactly
one decompression, so the bytes are the same. What is said about bad data stays
zlib's: ISA-L's output is handed out once its member's CRC checked out or when it is
more than ``_AHEAD`` bytes behind what ISA-L decoded, and at ISA-L's first error (or a
cut-off member) zlib decompresses the member again from its start, passing over what
was handed out, and reads on alone: the bytes kept, the error and its message are
zlib's (unless ISA-L accepted more than ``_AHEAD`` bytes past a point zlib rejects,
which tests/recorder/test_gzipped_fast.py looks for and never sees). A pipe cannot
seek back: zlib reads it.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections import deque
from typing import BinaryIO

from recorder.errors import InputError

try:  # https://github.com/pycompression/python-isal: isal_zlib mirrors zlib's API
    from isal import isal_zlib as _isal_zlib
except ImportError:  # a platform without its wheel: zlib alone
    _isal_zlib = None

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 256 * 1024  # compressed bytes read at a time
_OUT = 256 * 1024  # decompressed bytes per call at most
_AHEAD = 1 << 20  # ISA-L's output held back until its member's CRC checked out
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
    it), else the next read raises ``CompressedDataError``. ``fast``: inflate with ISA-L
    while the data is good (default: when python-isal is installed and ``f`` can seek)."""

    def __init__(self, f: BinaryIO, display: str, lenient: bool,
                 fast: bool | None = None) -> None:
        self._f = f
        self._display = display
        self._lenient = lenient
        if fast is None:
            fast = f.seekable()
        self._fast = bool(fast) and _isal_zlib is not None
        self._d = _isal_zlib.decompressobj(_GZIP_WBITS) if self._fast else (
            zlib.decompressobj(_GZIP_WBITS))
        self._in = b""
        self._done = False  # nothing more will be decompressed
        self._members = 1
        self.produced = 0  # bytes decompressed, handed out or waiting
        self._delivered = 0
        self.problem: CompressedDataError | None = None
        self._waiting: deque[memoryview] = deque()
        self._skip = 0  # bytes zlib decompresses again that ISA-L handed out already
        # ISA-L only: where the current member starts (file offset, bytes produced
        # before it), bytes read since, and where the last checked member ended
        self._member_at = f.tell() if self._fast else 0
        self._member_produced = 0
        self._read = 0
        self._checked = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()

    def readinto(self, b) -> int:  # noqa: ANN001 - a writable buffer
        if not len(b):
            return 0
        ready = self._ready()
        while not ready and not self._done:
            if self._fast:
                self._step_isal()
            else:
                self._step_zlib()
            ready = self._ready()
        n = min(len(b), ready)
        at = 0
        waiting = self._waiting
        while at < n:
            piece = waiting[0]
            take = min(len(piece), n - at)
            b[at:at + take] = piece[:take]
            if take == len(piece):
                waiting.popleft()
            else:
                waiting[0] = piece[take:]
            at += take
        self._delivered += n
        if not n and self.problem is not None and not self._lenient:
            raise self.problem
        return n

    def _ready(self) -> int:
        """Bytes that may be handed out now."""
        if not self._fast or self._done:
            return self.produced - self._delivered
        return max(0, max(self._checked, self.produced - _AHEAD) - self._delivered)

    def _emit(self, out: bytes) -> None:
        if self._skip:
            passed = min(self._skip, len(out))
            self._skip -= passed
            out = out[passed:]
        if out:
            self._waiting.append(memoryview(out))
            self.produced += len(out)

    def _fail(self, reason: str, what: str) -> None:
        self._done = True
        self.problem = CompressedDataError(what, self._display, None, reason)

    def _truncated(self) -> None:
        self._fail("truncated-compressed-file",
                   "the gzip data ends in the middle of a member (a cut-off copy?); "
                   "copy the whole file again")

    def _step_zlib(self) -> None:
        d = self._d
        if d.eof:
            self._next_member()
            return
        if not self._in:
            self._in = self._f.read(_CHUNK)
            if not self._in:
                self._truncated()
                return
        before = d.copy()
        try:
            out = d.decompress(self._in, _OUT)
        except zlib.error as e:
            self._emit(_longest_good(before, self._in))
            if self._skip:  # ISA-L handed out more than zlib finds good (see the doc)
                self._skip = 0
            if self._members == 1 and self.produced == 0:
                what = (f"the file starts like gzip (bytes 1f 8b) but is not gzip data "
                        f"(zlib: {e}); give the file uncompressed or gzip it again")
            else:
                what = (f"the gzip data of member {self._members} is corrupt (zlib: {e});"
                        " copy or compress the file again")
            self._fail("bad-compressed-data", what)
            return
        self._in = d.unused_data if d.eof else d.unconsumed_tail
        self._emit(out)

    def _step_isal(self) -> None:
        d = self._d
        if d.eof:  # the member's CRC-32 and length checked out
            self._checked = self.produced
            self._next_member()
            return
        if not self._in:
            self._in = self._f.read(_CHUNK)
            self._read += len(self._in)
            if not self._in:
                self._redo_member_with_zlib()  # cut off: zlib says where
                return
        try:
            out = d.decompress(self._in, _OUT)
        except Exception:  # noqa: BLE001 - isal_zlib.error; zlib decides what the data is
            self._redo_member_with_zlib()
            return
        self._in = d.unused_data if d.eof else d.unconsumed_tail
        self._emit(out)

    def _redo_member_with_zlib(self) -> None:
        """ISA-L found the current member bad or cut off: drop what it decompressed of
        the member and did not hand out, and let zlib decompress the member again from
        its start, passing over what was handed out; zlib reads on from there."""
        keep = max(self._delivered, self._member_produced)
        drop = self.produced - keep
        waiting = self._waiting
        while drop:
            piece = waiting.pop()
            if len(piece) > drop:
                waiting.append(piece[:len(piece) - drop])
                break
            drop -= len(piece)
        self.produced = keep
        self._skip = keep - self._member_produced
        self._fast = False
        self._f.seek(self._member_at)
        self._in = b""
        self._d = zlib.decompressobj(_GZIP_WBITS)

    def _next_member(self) -> None:
        """After a member's end: start the next one; at the end of the file or at
        trailing garbage (``problem`` set) stop."""
        rest = self._in
        while True:
            # zero padding after the last member is accepted (see the module doc)
            rest = rest.lstrip(b"\0")
            if len(rest) >= 2:
                break
            more = self._f.read(_CHUNK)
            self._read += len(more)
            if not more:
                if not rest:
                    self._done = True
                    return
                break
            rest += more
        if rest[:2] != GZIP_MAGIC:
            self._fail("trailing-garbage",
                       f"data after gzip member {self._members} is not gzip data and was "
                       "ignored (gunzip: 'trailing garbage ignored'); remove it or compress "
                       "the file again")
            return
        self._members += 1
        if self._fast:
            self._member_at += self._read - len(rest)
            self._read = len(rest)
            self._member_produced = self.produced
            self._d = _isal_zlib.decompressobj(_GZIP_WBITS)  # type: ignore[union-attr]
        else:
            self._d = zlib.decompressobj(_GZIP_WBITS)
        self._in = rest


def _longest_good(before, data: bytes) -> bytes:  # noqa: ANN001 - a zlib Decompress
    """What ``before`` decompresses of ``data`` up to the point where it finds the data
    bad: the longest output a call with ``max_length`` returns without raising (a call
    that stops before the bad point succeeds; one that reaches it raises)."""
    good, lo, hi = b"", 0, _OUT  # a call of _OUT raised
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            out = before.copy().decompress(data, mid)
        except zlib.error:
            hi = mid
            continue
        good, lo = out, mid
        if len(out) < mid:  # all of data decompressed without reaching the bad point
            break
    return good


def open_gzip(f: BinaryIO, display: str, lenient: bool, buffering: int) -> io.BufferedReader:
    return io.BufferedReader(GzipRaw(f, display, lenient), buffering)


def problem_of(stream: BinaryIO) -> CompressedDataError | None:
    """What went wrong in a stream ``open_gzip`` made (None: nothing, or not gzip)."""
    raw = getattr(stream, "raw", None)
    return raw.problem if isinstance(raw, GzipRaw) else None


def produced_nothing(stream: BinaryIO) -> bool:
    raw = getattr(stream, "raw", None)
    return isinstance(raw, GzipRaw) and raw.produced == 0
