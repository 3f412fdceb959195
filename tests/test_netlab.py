"""The namespace lab itself: DNAT really applies, observers really record."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from netlab import NetLab, ServicePort

pytestmark = pytest.mark.root


def test_clusterip_dnat_to_target_port_and_pod_ip_reuse(tmp_path: Path) -> None:
    with NetLab() as lab:
        client = lab.add_pod("client")
        web = lab.add_pod("web")
        dns = lab.add_pod("dns")
        lab.add_service("web", "10.96.0.10", [ServicePort("TCP", 80, 8080)], [web])
        lab.add_service("kube-dns", "10.96.0.53", [ServicePort("UDP", 53, 5353)], [dns])
        with lab.serve(web, "TCP", 8080), lab.serve(dns, "UDP", 5353), \
                lab.conntrack_events(tmp_path / "events.txt"), \
                lab.tcpdump(tmp_path / "client.pcap", client.node_veth):
            assert lab.connect(client, "TCP", "10.96.0.10", 80, count=2) == 2
            assert lab.connect(client, "UDP", "10.96.0.53", 53, count=2) == 2
            # Nothing listens on the service port itself: only DNAT can answer.
            assert lab.connect(client, "TCP", web.ip, 80, count=1) == 0
        dump = lab.conntrack_list()
        assert "dst=10.96.0.10 sport=" in dump and f"src={web.ip} dst={client.ip} sport=8080" in dump
        assert f"src={dns.ip} dst={client.ip} sport=5353" in dump
        events = (tmp_path / "events.txt").read_text()
        assert events.count("[NEW]") >= 4
        text = subprocess.run(["tcpdump", "-nr", str(tmp_path / "client.pcap")],
                              capture_output=True, text=True).stdout
        assert f"{client.ip}." in text and "10.96.0.10.80: Flags [S]" in text

        old_ip = client.ip
        lab.delete_pod(client)
        again = lab.add_pod("client-2", ip=old_ip)
        with lab.serve(web, "TCP", 8080):
            assert lab.connect(again, "TCP", "10.96.0.10", 80, count=1) == 1
    assert not any(ns.startswith(lab.run_id) for ns in
                   subprocess.run(["ip", "netns", "list"], capture_output=True,
                                  text=True).stdout.split())


def test_masquerade_all_rewrites_reply_to_node_ip() -> None:
    with NetLab(masquerade_all=True) as lab:
        client = lab.add_pod("client")
        web = lab.add_pod("web")
        lab.add_service("web", "10.96.0.10", [ServicePort("TCP", 80, 8080)], [web])
        with lab.serve(web, "TCP", 8080):
            assert lab.connect(client, "TCP", "10.96.0.10", 80) == 1
        dump = lab.conntrack_list()
        assert f"src={client.ip} dst=10.96.0.10" in dump
        assert f"src={web.ip} dst={lab.node_ip} sport=8080" in dump
