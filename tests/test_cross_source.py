"""One scenario recorded three ways - Hubble, conntrack, pcap - gives the same policies.

The traffic is real (tests/netlab.py: kube-proxy-style DNAT, service port != targetPort,
DNS over UDP and TCP to a kube-dns ClusterIP whose pods listen on 5353); `conntrack -E`
and `tcpdump` on the client's veth record it. The Hubble recording of the same
connections, at the times conntrack saw them, and the cluster snapshot of the lab's pods
are written with the fixture builders (fixtures/lib), as Cilium and kubectl would print
them. Policies are compared without their evidence comments.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import yaml

from fixtures.lib import k8s
from fixtures.lib.model import Cluster, Recording, write_jsonl
from generator.generate import GenerateRequest, run_generate
from netlab import NetLab, ServicePort
from recorder.report import ReadReport
from recorder.schema import FlowRecord
from recorder.sources import ReadOptions, read_inputs

pytestmark = pytest.mark.root

S = 1_000_000_000
WEB_VIP, DNS_VIP = "10.96.0.10", "10.96.0.53"


def policies(out: Path) -> dict[str, list]:
    """Policies per file. The evidence annotation keeps its counts; its time range is
    dropped (a capture stamps a SYN microseconds before conntrack sees it, which may
    fall on the other side of a second)."""
    docs = {p.name: list(yaml.safe_load_all(p.read_text()))
            for p in sorted(out.glob("*.yaml")) if p.name != "kustomization.yaml"}
    for file_docs in docs.values():
        for doc in file_docs:
            notes = doc.get("metadata", {}).get("annotations", {})
            if "flowpol.dev/evidence" in notes:
                notes["flowpol.dev/evidence"] = notes["flowpol.dev/evidence"].split(", 20")[0]
    return docs


def test_hubble_conntrack_and_pcap_give_the_same_policies(tmp_path: Path) -> None:
    events, capture = tmp_path / "conntrack-events.txt", tmp_path / "client.pcap"
    with NetLab() as lab:
        client, web, dns = lab.add_pod("client"), lab.add_pod("web"), lab.add_pod("dns")
        lab.add_service("web", WEB_VIP, [ServicePort("TCP", 80, 8080, "http")], [web])
        lab.add_service("kube-dns", DNS_VIP, [ServicePort("UDP", 53, 5353, "dns"),
                                              ServicePort("TCP", 53, 5353, "dns-tcp")], [dns])
        started = time.time_ns()
        with lab.serve(web, "TCP", 8080), lab.serve(dns, "UDP", 5353), \
                lab.serve(dns, "TCP", 5353), lab.conntrack_events(events), \
                lab.tcpdump(capture, client.node_veth):
            assert lab.connect(client, "TCP", WEB_VIP, 80, count=3) == 3
            assert lab.connect(client, "UDP", DNS_VIP, 53, count=2) == 2
            assert lab.connect(client, "TCP", DNS_VIP, 53, count=1) == 1
        ended = time.time_ns()
        ips = {"client": client.ip, "web": web.ip, "dns": dns.ip}

    # The cluster as kubectl would list it at the end, with the lab's pod IPs.
    cluster = Cluster(snapshot=ended + 60 * S)
    installed = started - 3600 * S
    node = cluster.node("node-a", "192.168.56.11", "10.99.0.0/24", installed - 60 * S,
                        control_plane=True)
    for ns in ("default", "kube-system"):
        cluster.namespace(ns, installed - 60 * S)
    pods = {}
    for ns, name, labels, ports in (
        ("default", "client", {"app": "client"}, []),
        ("default", "web", {"app": "web"}, [("http", 8080, "TCP")]),
        ("kube-system", "coredns", {"k8s-app": "kube-dns"},
         [("dns", 5353, "UDP"), ("dns-tcp", 5353, "TCP")]),
    ):
        deploy = cluster.deployment(ns, name, labels, installed)
        rev = deploy.revision([k8s.container(name, f"registry.example/{name}:1", ports)])
        pods[name] = deploy.pod(rev, node, created=installed + 10 * S,
                                ip=ips["dns" if name == "coredns" else name])
    services = {
        WEB_VIP: cluster.service("default", "web", [("http", 80, "http", "TCP")],
                                 {"app": "web"}, cluster_ip=WEB_VIP),
        DNS_VIP: cluster.service("kube-system", "kube-dns",
                                 [("dns", 53, 5353, "UDP"), ("dns-tcp", 53, 5353, "TCP")],
                                 {"k8s-app": "kube-dns"}, cluster_ip=DNS_VIP),
    }
    snapshot = tmp_path / "cluster.json"
    snapshot.write_text(cluster.snapshot_json())

    # Hubble's view of the very connections conntrack recorded, at the same times.
    conns = [r for r in read_inputs([str(events)], ReadReport(strict=True), ReadOptions())
             if isinstance(r, FlowRecord)]
    assert len(conns) == 6
    rec = Recording(cluster, random.Random(7))
    for r in sorted(conns, key=lambda r: r.first_seen):
        assert r.src_ip == client.ip
        backend = pods["web"] if r.dst_ip == WEB_VIP else pods["coredns"]
        rec.call(r.first_seen, pods["client"], services[r.dst_ip], r.dst_port, r.protocol,
                 backend=backend)
    hubble = tmp_path / "hubble.jsonl"
    write_jsonl(hubble, rec.all_lines())

    outputs = {}
    for name, source in (("hubble", hubble), ("conntrack", events), ("pcap", capture)):
        out = tmp_path / f"out-{name}"
        result = run_generate(GenerateRequest(inputs=[str(source)], snapshot=[str(snapshot)],
                                              out_dir=out))
        assert result.report, name
        outputs[name] = policies(out)

    assert outputs["hubble"], "no policies generated"
    text = yaml.safe_dump(outputs["conntrack"])
    # the backend's targetPort, never the service port or the ClusterIP
    assert "8080" in text and "5353" in text and WEB_VIP not in text
    assert outputs["conntrack"] == outputs["hubble"]
    assert outputs["pcap"] == outputs["hubble"]
