"""Lossless collection end to end, on a mini cluster built from network namespaces.

The real agent (`flowpol record`, capture and conntrack, its pod watch on the stand-in
API server) runs in the node namespace and serves its closed segments on :9401.
`flowpol collect` pulls them through the pod proxy of the stand-in API server (a
stand-in, not a real API server: tests/standin_apiserver.py), which reaches the
hostNetwork recorder pod at the node's address, as a real API server would. Mid-
recording the agent is killed (SIGKILL) and restarted; a second collect fetches only
the new segments; a --direct collect gets the same files. What was collected is every
segment the node holds, byte for byte, each once, and `flowpol generate` on the collect
directory gives exactly the edges of the traffic sent.

Every read carries the collector's token (collect requests it from the stand-in; the
agent has the stand-in review it). From a pod's network namespace, which reaches the
node's port as anything in a cluster does, reads without a token, with a token for
another audience, an expired one or another ServiceAccount's are refused; with the API
server gone, the agent refuses even the collector's token (it cannot verify it).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import http.client

import k8s_objects as k
import pytest
from agent_process import ROOT, AgentProcess
from netlab import NetLab, ServicePort, call_in_netns
from reader_tokens import OTHER, collector_token, reader_accounts
from standin_apiserver import StandInApiServer

from recorder.report import ReadReport
from recorder.schema import FlowRecord
from recorder.sources import read_inputs
from recorder.timefmt import format_time

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODE = "node-1"
RECORDER_POD = "flowpol-recorder-q7x2m"
WEB_VIP, COLLECTOR_VIP = "10.96.0.10", "10.96.0.20"
AGENT_PORT = 9401


def _flows(path: Path) -> list[FlowRecord]:
    return [r for r in read_inputs([str(path)], ReadReport(strict=True))
            if isinstance(r, FlowRecord)]


def _workload(r: FlowRecord) -> bool:
    # The collection's own connections (the stand-in API server on the node reaching the
    # agent's port, as a real one would) are real traffic and recorded too; the truth
    # here is the workloads' traffic.
    return r.dst_port != AGENT_PORT


def _recorded(segments: Path) -> int:
    names = [p for p in segments.glob("flows-*")] if segments.exists() else []
    return sum(r.count for p in names for r in _flows(p) if _workload(r))


def _wait_recorded(segments: Path, n: int, agent: AgentProcess, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while _recorded(segments) < n:
        assert time.monotonic() < deadline, f"not {n} connections on disk:\n{agent.stderr}"
        time.sleep(0.2)
    assert _recorded(segments) == n


def _segment_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.rglob("flows-*"))}


def _read_segments(host: str, token: str | None) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection(host, AGENT_PORT, timeout=30)
    try:
        conn.request("GET", "/segments", headers={"X-Flowpol-Token": token} if token else {})
        res = conn.getresponse()
        return res.status, res.getheader("X-Flowpol-Refused") or "", res.read()
    finally:
        conn.close()


def test_collect_segments_through_the_pod_proxy_across_a_kill(tmp_path: Path) -> None:
    segments = tmp_path / "node" / "segments"
    out, direct_out = tmp_path / "collected", tmp_path / "collected-direct"
    with NetLab() as lab:
        frontend, web, collector = (lab.add_pod(n) for n in ("frontend", "web", "collector"))
        lab.add_service("web", WEB_VIP, [ServicePort("TCP", 80, 8080, "http")], [web])
        lab.add_service("collector", COLLECTOR_VIP,
                        [ServicePort("UDP", 8125, 9125, "statsd")], [collector])
        lab.serve(web, "TCP", 8080)
        lab.serve(collector, "UDP", 9125)

        created = format_time(time.time_ns() - 60_000_000_000)
        base = k.base_cluster(node_name=NODE, node_ip=lab.node_ip, pod_cidr=str(lab.pod_net),
                              coredns_ips=("10.99.0.250",),
                              namespaces=("shop", "monitoring", "flowpol-system"))
        frontend_objs = k.deployment_with_pods("frontend", "shop", {"app": "frontend"},
                                               [frontend.ip], node=NODE, created=created)
        web_objs = k.deployment_with_pods("web", "shop", {"app": "web"}, [web.ip], node=NODE,
                                          ports=[k.container_port(8080, "http")], created=created)
        collector_objs = k.deployment_with_pods(
            "collector", "monitoring", {"app": "collector"}, [collector.ip], node=NODE,
            ports=[k.container_port(9125, "statsd", "UDP")], created=created)
        recorder = k.pod(RECORDER_POD, "flowpol-system", node=NODE, host_network=True,
                         ip=lab.node_ip, labels={"app.kubernetes.io/name": "flowpol-recorder"},
                         created=created, owner=k.owner_ref("DaemonSet", "flowpol-recorder"))
        web_svc = k.service("web", "shop", selector={"app": "web"}, cluster_ip=WEB_VIP,
                            ports=[k.service_port(80, "http", name="http")])
        collector_svc = k.service("collector", "monitoring", selector={"app": "collector"},
                                  cluster_ip=COLLECTOR_VIP,
                                  ports=[k.service_port(8125, 9125, name="statsd",
                                                        protocol="UDP")])
        cluster = (base + frontend_objs + web_objs + collector_objs + reader_accounts()
                   + [recorder, web_svc, collector_svc]
                   + k.endpointslices_for(web_svc, [o for o in web_objs if o["kind"] == "Pod"])
                   + k.endpointslices_for(collector_svc,
                                          [o for o in collector_objs if o["kind"] == "Pod"]))

        srv = StandInApiServer(cluster)
        call_in_netns(lab.node_ns, srv.start)  # on the node's loopback, like a local API
        try:
            kubeconfig = srv.kubeconfig_path(tmp_path)

            def start_agent() -> AgentProcess:
                agent = AgentProcess(lab, ["--source", "capture", "--source", "conntrack",
                                           "--segments", str(segments), "--window", "1s",
                                           "--kubeconfig", str(kubeconfig)],
                                     env={"NODE_NAME": NODE})
                agent.wait_for("capture: listening on", count=3)
                agent.wait_for("conntrack: following")
                agent.wait_for("http: serving")
                return agent

            def collect(target: Path, *extra: str) -> tuple[subprocess.CompletedProcess, list]:
                before = len(srv.requests)
                res = lab.node_exec("env", f"PYTHONPATH={ROOT}", sys.executable, "-m",
                                    "generator.cli.main", "collect", "--out", str(target),
                                    "--kubeconfig", str(kubeconfig), *extra, check=False,
                                    timeout=120)
                assert res.returncode == 0, res.stdout + res.stderr
                fetched = [r.path.rsplit("/", 1)[1] for r in srv.requests[before:]
                           if "/proxy/segments/" in r.path]
                return res, fetched

            # -- run 1, then a collect while it records
            agent = start_agent()
            assert lab.connect(frontend, "TCP", WEB_VIP, 80, count=3) == 3
            _wait_recorded(segments, 3, agent)
            _, first = collect(out)
            assert first and sorted(first) == sorted(_segment_files(out))

            # -- more traffic, on disk, then the agent is killed mid-recording
            assert lab.connect(frontend, "UDP", COLLECTOR_VIP, 8125, count=2) == 2
            _wait_recorded(segments, 5, agent)
            assert agent.stop(signal.SIGKILL) == -signal.SIGKILL

            # -- run 2 on the same segment directory; the second collect takes only
            # what is new
            agent = start_agent()
            assert lab.connect(frontend, "TCP", WEB_VIP, 80, count=2) == 2
            _wait_recorded(segments, 7, agent)
            on_node = _segment_files(segments)
            res, second = collect(out)
            assert second and not set(second) & set(first), (first, second)
            assert sorted(first + second) == sorted(on_node), (first, second, on_node)
            assert f"{len(first)} already there" in res.stdout

            # --direct from inside the cluster: the pod's address, no proxy, same files
            res, proxied = collect(direct_out, "--direct")
            assert proxied == [] and _segment_files(direct_out) == on_node
            assert len(srv.requests_for("serviceaccounts")) == 3  # a TokenRequest per collect

            # What anything that reaches the node's port gets: only a reader's token reads.
            def from_a_pod(token: str | None) -> tuple[int, str, bytes]:
                return call_in_netns(frontend.netns, _read_segments, lab.node_ip, token)

            for token, expected in (
                    (None, (401, "no_token")),
                    (collector_token(srv, audiences=("https://kubernetes.default.svc",)),
                     (401, "unauthenticated")),
                    (collector_token(srv, expires_in=-1), (401, "unauthenticated")),
                    (collector_token(srv, name=OTHER), (403, "not_a_reader"))):
                code, reason, body = from_a_pod(token)
                assert (code, reason) == expected and b"flows-" not in body, (code, body)
            assert from_a_pod(collector_token(srv))[0] == 200

            # The API server gone: nothing can be verified, nothing is served.
            fresh = collector_token(srv)
            srv.stop()
            code, reason, body = from_a_pod(fresh)
            assert (code, reason) == (503, "review_unavailable"), body
            assert b"cannot reach the API server" in body
            agent.wait_for("warning: http: segment reads refused: cannot verify the token")
            assert agent.stop() == 0, agent.stderr
        finally:
            srv.stop()

    # Everything the node holds, byte for byte, each once, under OUT/<node>/<pod>/.
    assert _segment_files(out) == on_node
    assert {p.parent.relative_to(out).as_posix() for p in out.rglob("flows-*")} == \
        {f"{NODE}/{RECORDER_POD}"}
    totals: Counter = Counter()
    for r in filter(_workload, _flows(out)):
        totals[(r.protocol, r.src_ip, r.dst_ip, r.dst_port, r.xlated_ip, r.xlated_port)] += r.count
    assert totals == Counter({
        ("TCP", frontend.ip, WEB_VIP, 80, web.ip, 8080): 5,
        ("UDP", frontend.ip, COLLECTOR_VIP, 8125, collector.ip, 9125): 2,
    })

    snapshot = tmp_path / "cluster.json"
    snapshot.write_text(json.dumps(k.kube_list(cluster)))
    policies = tmp_path / "policies"
    gen = subprocess.run([sys.executable, "-m", "generator.cli.main", "generate", str(out),
                          "--snapshot", str(snapshot), "--out", str(policies)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert gen.returncode == 0, gen.stdout + gen.stderr
    report = json.loads((policies / "report.json").read_text())

    def peer(p: dict) -> tuple:
        return (p["namespace"], p["workload_kind"], p["workload_name"]) if p["kind"] == "workload" \
            else (p["kind"], p.get("ip"))

    edges = {(peer(e["src"]), peer(e["dst"]), e["protocol"], e["port"]): e["count"]
             for e in report["edges"] if e["port"] != AGENT_PORT}
    assert edges == {
        (("shop", "Deployment", "frontend"), ("shop", "Deployment", "web"), "TCP", 8080): 5,
        (("shop", "Deployment", "frontend"), ("monitoring", "Deployment", "collector"),
         "UDP", 9125): 2,
    }, report["edges"]
