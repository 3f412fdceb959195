"""Each live source alone, in a network-namespace node: what it records of real traffic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from agent_process import ROOT, AgentProcess
from netlab import NetLab, ServicePort

from recorder.report import ReadReport
from recorder.schema import FlowRecord
from recorder.sources import read_inputs

pytestmark = pytest.mark.root


def _flows(path: Path) -> list[FlowRecord]:
    report = ReadReport(strict=True)
    return [r for r in read_inputs([str(path)], report) if isinstance(r, FlowRecord)]


def _key(r: FlowRecord) -> tuple:
    return (r.protocol, r.src_ip, r.dst_ip, r.dst_port, r.xlated_ip, r.xlated_port)


def _totals(flows: list[FlowRecord]) -> dict[tuple, int]:
    out: dict[tuple, int] = {}
    for r in flows:
        out[_key(r)] = out.get(_key(r), 0) + r.count
    return out


def test_capture_kernel_filter_nat_pairing_ipv6_and_new_interfaces(tmp_path: Path) -> None:
    out = tmp_path / "capture.jsonl"
    with NetLab() as lab:
        client, web, dns = lab.add_pod("client"), lab.add_pod("web"), lab.add_pod("dns")
        lab.add_service("web", "10.96.0.10", [ServicePort("TCP", 80, 8080)], [web])
        lab.add_service("dns", "10.96.0.53", [ServicePort("UDP", 53, 5353)], [dns])
        lab.add_service("web6", "fd96::10", [ServicePort("TCP", 80, 8080)], [web])
        lab.serve(web, "TCP", 8080)
        lab.serve(web, "TCP", 8080, ipv6=True)
        lab.serve(dns, "UDP", 5353)
        agent = AgentProcess(lab, ["--source", "capture", "--window", "1s", "--out", str(out)])
        agent.wait_for("capture: listening on", count=3)
        assert lab.connect(client, "TCP", "10.96.0.10", 80, count=4) == 4
        assert lab.connect(client, "UDP", "10.96.0.53", 53, count=3) == 3
        assert lab.connect(client, "TCP", "fd96::10", 80, count=2) == 2
        assert lab.connect(client, "TCP", web.ip6, 8080, count=1) == 1  # no NAT
        # A pod that appears while recording is captured from its first connection.
        late = lab.add_pod("late")
        agent.wait_for(f"capture: listening on {late.node_veth}")
        assert lab.connect(late, "TCP", "10.96.0.10", 80, count=2) == 2
        assert agent.stop() == 0, agent.stderr

    totals = _totals(_flows(out))
    assert totals == {
        ("TCP", client.ip, "10.96.0.10", 80, web.ip, 8080): 4,
        ("UDP", client.ip, "10.96.0.53", 53, dns.ip, 5353): 3,
        ("TCP", client.ip6, "fd96::10", 80, web.ip6, 8080): 2,
        ("TCP", client.ip6, web.ip6, 8080, None, None): 1,
        ("TCP", late.ip, "10.96.0.10", 80, web.ip, 8080): 2,
    }, agent.stderr
    # Only connection starts crossed the kernel filter: each SYN on two veths, each UDP
    # request and reply on two veths (retransmissions aside). Without the filter every
    # TCP connection alone would bring 10+ frames per veth (handshake, data, FINs).
    stats = next(line for line in agent.stderr_lines if line.startswith("capture: frames="))
    frames = int(stats.split("frames=")[1].split(",")[0])
    assert 2 * 9 + 4 * 3 <= frames <= 2 * (2 * 9 + 4 * 3), stats
    assert "kernel_drops=0" in stats


def test_conntrack_alone_knows_clusterip_and_backend(tmp_path: Path) -> None:
    out = tmp_path / "conntrack.jsonl"
    with NetLab() as lab:
        client, web, dns = lab.add_pod("client"), lab.add_pod("web"), lab.add_pod("dns")
        lab.add_service("web", "10.96.0.10", [ServicePort("TCP", 80, 8080)], [web])
        lab.add_service("dns", "10.96.0.53", [ServicePort("UDP", 53, 5353)], [dns])
        lab.serve(web, "TCP", 8080)
        lab.serve(dns, "UDP", 5353)
        agent = AgentProcess(lab, ["--source", "conntrack", "--window", "1s", "--out", str(out)])
        agent.wait_for("conntrack: following")
        assert lab.connect(client, "TCP", "10.96.0.10", 80, count=3) == 3
        assert lab.connect(client, "UDP", "10.96.0.53", 53, count=2) == 2
        assert agent.stop() == 0, agent.stderr
    flows = _flows(out)
    assert _totals(flows) == {
        ("TCP", client.ip, "10.96.0.10", 80, web.ip, 8080): 3,
        ("UDP", client.ip, "10.96.0.53", 53, dns.ip, 5353): 2,
    }
    assert {r.source_format for r in flows} == {"conntrack"}


def test_usage_errors_exit_2_with_a_message(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "generator.cli.main", "record", *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    res = run("--source", "capture", "--interface", "nosuch0", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "--interface nosuch0: no such network interface" in res.stderr
    res = run("--source", "pcap", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "choose capture and/or conntrack" in res.stderr
    res = run("--source", "capture")
    assert res.returncode == 2 and "nowhere to write" in res.stderr
    res = run("--source", "capture", "--window", "soon", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "--window" in res.stderr and "not a duration" in res.stderr
    assert "Traceback" not in res.stderr
