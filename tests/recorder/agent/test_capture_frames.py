"""The capture source's frame handling, without sockets: frames built with scapy, fed
to ``CaptureSource.handle`` as the socket loop does."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from recorder.agent.capture import CaptureSource, NatTwins, twin_key
from recorder.schema import FlowRecord

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000


def _syn(src: str, dst: str, sport: int, dport: int, seq: int, flags: str = "S") -> bytes:
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    return bytes(Ether() / ip / TCP(sport=sport, dport=dport, flags=flags, seq=seq))


def _udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    return bytes(Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload)


def _run(frames: list[tuple[bytes, str, int]], hold_ns: int = 300 * MS) -> tuple[list[FlowRecord], CaptureSource]:
    src = CaptureSource(["eth-test"])
    src.twins = NatTwins(hold_ns)
    out: list = []
    for frame, iface, ts in frames:
        src.handle(frame, iface, ts, out)
    src.twins.expire(None, out)
    return out, src


def test_clusterip_syn_and_its_dnat_twin_become_one_record_with_the_backend() -> None:
    pre = _syn("10.0.0.5", "10.96.0.10", 40000, 80, 1234)  # client veth: before DNAT
    post = _syn("10.0.0.5", "10.0.0.9", 40000, 8080, 1234)  # backend veth: after DNAT
    out, src = _run([(post, "veth9", T0 + 2 * MS), (pre, "veth5", T0 + 1 * MS)])
    assert len(out) == 1
    r = out[0]
    assert (r.src_ip, r.src_port, r.dst_ip, r.dst_port) == ("10.0.0.5", 40000, "10.96.0.10", 80)
    assert (r.xlated_ip, r.xlated_port) == ("10.0.0.9", 8080)
    assert r.first_seen == T0 + MS and r.source_format == "capture" and r.input == "capture:veth5"
    assert src.twins.paired == 1


def test_udp_twins_pair_by_payload_and_distinct_queries_do_not() -> None:
    q1 = _udp("10.0.0.5", "10.96.0.53", 41000, 53, b"query-1")
    q1_post = _udp("10.0.0.5", "10.0.0.7", 41000, 5353, b"query-1")
    q2_post = _udp("10.0.0.5", "10.0.0.8", 41000, 5353, b"query-2")  # another query, port reused
    out, _ = _run([(q1, "veth5", T0), (q1_post, "veth7", T0 + MS), (q2_post, "veth8", T0 + 2 * MS)])
    by_dst = {r.dst_ip: r for r in out}
    assert set(by_dst) == {"10.96.0.53", "10.0.0.8"}
    assert (by_dst["10.96.0.53"].xlated_ip, by_dst["10.96.0.53"].xlated_port) == ("10.0.0.7", 5353)
    assert by_dst["10.0.0.8"].xlated_ip is None


def test_same_syn_on_several_interfaces_counts_once_and_syn_ack_not_at_all() -> None:
    syn = _syn("10.0.0.5", "10.0.0.9", 40001, 8080, 99)
    syn_ack = _syn("10.0.0.9", "10.0.0.5", 8080, 40001, 555, flags="SA")
    out, src = _run([(syn, "veth5", T0), (syn, "cni0", T0 + 1), (syn, "veth9", T0 + 2),
                     (syn_ack, "veth9", T0 + 3)])
    assert len(out) == 1 and out[0].xlated_ip is None
    assert src.stats()["capture-duplicate-syn"] == 2


def test_ipv6_and_vlan_tagged_syns() -> None:
    v6 = _syn("fd00::5", "fd00::9", 40002, 443, 7)
    tagged = bytes(Ether() / Dot1Q(vlan=12) / IP(src="10.0.0.5", dst="10.0.0.9")
                   / TCP(sport=40003, dport=80, flags="S", seq=8))
    out, _ = _run([(v6, "veth5", T0), (tagged, "veth5", T0 + 1)])
    assert sorted((r.protocol, r.dst_ip, r.dst_port) for r in out) == [
        ("TCP", "10.0.0.9", 80), ("TCP", "fd00::9", 443)]
    assert twin_key(tagged) == (6, (40003).to_bytes(2, "big"), (8).to_bytes(4, "big"))


def test_a_different_connection_with_the_same_client_port_is_not_a_twin() -> None:
    a = _syn("10.0.0.5", "10.96.0.10", 40004, 80, 1000)
    b = _syn("10.0.0.5", "10.96.0.11", 40004, 80, 2000)  # other ISN: another connection
    out, src = _run([(a, "veth5", T0), (b, "veth5", T0 + MS)])
    assert sorted(r.dst_ip for r in out) == ["10.96.0.10", "10.96.0.11"]
    assert all(r.xlated_ip is None for r in out) and src.twins.paired == 0


def test_held_starts_leave_after_the_hold_and_the_table_is_bounded() -> None:
    twins = NatTwins(hold_ns=100 * MS, capacity=10)
    out: list = []
    for i in range(25):
        rec = FlowRecord(T0 + i, T0 + i, "TCP", "10.0.0.5", "10.0.0.9", 80, src_port=1000 + i)
        twins.add(rec, (6, i), T0 + i, out)
    assert len(twins) == 10 and len(out) == 15  # the oldest left early, none lost
    twins.expire(T0 + 50 * MS, out)
    assert len(out) == 15
    twins.expire(T0 + 200 * MS, out)
    assert len(out) == 25 and len(twins) == 0


def test_malformed_frame_is_counted_not_raised() -> None:
    out, src = _run([(b"\x00" * 12 + b"\x08\x00" + b"\x45", "veth5", T0)])
    assert out == [] and src.stats()["malformed"] == 1


@pytest.mark.parametrize("frame", [_syn("10.0.0.5", "10.0.0.9", 40005, 80, 1)])
def test_records_equal_what_the_schema_constructor_builds(frame: bytes) -> None:
    out, _ = _run([(frame, "veth5", T0)])
    expected = FlowRecord(T0, T0, "TCP", "10.0.0.5", "10.0.0.9", 80, src_port=40005,
                          source_format="capture", input="capture:veth5")
    assert out == [expected]


def test_same_datagram_to_two_servers_from_one_port_is_two_connections() -> None:
    a = _udp("10.0.0.5", "10.0.0.7", 41001, 123, b"probe")
    b = _udp("10.0.0.5", "10.0.0.8", 41001, 123, b"probe")
    out, src = _run([(a, "veth5", T0), (b, "veth5", T0 + MS)])  # both leave the client's veth
    assert sorted(r.dst_ip for r in out) == ["10.0.0.7", "10.0.0.8"] and src.twins.twins == 0


def test_a_twin_after_the_hold_is_counted_once_without_translation() -> None:
    pre = _syn("10.0.0.5", "10.96.0.10", 40006, 80, 4321)
    post = _syn("10.0.0.5", "10.0.0.9", 40006, 8080, 4321)  # the retransmission got through
    src = CaptureSource(["eth-test"])
    src.twins = NatTwins(hold_ns=100 * MS)
    out: list = []
    src.handle(pre, "veth5", T0, out)
    src.twins.expire(T0 + 200 * MS, out)
    src.handle(post, "veth9", T0 + 1000 * MS, out, outgoing=True)
    src.twins.expire(None, out)
    assert [(r.dst_ip, r.xlated_ip) for r in out] == [("10.96.0.10", None)]
    assert src.stats()["nat_late_twins"] == 1


def test_a_later_start_of_another_client_with_the_same_port_and_isn_is_not_folded() -> None:
    # Flood tools often send one fixed sequence number: such starts stay separate.
    a = _syn("10.0.0.5", "10.0.0.9", 40007, 80, 1)
    b = _syn("10.0.0.6", "10.0.0.9", 40007, 80, 1)
    src = CaptureSource(["eth-test"])
    src.twins = NatTwins(hold_ns=100 * MS)
    out: list = []
    src.handle(a, "veth5", T0, out)
    src.twins.expire(T0 + 200 * MS, out)
    src.handle(b, "veth6", T0 + 300 * MS, out)
    src.twins.expire(None, out)
    assert sorted(r.src_ip for r in out) == ["10.0.0.5", "10.0.0.6"]
