"""The bulk walk of classic pcap files (recorder/sources/pcapwalk.py) against the
record-by-record reader it replaces on large files: the same records in the same
order, the same report (counts per reason, examples with packet numbers), the same
errors, on the bundled captures, the real samples when present, and generated
captures of every case the walk decides itself or must leave to the general path
(link types, byte orders, fragments, IP options, VLAN, tunnels, short and cut
packets, false record headers in payloads, a clock crossing the 18-hour mark, large
records, damaged and truncated files, connection tables that turn over)."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from recorder.errors import InputError
from recorder.report import ReadReport
from recorder.sources import ReadOptions, pcap, pcapwalk

ASSETS = Path(__file__).parent / "assets" / "pcap"
# the samples tier (tests/recorder/test_samples_conntrack_pcap.py): ../shared/samples
SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "pcap"


def differ(data: bytes, monkeypatch: pytest.MonkeyPatch, after: int, chunk: int,
           strict: bool = False, options: ReadOptions = ReadOptions(),
           bulk_used: bool | None = None) -> tuple:
    """Read ``data`` record by record and with the bulk walk from packet ``after`` on
    (reads of ``chunk`` bytes, so buffers end anywhere); assert both agree, and read the
    same pieces of the file; return the general path's result."""
    reads: list[list[int]] = []

    def read(m: pytest.MonkeyPatch) -> tuple:
        import io

        sizes: list[int] = []
        reads.append(sizes)

        class Spy(io.BytesIO):
            def read(self, n: int | None = -1) -> bytes:  # type: ignore[override]
                sizes.append(-1 if n is None else n)
                return super().read(n)

        report = ReadReport(strict=strict)
        out: list = []
        error = None
        m.setattr(pcap, "CHUNK", chunk)
        try:
            for rec in pcap.read(Spy(data), "cap.pcap", report, options):  # type: ignore
                out.append(rec)
        except InputError as e:
            error = str(e)
        return out, report, error

    with monkeypatch.context() as m:
        m.setattr(pcap, "_WALK_LINKTYPES", frozenset())
        general = read(m)
    batches = []
    decode_batch = pcapwalk.decode_batch

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        batches.append(1)
        return decode_batch(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(pcap, "BULK_AFTER", after)
        m.setattr(pcapwalk, "decode_batch", spy)
        fast = read(m)
    assert fast[2] == general[2]
    assert fast[0] == general[0]
    assert fast[1] == general[1]
    assert [str(e) for e in fast[1].examples] == [str(e) for e in general[1].examples]
    assert reads[0] == reads[1]
    if bulk_used is not None:
        assert bool(batches) == bulk_used
    return general


# ------------------------------------------------------------------ capture builder

ETH = bytes.fromhex("02000000000b02000000000a")


def ipv4(src: bytes, dst: bytes, proto: int, l4: bytes, frag: int = 0x4000,
         options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(l4), 1, frag, 64,
                       proto, 0, src, dst) + options + l4


def ipv6(src: bytes, dst: bytes, proto: int, l4: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(l4), proto, 64, src, dst) + l4


def tcp(sport: int, dport: int, flags: int, seq: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 7, 0x50, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def dns_answer(qid: int, name: bytes, address: bytes, flags: int = 0x8180) -> bytes:
    qname = b"".join(bytes([len(p)]) + p for p in name.split(b".")) + b"\0"
    return (struct.pack("!HHHHHH", qid, flags, 1, 1, 0, 0) + qname + b"\0\1\0\1"
            + b"\xc0\x0c\0\1\0\1\0\0\0\x1e\0\4" + address)


def link(linktype: int, ip: bytes, rnd: random.Random) -> bytes:
    v6 = ip[0] >> 4 == 6
    et = b"\x86\xdd" if v6 else b"\x08\x00"
    if linktype == 1:
        tags = b""
        if rnd.random() < 0.05:
            tags = b"\x81\x00\x00\x05"
        if rnd.random() < 0.01:
            et = b"\x08\x06"  # ARP: not IP
        return ETH + tags + et + ip
    if linktype == 113:
        return b"\0\0\0\1\0\6" + b"\2" * 8 + et + ip
    if linktype == 276:
        return et + b"\0\0" + b"\0\0\0\2" + b"\0\1\0\6" + b"\2" * 8 + ip
    if linktype == 0:
        return (b"\x1e\0\0\0" if v6 else b"\2\0\0\0") + ip
    return ip  # raw IP


def frames(rnd: random.Random, count: int, linktype: int, fake_header: bytes) -> list[bytes]:
    """``count`` frames of a few clients and servers: connections opened, carried and
    closed, retransmitted SYNs, mid-connection packets, DNS over UDP and TCP, and a
    sprinkling of everything else the reader has a rule for."""
    clients = [bytes([10, 244, 0, i]) for i in range(1, 12)]
    servers = [bytes([10, 96, 0, i]) for i in range(1, 6)]
    c6, s6 = bytes(15) + b"\1", bytes(15) + b"\2"
    out: list[bytes] = []
    open_conns: list[tuple[bytes, bytes, int, int, int]] = []
    later: list[bytes] = []
    while len(out) < count:
        r = rnd.random()
        c, s = rnd.choice(clients), rnd.choice(servers)
        sport = rnd.choice((rnd.randrange(32768, 61000), rnd.randrange(1, 32768), 1024, 512))
        dport = rnd.choice((80, 443, 53, 8080, 6379, 4789, 6081, 8472, 256, 40000))
        if r < 0.25:  # a connection opens
            seq = rnd.getrandbits(32)
            out.append(ipv4(c, s, 6, tcp(sport, dport, 0x02, seq)))
            if rnd.random() < 0.1:  # retransmitted SYN
                out.append(ipv4(c, s, 6, tcp(sport, dport, 0x02, seq)))
            elif rnd.random() < 0.1:  # ... later, or seen on another interface
                later.append(ipv4(c, s, 6, tcp(sport, dport, 0x02, seq)))
            if later and rnd.random() < 0.2:
                out.append(later.pop(0))
            if rnd.random() < 0.9:
                out.append(ipv4(s, c, 6, tcp(dport, sport, 0x12, 99)))
            open_conns.append((c, s, sport, dport, seq))
        elif r < 0.6 and open_conns:  # packets of a known (or forgotten) connection
            c, s, sport, dport, seq = rnd.choice(open_conns)
            forward = rnd.random() < 0.5
            flags = rnd.choice((0x10, 0x18, 0x11, 0x04, 0x10, 0x18))
            payload = rnd.choice((b"", b"x" * rnd.randrange(300), fake_header * 3))
            if dport == 53 and not forward and rnd.random() < 0.5:
                msg = dns_answer(rnd.randrange(65536), b"svc.example.com", s)
                payload = struct.pack("!H", len(msg)) + msg
            a, b, p, q = (c, s, sport, dport) if forward else (s, c, dport, sport)
            out.append(ipv4(a, b, 6, tcp(p, q, flags, seq + 1, payload)))
            if rnd.random() < 0.05:
                open_conns.remove((c, s, sport, dport, seq))
        elif r < 0.72:  # UDP, DNS queries and answers
            if rnd.random() < 0.5:
                qid = rnd.randrange(65536)
                out.append(ipv4(c, s, 17, udp(sport, 53, b"q" * 30)))
                flags = rnd.choice((0x8180, 0x8180, 0x8183, 0x0100, 0x8380))
                out.append(ipv4(s, c, 17, udp(53, sport, dns_answer(qid, b"a.example.com", s,
                                                                     flags))))
            else:  # flows that come back (remembered or forgotten, inside the window or not)
                c, s = clients[0], rnd.choice(servers[:2])
                sport = rnd.choice((33000, 33001, 33002, 40000, 53, 123, 2048, 1024))
                forward = rnd.random() < 0.7
                a, b, p, q = (c, s, sport, dport) if forward else (s, c, dport, sport)
                out.append(ipv4(a, b, 17, udp(p, q, b"u" * rnd.randrange(60))))
        elif r < 0.76:  # IP options (key from two slices)
            out.append(ipv4(c, s, rnd.choice((6, 17)),
                            tcp(sport, dport, rnd.choice((0x02, 0x10)), 5),
                            options=b"\x01\x01\x01\x00"))
        elif r < 0.8:  # fragments
            out.append(ipv4(c, s, 6, tcp(sport, dport, 0x10, 5),
                            frag=rnd.choice((0x2000, 0x0010, 0x2010))))
        elif r < 0.84:
            out.append(ipv6(c6, s6, rnd.choice((6, 17)),
                            tcp(sport, dport, rnd.choice((0x02, 0x10, 0x12)), 5)))
        elif r < 0.87:  # ICMP echo, SCTP, other protocols
            out.append(ipv4(c, s, rnd.choice((1, 132, 47)), b"\x08\0\0\0\0\1\0\1" + bytes(24)))
        elif r < 0.9:  # a SYN-ACK or mid-connection packet of nothing known
            out.append(ipv4(s, c, 6, tcp(dport, sport, rnd.choice((0x12, 0x10)), 1)))
        elif r < 0.93:  # bad IP version, junk
            out.append(bytes([rnd.choice((0x55, 0x46, 0x44))]) + bytes(rnd.randrange(60)))
        else:  # a packet carrying what looks like record headers
            out.append(ipv4(c, s, 17, udp(sport, 9, fake_header * rnd.randrange(1, 6))))
    return [link(linktype, f, rnd) for f in out]


def capture(rnd: random.Random, count: int, linktype: int = 1, order: str = "<",
            nano: bool = False, t0: int = 1_700_000_000) -> bytes:
    """A classic pcap of ``count`` frames; some cut by a snap length, some cut without
    one (caplen = wirelen), some records of 64 KiB or more; the clock starts at ``t0``."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    head = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)
    rec = struct.Struct(order + "IIII")
    fake = rec.pack(t0, 5, 54, 54)
    parts = [head]
    t = t0 * 10**6
    for f in frames(rnd, count, linktype, fake):
        t += rnd.choice((1, 10, 3000, 2_000_000))
        wire = len(f)
        r = rnd.random()
        if r < 0.04:
            f = f[:rnd.randrange(len(f) + 1)]  # cut by a snap length
        elif r < 0.06:
            f = f[:rnd.randrange(len(f) + 1)]
            wire = len(f)  # cut, and the record says that is all there was
        elif r < 0.065:
            f += bytes(70000)  # a large record (jumbo / GRO)
            wire = len(f)
        frac = (t % 10**6) * (1000 if nano else 1)
        parts.append(rec.pack(t // 10**6, frac, len(f), wire) + f)
    return b"".join(parts)


BULKS = [(0, 1 << 20), (0, 1000), (3, 64), (40, 16)]  # (BULK_AFTER, CHUNK)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("linktype", [1, 113, 276, 101, 228, 0])
def test_generated_captures(seed: int, linktype: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(seed * 1000 + linktype)
    data = capture(rnd, 600, linktype, order=rnd.choice("<>"), nano=rnd.random() < 0.3)
    after, chunk = BULKS[seed % len(BULKS)]
    recs, report, error = differ(data, monkeypatch, after, chunk)
    assert recs and error is None  # the test reads something


@pytest.mark.parametrize("seed", range(8))
def test_connection_tables_turning_over(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # small generations: forgotten connections, reverse entries promoted from the old one
    monkeypatch.setattr(pcap, "TABLE_GENERATION", 2 + seed)
    rnd = random.Random(seed)
    data = capture(rnd, 1500)
    recs, report, _ = differ(data, monkeypatch, *BULKS[seed % len(BULKS)])
    assert any(getattr(r, "inferred", False) for r in recs)


@pytest.mark.parametrize("generation", range(2, 8))
def test_udp_flows_turning_over(generation: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # a few UDP flows coming back while the tables turn over: which ones are
    # remembered depends on exactly when a generation is full
    monkeypatch.setattr(pcap, "TABLE_GENERATION", generation)
    rnd = random.Random(generation)
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    parts = [head]
    for k in range(400):
        port = rnd.choice((33000, 33001, 33002, 33003, 33004, 33005, 33006))
        f = ETH + b"\x08\x00" + ipv4(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 17,
                                     udp(port, 53 if rnd.random() < 0.5 else 80, b"x" * 20))
        parts.append(struct.pack("<IIII", 1_700_000_000 + k, 0, len(f), len(f)) + f)
    recs, _, _ = differ(b"".join(parts), monkeypatch, 0, 1000)
    assert 7 < len(recs) < 400


@pytest.mark.parametrize("t0", [0x6553FFFF - 3, 0xFFFF - 1, 0])
def test_clock_crossing_the_upper_16_bits(t0: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # candidates are found by the upper 16 bits of the first record's seconds
    data = capture(random.Random(t0), 800, t0=t0)
    differ(data, monkeypatch, 0, 1 << 20)


def test_payloads_of_zeros_with_a_clock_at_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    # nearly every offset looks like a record header: the walk goes record by record
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    parts = [head]
    for k in range(300):
        f = ETH + b"\x08\x00" + ipv4(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 17,
                                     udp(33000 + k % 7, 80, bytes(200 + k % 50)))
        parts.append(struct.pack("<IIII", k // 100, k, len(f), len(f)) + f)
    recs, _, _ = differ(b"".join(parts), monkeypatch, 0, 1 << 20, bulk_used=True)
    assert len(recs) == 7


def test_damaged_and_cut_files(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(7)
    data = capture(rnd, 300)
    cuts = sorted(rnd.sample(range(24, len(data)), 25)) + [len(data) - 1, 25, 40]
    for cut in cuts:
        differ(data[:cut], monkeypatch, 0, 1000)
    for _ in range(25):  # a corrupt record length or header byte somewhere
        broken = bytearray(data)
        at = rnd.randrange(24, len(data) - 4)
        broken[at:at + 4] = rnd.choice((b"\xff\xff\xff\x7f", b"\0\0\0\0", b"\x10\0\0\0"))
        differ(bytes(broken), monkeypatch, rnd.choice((0, 5)), rnd.choice((1000, 1 << 20)))
        differ(bytes(broken), monkeypatch, 0, 1000, strict=True)


def test_random_bytes_after_valid_records(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(3)
    data = capture(rnd, 200)
    for _ in range(10):
        differ(data + rnd.randbytes(rnd.randrange(1, 3000)), monkeypatch, 0, 512)


@pytest.mark.parametrize("window", [10**6, 10_000, 1000, 0])
def test_udp_window_option(window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # packet gaps are 1 us, 10 us, 3 ms or 2 s: some exactly one window apart
    data = capture(random.Random(window), 600)
    differ(data, monkeypatch, 0, 1000, options=ReadOptions(udp_window_ns=window))


def test_the_walk_starts_after_bulk_after_packets(monkeypatch: pytest.MonkeyPatch) -> None:
    data = capture(random.Random(5), 300)
    differ(data, monkeypatch, 0, 1000, bulk_used=True)
    differ(data, monkeypatch, 290, 1000, bulk_used=True)
    differ(data, monkeypatch, 400, 1000, bulk_used=False)
    assert set(pcapwalk._LINK) == pcap._WALK_LINKTYPES


@pytest.mark.parametrize("name", sorted(p.name for p in ASSETS.iterdir()))
def test_bundled_captures(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (ASSETS / name).read_bytes()
    for after, chunk in BULKS:
        differ(data, monkeypatch, after, chunk)
        differ(data, monkeypatch, after, chunk, strict=True)


def _samples() -> list[Path]:
    if not SAMPLES.is_dir():
        return []
    return sorted(p for p in SAMPLES.rglob("*") if p.is_file() and p.stat().st_size < 50 << 20)


@pytest.mark.samples
@pytest.mark.skipif(not _samples(), reason="no pcap samples in ../shared/samples")
@pytest.mark.parametrize("sample", _samples(), ids=lambda p: p.name)
def test_real_samples(sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    data = sample.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if not pcap.sniff(data[:12]):
        pytest.skip("not a capture")
    for after, chunk in BULKS[:3]:
        differ(data, monkeypatch, after, chunk)


def test_compressed_capture_through_read_inputs(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # a .gz capture is a stream that gives what it has, not what was asked for
    import gzip

    from recorder.sources import read_inputs

    data = capture(random.Random(21), 2000)
    plain, packed = tmp_path / "c.pcap", tmp_path / "c.pcap.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))
    out = []
    for bulk in (False, True):
        with monkeypatch.context() as m:
            m.setattr(pcap, "CHUNK", 8192)
            if bulk:
                m.setattr(pcap, "BULK_AFTER", 0)
            else:
                m.setattr(pcap, "_WALK_LINKTYPES", frozenset())
            for p in (plain, packed):
                report = ReadReport()
                recs = list(read_inputs([str(p)], report))
                out.append((recs, report.ignored, report.skipped, report.lines[str(p)],
                            report.kept[str(p)]))
    general_plain, general_packed, bulk_plain, bulk_packed = out
    assert general_plain[0] and bulk_plain == general_plain and bulk_packed == general_packed
    assert general_packed[1:] == general_plain[1:]
