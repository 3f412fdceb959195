"""The conntrack reader on one small asset per layout and failure mode.

Assets in assets/conntrack/ follow the output of conntrack v1.4.7 on Linux 6.x as
recorded in tests/netlab.py (addresses 10.99.0.0/24, fd99::/64; ClusterIPs 10.96.x,
fd96::), trimmed to a few lines each. test_real_producers.py runs the real tool.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from recorder.errors import InputError
from recorder.report import ReadReport
from recorder.schema import FlowRecord
from recorder.sources import ReadOptions, detect_format, read_inputs
from recorder.sources import conntrack

ASSETS = Path(__file__).parent / "assets" / "conntrack"
DUMP_TIME = 1_700_000_000_123_456_789
CLIENT = "10.99.0.10"


def read(name: str, options: ReadOptions = ReadOptions(dump_time=DUMP_TIME),
         report: ReadReport | None = None) -> list[FlowRecord]:
    report = report if report is not None else ReadReport()
    path = ASSETS / name
    with open(path, "rb") as f:
        return list(conntrack.read(f, str(path), report, options))  # type: ignore[arg-type]


def view(r: FlowRecord) -> tuple:
    return (r.protocol, r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.xlated_ip, r.xlated_port)


@pytest.mark.parametrize("path", sorted(ASSETS.iterdir()), ids=lambda p: p.name)
def test_sniff_recognises_every_layout(path: Path) -> None:
    assert conntrack.sniff(path.read_bytes()[:65536])
    assert detect_format(path) == "conntrack"


@pytest.mark.parametrize("head", [
    b'{"flow": {"time": "2021-06-16T16:52:13.136834446Z"}}\n',
    b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + b"\0" * 16,
    b"src=1.2.3.4 dst=5.6.7.8 is just text\n",
    b"tcp 6 but nothing else\n",
])
def test_sniff_rejects_other_inputs(head: bytes) -> None:
    assert not conntrack.sniff(head)


def test_plain_dump_clusterip_dnat_to_backend_and_target_port() -> None:
    report = ReadReport()
    recs = read("L-plain.txt", report=report)
    assert [view(r) for r in recs] == [
        ("TCP", CLIENT, 60644, "10.96.0.10", 80, "10.99.0.11", 8080),
        ("UDP", CLIENT, 49874, "10.96.0.53", 53, "10.99.0.12", 5353),
        ("UDP", CLIENT, 41000, "10.99.0.12", 5353, None, None),  # [UNREPLIED], no DNAT
        ("ICMP", CLIENT, None, "10.99.0.11", 8, None, None),
        ("TCP", "fd99::a", 55404, "fd96::10", 80, "fd99::b", 8080),
        ("ICMPv6", "fd99::a", None, "fd99::b", 128, None, None),
        ("SCTP", CLIENT, 47541, "10.96.0.20", 3868, "10.99.0.13", 13868),
    ]
    assert recs[0].server_ip == "10.99.0.11" and recs[0].server_port == 8080
    # A dump has no time: every record carries the dump time and says so.
    assert {(r.first_seen, r.last_seen, r.time_known) for r in recs} == {
        (DUMP_TIME, DUMP_TIME, False)}
    assert {r.source_format for r in recs} == {"conntrack"}
    assert report.ignored["conntrack-protocol:unknown"] == 1  # IGMP: nothing to allow
    assert report.ignored["conntrack-trailer"] == 2
    assert report.kept[str(ASSETS / "L-plain.txt")] == 7
    assert report.lines[str(ASSETS / "L-plain.txt")] == 10  # every non-blank line
    assert not report.skipped


def test_dump_without_dump_time_uses_the_file_mtime(tmp_path: Path) -> None:
    path = tmp_path / "dump.txt"
    path.write_bytes((ASSETS / "L-plain.txt").read_bytes())
    os.utime(path, ns=(DUMP_TIME, 1_650_000_000_000_000_000))
    with open(path, "rb") as f:
        recs = list(conntrack.read(f, str(path), ReadReport(), ReadOptions()))  # type: ignore[arg-type]
    assert {r.first_seen for r in recs} == {1_650_000_000_000_000_000}
    assert not any(r.time_known for r in recs)


def test_extended_id_and_ktimestamp_give_start_times_read_as_utc() -> None:
    recs = read("L-extended-id-ktimestamp.txt")
    assert [view(r) for r in recs] == [
        ("TCP", CLIENT, 60644, "10.96.0.10", 80, "10.99.0.11", 8080),
        ("UDP", CLIENT, 49874, "10.96.0.53", 53, "10.99.0.12", 5353),
        ("TCP", "fd99::a", 55404, "fd96::10", 80, "fd99::b", 8080),
    ]
    # [start=Fri Nov 27 01:41:40 2026] -> 2026-11-27T01:41:40Z
    assert recs[0].first_seen == 1_795_743_700 * 10**9
    assert recs[2].first_seen == 1_795_743_703 * 10**9
    assert all(r.time_known for r in recs)


def test_proc_layout_and_uncompressed_ipv6() -> None:
    recs = read("proc-nf_conntrack.txt")
    assert [view(r) for r in recs] == [
        ("TCP", CLIENT, 60644, "10.96.0.10", 80, "10.99.0.11", 8080),
        ("TCP", "fd99::a", 55404, "fd96::10", 80, "fd99::b", 8080),
    ]


def test_event_stream_counts_each_connection_once() -> None:
    report = ReadReport()
    recs = read("E-plain.txt", report=report)
    # TCP: NEW + 2 UPDATE + DESTROY -> 1. UDP: NEW, UPDATE, DESTROY -> 1; after its
    # DESTROY the same tuple's NEW is a new connection (source port reused) -> 1 more.
    assert [view(r) for r in recs] == [
        ("TCP", CLIENT, 60644, "10.96.0.10", 80, "10.99.0.11", 8080),
        ("UDP", CLIENT, 49874, "10.96.0.53", 53, "10.99.0.12", 5353),
        ("UDP", CLIENT, 49874, "10.96.0.53", 53, "10.99.0.12", 5353),
    ]
    assert report.ignored["conntrack-repeat"] == 5
    assert not any(r.time_known for r in recs)  # no -o timestamp


def test_timestamped_events_keep_their_times() -> None:
    report = ReadReport()
    recs = read("E-timestamp.txt", report=report)
    assert [(view(r), r.first_seen) for r in recs] == [
        (("TCP", CLIENT, 42102, "10.96.0.10", 80, "10.99.0.11", 8080), 1795743730712140000),
        (("ICMP", CLIENT, None, "10.99.0.11", 8, None, None), 1795743730737192000),
        (("ICMPv6", "fd99::a", None, "fd99::b", 128, None, None), 1795743730768289000),
        # Its NEW was before the recording started: the first event seen counts.
        (("TCP", "10.99.0.20", 51000, "10.96.0.10", 80, "10.99.0.11", 8080),
         1795743730800000000),
        # -o extended,id inside an event stream
        (("TCP", CLIENT, 42103, "10.96.0.30", 443, "10.99.0.14", 8443), 1795743730900001000),
    ]
    assert all(r.time_known and r.first_seen == r.last_seen for r in recs)
    assert report.ignored["conntrack-repeat"] == 4


def test_xml_dump_and_events() -> None:
    recs = read("L-xml.xml")
    assert [view(r) for r in recs] == [
        ("TCP", CLIENT, 42102, "10.96.0.10", 80, "10.99.0.11", 8080),
        ("UDP", CLIENT, 49874, "10.96.0.53", 53, "10.99.0.12", 5353),
        ("ICMPv6", "fd99::a", None, "fd99::b", None, None, None),  # XML has no ICMP type
    ]
    assert recs[0].first_seen == 1795743730712000713 and recs[0].time_known
    assert recs[1].first_seen == DUMP_TIME and not recs[1].time_known  # no <timestamp>
    events = read("E-xml-timestamp.xml")
    assert [(view(r), r.first_seen) for r in events] == [
        (("TCP", CLIENT, 42102, "10.96.0.10", 80, "10.99.0.11", 8080), 1795743730 * 10**9),
        (("UDP", CLIENT, 49874, "10.96.0.53", 53, "10.99.0.12", 5353), 1795743733 * 10**9),
    ]


def test_offload_flags_zones_marks_and_missing_timeouts() -> None:
    assert [view(r) for r in read("offload-zones.txt")] == [
        ("TCP", CLIENT, 40001, "10.96.0.10", 80, "10.99.0.11", 8080),
        ("TCP", CLIENT, 40002, "10.96.0.10", 80, "10.99.0.11", 8080),
        ("UDP", CLIENT, 40003, "10.96.0.53", 53, "10.99.0.12", 5353),
    ]


def test_masqueraded_reply_keeps_the_client() -> None:
    # The reply tuple's dst is the node (10.99.0.1) after SNAT: the client is still the
    # original source; only a connection the node itself opened has the node as client.
    assert [view(r) for r in read("masquerade.txt")] == [
        ("TCP", CLIENT, 45000, "10.96.0.10", 80, "10.99.0.11", 8080),
        ("UDP", CLIENT, 45001, "10.96.0.53", 53, "10.99.0.12", 5353),
        ("TCP", "10.99.0.1", 45002, "10.99.0.11", 8080, None, None),
    ]


def test_repeated_dumps_count_a_live_connection_once() -> None:
    report = ReadReport()
    recs = read("repeated-dumps.txt", report=report)
    assert [r.src_port for r in recs] == [50000, 50001, 50002]
    assert report.ignored["conntrack-repeat"] == 1


def test_garbage_is_skipped_with_line_numbers_and_valid_lines_kept() -> None:
    report = ReadReport()
    recs = read("garbage.txt", report=report)
    assert [r.src_port for r in recs] == [60001, 60006]
    assert report.skipped["not-conntrack"] == 9
    lines = sorted(e.line for e in report.examples)
    assert lines == [2, 3, 4, 5, 6]  # the first five examples are kept
    text = " ".join(str(e) for e in report.examples)
    assert "garbage.txt:4: not-conntrack (not an IP address: '10.99.0.999'" in text
    assert "garbage.txt:5: not-conntrack (port out of range" in text


def test_strict_makes_the_first_bad_line_fatal() -> None:
    with pytest.raises(InputError, match=r"garbage\.txt:2: not-conntrack"):
        read("garbage.txt", report=ReadReport(strict=True))


def test_read_inputs_detects_conntrack_and_opens_gzip(tmp_path: Path) -> None:
    gz = tmp_path / "events.txt.gz"
    gz.write_bytes(gzip.compress((ASSETS / "E-timestamp.txt").read_bytes()))
    report = ReadReport()
    recs = list(read_inputs([str(gz), str(ASSETS / "L-plain.txt")], report,
                            ReadOptions(dump_time=DUMP_TIME)))
    assert len(recs) == 5 + 7
    assert report.formats == {str(gz): "conntrack", str(ASSETS / "L-plain.txt"): "conntrack"}


def test_tracked_connections_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Memory does not grow with the input: beyond the bound the oldest half of the
    # remembered tuples is forgotten; a forgotten connection's later UPDATE counts again.
    monkeypatch.setattr(conntrack, "MAX_TRACKED_TUPLES", 4)
    lines = [
        f"    [NEW] udp      17 30 src=10.99.0.10 dst=10.96.0.53 sport={p} dport=53 "
        f"[UNREPLIED] src=10.99.0.12 dst=10.99.0.10 sport=5353 dport={p}\n"
        for p in range(40000, 40010)
    ] + [
        " [UPDATE] udp      17 29 src=10.99.0.10 dst=10.96.0.53 sport=40009 dport=53 "
        "src=10.99.0.12 dst=10.99.0.10 sport=5353 dport=40009\n",
        " [UPDATE] udp      17 29 src=10.99.0.10 dst=10.96.0.53 sport=40000 dport=53 "
        "src=10.99.0.12 dst=10.99.0.10 sport=5353 dport=40000\n",
    ]
    import io

    recs = list(conntrack.read(io.BytesIO("".join(lines).encode()), "mem", ReadReport(),
                               ReadOptions(dump_time=1)))
    assert [r.src_port for r in recs] == [*range(40000, 40010), 40000]
