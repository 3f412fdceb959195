"""The importers against real producers: the kernel's conntrack and kube-proxy-style
DNAT in network namespaces (tests/netlab.py), the real `conntrack` tool and `tcpdump`.

Service port != targetPort everywhere, DNS-like traffic over UDP (and TCP) to a
"kube-dns" ClusterIP whose backend listens on 5353.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

from netlab import NetLab, Pod, ServicePort
from recorder.report import ReadReport
from recorder.schema import FlowRecord
from recorder.sources import ReadOptions, detect_format, read_inputs

pytestmark = pytest.mark.root

WEB_VIP, DNS_VIP, WEB6_VIP = "10.96.0.10", "10.96.0.53", "fd96::10"
TCP_CONNECTIONS, DNS_LOOKUPS = 3, 2


class Scenario:
    """What was recorded, and what the lab looked like."""

    def __init__(self, lab: NetLab, client: Pod, web: Pod, dns: Pod, files: dict[str, Path],
                 started: int, ended: int) -> None:
        self.lab, self.client, self.web, self.dns = lab, client, web, dns
        self.files, self.started, self.ended = files, started, ended


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("real")
    files = {name: tmp / name for name in (
        "events.txt", "veth.pcap", "any-sll2.pcap", "any-sll.pcap", "pod-nsec.pcap",
        "list.txt", "list-extended.txt", "list.xml")}
    with NetLab() as lab:
        client, web, dns = lab.add_pod("client"), lab.add_pod("web"), lab.add_pod("dns")
        lab.add_service("web", WEB_VIP, [ServicePort("TCP", 80, 8080)], [web])
        lab.add_service("web6", WEB6_VIP, [ServicePort("TCP", 80, 8080)], [web])
        lab.add_service("kube-dns", DNS_VIP, [ServicePort("UDP", 53, 5353, "dns"),
                                              ServicePort("TCP", 53, 5353, "dns-tcp")], [dns])
        started = time.time_ns()
        with lab.serve(web, "TCP", 8080), lab.serve(web, "TCP", 8080, ipv6=True), \
                lab.serve(dns, "UDP", 5353), lab.serve(dns, "TCP", 5353), \
                lab.conntrack_events(files["events.txt"]), \
                lab.tcpdump(files["veth.pcap"], client.node_veth), \
                lab.tcpdump(files["any-sll2.pcap"], "any"), \
                lab.tcpdump(files["any-sll.pcap"], "any", extra=("-y", "LINUX_SLL")), \
                lab.tcpdump(files["pod-nsec.pcap"], "eth0", ns=client.netns,
                            extra=("--time-stamp-precision", "nano")):
            assert lab.connect(client, "TCP", WEB_VIP, 80, count=TCP_CONNECTIONS) == 3
            assert lab.connect(client, "UDP", DNS_VIP, 53, count=DNS_LOOKUPS) == 2
            assert lab.connect(client, "TCP", DNS_VIP, 53, count=1) == 1
            assert lab.connect(client, "TCP", WEB6_VIP, 80, count=1) == 1
            assert lab.ping(client, web.ip, count=2) == 2
            files["list.txt"].write_text(lab.conntrack_list() + lab.conntrack_list(family="ipv6"))
            files["list-extended.txt"].write_text(
                lab.conntrack_list("-o", "extended,id,ktimestamp"))
            files["list.xml"].write_text(lab.conntrack_list("-o", "xml"))
        ended = time.time_ns()
        yield Scenario(lab, client, web, dns, files, started, ended)


def records(path: Path, dump_time: int | None = None) -> list[FlowRecord]:
    report = ReadReport(strict=True)  # real producer output must read without a skip
    return [r for r in read_inputs([str(path)], report, ReadOptions(dump_time=dump_time))
            if isinstance(r, FlowRecord)]


def summary(recs: list[FlowRecord]) -> Counter:
    return Counter((r.protocol, r.src_ip, r.dst_ip, r.dst_port, r.xlated_ip, r.xlated_port)
                   for r in recs)


def expected_conntrack(s: Scenario) -> Counter:
    c, web, dns = s.client.ip, s.web.ip, s.dns.ip
    return Counter({
        ("TCP", c, WEB_VIP, 80, web, 8080): TCP_CONNECTIONS,
        ("UDP", c, DNS_VIP, 53, dns, 5353): DNS_LOOKUPS,
        ("TCP", c, DNS_VIP, 53, dns, 5353): 1,
        ("ICMP", c, web, 8, None, None): 1,
    })


def test_conntrack_list_gives_clusterip_and_backend_target_port(scenario: Scenario) -> None:
    s = scenario
    assert detect_format(s.files["list.txt"]) == "conntrack"
    recs = records(s.files["list.txt"], dump_time=s.ended)
    expected = expected_conntrack(s)
    expected[("TCP", s.client.ip6, WEB6_VIP, 80, s.web.ip6, 8080)] = 1
    assert summary(recs) == expected
    assert all(r.first_seen == s.ended and not r.time_known for r in recs)
    tcp = [r for r in recs if r.dst_ip == WEB_VIP]
    assert all(r.server_ip == s.web.ip and r.server_port == 8080 for r in tcp)
    assert len({r.src_port for r in tcp}) == TCP_CONNECTIONS


def test_conntrack_list_extended_and_xml_agree(scenario: Scenario) -> None:
    s = scenario
    expected = expected_conntrack(s)
    extended = records(s.files["list-extended.txt"], dump_time=s.ended)
    assert summary(extended) == expected
    # ktimestamp start times (seconds, UTC) fall inside the recording
    assert all(s.started // 10**9 * 10**9 <= r.first_seen <= s.ended for r in extended)
    xml = records(s.files["list.xml"], dump_time=s.ended)
    # conntrack's XML has no ICMP type: the port stays unknown there
    icmp = ("ICMP", s.client.ip, s.web.ip, 8, None, None)
    assert summary(xml) == expected - Counter({icmp: 1}) + Counter(
        {("ICMP", s.client.ip, s.web.ip, None, None, None): 1})


def test_conntrack_events_count_each_connection_once_with_times(scenario: Scenario) -> None:
    s = scenario
    recs = records(s.files["events.txt"])
    expected = expected_conntrack(s)
    expected[("TCP", s.client.ip6, WEB6_VIP, 80, s.web.ip6, 8080)] = 1
    assert summary(recs) == expected
    assert all(r.time_known and s.started <= r.first_seen <= s.ended for r in recs)


def expected_capture(s: Scenario) -> Counter:
    """What the client's own interface sees: ClusterIPs and service ports (pcap cannot
    know the DNAT; resolution maps them like any other source)."""
    c = s.client.ip
    return Counter({
        ("TCP", c, WEB_VIP, 80, None, None): TCP_CONNECTIONS,
        ("UDP", c, DNS_VIP, 53, None, None): DNS_LOOKUPS,
        ("TCP", c, DNS_VIP, 53, None, None): 1,
        ("TCP", s.client.ip6, WEB6_VIP, 80, None, None): 1,
        ("ICMP", c, s.web.ip, 8, None, None): 1,
    })


@pytest.mark.parametrize("name", ["veth.pcap", "pod-nsec.pcap"])
def test_tcpdump_on_the_client_side(scenario: Scenario, name: str) -> None:
    s = scenario
    assert detect_format(s.files[name]) == "pcap"
    recs = records(s.files[name])
    assert summary(recs) == expected_capture(s)
    assert all(s.started <= r.first_seen <= s.ended and not r.inferred for r in recs)


@pytest.mark.parametrize("name", ["any-sll2.pcap", "any-sll.pcap"])
def test_tcpdump_any_on_the_node_sees_both_sides_of_the_dnat(scenario: Scenario,
                                                             name: str) -> None:
    s = scenario
    recs = records(s.files[name])
    got = summary(recs)
    # Before DNAT (client veth, bridge) each SYN is the same packet seen twice: one
    # connection. After DNAT (towards the backend's veth) it is a new 5-tuple.
    for key, n in expected_capture(s).items():
        assert got[key] == n, key
    c = s.client.ip
    assert got[("TCP", c, s.web.ip, 8080, None, None)] == TCP_CONNECTIONS
    assert got[("UDP", c, s.dns.ip, 5353, None, None)] == DNS_LOOKUPS
    assert got[("TCP", c, s.dns.ip, 5353, None, None)] == 1
    assert all(s.started <= r.first_seen <= s.ended for r in recs)


def test_masquerade_all_keeps_the_pod_as_client(tmp_path: Path) -> None:
    with NetLab(masquerade_all=True) as lab:
        client, web = lab.add_pod("client"), lab.add_pod("web")
        lab.add_service("web", WEB_VIP, [ServicePort("TCP", 80, 8080)], [web])
        with lab.serve(web, "TCP", 8080), lab.conntrack_events(tmp_path / "events.txt"):
            assert lab.connect(client, "TCP", WEB_VIP, 80, count=2) == 2
        dump = lab.conntrack_list()
        assert f"dst={lab.node_ip} sport=8080" in dump  # the reply goes to the node
        (tmp_path / "list.txt").write_text(dump)
        for name in ("list.txt", "events.txt"):
            recs = records(tmp_path / name, dump_time=1)
            assert summary(recs) == Counter(
                {("TCP", client.ip, WEB_VIP, 80, web.ip, 8080): 2}), name


def test_reused_pod_ip_keeps_times_apart(tmp_path: Path) -> None:
    # A pod is deleted and another gets its IP: the event stream's times tell the two
    # connections apart for time-aware resolution.
    with NetLab() as lab:
        old, web = lab.add_pod("old"), lab.add_pod("web")
        lab.add_service("web", WEB_VIP, [ServicePort("TCP", 80, 8080)], [web])
        with lab.serve(web, "TCP", 8080), lab.conntrack_events(tmp_path / "events.txt"):
            assert lab.connect(old, "TCP", WEB_VIP, 80) == 1
            ip = old.ip
            lab.delete_pod(old)
            between = time.time_ns()
            new = lab.add_pod("new", ip=ip)
            assert lab.connect(new, "TCP", WEB_VIP, 80) == 1
        recs = records(tmp_path / "events.txt")
        assert [r.src_ip for r in recs] == [ip, ip]
        assert recs[0].first_seen < between < recs[1].first_seen
