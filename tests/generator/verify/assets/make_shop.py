#!/usr/bin/env python3
"""Write the "shop" scenario that the verify tests replay: shop/cluster.json and
shop/flows.jsonl. Deterministic (fixed seed and times); run it again after changing it:

    python tests/generator/verify/assets/make_shop.py

Two nodes, kube-proxy Services (the client's node sees ClusterIP:servicePort, the
server's node the backend pod on its targetPort):
- shop/web calls shop/api through Service api port 80 -> targetPort 8080;
- web and api resolve names through kube-system/kube-dns (UDP 53, and once TCP 53);
- api calls an external payment gateway 203.0.113.10:443;
- the kubelet probes api on 8080 from each api pod's own node.
The policy sets next to this script (policies/) are written by hand against it.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[3]))

from fixtures.lib import k8s  # noqa: E402
from fixtures.lib.model import (  # noqa: E402
    Cluster, External, NodePeer, Recording, write_jsonl, write_text,
)

SEED = 5
START = k8s.parse_time("2026-11-20T09:00:00Z")
MINUTE = 60 * k8s.NS_PER_S
END = START + 60 * MINUTE
GATEWAY = External("203.0.113.10", ("api.payment-gw.example",))


def build() -> Recording:
    installed = START - 30 * 24 * 60 * MINUTE
    c = Cluster(snapshot=END)
    a = c.node("node-a", "192.168.56.11", "10.244.1.0/24", installed, control_plane=True)
    b = c.node("node-b", "192.168.56.12", "10.244.2.0/24", installed)
    for ns in ("default", "kube-system", "shop"):
        c.namespace(ns, installed)
    coredns = c.deployment("kube-system", "coredns", {"k8s-app": "kube-dns"}, installed)
    dns_rev = coredns.revision([k8s.container(
        "coredns", "registry.k8s.io/coredns/coredns:v1.11.3",
        [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")])])
    dns_pod = coredns.pod(dns_rev, a)
    kube_dns = c.service("kube-system", "kube-dns",
                         [("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP")],
                         {"k8s-app": "kube-dns"}, cluster_ip="10.96.0.10")

    web = c.deployment("shop", "web", {"app": "web"}, installed)
    web_pod = web.pod(web.revision([k8s.container("web", "registry.example/web:1.0",
                                                  [("http", 8080, "TCP")])]), a)
    api = c.deployment("shop", "api", {"app": "api"}, installed)
    api_rev = api.revision([k8s.container("api", "registry.example/api:1.0",
                                          [("http", 8080, "TCP")])])
    api_pods = [api.pod(api_rev, a), api.pod(api_rev, b)]
    api_svc = c.service("shop", "api", [("http", 80, 8080, "TCP")], {"app": "api"},
                        cluster_ip="10.96.30.80")

    rec = Recording(c, random.Random(SEED), lb_mode="kube-proxy")
    t = START + MINUTE
    for i in range(4):
        rec.call(t, web_pod, kube_dns, 53, "UDP", dns_query="api.shop.svc.cluster.local",
                 answers=[api_svc.cluster_ip or ""], backend=dns_pod)
        rec.call(t + MINUTE, web_pod, api_svc, 80, backend=api_pods[i % 2])
        t += 5 * MINUTE
    for i in range(2):
        rec.call(t, api_pods[i % 2], kube_dns, 53, "UDP", dns_query="api.payment-gw.example",
                 answers=[GATEWAY.ip], backend=dns_pod)
        rec.tcp(t + MINUTE, api_pods[i % 2], GATEWAY, 443)
        t += 5 * MINUTE
    rec.call(t, api_pods[0], kube_dns, 53, "TCP", backend=dns_pod)  # a truncated answer
    for pod, node in ((api_pods[0], a), (api_pods[1], b)):
        rec.tcp(t + MINUTE, NodePeer(node), pod, 8080)
    return rec


def main() -> None:
    rec = build()
    out = HERE / "shop"
    write_text(out / "cluster.json", rec.cluster.snapshot_json())
    n = write_jsonl(out / "flows.jsonl", rec.all_lines())
    print(f"wrote {out}/cluster.json and {n} lines to {out}/flows.jsonl")


if __name__ == "__main__":
    main()
