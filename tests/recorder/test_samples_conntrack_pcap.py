"""Real third-party conntrack and pcap samples (../shared/samples, see its README).

The expected records were counted by hand: conntrack files line by line (they are a
few lines each); captures with ``tcpdump -nr FILE`` (SYNs, echo requests, tunnels'
inner packets), as noted per file below.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from recorder.report import ReadReport
from recorder.schema import FlowRecord
from recorder.sources import ReadOptions, detect_format, read_inputs

pytestmark = pytest.mark.samples

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"


def load(kind: str, name: str) -> tuple[list[FlowRecord], ReadReport, str]:
    path = SAMPLES / kind / name
    if not path.exists():
        pytest.skip(f"{path} not present (the samples tier needs ../shared/samples)")
    report = ReadReport()
    recs = [r for r in read_inputs([str(path)], report, ReadOptions(dump_time=1))
            if isinstance(r, FlowRecord)]
    return recs, report, detect_format(path) or ""


def view(r: FlowRecord) -> tuple:
    return (r.protocol, r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.xlated_ip,
            r.xlated_port)


def test_conntrack_events_sample() -> None:
    # 2 lines: a NEW (loopback resolver, no DNAT) and a DESTROY whose NEW was not
    # recorded (counted from its first event).
    recs, report, fmt = load("conntrack", "conntrack-E-events.txt")
    assert fmt == "conntrack"
    assert [view(r) for r in recs] == [
        ("UDP", "127.0.0.1", 52269, "127.0.0.53", 53, None, None),
        ("UDP", "192.168.136.128", 42007, "8.8.8.8", 53, None, None),
    ]
    assert not report.skipped


def test_conntrack_clusterip_dump_sample() -> None:
    # 4 lines: kube-dns ClusterIP 10.0.0.10 -> CoreDNS pod 10.64.2.4 (same port);
    # metadata server (no DNAT); SCTP NodePort-like DNAT with secctx/zone; a ClusterIP
    # 10.96.0.10:80 -> 10.244.0.3:8080 (service port != targetPort).
    recs, report, _ = load("conntrack", "conntrack-L-clusterip-dns.txt")
    assert [view(r) for r in recs] == [
        ("TCP", "10.64.4.48", 59817, "10.0.0.10", 53, "10.64.2.4", 53),
        ("UDP", "10.128.0.103", 37351, "169.254.169.254", 53, None, None),
        ("SCTP", "169.254.169.2", 47541, "172.30.206.3", 30102, "10.131.0.27", 30102),
        ("TCP", "10.244.0.2", 39932, "10.96.0.10", 80, "10.244.0.3", 8080),
    ]
    assert not any(r.time_known for r in recs)
    assert not report.skipped


def test_proc_nf_conntrack_sample() -> None:
    # 2 lines: an IGMP ("unknown 2") entry, not a connection a policy can name, and
    # the ClusterIP TCP connection.
    recs, report, _ = load("conntrack", "proc-nf_conntrack-extended.txt")
    assert [view(r) for r in recs] == [
        ("TCP", "10.244.0.2", 39932, "10.96.0.10", 80, "10.244.0.3", 8080)]
    assert report.ignored["conntrack-protocol:unknown"] == 1


def test_antrea_icmp_sample() -> None:
    # tcpdump: 10 echo requests, id 35, one per second -> one ping session.
    recs, report, fmt = load("pcap", "antrea-pod-icmp.pcapng")
    assert fmt == "pcap"
    assert [view(r) for r in recs] == [("ICMP", "10.244.1.3", None, "8.8.8.8", 8, None, None)]
    assert report.lines[str(SAMPLES / "pcap" / "antrea-pod-icmp.pcapng")] == 10


def test_antrea_tcp_syn_sample() -> None:
    # tcpdump: 5 SYNs from 10.244.1.2 to 8.8.8.8:53, five different source ports.
    recs, _, _ = load("pcap", "antrea-pod-to-dns-tcp-syn.pcapng")
    assert [(r.protocol, r.src_ip, r.dst_ip, r.dst_port) for r in recs] == [
        ("TCP", "10.244.1.2", "8.8.8.8", 53)] * 5
    assert [r.src_port for r in recs] == [36773, 44453, 36093, 37613, 42479]


def test_geneve_sample() -> None:
    # tcpdump: 39 Geneve packets (UDP 6081) between 20.0.0.1/.2; inside, an ICMP echo
    # session 30.0.0.1 -> 30.0.0.2 (requests seq 23-25, within the UDP/ICMP window) and
    # one SSH connection whose SYN goes 30.0.0.2:51225 -> 30.0.0.1:22.
    recs, report, _ = load("pcap", "geneve.pcap")
    assert Counter(view(r) for r in recs) == Counter({
        ("ICMP", "30.0.0.1", None, "30.0.0.2", 8, None, None): 1,
        ("TCP", "30.0.0.2", 51225, "30.0.0.1", 22, None, None): 1,
    })
    assert report.ignored["pcap-tunnel-packet"] == 39
    assert not any(r.inferred for r in recs)


def test_vxlan_gso_sample() -> None:
    # tcpdump: 1 VXLAN packet carrying a 6990-byte TCP segment 192.168.1.2:37099 ->
    # 192.168.1.1:41547, mid-connection, both ports ephemeral: no direction can be
    # inferred, so no record, but the packet is counted.
    recs, report, _ = load("pcap", "vxlan-gso.pcap")
    assert recs == []
    assert report.ignored["pcap-direction-unknown"] == 1
    assert report.ignored["pcap-tunnel-packet"] == 1
    assert not report.skipped
