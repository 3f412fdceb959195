"""The Cilium evaluator against the NetworkPolicy evaluator, and against Cilium's own
documentation.

Differential: random NetworkPolicies in the subset both dialects express (pod and
namespace selectors with labels and expressions, external CIDRs with excepts, TCP/UDP
ports and ranges, rules without peers or ports, isolation without rules), each
translated into the CiliumNetworkPolicy that says the same, judged on random probes
between pods, nodes and outside addresses: the verdicts must be identical. ipBlocks
stay outside the cluster: that is where the two dialects agree (Cilium never matches a
CIDR against a pod or a node).
"""

from __future__ import annotations

import random

import pytest

from generator.resolve.edges import PodView
from generator.verify.combined import CombinedEvaluator
from generator.verify.cilium_policy import parse_cilium_policy
from generator.verify.evaluator import Evaluator
from generator.verify.names import NameBinding, NameBindings, NamedAddress
from generator.verify.policy import parse_policy

NAMESPACES = {"shop": {"team": "a"}, "pay": {"team": "b"}, "ops": {"team": "a"}}
NODES = {"node-a": ["192.168.56.11"], "node-b": ["192.168.56.12"]}
EXTERNAL = ["203.0.113.10", "203.0.113.77", "198.51.100.7"]
PORTS = [53, 80, 443, 5432, 8080, 9090]


def _pods() -> list[PodView]:
    pods = []
    n = 0
    for ns in NAMESPACES:
        for app in ("web", "api", "db"):
            for tier in ("front", "back"):
                n += 1
                pods.append(PodView(ns, f"{app}-{tier}-{n}", (("app", app), ("tier", tier)),
                                    (("http", "TCP", 8080),), f"10.244.{n // 200}.{n % 200 + 2}",
                                    False, "node-a" if n % 2 else "node-b"))
    return pods


def _selector(rng: random.Random) -> dict:
    out: dict = {}
    if rng.random() < 0.6:
        out["matchLabels"] = {"app": rng.choice(["web", "api", "db"])}
    if rng.random() < 0.3:
        out["matchExpressions"] = [{"key": "tier", "operator": rng.choice(["In", "NotIn"]),
                                    "values": [rng.choice(["front", "back"])]}]
    return out


def _peer(rng: random.Random) -> dict:
    r = rng.random()
    if r < 0.2:
        block = {"cidr": "203.0.113.0/24"}
        if rng.random() < 0.5:
            block["except"] = ["203.0.113.64/26"]
        return {"ipBlock": block}
    if r < 0.5:
        return {"podSelector": _selector(rng)}
    ns = rng.choice([{}, {"matchLabels": {"team": rng.choice(["a", "b"])}},
                     {"matchLabels": {"kubernetes.io/metadata.name": rng.choice(list(NAMESPACES))}}])
    out = {"namespaceSelector": ns}
    if rng.random() < 0.6:
        out["podSelector"] = _selector(rng)
    return out


def _ports(rng: random.Random) -> list[dict]:
    out = []
    for _ in range(rng.randint(1, 2)):
        p = {"protocol": rng.choice(["TCP", "UDP"]), "port": rng.choice(PORTS)}
        if rng.random() < 0.2:
            p["endPort"] = p["port"] + rng.randint(0, 100)
        out.append(p)
    return out


def _rule(rng: random.Random, key: str) -> dict:
    rule: dict = {}
    if rng.random() < 0.85:
        rule[key] = [_peer(rng) for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.8:
        rule["ports"] = _ports(rng)
    return rule


def random_policy(rng: random.Random, i: int) -> dict:
    ns = rng.choice(list(NAMESPACES))
    spec: dict = {"podSelector": _selector(rng), "policyTypes": ["Ingress", "Egress"]}
    for direction, key in (("ingress", "from"), ("egress", "to")):
        n = rng.randint(0, 2)
        if n:
            spec[direction] = [_rule(rng, key) for _ in range(n)]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"p{i}", "namespace": ns}, "spec": spec}


def _cilium_selector(sel: dict, extra: dict | None = None) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else [dict(e) for e in v]) for k, v in sel.items()}
    if extra:
        out.setdefault("matchLabels", {}).update(extra.get("matchLabels", {}))
        out.setdefault("matchExpressions", []).extend(extra.get("matchExpressions", []))
        if not out["matchExpressions"]:
            del out["matchExpressions"]
    return out


def _cilium_peer(p: dict, word: str) -> dict:
    if "ipBlock" in p:
        return {f"{word}CIDRSet": [{"cidr": p["ipBlock"]["cidr"],
                                    **({"except": p["ipBlock"]["except"]} if "except" in p["ipBlock"] else {})}]}
    pod = p.get("podSelector", {})
    if "namespaceSelector" not in p:
        return {f"{word}Endpoints": [_cilium_selector(pod)]}
    ns = p["namespaceSelector"]
    extra: dict = {"matchLabels": {}, "matchExpressions": []}
    if not ns:  # every namespace: a selector naming the namespace label at all
        extra["matchExpressions"].append({"key": "k8s:io.kubernetes.pod.namespace",
                                          "operator": "Exists"})
    for k, v in ns.get("matchLabels", {}).items():
        if k == "kubernetes.io/metadata.name":
            extra["matchLabels"]["k8s:io.kubernetes.pod.namespace"] = v
        else:
            extra["matchLabels"][f"k8s:io.cilium.k8s.namespace.labels.{k}"] = v
            extra["matchExpressions"].append({"key": "k8s:io.kubernetes.pod.namespace",
                                              "operator": "Exists"})
    return {f"{word}Endpoints": [_cilium_selector(pod, extra)]}


def to_cilium(np: dict) -> list[dict]:
    """The CiliumNetworkPolicy saying what ``np`` says (one object per peer, since a
    Cilium rule holds one kind of L3 selector)."""
    spec = np["spec"]
    out: dict = {"endpointSelector": _cilium_selector(spec["podSelector"]),
                 "enableDefaultDeny": {"ingress": True, "egress": True}}
    for direction, key, word in (("ingress", "from", "from"), ("egress", "to", "to")):
        rules = []
        for r in spec.get(direction, []):
            ports = [{"ports": [{"port": str(p["port"]), "protocol": p["protocol"],
                                 **({"endPort": p["endPort"]} if "endPort" in p else {})}
                                for p in r["ports"]]}] if "ports" in r else None
            peers = [_cilium_peer(p, word) for p in r[key]] if key in r else [{}]
            for peer in peers:
                rule = dict(peer)
                if ports:
                    rule["toPorts"] = ports
                rules.append(rule)
        out[direction] = rules or [{f"{word}Entities": []}]
    return [{"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
             "metadata": dict(np["metadata"]), "spec": out}]


@pytest.mark.parametrize("seed", range(6))
def test_networkpolicy_and_cilium_evaluators_agree(seed: int) -> None:
    rng = random.Random(seed)
    pods = _pods()
    ends = pods + EXTERNAL + [a for addrs in NODES.values() for a in addrs]
    probes = 0
    for round_ in range(40):
        raw = [random_policy(rng, i) for i in range(rng.randint(1, 4))]
        nps = [parse_policy(p) for p in raw]
        cnps = [c for p in raw for obj in to_cilium(p) for c in parse_cilium_policy(obj)]
        ev_np = Evaluator(nps, NAMESPACES, NODES)
        ev_cil = CombinedEvaluator((), cnps, (), NAMESPACES, NODES)
        for _ in range(30):
            src, dst = rng.choice(ends), rng.choice(ends)
            if not isinstance(src, PodView) and not isinstance(dst, PodView):
                continue
            proto, port = rng.choice(["TCP", "UDP"]), rng.choice(PORTS + [8081, 600])
            a = ev_np.check(src, dst, proto, port)
            b = ev_cil.check(src, dst, proto, port)
            probes += 1
            assert a.allowed == b.allowed, (raw, src, dst, proto, port, a.reason, b.reason)
    assert probes > 1000


# ---------------------------------------------------------------- Cilium's documentation

DEV = PodView("default", "dev", (("env", "dev"),), (), "10.244.1.5", False, "node-a")
PROD = PodView("default", "prod", (("env", "prod"),), (), "10.244.1.6", False, "node-a")


def _cnp(spec: dict, ns: str = "default") -> list:
    return list(parse_cilium_policy({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                                     "metadata": {"name": "doc", "namespace": ns}, "spec": spec}))


def _ev(spec: dict, apiserver=("192.168.56.11",), bindings=None) -> CombinedEvaluator:
    return CombinedEvaluator((), _cnp(spec), (), {"default": {}}, NODES, apiserver, bindings)


def test_doc_apiserver_entity() -> None:
    """examples/policies/l3/entities/apiserver.yaml: env=dev may reach the API server."""
    ev = _ev({"endpointSelector": {"matchLabels": {"env": "dev"}},
              "egress": [{"toEntities": ["kube-apiserver"]}]})
    assert ev.check(DEV, "192.168.56.11", "TCP", 6443).allowed
    assert not ev.check(DEV, "203.0.113.10", "TCP", 443).allowed
    assert not ev.check(DEV, PROD, "TCP", 80).allowed
    assert ev.check(PROD, "203.0.113.10", "TCP", 443).allowed  # not selected


def test_doc_cidr_never_matches_cluster_identities() -> None:
    """"CIDR-based selectors do not match in-cluster entities (pods or nodes)"."""
    ev = _ev({"endpointSelector": {}, "egress": [{"toCIDR": ["0.0.0.0/0"]}]})
    assert ev.check(DEV, "203.0.113.10", "TCP", 443).allowed
    assert not ev.check(DEV, "192.168.56.12", "TCP", 10250).allowed  # a node
    assert not ev.check(DEV, PROD, "TCP", 80).allowed  # a pod


def test_doc_remote_node_and_host() -> None:
    """examples/policies/l3/entities/nodes.yaml: from remote-node; the own node is host."""
    ev = _ev({"endpointSelector": {"matchLabels": {"env": "dev"}},
              "ingress": [{"fromEntities": ["remote-node"]}]}, apiserver=())
    assert ev.check("192.168.56.12", DEV, "TCP", 8080).allowed  # node-b: remote
    assert ev.check("192.168.56.11", DEV, "TCP", 8080).allowed  # own node: always allowed
    assert not ev.check("203.0.113.10", DEV, "TCP", 8080).allowed


def test_doc_deny_wins_over_allow() -> None:
    """Deny Policies: an egressDeny rule denies even when an egress rule allows."""
    ev = _ev({"endpointSelector": {"matchLabels": {"env": "dev"}},
              "egress": [{"toEndpoints": [{}]}],
              "egressDeny": [{"toEndpoints": [{"matchLabels": {"env": "prod"}}],
                              "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]})
    assert not ev.check(DEV, PROD, "TCP", 80).allowed
    assert ev.check(DEV, PROD, "TCP", 81).allowed


def test_doc_toports_only_rule_admits_every_peer_and_empty_list_none() -> None:
    ev = _ev({"endpointSelector": {}, "ingress": [
        {"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}, {"fromEntities": []}]})
    assert ev.check(PROD, DEV, "TCP", 80).allowed
    assert ev.check("203.0.113.10", DEV, "TCP", 80).allowed
    assert not ev.check(PROD, DEV, "TCP", 81).allowed


def test_doc_fqdn_by_binding_at_connection_time() -> None:
    """examples/policies/l3/fqdn/fqdn.yaml: matchName allows the addresses DNS gave the
    name, while the answer holds."""
    bindings = NameBindings([NameBinding("My-Remote-Service.com.", "203.0.113.10", 100, 200)])
    ev = _ev({"endpointSelector": {}, "egress": [
        {"toFQDNs": [{"matchName": "my-remote-service.com"}]},
        {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                                          "k8s:k8s-app": "kube-dns"}}],
         "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}],
                      "rules": {"dns": [{"matchPattern": "*"}]}}]}]}, bindings=bindings)
    assert ev.check(DEV, bindings.endpoint("203.0.113.10", 150), "TCP", 443).allowed
    assert not ev.check(DEV, bindings.endpoint("203.0.113.10", 250), "TCP", 443).allowed
    assert not ev.check(DEV, NamedAddress("203.0.113.77", frozenset()), "TCP", 443).allowed
    dns = PodView("kube-system", "coredns", (("k8s-app", "kube-dns"),), (), "10.244.2.9")
    assert ev.check(DEV, dns, "UDP", 53).allowed


def test_fqdn_pattern() -> None:
    from generator.verify.names import pattern_matches

    assert pattern_matches("*.cilium.io", "sub.cilium.io")
    assert not pattern_matches("*.cilium.io", "cilium.io")
    assert not pattern_matches("*.cilium.io", "sub.sub.cilium.io")
    assert pattern_matches("part*ial.com", "part-extra-ial.com")
    assert pattern_matches("**.cilium.io", "test.app.cilium.io")
    assert not pattern_matches("**.cilium.io", "cilium.io")
