"""Evaluator speed: many observed connections against a large policy set.

    python benchmarks/bench_verify.py [--pods 10000] [--policies 2000]
                                      [--connections 1000000] [--seed 7] [--uniform N]

Builds a deterministic random cluster (namespaces with labels; workloads of 1-10
replicas with app/tier/version labels, pod-template-hash and named container ports;
nodes) and a policy set of the given size in the shapes real clusters have: a
default-deny per namespace, per-workload ingress allow-lists (podSelector,
namespaceSelector, both, matchExpressions; numeric, named and ranged ports), egress
policies with DNS (UDP and TCP 53 to kube-dns), ipBlock rules with except (IPv4 and
IPv6). Connections follow a service graph (each workload calls 1-4 others on their
ports; every pod resolves DNS; some go to external addresses; kubelet probes come from
the pod's node), 1,000,000 by default.

Times, single-threaded (one core): parsing the policies, building the Evaluator, and
``check`` over every connection (connections/s). ``--uniform N`` also times N
connections between uniformly random pods on random ports: the cache-hostile worst case.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generator.resolve.edges import PodView  # noqa: E402
from generator.verify.evaluator import Evaluator  # noqa: E402
from generator.verify.policy import parse_policy  # noqa: E402

TIERS = ["frontend", "backend", "data", "batch"]
TEAMS = ["payments", "search", "identity", "platform", "growth"]
PORT_NAMES = ["http", "grpc", "metrics", "admin"]


class Cluster:
    def __init__(self, rng: random.Random, n_pods: int, n_namespaces: int, n_nodes: int) -> None:
        self.namespaces = {
            f"ns-{i:03d}": {"team": rng.choice(TEAMS), "env": rng.choice(["prod", "staging"])}
            for i in range(n_namespaces)
        }
        self.namespaces["kube-system"] = {}
        self.nodes = {f"node-{i:03d}": [str(ipaddress.ip_address("172.20.0.10") + i)] for i in range(n_nodes)}
        pod_ips = iter(ipaddress.ip_network("10.0.0.0/12").hosts())
        self.workloads: list[list[PodView]] = []
        self.ports: list[list[tuple[str, str, int]]] = []
        nodes = sorted(self.nodes)
        dns = [
            PodView("kube-system", f"coredns-{i}", (("k8s-app", "kube-dns"),),
                    (("dns", "UDP", 53), ("dns-tcp", "TCP", 53)), str(next(pod_ips)), node=nodes[i])
            for i in range(2)
        ]
        self.dns = dns
        self.workloads.append(dns)
        self.ports.append([("dns", "UDP", 53), ("dns-tcp", "TCP", 53)])
        namespaces = sorted(self.namespaces)[: n_namespaces]
        count = len(dns)
        w = 0
        while count < n_pods:
            ns = rng.choice(namespaces)
            replicas = min(rng.randint(1, 10), n_pods - count)
            app = f"app-{w:04d}"
            labels = tuple(sorted({
                "app": app,
                "tier": rng.choice(TIERS),
                "version": rng.choice(["v1", "v2"]),
                "pod-template-hash": f"{rng.getrandbits(32):08x}",
            }.items()))
            named = tuple(
                (name, "TCP", rng.choice([8080, 8443, 9000, 9090, 50051]))
                for name in rng.sample(PORT_NAMES, rng.randint(1, 3))
            )
            pods = [
                PodView(ns, f"{app}-{i}", labels, named, str(next(pod_ips)), node=rng.choice(nodes))
                for i in range(replicas)
            ]
            self.workloads.append(pods)
            self.ports.append(list(named))
            count += replicas
            w += 1

    @property
    def pods(self) -> list[PodView]:
        return [p for pods in self.workloads for p in pods]


def _policy(name: str, namespace: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def make_policies(rng: random.Random, cluster: Cluster, n: int) -> list[dict]:
    out = []
    for ns in sorted(cluster.namespaces):
        if ns != "kube-system":
            out.append(_policy("default-deny", ns, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))
            out.append(_policy("allow-dns", ns, {
                "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}],
            }))
    apps = cluster.workloads[1:]
    i = 0
    while len(out) < n:
        pods = rng.choice(apps)
        ns, app = pods[0].namespace, dict(pods[0].labels)["app"]
        client = dict(rng.choice(apps)[0].labels)
        shape = rng.random()
        if shape < 0.45:
            peer: dict = {"podSelector": {"matchLabels": {"app": client["app"]}}}
            if rng.random() < 0.5:
                peer["namespaceSelector"] = {"matchLabels": {"team": rng.choice(TEAMS)}}
            name, number = rng.choice([(n_, p) for n_, _, p in cluster.ports[apps.index(pods) + 1]])
            ports = [{"port": name}] if rng.random() < 0.5 else [{"port": number, "protocol": "TCP"}]
            spec: dict = {"podSelector": {"matchLabels": {"app": app}}, "ingress": [{"from": [peer], "ports": ports}]}
        elif shape < 0.7:
            spec = {"podSelector": {"matchExpressions": [
                        {"key": "tier", "operator": "In", "values": rng.sample(TIERS, 2)},
                        {"key": "version", "operator": "NotIn", "values": ["v0"]}]},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}}],
                                 "ports": [{"port": 8000, "endPort": 9100}]}]}
        elif shape < 0.9:
            spec = {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Egress"],
                    "egress": [{"to": [{"podSelector": {"matchLabels": {"tier": rng.choice(TIERS)}}},
                                       {"namespaceSelector": {"matchExpressions": [
                                           {"key": "team", "operator": "In", "values": rng.sample(TEAMS, 2)}]}}]}]}
        else:
            spec = {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Egress"],
                    "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12"]}},
                                       {"ipBlock": {"cidr": "2000::/3"}}],
                                "ports": [{"port": 443}]}]}
        out.append(_policy(f"np-{i:05d}", ns, spec))
        i += 1
    return out[:n]


def make_connections(rng: random.Random, cluster: Cluster, n: int) -> list[tuple]:
    apps = cluster.workloads[1:]
    deps = {id(pods): rng.sample(range(len(apps)), rng.randint(1, 4)) for pods in apps}
    externals = ["140.82.112.3", "151.101.1.69", "2606:4700::6810:85e5", "52.94.236.248"]
    conns: list[tuple] = []
    while len(conns) < n:
        pods = rng.choice(apps)
        src = rng.choice(pods)
        r = rng.random()
        if r < 0.2:
            conns.append((src, rng.choice(cluster.dns), "UDP", 53))
        elif r < 0.25:
            conns.append((src, rng.choice(externals), "TCP", 443))
        elif r < 0.28:
            conns.append((cluster.nodes[src.node][0], src, "TCP", src.named_ports[0][2]))  # kubelet probe
        else:
            server_pods = apps[rng.choice(deps[id(pods)])]
            dst = rng.choice(server_pods)
            conns.append((src, dst, "TCP", rng.choice(dst.named_ports)[2]))
    return conns


def uniform_connections(rng: random.Random, cluster: Cluster, n: int) -> list[tuple]:
    pods = cluster.pods
    return [(rng.choice(pods), rng.choice(pods), rng.choice(["TCP", "UDP"]), rng.randint(1, 65535)) for _ in range(n)]


def run(evaluator: Evaluator, conns: list[tuple]) -> tuple[float, int]:
    check = evaluator.check
    allowed = 0
    start = time.perf_counter()
    for src, dst, proto, port in conns:
        allowed += check(src, dst, proto, port).allowed
    return time.perf_counter() - start, allowed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--policies", type=int, default=2_000)
    ap.add_argument("--connections", type=int, default=1_000_000)
    ap.add_argument("--namespaces", type=int, default=60)
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--uniform", type=int, default=0, help="also time N uniformly random connections")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    cluster = Cluster(rng, args.pods, args.namespaces, args.nodes)
    raw = make_policies(rng, cluster, args.policies)
    conns = make_connections(rng, cluster, args.connections)
    print(f"cluster: {len(cluster.pods)} pods in {len(cluster.workloads)} workloads, "
          f"{len(cluster.namespaces)} namespaces, {len(cluster.nodes)} nodes; {len(raw)} policies; "
          f"{len(conns)} connections")

    t0 = time.perf_counter()
    policies = [parse_policy(p) for p in raw]
    t1 = time.perf_counter()
    evaluator = Evaluator(policies, cluster.namespaces, cluster.nodes)
    t2 = time.perf_counter()
    elapsed, allowed = run(evaluator, conns)
    print(f"parse policies:   {t1 - t0:8.3f} s")
    print(f"build evaluator:  {t2 - t1:8.3f} s")
    print(f"check:            {elapsed:8.3f} s  {len(conns) / elapsed:12,.0f} connections/s  "
          f"({allowed} allowed, {len(conns) - allowed} denied, {evaluator.cached_verdicts} distinct verdict keys)")
    print(f"total:            {t2 - t0 + elapsed:8.3f} s")
    if args.uniform:
        uniform = uniform_connections(rng, cluster, args.uniform)
        fresh = Evaluator(policies, cluster.namespaces, cluster.nodes)
        elapsed, allowed = run(fresh, uniform)
        print(f"uniform random:   {elapsed:8.3f} s  {len(uniform) / elapsed:12,.0f} connections/s  "
              f"({allowed} allowed, {fresh.cached_verdicts} distinct verdict keys)")


if __name__ == "__main__":
    main()
