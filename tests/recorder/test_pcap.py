"""The pcap/pcapng reader on one small capture per link type, encapsulation and
failure mode. The captures are written by assets/make_pcaps.py (scapy builds the
packets); test_real_producers.py reads what real tcpdump writes."""

from __future__ import annotations

import gzip
import importlib.util
import struct
import sys
from pathlib import Path

import pytest

from recorder.errors import InputError
from recorder.report import ReadReport
from recorder.schema import FlowRecord, NameBinding
from recorder.sources import ReadOptions, detect_format, read_inputs
from recorder.sources import pcap
from recorder.sources.fastrecord import flow_record_maker

ASSETS = Path(__file__).parent / "assets" / "pcap"
T0 = 1_700_000_000 * 10**9
S = 10**9
CLIENT, SERVICE, BACKEND = "10.244.1.5", "10.96.0.10", "10.244.2.7"
CLIENT6, SERVER6 = "fd00:10:244:1::5", "fd00:10:96::10"


def read(name: str, report: ReadReport | None = None,
         options: ReadOptions = ReadOptions()) -> list[FlowRecord]:
    report = report if report is not None else ReadReport()
    path = ASSETS / name
    with open(path, "rb") as f:
        return list(pcap.read(f, str(path), report, options))  # type: ignore[arg-type]


def view(r: FlowRecord) -> tuple:
    return (r.protocol, r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.first_seen, r.inferred)


# One TCP connection (SYN retransmitted once), DNS twice within the window and once
# after it, one ping session (two requests) - see make_pcaps.basic_frames.
BASIC = [
    ("TCP", CLIENT, 40000, SERVICE, 80, T0 + S // 10, False),
    ("UDP", CLIENT, 50000, SERVICE, 53, T0 + 2 * S, False),
    ("UDP", CLIENT, 50000, SERVICE, 53, T0 + 200 * S, False),
    ("ICMP", CLIENT, None, BACKEND, 8, T0 + 201 * S, False),
]


def test_assets_are_what_the_script_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_pcaps", ASSETS.parent / "make_pcaps.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_pcaps"] = module
    spec.loader.exec_module(module)
    written = module.write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in ASSETS.iterdir())
    for p in written:
        assert p.read_bytes() == (ASSETS / p.name).read_bytes(), p.name


@pytest.mark.parametrize("name", [
    "ethernet-le-usec.pcap", "ethernet-be-usec.pcap", "ethernet-le-nsec.pcap",
    "ethernet-be-nsec.pcap", "linux-sll.pcap", "linux-sll2.pcap", "raw-ip-101.pcap",
    "raw-ip-12.pcap",
])
def test_link_types_byte_orders_and_resolutions(name: str) -> None:
    report = ReadReport()
    recs = read(name, report)
    assert [view(r) for r in recs] == BASIC
    assert {r.source_format for r in recs} == {"pcap"}
    assert report.lines[str(ASSETS / name)] == 14
    assert report.kept[str(ASSETS / name)] == 4
    assert report.ignored["pcap-duplicate-syn"] == 1
    # SYN-ACK, ACK, data, FIN; the DNS answer and the query within the window; the
    # second echo request. The echo reply (and ARP) are not connection starts.
    assert report.ignored["pcap-connection-packet"] == 7
    assert report.ignored["pcap-icmp-not-echo-request"] + report.ignored["pcap-not-ip"] == 2
    assert not report.skipped


def test_vlan_and_qinq_tags() -> None:
    assert [view(r)[:5] for r in read("vlan-qinq.pcap")] == [
        ("TCP", CLIENT, 40001, SERVICE, 443),
        ("TCP", CLIENT, 40002, SERVICE, 8443),
        ("UDP", CLIENT6, 40003, SERVER6, 53),
    ]


def test_vxlan_and_geneve_are_decapsulated() -> None:
    report = ReadReport()
    recs = read("vxlan-geneve.pcap", report)
    # Only the inner pod connections; the node-to-node tunnel is not a flow.
    assert [view(r)[:5] for r in recs] == [
        ("TCP", CLIENT, 40010, BACKEND, 8080),  # VXLAN 4789
        ("UDP", CLIENT, 40011, "10.244.3.3", 5353),  # VXLAN 8472 (flannel)
        ("TCP", CLIENT6, 40012, SERVER6, 9090),  # Geneve with options, inner IPv6
    ]
    assert report.ignored["pcap-tunnel-packet"] == 3


def test_ipv6_extension_headers_and_fragments() -> None:
    report = ReadReport()
    assert [view(r)[:5] for r in read("ipv6-ext-headers.pcap", report)] == [
        ("TCP", CLIENT6, 40020, SERVER6, 443),  # behind hop-by-hop + destination options
        ("UDP", CLIENT6, 40021, SERVER6, 53),  # first fragment carries the UDP header
        ("ICMPv6", CLIENT6, None, SERVER6, 128),
    ]
    assert report.ignored["pcap-ip-fragment"] == 1


def test_sctp_init_starts_an_association() -> None:
    assert [view(r) for r in read("sctp.pcap")] == [
        ("SCTP", CLIENT, 40030, SERVICE, 3868, T0, False),
        ("SCTP", CLIENT, 40031, "10.244.2.8", 3868, T0 + S // 5, True),  # from INIT-ACK
    ]


def test_capture_started_mid_connection_infers_once_and_never_guesses() -> None:
    report = ReadReport()
    assert [view(r) for r in read("midstream.pcap", report)] == [
        ("TCP", CLIENT, 40040, BACKEND, 8080, T0, True),  # from the SYN-ACK
        ("TCP", CLIENT, 45000, "10.244.2.9", 5432, T0 + S // 5, True),  # ephemeral side
        ("UDP", CLIENT, 41000, "10.244.3.3", 53, T0 + S // 2, True),  # answer seen first
    ]
    assert report.ignored["pcap-direction-unknown"] == 1  # ports 40000 <-> 50000


def test_pcapng_with_several_interfaces_link_types_and_resolutions() -> None:
    for name in ("multi-interface.pcapng", "multi-interface-be.pcapng"):
        assert [view(r) for r in read(name)] == [
            ("TCP", CLIENT, 40060, SERVICE, 80, T0 + 10 * S + 250_000_000, False),  # usec
            ("UDP", CLIENT, 40061, SERVICE, 53, T0 + 11 * S + 123_456_789, False),  # nsec
            ("TCP", CLIENT6, 40062, SERVER6, 443, T0 + 12 * S + S // 2, False),  # 2^-10 + offset
            # simple packet block: no time of its own, the previous packet's
            ("TCP", CLIENT, 40063, SERVICE, 80, T0 + 12 * S + S // 2, False),
        ], name


def test_udp_window_option() -> None:
    recs = read("ethernet-le-usec.pcap", options=ReadOptions(udp_window_ns=1 * S))
    # 2 s between the DNS queries now exceeds the window: three DNS flows
    assert [r.first_seen for r in recs if r.protocol == "UDP"] == [
        T0 + 2 * S, T0 + 4 * S, T0 + 200 * S]


def test_junk_packets_are_skipped_with_packet_numbers() -> None:
    report = ReadReport()
    assert [r.src_port for r in read("junk-packets.pcap", report)] == [40050, 40051]
    assert sorted(str(e) for e in report.examples) == [
        f"{ASSETS / 'junk-packets.pcap'}: packet 2: truncated-packet",
        f"{ASSETS / 'junk-packets.pcap'}: packet 3: bad-ip-header",
    ]


def test_headers_cut_by_the_snap_length_are_ignored_not_bad_input(tmp_path: Path) -> None:
    # The same cut-off second packet, but its record says the packet was longer than
    # what was kept: the capture's snap length cut it, the file is fine.
    data = bytearray((ASSETS / "junk-packets.pcap").read_bytes())
    first_caplen = struct.unpack_from("<I", data, 24 + 8)[0]
    second = 24 + 16 + first_caplen
    assert struct.unpack_from("<II", data, second + 8) == (20, 20)
    struct.pack_into("<I", data, second + 12, 74)  # original length
    path = tmp_path / "snaplen.pcap"
    path.write_bytes(bytes(data))
    report = ReadReport()
    recs = list(read_inputs([str(path)], report))
    assert [r.src_port for r in recs] == [40050, 40051]
    assert report.ignored["headers-beyond-snaplen"] == 1
    assert [str(e) for e in report.examples] == [f"{path}: packet 3: bad-ip-header"]


@pytest.mark.parametrize("name,kept,where", [
    ("truncated-record.pcap", 1, ": packet 4: truncated-packet"),
    ("truncated-header.pcap", 1, ": packet 5: truncated-packet"),
    ("corrupt-length.pcap", 1, ": packet 3: corrupt-record"),
    ("truncated.pcapng", 3, ": packet 4: truncated-packet"),
])
def test_damaged_files_keep_every_valid_packet(name: str, kept: int, where: str) -> None:
    report = ReadReport()
    assert len(read(name, report)) == kept
    assert report.total_skipped == 1
    assert where in str(report.examples[0])


def test_strict_makes_damage_fatal() -> None:
    with pytest.raises(InputError, match=r"truncated-record\.pcap: packet 4: truncated-packet"):
        read("truncated-record.pcap", ReadReport(strict=True))


def test_unsupported_link_type_reads_nothing_and_is_an_error() -> None:
    report = ReadReport()
    with pytest.raises(InputError, match="no packet could be read"):
        read("unsupported-linktype.pcap", report)
    assert report.skipped["unsupported-link-type"] == 3
    assert "link type 147 is not supported" in str(report.examples[0])


def test_wrong_magic_is_an_input_error() -> None:
    assert detect_format(ASSETS / "bad-magic.pcap") is None
    with pytest.raises(InputError, match="not a pcap or pcapng file"):
        read("bad-magic.pcap")


def test_header_only_capture_is_empty_not_an_error() -> None:
    report = ReadReport()
    assert read("header-only.pcap", report) == []
    assert not report.skipped


def test_read_inputs_detects_pcap_and_gzip(tmp_path: Path) -> None:
    gz = tmp_path / "capture.pcap.gz"
    gz.write_bytes(gzip.compress((ASSETS / "ethernet-be-nsec.pcap").read_bytes()))
    report = ReadReport()
    recs = list(read_inputs([str(gz), str(ASSETS / "multi-interface.pcapng")], report))
    assert len(recs) == 8
    assert set(report.formats.values()) == {"pcap"}


def test_connection_tables_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pcap, "TABLE_GENERATION", 2)
    recs = read("ethernet-le-usec.pcap")
    # With two entries per generation the tables still answer correctly for the
    # connections in flight (the reverse entries live in the young generation).
    assert [view(r) for r in recs] == BASIC


def test_fast_record_maker_builds_equal_records() -> None:
    make = flow_record_maker("first_seen", "last_seen", "protocol", "src_ip", "dst_ip",
                             "dst_port", "src_port", "inferred", "input",
                             source_format="pcap")
    built = make(1, 2, "TCP", "a", "b", 80, 1234, True, "x")
    assert built == FlowRecord(first_seen=1, last_seen=2, protocol="TCP", src_ip="a",
                               dst_ip="b", dst_port=80, src_port=1234, inferred=True,
                               input="x", source_format="pcap")
    assert hash(built) == hash(FlowRecord(1, 2, "TCP", "a", "b", 80, 1234, inferred=True,
                                          input="x", source_format="pcap"))
    with pytest.raises(TypeError):
        flow_record_maker("no_such_field")


def test_dns_answers_bind_the_name_the_client_asked_for() -> None:
    """UDP and TCP answers (the TCP one after a truncated UDP answer, reassembled from
    two segments, one retransmitted), a CNAME chain asked in mixed case, AAAA, an IPv6
    transport; NXDOMAIN, SERVFAIL, a malformed answer, a name no policy can carry and
    an answer seen twice bind nothing and are counted."""
    report = ReadReport()
    recs = read("dns-answers.pcap", report)
    names = [(r.client_ip, r.name, r.address, r.ttl, round((r.first_seen - T0) / 10**6))
             for r in recs if isinstance(r, NameBinding)]
    big = [(CLIENT, "big.example", f"203.0.113.{100 + i}", 45, 2016) for i in range(12)]
    assert names == [
        (CLIENT, "api.example.com", "203.0.113.5", 20, 1),  # TTL: the lowest on the chain
        (CLIENT, "api.example.com", "203.0.113.6", 20, 1),
        (CLIENT, "api.example.com", "2001:db8::5", 60, 11),
        *big,
        (CLIENT6, "v6.example", "2001:db8::6", 0, 4000),
    ]
    assert all(r.source_format == "pcap" and r.input.endswith("dns-answers.pcap")
               for r in recs if isinstance(r, NameBinding))
    flows = [view(r) for r in recs if isinstance(r, FlowRecord)]
    assert ("TCP", CLIENT, 40100, SERVICE, 53, T0 + 2010 * 10**6, False) in flows
    assert len(flows) == 9  # eight lookups over UDP (one over IPv6) and one over TCP
    assert report.ignored["dns-nxdomain"] == 1 and report.ignored["dns-error-rcode"] == 1
    assert report.ignored["dns-truncated"] == 1 and report.ignored["dns-malformed"] == 1
    assert report.ignored["dns-bad-name"] == 1 and report.ignored["dns-repeated-answer"] == 1
    assert report.noted == {"dns-answers": 4, "dns-name-lower-cased": 1,
                            "dns-records-off-the-chain": 1}
    assert not report.skipped
    assert report.kept[str(ASSETS / "dns-answers.pcap")] == len(recs)
    # every packet is accounted for: flow starts, packets of known flows, answers
    assert report.ignored["pcap-connection-packet"] == 24 - len(flows)


def test_a_dns_answer_cut_by_the_snap_length_is_counted_not_bad_input() -> None:
    report = ReadReport()
    recs = read("dns-snaplen.pcap", report)
    assert [type(r) for r in recs] == [FlowRecord]
    assert report.ignored["dns-beyond-snaplen"] == 1 and not report.skipped
