"""The recorder end to end, on a mini cluster built from network namespaces.

A node namespace with a bridge and kube-proxy-style DNAT for two ClusterIPs (TCP 80 ->
8080 and UDP 8125 -> 9125: both port != targetPort), four pod namespaces, real TCP and
UDP traffic. The agent (`flowpol record`, capture AND conntrack) runs in the node
namespace with its pod watch on a stand-in API server reached through the real
kubernetes client. Mid-recording a pod is deleted and its IP is given to a new pod of
another workload; then the agent gets SIGTERM and is restarted. What it wrote is pulled
with `flowpol collect` (the stand-in serves the two containers' logs) and fed to
`flowpol generate` with a snapshot of the final state. The policies must allow exactly
the traffic sent, attributed to the pod that held the IP at the time.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import k8s_objects as k
import pytest
from agent_process import ROOT, AgentProcess
from netlab import NetLab, ServicePort, call_in_netns
from standin_apiserver import StandInApiServer, set_pod_log

from generator.resolve.edges import PodView
from generator.inventory.load import load_snapshot
from generator.verify.evaluator import Evaluator
from generator.verify.policy import load_policies
from recorder.flowlog import record_to_json
from recorder.report import ReadReport
from recorder.schema import FlowRecord, IpTimelineRecord
from recorder.sources import read_inputs
from recorder.timefmt import format_time

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODE = "node-1"
RECORDER_POD = "flowpol-recorder-7xk2p"
WEB_VIP, COLLECTOR_VIP = "10.96.0.10", "10.96.0.20"


def _read(path: Path) -> list:
    report = ReadReport(strict=True)  # a corrupt line anywhere fails the test
    return list(read_inputs([str(path)], report))


def _pods(objs: list[dict]) -> list[dict]:
    return [o for o in objs if o["kind"] == "Pod"]


def _view(pod: dict) -> PodView:
    named = tuple(sorted((cp["name"], cp.get("protocol", "TCP"), cp["containerPort"])
                         for c in pod["spec"]["containers"] for cp in c.get("ports", [])
                         if cp.get("name")))
    return PodView(pod["metadata"]["namespace"], pod["metadata"]["name"],
                   tuple(sorted(pod["metadata"].get("labels", {}).items())), named,
                   pod["status"]["podIP"], False, pod["spec"].get("nodeName"))


def _summary(agent: AgentProcess, source: str) -> dict[str, int]:
    """The counters of ``source`` from the agent's end-of-run summary."""
    prefix = f"{source}: "
    line = next(x for x in reversed(agent.stderr_lines)
                if x.startswith(prefix) and x[len(prefix):].split(",")[0].count("=") == 1)
    return {k: int(v) for k, v in (kv.split("=") for kv in line[len(prefix):].split(", "))}


def test_record_reuse_restart_collect_generate(tmp_path: Path) -> None:
    segments, heartbeat = tmp_path / "segments", tmp_path / "heartbeat"
    with NetLab() as lab:
        frontend, web = lab.add_pod("frontend"), lab.add_pod("web")
        collector, worker = lab.add_pod("collector"), lab.add_pod("worker")
        lab.add_service("web", WEB_VIP, [ServicePort("TCP", 80, 8080, "http")], [web])
        lab.add_service("collector", COLLECTOR_VIP, [ServicePort("UDP", 8125, 9125, "statsd")],
                        [collector])
        lab.serve(web, "TCP", 8080)
        lab.serve(collector, "UDP", 9125)

        created = format_time(time.time_ns() - 60_000_000_000)
        base = k.base_cluster(node_name=NODE, node_ip=lab.node_ip, pod_cidr=str(lab.pod_net),
                              coredns_ips=("10.99.0.250",),
                              namespaces=("shop", "monitoring", "jobs", "billing",
                                          "flowpol-system"))
        frontend_objs = k.deployment_with_pods("frontend", "shop", {"app": "frontend"},
                                               [frontend.ip], node=NODE, created=created)
        web_objs = k.deployment_with_pods("web", "shop", {"app": "web"}, [web.ip], node=NODE,
                                          ports=[k.container_port(8080, "http")], created=created)
        collector_objs = k.deployment_with_pods(
            "collector", "monitoring", {"app": "collector"}, [collector.ip], node=NODE,
            ports=[k.container_port(9125, "statsd", "UDP")], created=created)
        worker_objs = k.statefulset_with_pods("worker", "jobs", {"app": "worker"}, [worker.ip],
                                              node=NODE, created=created)
        recorder = k.pod(RECORDER_POD, "flowpol-system", node=NODE, host_network=True,
                         ip=lab.node_ip, labels={"app.kubernetes.io/name": "flowpol-recorder"},
                         created=created, owner=k.owner_ref("DaemonSet", "flowpol-recorder"))
        web_svc = k.service("web", "shop", selector={"app": "web"}, cluster_ip=WEB_VIP,
                            ports=[k.service_port(80, "http", name="http")])
        collector_svc = k.service("collector", "monitoring", selector={"app": "collector"},
                                  cluster_ip=COLLECTOR_VIP,
                                  ports=[k.service_port(8125, 9125, name="statsd",
                                                        protocol="UDP")])
        initial = (base + frontend_objs + web_objs + collector_objs + worker_objs
                   + [recorder, web_svc, collector_svc])

        srv = StandInApiServer(initial)
        call_in_netns(lab.node_ns, srv.start)  # on the node's loopback, like a local API
        try:
            kubeconfig = srv.kubeconfig_path(tmp_path)
            args = ["--source", "capture", "--source", "conntrack", "--segments", str(segments),
                    "--stdout", "--window", "2s", "--heartbeat", str(heartbeat),
                    "--kubeconfig", str(kubeconfig)]

            def start_agent(watches: int) -> AgentProcess:
                agent = AgentProcess(lab, args, env={"NODE_NAME": NODE})
                agent.wait_for("capture: listening on", count=4)
                agent.wait_for("conntrack: following")
                deadline = time.monotonic() + 20
                while len(srv.requests_for("pods", watch=True)) < watches:
                    assert time.monotonic() < deadline, agent.stderr
                    time.sleep(0.05)
                return agent

            # -- run 1: traffic, then the worker pod goes and its IP is reused
            agent = start_agent(1)
            assert lab.connect(frontend, "TCP", WEB_VIP, 80, count=3) == 3
            assert lab.connect(frontend, "UDP", COLLECTOR_VIP, 8125, count=2) == 2
            assert lab.connect(worker, "TCP", WEB_VIP, 80, count=2) == 2
            agent.wait_for("window from", timeout=10)  # a closed window is on disk
            worker_pod = _pods(worker_objs)[0]
            lab.delete_pod(worker)
            srv.push_event("DELETED", worker_pod)
            time.sleep(1.0)
            report = lab.add_pod("report", ip=worker.ip)
            report_objs = k.deployment_with_pods("report", "billing", {"app": "report"},
                                                 [report.ip], node=NODE,
                                                 created=format_time(time.time_ns()))
            srv.push_event("ADDED", _pods(report_objs)[0])
            time.sleep(1.0)
            assert lab.connect(report, "UDP", COLLECTOR_VIP, 8125, count=2) == 2
            assert agent.stop() == 0, agent.stderr
            run1 = agent
            assert "stopped by signal" in run1.stderr and heartbeat.exists()

            # -- run 2: restarted on the same segment directory
            agent = start_agent(2)
            assert lab.connect(report, "UDP", COLLECTOR_VIP, 8125, count=1) == 1
            assert lab.connect(frontend, "TCP", WEB_VIP, 80, count=1) == 1
            assert agent.stop() == 0, agent.stderr
            run2 = agent

            # -- collect: the stand-in serves run 1 as the previous container's log
            set_pod_log(srv, "flowpol-system", RECORDER_POD, bytes(run1.stdout), previous=True)
            set_pod_log(srv, "flowpol-system", RECORDER_POD, bytes(run2.stdout))
            collected = tmp_path / "collected.jsonl"
            res = lab.node_exec("env", f"PYTHONPATH={ROOT}", sys.executable, "-m",
                                "generator.cli.main", "collect", "--logs", "--out", str(collected),
                                "--kubeconfig", str(kubeconfig), check=False, timeout=120)
            assert res.returncode == 0, res.stderr
        finally:
            srv.stop()

    # Both sources saw every connection of run 1; each was counted once.
    assert _summary(run1, "capture")["nat_paired"] >= 9, run1.stderr
    assert _summary(run1, "conntrack")["connections"] >= 9, run1.stderr
    assert "aggregation: 18 observation(s), 9 duplicate(s)" in run1.stderr, run1.stderr

    # Segments: both runs, numbered on (never overwritten), every line valid.
    names = sorted(p.name for p in segments.iterdir() if not p.name.endswith(".meta"))
    assert all(not n.startswith(".") for n in names)  # no temporary left
    assert [int(n.split("-")[1]) for n in names] == list(range(len(names))) and len(names) >= 3
    on_disk = _read(segments)
    from_logs = _read(collected)
    assert Counter(map(record_to_json, on_disk)) == Counter(map(record_to_json, from_logs))

    # What was sent, and nothing else: ClusterIP and service port as dialled, backend
    # and targetPort from conntrack's reply tuple or the capture's NAT twin.
    totals: Counter = Counter()
    for r in from_logs:
        if isinstance(r, FlowRecord):
            totals[(r.protocol, r.src_ip, r.dst_ip, r.dst_port, r.xlated_ip, r.xlated_port)] += r.count
    assert totals == Counter({
        ("TCP", frontend.ip, WEB_VIP, 80, web.ip, 8080): 4,
        ("UDP", frontend.ip, COLLECTOR_VIP, 8125, collector.ip, 9125): 2,
        ("TCP", worker.ip, WEB_VIP, 80, web.ip, 8080): 2,
        ("UDP", worker.ip, COLLECTOR_VIP, 8125, collector.ip, 9125): 3,  # report, same IP
    })
    shared = [r for r in from_logs if isinstance(r, IpTimelineRecord) and r.ip == worker.ip]
    old = [r for r in shared if r.namespace == "jobs"]
    new = [r for r in shared if r.namespace == "billing"]
    assert old and new and all(r.owner.kind == "Deployment" for r in new)
    closed = max(r.valid_to for r in old if r.valid_to is not None)
    assert all(r.valid_from >= closed for r in new)

    # -- generate with the final state: worker scaled to zero, report running
    final = (base + frontend_objs + web_objs + collector_objs + report_objs
             + [o for o in worker_objs if o["kind"] != "Pod"]
             + [recorder, web_svc, collector_svc]
             + k.endpointslices_for(web_svc, _pods(web_objs))
             + k.endpointslices_for(collector_svc, _pods(collector_objs)))
    cluster = tmp_path / "cluster.json"
    cluster.write_text(json.dumps(k.kube_list(final)))
    out = tmp_path / "policies"
    import subprocess

    gen = subprocess.run([sys.executable, "-m", "generator.cli.main", "generate", str(collected),
                          "--snapshot", str(cluster), "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert gen.returncode == 0, gen.stdout + gen.stderr
    report_json = json.loads((out / "report.json").read_text())

    def peer(p: dict) -> tuple:
        return (p["namespace"], p["workload_kind"], p["workload_name"]) if p["kind"] == "workload" \
            else (p["kind"], p.get("ip"))

    edges = {(peer(e["src"]), peer(e["dst"]), e["protocol"], e["port"]): e["count"]
             for e in report_json["edges"]}
    assert edges == {
        (("shop", "Deployment", "frontend"), ("shop", "Deployment", "web"), "TCP", 8080): 4,
        (("shop", "Deployment", "frontend"), ("monitoring", "Deployment", "collector"), "UDP", 9125): 2,
        (("jobs", "StatefulSet", "worker"), ("shop", "Deployment", "web"), "TCP", 8080): 2,
        (("billing", "Deployment", "report"), ("monitoring", "Deployment", "collector"), "UDP", 9125): 3,
    }, report_json["edges"]

    ev = Evaluator.from_inventory(load_policies(str(out)).policies,
                                  load_snapshot([str(cluster)]).inventory)
    fe, we, co = (_view(_pods(o)[0]) for o in (frontend_objs, web_objs, collector_objs))
    wk, rp = _view(worker_pod), _view(_pods(report_objs)[0])
    allowed = [(fe, we, "TCP", 8080), (fe, co, "UDP", 9125), (wk, we, "TCP", 8080),
               (rp, co, "UDP", 9125)]
    for s, d, proto, port in allowed:
        v = ev.check(s, d, proto, port)
        assert v.allowed, f"{s.name} -> {d.name} {proto}/{port}: {v.reason}"
    denied = [
        (wk, co, "UDP", 9125),  # the reused IP's traffic is not the old pod's
        (rp, we, "TCP", 8080),  # ... and the old pod's traffic is not the new one's
        (fe, we, "TCP", 80),  # never the service port
        (fe, co, "UDP", 8125),
        (we, fe, "TCP", 8080),  # replies are not connections
        (co, fe, "UDP", 9125),
        (fe, we, "UDP", 8080),
        (wk, co, "TCP", 9125),
    ]
    for s, d, proto, port in denied:
        v = ev.check(s, d, proto, port)
        assert not v.allowed, f"{s.name} -> {d.name} {proto}/{port} allowed: {v.reason}"
