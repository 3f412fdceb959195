#!/usr/bin/env python3
"""Generate a synthetic cluster and a large Hubble recording for benchmarks.

Writes into DIR:
  cluster.json         20 namespaces x 10 workloads (Deployments, a StatefulSet, a
                       DaemonSet, a CronJob, a bare pod each), 20 nodes, >= 2,000 pods
                       listed, Services (port = or != targetPort, named targetPorts)
  flows.jsonl          LINES `hubble observe -o json` lines (default 1,000,000), all
                       nodes merged in time order as Hubble Relay prints them; every
                       connection in full (SYN, SYN-ACK, data, FIN, at every
                       observation point), so about half the packet lines are replies
  expected-edges.json  the edges the traffic was drawn from, with connection counts
  meta.json            what was generated (lines, connections, replies, pods)

Lines are streamed to disk through a small time-ordered buffer: memory does not grow
with LINES. Deterministic for a given (LINES, --seed).

Run: python benchmarks/make_synthetic.py DIR [--lines N] [--seed S]
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures.lib import hubble, k8s  # noqa: E402
from fixtures.lib.model import (  # noqa: E402
    Cluster, EdgeBook, External, JsonDict, NodePeer, Peer, Pod, Service, hubble_endpoint,
    peer_ref, ref_key, write_json, write_text,
)

NS = k8s.NS_PER_S
MS = NS // 1000
MINUTE = 60 * NS
HOUR = 60 * MINUTE
DAY = 24 * HOUR
START = k8s.parse_time("2026-11-20T09:00:00Z")
WINDOW = 6 * HOUR
END = START + WINDOW
INSTALLED = START - 40 * DAY
REGISTRY = "registry.example/synthetic"
N_NODES = 20
N_NAMESPACES = 20
# namespaces (the first ones) that run a DaemonSet on every node; None = all of them.
# benchmarks/bench_cluster.py lowers it: 200 namespaces x 1,000 nodes would be 200,000
# agent pods.
DAEMONSET_NAMESPACES: int | None = None
APP_NAMES = ("api", "web", "worker", "cache", "auth", "search", "billing", "ledger",
             "notifier", "gateway", "reports", "inventory", "catalog", "orders", "profile",
             "sessions", "media", "feeds", "queue", "pricing")
# a first guess of lines per connection, to space connections over the window
LINES_PER_CONNECTION = 11


@dataclass
class Workload:
    """A server or client in the synthetic app graph."""

    namespace: str
    name: str
    kind: str
    pods: list[Pod]
    service: Service | None = None
    port: int = 0  # the targetPort number its pods serve on
    service_port: int = 0
    probe_port: int | None = None
    servers: list[Workload] = field(default_factory=list)
    key: str = ""

    def pick(self, rng: random.Random, t: int) -> Pod | None:
        for _ in range(6):
            pod = self.pods[rng.randrange(len(self.pods))]
            if pod.alive(t):
                return pod
        alive = [p for p in self.pods if p.alive(t)]
        return rng.choice(alive) if alive else None


class Synthetic:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        c = self.cluster = Cluster(snapshot=END)
        self.nodes = [c.node(f"worker-{i:02d}", f"192.168.{56 + (11 + i) // 256}.{(11 + i) % 256}",
                             f"10.{244 + (i + 1) // 256}.{(i + 1) % 256}.0/24",
                             INSTALLED + i * MINUTE, control_plane=(i == 0),
                             hosts_apiserver=(i == 0)) for i in range(N_NODES)]
        for ns in ("default", "kube-node-lease", "kube-public", "kube-system"):
            c.namespace(ns, INSTALLED)
        coredns = c.deployment("kube-system", "coredns", {"k8s-app": "kube-dns"}, INSTALLED,
                               service_account="coredns")
        rev = coredns.revision([k8s.container(
            "coredns", "registry.k8s.io/coredns/coredns:v1.11.3",
            [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")])])
        self.coredns = Workload("kube-system", "coredns", "Deployment",
                                [coredns.pod(rev, n) for n in self.nodes[:4]])
        self.coredns.service = c.service("kube-system", "kube-dns",
                                         [("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP")],
                                         {"k8s-app": "kube-dns"}, cluster_ip="10.96.0.10")
        self.coredns.key = ref_key(peer_ref(self.coredns.pods[0]))
        c.service("default", "kubernetes", [("https", 443, 6443, "TCP")], None,
                  cluster_ip="10.96.0.1")
        self.workloads: list[Workload] = []
        self.clients: list[Workload] = []
        for i in range(N_NAMESPACES):
            self._namespace(i)
        self._graph()

    # -- cluster --------------------------------------------------------------------------------
    def _namespace(self, i: int) -> None:
        c, rng = self.cluster, self.rng
        ns = f"team-{i:02d}"
        c.namespace(ns, INSTALLED + DAY, {"team": f"t{i:02d}"})
        names = rng.sample(APP_NAMES, 6)
        for j, name in enumerate(names):
            variant = (i + j) % 3
            port, svc_port, target = ((8080, 80, "http") if variant == 0 else
                                      (8080, 8080, 8080) if variant == 1 else (8443, 443, 8443))
            dep = c.deployment(ns, name, {"app": name, "team": f"t{i:02d}"}, INSTALLED + DAY)
            rev = dep.revision([k8s.container(
                name, f"{REGISTRY}/{name}:1.{j}.0",
                [("http", port, "TCP"), ("health", 8081, "TCP")],
                readiness=k8s.http_probe("/ready", "health"))], START - rng.randrange(1, 9) * DAY)
            pods = []
            for k in range(rng.randint(12, 16)):
                node = self.nodes[rng.randrange(N_NODES)]
                if rng.random() < 0.05:  # replaced during the window: its IP changes
                    gone = START + rng.randrange(WINDOW // MINUTE) * MINUTE
                    pods.append(dep.pod(rev, node, ended=gone))
                    pods.append(dep.pod(rev, self.nodes[rng.randrange(N_NODES)],
                                        created=gone + 3 * NS))
                else:
                    pods.append(dep.pod(rev, node))
            svc = c.service(ns, name, [("http", svc_port, target, "TCP")], {"app": name})
            self._add(Workload(ns, name, "Deployment", pods, svc, port, svc_port, 8081))
        db = c.statefulset(ns, "db", {"app": "db"}, [k8s.container(
            "postgres", "docker.io/library/postgres:16.4", [("postgresql", 5432, "TCP")])],
            "db", INSTALLED + DAY)
        db_pods = [db.pod(k, self.nodes[rng.randrange(N_NODES)]) for k in range(rng.randint(3, 5))]
        c.service(ns, "db", [("postgresql", 5432, 5432, "TCP")], {"app": "db"}, cluster_ip=None)
        self._add(Workload(ns, "db", "StatefulSet", db_pods, None, 5432))
        if DAEMONSET_NAMESPACES is None or i < DAEMONSET_NAMESPACES:
            agent = c.daemonset(ns, "agent", {"app": "agent"}, [k8s.container(
                "agent", f"{REGISTRY}/agent:0.3.0", [("metrics", 9100, "TCP")])],
                INSTALLED + DAY)
            self._add(Workload(ns, "agent", "DaemonSet", [agent.pod(n) for n in self.nodes]))
        sweeper = c.cronjob(ns, "sweeper", {"app": "sweeper"}, [k8s.container(
            "sweeper", f"{REGISTRY}/sweeper:2.0.1")], "*/20 * * * *", INSTALLED + DAY)
        runs = []
        t = START
        while t < END:
            runs.append(sweeper.run(t, self.nodes[rng.randrange(N_NODES)],
                                    (60 + rng.randrange(240)) * NS))
            t += 20 * MINUTE
        self._add(Workload(ns, "sweeper", "CronJob", runs))
        toolbox = c.bare_pod(ns, "toolbox", {"app": "toolbox"}, [k8s.container(
            "toolbox", f"{REGISTRY}/toolbox:1.0")], self.nodes[rng.randrange(N_NODES)],
            INSTALLED + 2 * DAY)
        self._add(Workload(ns, "toolbox", "Pod", [toolbox]))

    def _add(self, w: Workload) -> None:
        w.key = ref_key(peer_ref(w.pods[0]))
        self.workloads.append(w)

    def _graph(self) -> None:
        rng = self.rng
        servers = [w for w in self.workloads if w.port]
        by_ns: dict[str, list[Workload]] = {}
        for w in servers:
            by_ns.setdefault(w.namespace, []).append(w)
        for w in self.workloads:
            fan = 3 if w.kind in ("Deployment", "StatefulSet") else 2 if w.kind != "Pod" else 1
            for _ in range(fan):
                pool = servers if rng.random() < 0.2 else by_ns[w.namespace]
                target = rng.choice(pool)
                if target is not w and target not in w.servers:
                    w.servers.append(target)
            self.clients.append(w)
        # weighted kinds of connections: (weight, kind)
        self.kinds = [(60, "service"), (20, "dns"), (12, "probe"), (8, "external")]
        self.external = [External(f"203.0.113.{10 + i}") for i in range(8)]
        self.external_clients = [w for w in self.workloads if w.kind == "Deployment"][::10]

    # -- traffic ---------------------------------------------------------------------------------
    def generate(self, out: Path, lines: int) -> JsonDict:
        rng = self.rng
        edges = EdgeBook()
        heap: list[tuple[int, int, bytes]] = []
        seq = 0
        written = 0
        replies = 0
        unknown = 0  # lines without is_reply: TO_OVERLAY and SOCK events
        connections = 0
        endpoints: dict[int, hubble.Endpoint] = {}

        def endpoint(peer: Peer) -> hubble.Endpoint:
            if isinstance(peer, Pod) and not peer.host_network:
                ep = endpoints.get(id(peer))
                if ep is None:
                    ep = endpoints[id(peer)] = hubble_endpoint(self.cluster, peer)
                return ep
            return hubble_endpoint(self.cluster, peer)

        def sink(node: str, t: int, line: JsonDict) -> None:
            nonlocal seq
            seq += 1
            heapq.heappush(heap, (t, seq, hubble.dumps(line)))

        emitter = hubble.FlowEmitter(sink=sink, rng=rng, frontends=self.cluster.frontends())
        weights = [w for w, _ in self.kinds]
        cumulative = [sum(weights[: i + 1]) for i in range(len(weights))]
        kinds = [k for _, k in self.kinds]
        spacing = max(1, WINDOW // max(1, lines // LINES_PER_CONNECTION))
        attempts = 0
        flows_path = out / "flows.jsonl"
        out.mkdir(parents=True, exist_ok=True)
        t = START
        with open(flows_path, "wb", buffering=1 << 20) as f:
            def flush(until: int) -> None:
                nonlocal written, replies, unknown
                while heap and heap[0][0] < until and written < lines:
                    data = heapq.heappop(heap)[2]
                    if b'"is_reply":true' in data:
                        replies += 1
                    elif b'"is_reply"' not in data:
                        unknown += 1
                    f.write(data)
                    written += 1

            while written + len(heap) < lines:
                t += rng.randrange(1, 2 * spacing)
                kind = kinds[bisect.bisect_left(cumulative, rng.random() * cumulative[-1])]
                if self._connection(kind, t, emitter, endpoint, edges):
                    connections += 1
                attempts += 1
                if attempts % 1024 == 0:
                    # spread what is left evenly over what is left of the window
                    per_attempt = (written + len(heap)) / attempts
                    left = (lines - written - len(heap)) / per_attempt
                    spacing = max(1, int(0.95 * (END - NS - t) / max(left, 1.0)))
                if len(heap) > 4096:
                    flush(t - 2 * NS)
            flush(1 << 62)
        write_text(out / "cluster.json", self.cluster.snapshot_json())
        expected = {"scenario": "synthetic", "window": {"start": hubble.hubble_time(START),
                                                       "end": hubble.hubble_time(END)},
                    "snapshot_time": hubble.hubble_time(END), "edges": edges.as_list(),
                    "dropped": [], "notes": ["Connections with lines cut off at the LINES "
                                             "limit are counted."]}
        write_json(out / "expected-edges.json", expected)
        listed = sum(1 for p in self.cluster.pods if p.listed(END))
        meta = {"lines": written, "replies": replies, "reply_unknown": unknown,
                "connections": connections,
                "pods_listed": listed, "pods_in_window": len(self.cluster.pods),
                "workloads": len(self.workloads), "namespaces": N_NAMESPACES,
                "nodes": N_NODES, "edges": len(expected["edges"])}
        write_json(out / "meta.json", meta)
        return meta

    def _connection(self, kind: str, t: int, emitter: hubble.FlowEmitter,
                    endpoint: Callable[[Peer], hubble.Endpoint], edges: EdgeBook) -> bool:
        rng = self.rng
        if kind == "probe":
            server = rng.choice(self.workloads)
            if server.probe_port is None:
                return False
            pod = server.pick(rng, t)
            if pod is None:
                return False
            emitter.tcp(t, endpoint(NodePeer(pod.node)), endpoint(pod), server.probe_port)
            edges.add_keys(t, ref_key({"kind": "node", "ip": pod.node.ip}), server.key,
                           "TCP", server.probe_port)
            return True
        client = rng.choice(self.clients)
        src = client.pick(rng, t)
        if src is None:
            return False
        if kind == "dns":
            dns = self.coredns.pick(rng, t)
            assert dns is not None and self.coredns.service is not None
            emitter.udp(t, endpoint(src), endpoint(dns), 53,
                        via=(self.coredns.service.cluster_ip or "", 53))
            edges.add_keys(t, client.key, self.coredns.key, "UDP", 53)
            return True
        if kind == "external":
            client = rng.choice(self.external_clients)
            src = client.pick(rng, t)
            if src is None:
                return False
            target = rng.choice(self.external)
            emitter.tcp(t, endpoint(src), endpoint(target), 443)
            edges.add_keys(t, client.key, ref_key(peer_ref(target)), "TCP", 443)
            return True
        if not client.servers:
            return False
        server = rng.choice(client.servers)
        dst = server.pick(rng, t)
        if dst is None:
            return False
        via = ((server.service.cluster_ip, server.service_port)
               if server.service is not None and server.service.cluster_ip else None)
        emitter.tcp(t, endpoint(src), endpoint(dst), server.port, via=via,
                    exchanges=1 + (rng.random() < 0.3))
        edges.add_keys(t, client.key, server.key, "TCP", server.port)
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write into")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.lines < 1:
        parser.error("--lines must be at least 1")
    started = time.perf_counter()
    meta = Synthetic(args.seed).generate(args.out, args.lines)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
