"""Regenerate the hostile-input assets: ``python tests/recorder/assets/hostile/make_hostile.py``.

Each file is a few valid records with one kind of damage; tests/recorder/test_hostile_inputs.py
states what flowpol must make of each. Output is deterministic (fixed addresses, ports,
times; gzip members with mtime 0). Packets are built with scapy, as make_pcaps.py does;
the pcapng containers with ``struct``, to write the broken blocks scapy will not.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

from scapy.all import IP, TCP, Ether  # type: ignore[attr-defined]

HERE = Path(__file__).resolve().parent
FLOWS = 20  # valid records in each text asset


def hubble_lines(n: int = FLOWS, first_port: int = 40000) -> bytes:
    """``n`` distinct TCP connections (SYNs), one compact Hubble line each."""
    out = []
    for i in range(n):
        t = f"2024-05-01T12:00:{i:02d}.000000000Z"
        out.append(
            '{"flow":{"time":"%s","verdict":"FORWARDED","IP":{"source":"10.244.1.5",'
            '"destination":"10.244.2.9"},"l4":{"TCP":{"source_port":%d,'
            '"destination_port":8080,"flags":{"SYN":true}}},"Type":"L3_L4",'
            '"node_name":"worker-1","is_reply":false},"node_name":"worker-1","time":"%s"}\n'
            % (t, first_port + i, t))
    return "".join(out).encode()


def conntrack_lines(n: int = FLOWS) -> bytes:
    return "".join(
        f"tcp      6 116 TIME_WAIT src=10.99.0.10 dst=10.96.0.10 sport={50000 + i} dport=80 "
        f"packets=5 bytes=270 src=10.99.0.11 dst=10.99.0.10 sport=8080 dport={50000 + i} "
        "packets=5 bytes=270 [ASSURED] mark=0 use=1\n"
        for i in range(n)).encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def corrupt_member(data: bytes) -> bytes:
    """A gzip member whose deflate data is damaged right after the 10-byte header."""
    member = bytearray(gz(data))
    for i in range(10, 18):
        member[i] ^= 0xFF
    return bytes(member)


# --------------------------------------------------------------------------- pcapng


def syn(i: int) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src="10.244.1.5", dst="10.244.2.9")
                 / TCP(sport=41000 + i, dport=8080, flags="S", seq=1000 + i))


def block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def shb() -> bytes:
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(options: bytes = b"") -> bytes:
    return block(1, struct.pack("<HHI", 1, 0, 65535) + options)  # LINKTYPE_ETHERNET


def option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def epb(ifid: int, ts: int, frame: bytes) -> bytes:
    return block(6, struct.pack("<IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF, len(frame),
                                len(frame)) + frame)


T0 = 1_714_564_800_000_000  # 2024-05-01T12:00:00Z in microseconds (if_tsresol 6)


def pcapng_empty_idb() -> bytes:
    """Interface 0 has an empty body; interface 1 is fine. Packets 1-3 name interface
    0, packets 4-8 interface 1 (kept: 5)."""
    out = shb() + block(1, b"") + idb()
    out += b"".join(epb(0, T0 + i, syn(i)) for i in range(3))
    out += b"".join(epb(1, T0 + i, syn(10 + i)) for i in range(5))
    return out


def pcapng_far_times() -> bytes:
    """Interface 0 has an if_tsoffset of 2**40 s (the year ~36800); interface 1 counts
    whole seconds (if_tsresol 2**-0) and its packets say 2**40 of them; interface 2 is
    fine. Packets 1-4 are out of range, 5-8 kept (4)."""
    out = shb()
    out += idb(option(14, struct.pack("<q", 1 << 40)))
    out += idb(option(9, bytes([0x80])))  # if_tsresol 2^-0: whole seconds
    out += idb()
    out += b"".join(epb(0, T0 + i, syn(i)) for i in range(2))
    out += b"".join(epb(1, (1 << 40) + i, syn(10 + i)) for i in range(2))
    out += b"".join(epb(2, T0 + i, syn(20 + i)) for i in range(4))
    return out


def main() -> None:
    flows = hubble_lines()
    assets = {
        # text: junk before the records
        "hubble-junk-first-line.json": b"this is not json at all\n" + flows,
        "hubble-array-first-line.json": b"[1, 2, 3]\n" + flows,
        "hubble-nuls-first.json": b"\0" * 5000 + flows,
        "conntrack-json-first-line.txt": flows.splitlines(keepends=True)[0] + conntrack_lines(),
        "hubble-junk-lines-first.json": b"junk\n" * 3 + flows,
        # a line starting with "[" that does not open an array of objects: junk, not
        # the start of a JSON array holding the whole file
        "hubble-conntrack-event-first.json":
            b"[NEW] tcp 6 120 src=999.1.1.1 dst=::: sport=-1 dport=99999\n" + flows,
        "hubble-bracketed-number-first.json.gz":
            gz(b"[1795743730.1]\t [DESTROY] udp\n" + flows),
        # a stray "[" (the object after it is followed by the next one, no comma), and
        # a "[{" whose object never closes
        "hubble-bracket-line-first.json": b"[\n" + flows,
        "hubble-bracket-brace-first.json": b"[{\n" + flows,
        # blank lines longer than the bytes format detection reads (64 KiB) and than
        # any line may be (1 MiB): whitespace, no bad item (gzip: small to check in;
        # the tests also read them decompressed)
        "conntrack-spaces-first.txt.gz": gz(b" " * 70_000 + b"\n" + conntrack_lines()),
        "hubble-long-blank-lines.json.gz": gz(
            b" " * (3 << 20) + b"\n" + b"".join(flows.splitlines(keepends=True)[:5])
            + b"\t" * (2 << 20) + b"\n" + b"".join(flows.splitlines(keepends=True)[5:])),
        # a NUL line, then a blank line longer than the detection window
        "conntrack-nul-line-spaces-first.txt.gz":
            gz(b"\0\n" + b" " * 70_000 + b"\n" + conntrack_lines()),
        # lines longer than MAX_LINE that start like Hubble flows, more bytes than format
        # detection once looked through: skipped by the reader, so no vote
        "conntrack-long-hubble-lines-first.txt.gz": gz(
            (b'{"flow": {"time": "' + b"9" * (3 << 20) + b'"}}\n') * 2 + conntrack_lines()),
        # nothing but whitespace, over more than the detection window and MAX_LINE
        "only-whitespace.txt.gz": gz(b" " * (3 << 20) + b"\n\n\t\r\n" + b" " * 70_000),
        # gzip
        "trailing-garbage.json.gz": gz(flows) + b"this is not gzip\n",
        "two-members-trailing-garbage.json.gz":
            gz(hubble_lines(10)) + gz(hubble_lines(10, 45000)) + b"garbage",
        "corrupt-second-member.json.gz": gz(hubble_lines(10)) + corrupt_member(
            hubble_lines(10, 45000)),
        "text-starting-1f8b.txt": b"\x1f\x8bthis is a text file, not gzip\n" + flows,
        # pcapng
        "empty-idb.pcapng": pcapng_empty_idb(),
        "far-times.pcapng": pcapng_far_times(),
    }
    for name, data in assets.items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
