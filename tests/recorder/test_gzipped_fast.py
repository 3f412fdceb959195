"""gzip input through recorder/sources/gzipped.py: what is kept of bad data is all zlib
hands out before the bad point, however the reads were cut; and ISA-L's inflate
(python-isal) reads it exactly as zlib does: the same bytes, and on bad data the same
error, message and data kept before it (a bad member is handed back to zlib). Each case
is read both ways and compared."""

from __future__ import annotations

import gzip
import io
import os
import random
import struct
import zlib
from pathlib import Path

import pytest

from recorder.sources.gzipped import CompressedDataError, GzipRaw


def _has_isal() -> bool:
    try:
        import isal  # noqa: F401
    except ImportError:
        return False
    return True


needs_isal = pytest.mark.skipif(not _has_isal(),
                                reason="python-isal is not installed on this platform")

TEXT = b"".join(b'{"flow":{"time":"2026-12-08T00:00:%02d.%06dZ","n":%d}}\n'
                % (i % 60, i, i * 7919 % 104729) for i in range(40_000))


def _read(data: bytes, fast: bool, tmp_path: Path) -> tuple[bytes, object]:
    path = tmp_path / "in.gz"
    path.write_bytes(data)
    with open(path, "rb") as f:
        raw = GzipRaw(f, str(path), lenient=True, fast=fast)
        assert raw._fast is fast
        out = io.BufferedReader(raw, 64 * 1024).read()
        problem = raw.problem
        return out, (None if problem is None else (problem.reason, str(problem)))


def _same_both_ways(data: bytes, tmp_path: Path) -> tuple[bytes, object]:
    slow = _read(data, False, tmp_path)
    fast = _read(data, True, tmp_path)
    assert fast[1] == slow[1]
    assert fast[0] == slow[0]
    return slow


def _member_with_header_fields(payload: bytes) -> bytes:
    """A member with FEXTRA, FNAME, FCOMMENT and FHCRC set (RFC 1952, 2.3)."""
    flags = 0x04 | 0x08 | 0x10 | 0x02
    head = b"\x1f\x8b\x08" + bytes([flags]) + struct.pack("<I", 0) + b"\x00\xff"
    head += struct.pack("<H", 4) + b"ab\x00\x00" + b"name.json\x00" + b"a comment\x00"
    head += struct.pack("<H", zlib.crc32(head) & 0xFFFF)
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = c.compress(payload) + c.flush()
    return head + body + struct.pack("<II", zlib.crc32(payload), len(payload) & 0xFFFFFFFF)


@needs_isal
def test_valid_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    one = gzip.compress(TEXT, mtime=0)
    cases = {
        "one member": one,
        "members and zero padding": one + gzip.compress(TEXT[:5000], mtime=0) + b"\0" * 512,
        "header fields": _member_with_header_fields(TEXT) + one,
        "empty member": gzip.compress(b"", mtime=0) + one,
    }
    for name, data in cases.items():
        out, problem = _same_both_ways(data, tmp_path)
        assert problem is None, name
        assert out == TEXT * out.count(TEXT) + out[len(TEXT) * out.count(TEXT):], name


@needs_isal
def test_bad_inputs_keep_zlibs_error_and_data(tmp_path: Path) -> None:
    one = gzip.compress(TEXT, mtime=0)
    two = one + gzip.compress(TEXT, mtime=0)
    crc_bad = bytearray(two)
    crc_bad[-8] ^= 0x01
    size_bad = bytearray(two)
    size_bad[-1] ^= 0x01
    middle = bytearray(two)
    middle[len(one) + len(one) // 2] ^= 0xFF
    cases = {
        "trailing garbage": two + b"this is not gzip\n",
        "cut in the second member": two[:len(one) + len(one) // 2],
        "cut in a trailer": two[:-3],
        "bad crc": bytes(crc_bad),
        "bad length": bytes(size_bad),
        "corrupt second member": bytes(middle),
        "no gzip after the magic": b"\x1f\x8b" + b"not gzip at all" * 10,
    }
    for name, data in cases.items():
        out, problem = _same_both_ways(data, tmp_path)
        assert problem is not None, name
    # the data before the bad member is kept, the same either way
    out, problem = _same_both_ways(bytes(middle), tmp_path)
    assert out.startswith(TEXT) and problem[0] == "bad-compressed-data"


@needs_isal
@pytest.mark.parametrize("level", [0, 1, 6, 9])  # stored, fixed/dynamic blocks of each
def test_damage_anywhere_reads_as_zlib_reads_it(level: int, tmp_path: Path) -> None:
    data = (gzip.compress(TEXT[:200_000], compresslevel=level, mtime=0)
            + gzip.compress(TEXT[:100_000], mtime=0))
    rng = random.Random(14 + level)
    for _ in range(40):
        damaged = bytearray(data)
        for _ in range(rng.choice((1, 2, 5))):
            # anywhere, or in the first block's header (its Huffman tables)
            at = rng.randrange(len(damaged)) if rng.random() < 0.7 else rng.randrange(10, 300)
            damaged[at] ^= 1 << rng.randrange(8)
        _same_both_ways(bytes(damaged), tmp_path)


def _read_in(raw: GzipRaw, size: int) -> bytes:
    out, buf = bytearray(), bytearray(size)
    while n := raw.readinto(buf):
        out += buf[:n]
    return bytes(out)


@needs_isal
def test_a_pipe_is_read_by_zlib_and_gives_the_same(tmp_path: Path) -> None:
    data = gzip.compress(TEXT, mtime=0)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer
        os.close(r)
        os.write(w, data)
        os._exit(0)
    os.close(w)
    with open(r, "rb") as f:
        raw = GzipRaw(f, "pipe", lenient=False)
        assert raw._fast is False  # cannot seek back to a member's start
        assert io.BufferedReader(raw).read() == TEXT
    os.waitpid(pid, 0)


@needs_isal
def test_a_file_is_read_by_isal_by_default(tmp_path: Path) -> None:
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(TEXT, mtime=0) + b"garbage")
    with open(path, "rb") as f:
        raw = GzipRaw(f, str(path), lenient=False)
        assert raw._fast is True
        stream = io.BufferedReader(raw)
        with pytest.raises(CompressedDataError) as e:
            stream.read()
        assert e.value.reason == "trailing-garbage"


def test_what_is_kept_of_bad_data_does_not_depend_on_the_reads(tmp_path: Path) -> None:
    one = gzip.compress(TEXT, mtime=0)
    damaged = bytearray(one + one)
    damaged[len(one) + len(one) // 2] ^= 0xFF  # in the middle of the second member
    crc_bad = bytearray(one)
    crc_bad[-8] ^= 0x01
    for data, at_least in ((bytes(damaged), len(TEXT) + 1000), (bytes(crc_bad), len(TEXT) - 1)):
        path = tmp_path / "bad.gz"
        path.write_bytes(data)
        kept = set()
        for size in (1024, 8192, 256 * 1024, 4 << 20):  # the sizes of the raw reads
            with open(path, "rb") as f:
                raw = GzipRaw(f, str(path), lenient=True, fast=False)
                kept.add(_read_in(raw, size))
                assert raw.problem is not None and raw.problem.reason == "bad-compressed-data"
        assert len(kept) == 1
        (out,) = kept
        # everything before the bad point: the first member whole and part of the
        # second; with a bad CRC the member's bytes but the last (zlib checks the
        # trailer as soon as the output ends)
        if at_least > len(TEXT):
            assert out.startswith(TEXT) and len(out) >= at_least
        else:
            assert out == TEXT[:-1]
