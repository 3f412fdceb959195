"""A conntrack DESTROY whose NEW this run never saw is no connection: a restarted agent
records what happens while it runs, not the end of what was tracked before it started.

The root tests use the real kernel conntrack in a network-namespace node: connections
made before the agent starts end (``conntrack -F`` destroys every entry, each with a
DESTROY event) while it runs."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from agent_process import AgentProcess
from netlab import NetLab, ServicePort

from recorder.agent.conntrack_events import NewEventsOnly, event_tuple
from recorder.report import ReadReport
from recorder.schema import FlowRecord
from recorder.sources import read_inputs

WEB_VIP, DNS_VIP = "10.96.0.10", "10.96.0.53"

NEW = (b"[1700000000.000001]\t    [NEW] tcp      6 120 SYN_SENT src=10.99.0.2 dst=10.96.0.10 "
       b"sport=40000 dport=80 [UNREPLIED] src=10.99.0.3 dst=10.99.0.2 sport=8080 dport=40000\n")
DESTROY = (b"[1700000000.500000]\t[DESTROY] tcp      6 src=10.99.0.2 dst=10.96.0.10 sport=40000 "
           b"dport=80 packets=5 bytes=300 src=10.99.0.3 dst=10.99.0.2 sport=8080 dport=40000 "
           b"packets=4 bytes=250 [ASSURED]\n")
OTHER_DESTROY = DESTROY.replace(b"sport=40000", b"sport=40001")


def test_event_key_is_shared_by_new_and_destroy() -> None:
    assert event_tuple(NEW) == (b"[NEW]", b"tcp src=10.99.0.2 dst=10.96.0.10 sport=40000 dport=80")
    assert event_tuple(DESTROY) == (b"[DESTROY]", event_tuple(NEW)[1])
    icmp = b"    [NEW] icmp     1 30 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 [UNREPLIED] " \
           b"src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7\n"
    assert event_tuple(icmp.replace(b"    [NEW]", b"[DESTROY]").replace(b"30 ", b"")
                       .replace(b"[UNREPLIED] ", b"packets=1 bytes=84 ")) == \
        (b"[DESTROY]", b"icmp src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7")
    assert event_tuple(icmp) == (b"[NEW]", b"icmp src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7")
    assert event_tuple(b"tcp      6 431999 ESTABLISHED src=1.1.1.1 dst=2.2.2.2\n") is None
    assert event_tuple(b"garbage\n") is None


def test_destroy_without_its_new_never_reaches_the_reader() -> None:
    # A reused tuple counts again after its DESTROY; an unknown tuple's DESTROY is dropped.
    stream = NEW + OTHER_DESTROY + DESTROY + NEW.replace(b"000001]", b"900000]") + DESTROY
    events = NewEventsOnly(io.BytesIO(stream))
    lines = io.BufferedReader(events).read().splitlines(keepends=True)
    assert lines == [NEW, DESTROY, NEW.replace(b"000001]", b"900000]"), DESTROY]
    assert events.destroy_without_new == 1
    # Lines cut anywhere by the pipe, and a last line without its newline.
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def read1(self, n: int) -> bytes:
            chunk, self.data = self.data[:7], self.data[7:]
            return chunk

    events = NewEventsOnly(Trickle(stream + OTHER_DESTROY + NEW[:-1]))
    lines = io.BufferedReader(events).read().splitlines(keepends=True)
    assert lines == [NEW, DESTROY, NEW.replace(b"000001]", b"900000]"), DESTROY, NEW[:-1]]
    assert events.destroy_without_new == 2


def _flows(path: Path) -> list[FlowRecord]:
    return [r for r in read_inputs([str(path)], ReadReport(strict=True))
            if isinstance(r, FlowRecord)]


def _summary(agent: AgentProcess, source: str) -> dict[str, int]:
    line = next(x for x in reversed(agent.stderr_lines) if x.startswith(f"{source}: events="))
    return {k: int(v) for k, v in (kv.split("=") for kv in line.split(": ", 1)[1].split(", "))}


@pytest.mark.root
def test_restarted_agent_counts_no_phantom_and_both_sources_count_the_truth(
        tmp_path: Path) -> None:
    segments = tmp_path / "segments"
    with NetLab() as lab:
        client, web, dns = lab.add_pod("client"), lab.add_pod("web"), lab.add_pod("dns")
        lab.add_service("web", WEB_VIP, [ServicePort("TCP", 80, 8080)], [web])
        lab.add_service("dns", DNS_VIP, [ServicePort("UDP", 53, 5353)], [dns])
        lab.serve(web, "TCP", 8080)
        lab.serve(dns, "UDP", 5353)

        def agent(*sources: str) -> AgentProcess:
            args = [a for s in sources for a in ("--source", s)]
            a = AgentProcess(lab, [*args, "--segments", str(segments), "--window", "1s"])
            if "conntrack" in sources:
                a.wait_for("conntrack: following")
            if "capture" in sources:
                a.wait_for("capture: listening on", count=3)
            return a

        # Run 1 records traffic. The kernel keeps tracking it after the agent stops (TCP
        # in TIME_WAIT, UDP for 30 s), with DESTROY events due (a listener was there when
        # the entries were made: nf_conntrack_events=2 allocates event state only then).
        first = agent("conntrack")
        assert lab.connect(client, "TCP", WEB_VIP, 80, count=5) == 5
        assert lab.connect(client, "UDP", DNS_VIP, 53, count=4) == 4
        assert first.stop() == 0, first.stderr
        written = sorted(segments.iterdir())

        # Run 2, zero traffic: every entry of run 1 ends now, 9 DESTROY events, no NEW
        # (at least 9: other entries of the node namespace, such as IPv6 multicast
        # listener reports, may end with the flush too).
        restarted = agent("conntrack")
        lab.conntrack_flush()
        time.sleep(1.0)
        assert restarted.stop() == 0, restarted.stderr
        assert "recorded 0 connection(s)" in restarted.stderr, restarted.stderr
        assert sorted(segments.iterdir()) == written  # nothing to write
        assert _summary(restarted, "conntrack")["destroy_without_new"] >= 9, restarted.stderr

        # Run 3, both sources: connections made before it (with a listener) end while
        # new ones are made and end.
        with lab.conntrack_events(tmp_path / "between.txt"):
            assert lab.connect(client, "TCP", WEB_VIP, 80, count=2) == 2
        both = agent("capture", "conntrack")
        assert lab.connect(client, "TCP", WEB_VIP, 80, count=3) == 3
        assert lab.connect(client, "UDP", DNS_VIP, 53, count=2) == 2
        lab.conntrack_flush()
        time.sleep(1.0)
        assert both.stop() == 0, both.stderr
        assert _summary(both, "conntrack")["destroy_without_new"] == 2, both.stderr
        assert "recorded 5 connection(s)" in both.stderr, both.stderr

    totals: dict[tuple, int] = {}
    for r in _flows(segments):
        key = (r.protocol, r.src_ip, r.dst_ip, r.dst_port, r.xlated_ip, r.xlated_port)
        totals[key] = totals.get(key, 0) + r.count
    # The truth: what was sent while an agent ran (5 + 3 TCP, 4 + 2 UDP), each once.
    assert totals == {("TCP", client.ip, WEB_VIP, 80, web.ip, 8080): 8,
                      ("UDP", client.ip, DNS_VIP, 53, dns.ip, 5353): 6}, both.stderr
