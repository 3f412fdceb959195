"""The "bank" scenario for the diff, migrate and review tests: three namespaces, two
hours of Hubble flows, built by ``fixtures.lib.model`` (the same builder as the demo),
written into a test's temporary directory. Deterministic (fixed seed and times).

    shop     web (2 pods) -> api (Service api 80 -> 8080), every 5 min; DNS (UDP, once TCP)
             api (2 pods) -> billing/ledger (Service ledger 9090 -> named port grpc 9090)
             admin (1 pod) -> api ONCE, at 10:50: too little evidence to be isolated
             kubelet probes api on 8080 from each api pod's own node
    billing  ledger (2 pods) -> db 5432 (StatefulSet, headless Service), and
             203.0.113.10:443 (payment gateway)
             report (CronJob */30) -> db 5432, each run
    ops      backup -> billing/db 5432 every 20 min
             archive (CronJob, Sundays 03:00): never runs during the recording

Snapshot at 11:00 (2026-11-20, a Friday). The policy sets in tests/generator/tighten/
assets are written by hand against this scenario.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from fixtures.lib import k8s
from fixtures.lib.model import Cluster, External, NodePeer, Recording, write_jsonl, write_text

SEED = 11
START = k8s.parse_time("2026-11-20T09:00:00Z")
MINUTE = 60 * k8s.NS_PER_S
END = START + 120 * MINUTE
GATEWAY = External("203.0.113.10", ("api.payment-gw.example",))
NAMESPACE_LABELS = {"shop": {"team": "storefront"}, "billing": {"team": "money"},
                    "ops": {"team": "platform"}}


@dataclass(frozen=True)
class BankFiles:
    cluster: Path
    flows: Path
    snapshot_args: list[str]  # INPUT and --snapshot for the CLI

    @property
    def inputs(self) -> list[str]:
        return [str(self.flows)]

    @property
    def snapshot(self) -> list[str]:
        return [str(self.cluster)]


def build() -> Recording:
    installed = START - 30 * 24 * 60 * MINUTE
    c = Cluster(snapshot=END)
    a = c.node("node-a", "192.168.56.11", "10.244.1.0/24", installed, control_plane=True)
    b = c.node("node-b", "192.168.56.12", "10.244.2.0/24", installed)
    c.namespace("default", installed)
    c.namespace("kube-system", installed)
    for ns, labels in NAMESPACE_LABELS.items():
        c.namespace(ns, installed, labels)

    def container(name: str, ports) -> dict:
        return k8s.container(name, f"registry.example/{name}:1.0", ports)

    coredns = c.deployment("kube-system", "coredns", {"k8s-app": "kube-dns"}, installed)
    dns_pod = coredns.pod(coredns.revision([container(
        "coredns", [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")])]), a)
    kube_dns = c.service("kube-system", "kube-dns",
                         [("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP")],
                         {"k8s-app": "kube-dns"}, cluster_ip="10.96.0.10")

    web = c.deployment("shop", "web", {"app": "web"}, installed)
    web_rev = web.revision([container("web", [("http", 8080, "TCP")])])
    web_pods = [web.pod(web_rev, a), web.pod(web_rev, b)]
    api = c.deployment("shop", "api", {"app": "api"}, installed)
    api_rev = api.revision([container("api", [("http", 8080, "TCP"), ("metrics", 9102, "TCP")])])
    api_pods = [api.pod(api_rev, a), api.pod(api_rev, b)]
    api_svc = c.service("shop", "api", [("http", 80, 8080, "TCP")], {"app": "api"})
    admin = c.deployment("shop", "admin", {"app": "admin"}, installed)
    admin_pod = admin.pod(admin.revision([container("admin", [])]), a)

    ledger = c.deployment("billing", "ledger", {"app": "ledger"}, installed)
    ledger_rev = ledger.revision([container("ledger", [("grpc", 9090, "TCP")])])
    ledger_pods = [ledger.pod(ledger_rev, a), ledger.pod(ledger_rev, b)]
    ledger_svc = c.service("billing", "ledger", [("grpc", 9090, "grpc", "TCP")],
                           {"app": "ledger"})
    db = c.statefulset("billing", "db", {"app": "db"},
                       [container("postgres", [("postgresql", 5432, "TCP")])], "db", installed)
    db_pod = db.pod(0, b)
    c.service("billing", "db", [("postgresql", 5432, 5432, "TCP")], {"app": "db"},
              cluster_ip=None)
    report = c.cronjob("billing", "report", {"app": "report"}, [container("report", [])],
                       "*/30 * * * *", installed)

    backup = c.deployment("ops", "backup", {"app": "backup"}, installed)
    backup_pod = backup.pod(backup.revision([container("backup", [])]), a)
    c.cronjob("ops", "archive", {"app": "archive"}, [container("archive", [])], "0 3 * * 0",
              installed)

    rec = Recording(c, random.Random(SEED), lb_mode="socket")

    def dns(t: int, pod, protocol: str = "UDP") -> None:
        rec.call(t, pod, kube_dns, 53, protocol, backend=dns_pod)

    for i in range(24):  # every 5 minutes
        t = START + i * 5 * MINUTE + 20 * k8s.NS_PER_S
        web_pod = web_pods[i % 2]
        dns(t, web_pod, "TCP" if i == 7 else "UDP")
        rec.call(t + 2 * k8s.NS_PER_S, web_pod, api_svc, 80, backend=api_pods[i % 2])
        if i % 2 == 0:  # every 10 minutes
            api_pod = api_pods[(i // 2) % 2]
            dns(t + 30 * k8s.NS_PER_S, api_pod)
            rec.call(t + 31 * k8s.NS_PER_S, api_pod, ledger_svc, 9090,
                     backend=ledger_pods[(i // 2) % 2])
            rec.tcp(t + 40 * k8s.NS_PER_S, ledger_pods[(i // 2) % 2], db_pod, 5432)
            for pod in api_pods:
                rec.tcp(t + 50 * k8s.NS_PER_S, NodePeer(pod.node), pod, 8080)
        if i % 6 == 0:  # every 30 minutes
            lp = ledger_pods[(i // 6) % 2]
            dns(t + 60 * k8s.NS_PER_S, lp)
            rec.tcp(t + 61 * k8s.NS_PER_S, lp, GATEWAY, 443)
        if i % 4 == 0:  # every 20 minutes
            dns(t + 90 * k8s.NS_PER_S, backup_pod)
            rec.tcp(t + 91 * k8s.NS_PER_S, backup_pod, db_pod, 5432)
    for k in range(4):  # the CronJob's runs at 09:00, 09:30, 10:00, 10:30
        scheduled = START + k * 30 * MINUTE
        pod = report.run(scheduled, b if k % 2 else a, 50 * k8s.NS_PER_S)
        dns(pod.created + 2 * k8s.NS_PER_S, pod)
        rec.tcp(pod.created + 3 * k8s.NS_PER_S, pod, db_pod, 5432)
    rec.call(START + 110 * MINUTE, admin_pod, api_svc, 80, backend=api_pods[0])
    return rec


def write(directory: Path) -> BankFiles:
    rec = build()
    cluster, flows = directory / "cluster.json", directory / "flows.jsonl"
    write_text(cluster, rec.cluster.snapshot_json())
    write_jsonl(flows, rec.all_lines())
    return BankFiles(cluster, flows, [str(flows), "--snapshot", str(cluster)])


def observe_bank(directory: Path):
    """The scenario written to ``directory`` and read back through flowpol's pipeline."""
    from generator.pipeline import observe
    from recorder.sources import ReadOptions

    files = write(directory)
    return files, observe(files.inputs, files.snapshot, ReadOptions())
