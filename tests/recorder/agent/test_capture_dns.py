"""The recorder's live capture records DNS answers as name records: real UDP and TCP
DNS between network namespaces through kube-proxy-style DNAT (tests/netlab.py), a
resolver written with dnspython answering a CNAME chain over UDP, and a large answer
truncated over UDP and given in full over TCP (RFC 7766), as a stub resolver retries."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from agent_process import AgentProcess
from netlab import NetLab, ServicePort

from recorder.report import ReadReport
from recorder.schema import FlowRecord, NameBinding
from recorder.sources import read_inputs

pytestmark = pytest.mark.root

RESOLVER = r'''
import socket, sys, threading
import dns.flags, dns.message, dns.rrset

BIG = [f"203.0.113.{100 + i}" for i in range(40)]
WIDE = [f"198.51.100.{1 + i}" for i in range(60)]  # ~1 kB: a UDP answer past 256 bytes

def answer(wire, tcp):
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    name = q.question[0].name.to_text()
    if name == "Api.Example.COM.":
        r.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", "edge.cdn.example."))
        r.answer.append(dns.rrset.from_text("edge.cdn.example.", 20, "IN", "A", "203.0.113.5"))
    elif name == "wide.example.":
        r.answer.append(dns.rrset.from_text(name, 15, "IN", "A", *WIDE))
    elif name == "big.example." and tcp:
        r.answer.append(dns.rrset.from_text(name, 45, "IN", "A", *BIG))
    elif name == "big.example.":
        r.flags |= dns.flags.TC
    else:
        r.set_rcode(3)
    return r.to_wire()

def serve_tcp(s):
    while True:
        c, _ = s.accept()
        n = int.from_bytes(c.recv(2), "big")
        wire = b""
        while len(wire) < n:
            wire += c.recv(n - len(wire))
        out = answer(wire, True)
        c.sendall(len(out).to_bytes(2, "big") + out)
        c.close()

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 5353))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 5353))
t.listen(8)
threading.Thread(target=serve_tcp, args=(t,), daemon=True).start()
print("ready", flush=True)
while True:
    wire, peer = u.recvfrom(4096)
    u.sendto(answer(wire, False), peer)
'''

STUB = r'''
import sys, dns.flags, dns.message, dns.query
server = sys.argv[1]
for name in ("Api.Example.COM.", "big.example.", "nope.example.", "wide.example."):
    q = dns.message.make_query(name, "A", use_edns=0, payload=1232)
    r = dns.query.udp(q, server, port=53, timeout=5)
    if r.flags & dns.flags.TC:
        r = dns.query.tcp(q, server, port=53, timeout=5)
    print(name, r.rcode(), len(r.answer))
'''


def test_dns_answers_over_udp_and_tcp_become_name_records(tmp_path: Path) -> None:
    out = tmp_path / "capture.jsonl"
    with NetLab() as lab:
        client, resolver = lab.add_pod("client"), lab.add_pod("resolver")
        lab.add_service("dns", "10.96.0.53", [ServicePort("UDP", 53, 5353),
                                              ServicePort("TCP", 53, 5353)], [resolver])
        server = lab.spawn(resolver.netns, sys.executable, "-c", RESOLVER)
        assert server.proc.stdout is not None and server.proc.stdout.readline().strip() == b"ready"
        agent = AgentProcess(lab, ["--source", "capture", "--window", "1s", "-o", str(out)])
        agent.wait_for("capture: listening on", count=2)
        done = lab.pod_exec(client, sys.executable, "-c", STUB, "10.96.0.53")
        assert done.stdout.split("\n")[:4] == ["Api.Example.COM. 0 2", "big.example. 0 1",
                                              "nope.example. 3 0", "wide.example. 0 1"], \
            done.stderr
        assert agent.stop() == 0, agent.stderr

    records = list(read_inputs([str(out)], ReadReport(strict=True)))
    names = sorted((r.client_ip, r.name, r.address, r.ttl) for r in records
                   if isinstance(r, NameBinding))
    assert names == sorted(
        [(client.ip, "api.example.com", "203.0.113.5", 20)]
        + [(client.ip, "big.example", f"203.0.113.{100 + i}", 45) for i in range(40)]
        + [(client.ip, "wide.example", f"198.51.100.{1 + i}", 15) for i in range(60)])
    assert all(r.source_format == "capture" and r.count == 1 for r in records
               if isinstance(r, NameBinding))
    flows = {(r.protocol, r.dst_ip, r.dst_port) for r in records if isinstance(r, FlowRecord)}
    assert ("TCP", "10.96.0.53", 53) in flows and ("UDP", "10.96.0.53", 53) in flows
    stats = next(line for line in agent.stderr_lines if line.startswith("capture: frames="))
    assert "dns-truncated=1" in stats and "dns-nxdomain=1" in stats, stats
