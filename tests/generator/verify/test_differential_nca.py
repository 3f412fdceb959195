"""Differential tests: our Evaluator against network-config-analyzer 2.1.0 (NCA).

Random clusters (namespaces with labels, pods with labels, IPs and named container
ports) and random policies covering every v1 construct - policyTypes explicit and
inferred, empty and non-empty selectors, matchLabels and all four operators, AND inside a
peer and OR across peers, namespace-only peers, ipBlock with except (IPv4 and IPv6),
protocols TCP/UDP/SCTP and the TCP default, numeric, named and ranged (endPort) ports,
empty rules, absent and empty from/to and ports, default-deny policies - are evaluated by
both implementations for every probe (source pod or address, destination pod or address,
protocol, port). Deterministic seeds; zero disagreements allowed.

What is not compared, and why (each is covered instead by a focused test, in this file
or in test_evaluator.py):

1. NCA 2.1.0 bug: in a peer with a namespaceSelector, a podSelector requirement with
   ``Exists``/``DoesNotExist`` only matches pods of the policy's own namespace
   (K8sPolicyYamlParser passes self.namespace to get_peers_with_key). We never generate
   Exists/DoesNotExist in a podSelector that sits next to a namespaceSelector; the bug is
   pinned by ``test_nca_exists_with_namespace_selector_bug``.
2. NCA rejects policies the API server accepts: an ``ingress`` section (even ``[]``)
   without Ingress in policyTypes, an ``egress`` section without Egress in policyTypes,
   and policyTypes ordered ``[Egress, Ingress]``. We do not generate those for NCA;
   ``test_nca_rejects_*`` pins the rejection and test_evaluator.py our API semantics
   (the section is ignored).
3. NCA infers Egress for ``egress: []`` without policyTypes (it tests "egress" in spec);
   the API server's defaulting tests ``len(spec.egress) != 0``, so such a policy is
   ingress-only. Not generated; pinned by ``test_nca_empty_egress_list_differs``.
4. NCA treats a namespace label that is absent as the empty string, so ``In [""]`` and
   ``NotIn [""]`` in a namespaceSelector disagree with Kubernetes label semantics. We never
   generate empty values in namespace selectors (pod selectors use them freely).
5. NCA models pods without IP addresses, so an ipBlock never matches a pod there, while
   we match pod IPs (common CNI behaviour). Every generated ipBlock leaves the pod CIDR
   out (``except`` carves it out of 0.0.0.0/0 and 10.0.0.0/8); matching pod IPs is tested
   in test_evaluator.py.
6. Exemptions NCA does not model: a pod's connections to itself (Kubernetes: "a pod
   cannot block access to itself") are not probed; node addresses and hostNetwork pods
   are not generated (the own-node exemption and hostNetwork handling are tested in
   test_evaluator.py).
7. Address-to-address probes are meaningless for NetworkPolicy and not probed.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from generator.resolve.edges import PodView
from generator.verify.evaluator import Evaluator
from generator.verify.policy import parse_policy

pytest.importorskip("nca", reason="network-config-analyzer is a test dependency: pip install -e .[test]")

from nca_oracle import NcaOracle, NcaRejected  # noqa: E402  (helper next to this file)

POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
POD_LABELS = {
    "app": ["web", "api", "db", "cache"],
    "tier": ["front", "back"],
    "env": ["prod", "dev", ""],
    "role": ["a", "b"],
}
NS_LABELS = {"team": ["red", "blue"], "env": ["prod", "dev"], "zone": ["z1", "z2"]}
PORT_NAMES = ["http", "metrics", "dns", "grpc", "admin"]
PORTS = [53, 80, 443, 5353, 8080, 8443, 9090, 9100]
PROTOCOLS = ["TCP", "UDP", "SCTP"]
# (cidr, except): none of them may cover a pod IP (exclusion 5).
IP_BLOCKS = [
    ("0.0.0.0/0", ["10.244.0.0/16"]),
    ("0.0.0.0/0", ["10.244.0.0/16", "192.168.0.0/16"]),
    ("10.0.0.0/8", ["10.244.0.0/16", "10.1.0.0/16"]),
    ("192.168.0.0/16", ["192.168.1.0/24"]),
    ("192.168.1.0/24", []),
    ("172.16.0.0/12", []),
    ("8.8.8.8/32", []),
    ("::/0", []),
    ("2001:db8::/32", ["2001:db8:1::/48"]),
    ("fd00::/8", []),
]
PROBE_IPS = [
    "10.0.0.1", "10.1.2.3", "10.255.255.255", "192.168.0.1", "192.168.1.5", "192.168.2.1",
    "172.16.5.5", "172.32.0.1", "8.8.8.8", "8.8.4.4", "1.1.1.1", "2001:db8::1",
    "2001:db8:1::1", "2001:db9::1", "fd00::5", "2606:4700::1111",
]


@dataclass
class Scenario:
    seed: int
    namespaces: dict[str, dict[str, str]]
    pods: list[PodView]
    policies: list[dict]
    probe_ports: list[int]  # every port worth probing
    policy_ports: list[int]  # ports and range edges (and one past them) the policies name


def _labels(rng: random.Random, domain: dict[str, list[str]], p: float) -> dict[str, str]:
    return {k: rng.choice(vs) for k, vs in domain.items() if rng.random() < p}


def _selector(rng: random.Random, domain: dict[str, list[str]], exists_ops: bool) -> dict:
    if rng.random() < 0.2:
        return {}
    sel: dict = {}
    if rng.random() < 0.6:
        keys = rng.sample(sorted(domain), rng.randint(1, 2))
        sel["matchLabels"] = {k: rng.choice(domain[k]) for k in keys}
    if rng.random() < 0.5 or not sel:
        ops = ["In", "NotIn"] + (["Exists", "DoesNotExist"] if exists_ops else [])
        exprs = []
        for key in rng.sample(sorted(domain), rng.randint(1, 2)):
            op = rng.choice(ops)
            expr: dict = {"key": key, "operator": op}
            if op in ("In", "NotIn"):
                values = domain[key] + ["unused"]
                expr["values"] = rng.sample(values, rng.randint(1, min(2, len(values))))
            exprs.append(expr)
        sel["matchExpressions"] = exprs
    return sel


def _peer(rng: random.Random, ns_domain: dict[str, list[str]]) -> dict:
    r = rng.random()
    if r < 0.3:
        return {"podSelector": _selector(rng, POD_LABELS, exists_ops=True)}
    if r < 0.55:
        return {"namespaceSelector": _selector(rng, ns_domain, exists_ops=True)}
    if r < 0.8:
        # Exclusion 1: no Exists/DoesNotExist in a podSelector next to a namespaceSelector.
        return {
            "namespaceSelector": _selector(rng, ns_domain, exists_ops=True),
            "podSelector": _selector(rng, POD_LABELS, exists_ops=False),
        }
    cidr, excepts = rng.choice(IP_BLOCKS)
    block: dict = {"cidr": cidr}
    if excepts:
        block["except"] = list(excepts)
    return {"ipBlock": block}


def _port(rng: random.Random) -> dict:
    entry: dict = {}
    if rng.random() < 0.7:
        entry["protocol"] = rng.choice(PROTOCOLS)
    r = rng.random()
    if r < 0.45:
        entry["port"] = rng.choice(PORTS)
    elif r < 0.7:
        entry["port"] = rng.choice(PORT_NAMES)
    elif r < 0.85:
        start = rng.choice(PORTS)
        entry["port"] = start
        entry["endPort"] = min(65535, start + rng.choice([0, 1, 10, 1000]))
    return entry


def _rule(rng: random.Random, peers_key: str, ns_domain: dict[str, list[str]]) -> dict:
    rule: dict = {}
    r = rng.random()
    if r < 0.05:
        rule[peers_key] = []
    elif r > 0.2:
        rule[peers_key] = [_peer(rng, ns_domain) for _ in range(rng.randint(1, 3))]
    r = rng.random()
    if r < 0.05:
        rule["ports"] = []
    elif r > 0.3:
        rule["ports"] = [_port(rng) for _ in range(rng.randint(1, 3))]
    return rule


def _policy(rng: random.Random, name: str, namespace: str, ns_domain: dict[str, list[str]]) -> dict:
    spec: dict = {"podSelector": _selector(rng, POD_LABELS, exists_ops=True)}
    mode = rng.choice(["inferred", "inferred", "Ingress", "Egress", "both"])
    ingress = [_rule(rng, "from", ns_domain) for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))]
    egress = [_rule(rng, "to", ns_domain) for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))]
    if mode == "inferred":
        if ingress or rng.random() < 0.5:
            spec["ingress"] = ingress
        if egress:  # exclusion 3: never `egress: []` without policyTypes
            spec["egress"] = egress
    else:
        # Exclusion 2: sections only for listed types, types in API order.
        spec["policyTypes"] = ["Ingress", "Egress"] if mode == "both" else [mode]
        if mode in ("Ingress", "both") and (ingress or rng.random() < 0.5):
            spec["ingress"] = ingress
        if mode in ("Egress", "both") and (egress or rng.random() < 0.5):
            spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def make_scenario(seed: int, n_namespaces: int = 4, n_pods: int = 24, n_policies: int = 14) -> Scenario:
    rng = random.Random(seed)
    namespaces = {f"ns{i}": _labels(rng, NS_LABELS, 0.6) for i in range(n_namespaces)}
    ns_domain = dict(NS_LABELS)
    ns_domain["kubernetes.io/metadata.name"] = sorted(namespaces)
    pod_ips = iter(POD_CIDR.hosts())
    pods = []
    for i in range(n_pods):
        names = rng.sample(PORT_NAMES, rng.randint(0, 3))
        named = tuple(
            (n, rng.choices(PROTOCOLS, weights=[7, 2, 1])[0], rng.choice(PORTS)) for n in names
        )
        pods.append(
            PodView(
                namespace=rng.choice(sorted(namespaces)),
                name=f"pod{i}",
                labels=tuple(sorted(_labels(rng, POD_LABELS, 0.6).items())),
                named_ports=named,
                ip=str(next(pod_ips)),
            )
        )
    policies = [
        _policy(rng, f"np{i}", rng.choice(sorted(namespaces)), ns_domain) for i in range(n_policies)
    ]
    edges: set[int] = set()
    for pol in policies:
        for section in ("ingress", "egress"):
            for rule in pol["spec"].get(section) or ():
                for entry in rule.get("ports") or ():
                    if isinstance(entry.get("port"), int):
                        end = entry.get("endPort", entry["port"])
                        edges.update((entry["port"] - 1, entry["port"], end, end + 1))
    ports = {1, 65535} | edges
    for p in PORTS:
        ports.update((p - 1, p, p + 1))
    valid = lambda xs: sorted(p for p in xs if 1 <= p <= 65535)  # noqa: E731
    return Scenario(seed, namespaces, pods, policies, valid(ports), valid(edges) or valid(ports))


def _pod_object(pod: PodView) -> dict:
    container: dict = {"name": "main", "image": "example"}
    if pod.named_ports:
        container["ports"] = [
            {"name": n, "containerPort": number, "protocol": proto} for n, proto, number in pod.named_ports
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": dict(pod.labels)},
        "spec": {"containers": [container]},
        "status": {"podIP": pod.ip, "podIPs": [{"ip": pod.ip}]},
    }


def _namespace_object(name: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _oracle(tmp: Path, sc: Scenario) -> NcaOracle:
    return NcaOracle(
        tmp,
        [_namespace_object(n, labels) for n, labels in sc.namespaces.items()],
        [_pod_object(p) for p in sc.pods],
        sc.policies,
    )


def _evaluator(sc: Scenario) -> Evaluator:
    return Evaluator([parse_policy(p) for p in sc.policies], sc.namespaces)


def _probes(sc: Scenario, rng: random.Random, per_pair: int):
    """(src, dst, protocol, port) with src/dst a PodView or an address string.

    Per pod pair: one probe on a named port of the destination (mostly with its own
    protocol), one on a port or range edge the policies name, the rest at random.
    """
    combos = [(proto, port) for proto in PROTOCOLS for port in sc.probe_ports]
    for src in sc.pods:
        for dst in sc.pods:
            if src is dst:
                continue  # exclusion 6
            picks = rng.sample(combos, per_pair - 2)
            if dst.named_ports:
                _, proto, number = rng.choice(dst.named_ports)
                picks.append((proto if rng.random() < 0.8 else rng.choice(PROTOCOLS), number))
            else:
                picks.append(rng.choice(combos))
            picks.append((rng.choice(PROTOCOLS), rng.choice(sc.policy_ports)))
            for proto, port in picks:
                yield src, dst, proto, port
        for ip in PROBE_IPS:
            for proto, port in rng.sample(combos, 2):
                yield src, ip, proto, port
                yield ip, src, proto, port


def _key(end: PodView | str) -> str:
    return f"{end.namespace}/{end.name}" if isinstance(end, PodView) else end


SEEDS = range(1000, 1040)
LARGE_SEEDS = range(2000, 2004)  # more namespaces and policies per cluster
PER_PAIR = 4


def _scenarios():
    for seed in SEEDS:
        yield make_scenario(seed)
    for seed in LARGE_SEEDS:
        yield make_scenario(seed, n_namespaces=8, n_pods=40, n_policies=40)


@pytest.mark.slow
def test_evaluator_agrees_with_nca(tmp_path: Path) -> None:
    total = 0
    allowed = 0
    disagreements = []
    for sc in _scenarios():
        seed = sc.seed
        oracle = _oracle(tmp_path / str(seed), sc)
        ours = _evaluator(sc)
        rng = random.Random(seed * 7919)
        for src, dst, proto, port in _probes(sc, rng, PER_PAIR):
            total += 1
            verdict = ours.check(src, dst, proto, port)
            theirs = oracle.allowed(_key(src), _key(dst), proto, port)
            allowed += verdict.allowed
            if verdict.allowed != theirs:
                disagreements.append(
                    f"seed {seed}: {_key(src)} -> {_key(dst)} {proto}/{port}: ours {verdict.allowed}, "
                    f"NCA {theirs}; {verdict.reason}"
                )
    assert total >= 100_000
    # Both outcomes must be well represented, or the comparison proves little.
    assert 0.2 < allowed / total < 0.8, allowed / total
    assert not disagreements, f"{len(disagreements)} of {total} probes disagree:\n" + "\n".join(disagreements[:20])


# ------------------------------------------------------------- pinned NCA differences


def _two_namespace_case(tmp: Path, policy_spec: dict) -> tuple[NcaOracle, Evaluator, PodView, PodView]:
    client = PodView("a", "client", (("app", "client"),), (), "10.244.0.1")
    server = PodView("b", "server", (("app", "server"), ("debug", "on")), (("http", "TCP", 8080),), "10.244.0.2")
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "a"},
        "spec": policy_spec,
    }
    sc = Scenario(0, {"a": {}, "b": {"team": "red"}}, [client, server], [policy], [], [])
    return _oracle(tmp, sc), _evaluator(sc), client, server


def test_nca_exists_with_namespace_selector_bug(tmp_path: Path) -> None:
    """Exclusion 1: NCA drops pods of other namespaces for Exists next to a namespaceSelector."""
    spec = {
        "podSelector": {"matchLabels": {"app": "client"}},
        "policyTypes": ["Egress"],
        "egress": [{"to": [{
            "namespaceSelector": {"matchLabels": {"team": "red"}},
            "podSelector": {"matchExpressions": [{"key": "debug", "operator": "Exists"}]},
        }]}],
    }
    oracle, ours, client, server = _two_namespace_case(tmp_path, spec)
    assert ours.check(client, server, "TCP", 8080).allowed
    assert not oracle.allowed("a/client", "b/server", "TCP", 8080)


def test_nca_rejects_ingress_section_without_ingress_type(tmp_path: Path) -> None:
    """Exclusion 2: the API server accepts this (the ingress section is ignored)."""
    spec = {"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}], "egress": []}
    with pytest.raises(NcaRejected):
        _two_namespace_case(tmp_path, spec)
    policy = parse_policy({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "a"}, "spec": spec,
    })
    assert policy.policy_types == ("Egress",)


def test_nca_rejects_egress_section_without_egress_type(tmp_path: Path) -> None:
    spec = {"podSelector": {}, "policyTypes": ["Ingress"], "egress": [{}]}
    with pytest.raises(NcaRejected):
        _two_namespace_case(tmp_path, spec)


def test_nca_rejects_policy_types_in_other_order(tmp_path: Path) -> None:
    spec = {"podSelector": {}, "policyTypes": ["Egress", "Ingress"]}
    with pytest.raises(NcaRejected):
        _two_namespace_case(tmp_path, spec)


def test_nca_empty_egress_list_differs(tmp_path: Path) -> None:
    """Exclusion 3: ``egress: []`` without policyTypes does not isolate for egress."""
    spec = {"podSelector": {"matchLabels": {"app": "client"}}, "egress": []}
    oracle, ours, client, server = _two_namespace_case(tmp_path, spec)
    assert ours.check(client, server, "TCP", 8080).allowed
    assert not oracle.allowed("a/client", "b/server", "TCP", 8080)


def test_generated_ip_blocks_never_cover_pod_ips() -> None:
    """Exclusion 5 holds by construction: check it rather than trust it."""
    for cidr, excepts in IP_BLOCKS:
        net = ipaddress.ip_network(cidr)
        if net.version == POD_CIDR.version and POD_CIDR.overlaps(net):
            assert any(POD_CIDR.subnet_of(ipaddress.ip_network(e)) for e in excepts), cidr


def test_scenarios_cover_every_construct() -> None:
    """The random policies really contain each construct the comparison claims to cover."""
    seen: set[str] = set()
    for sc in _scenarios():
        for pol in sc.policies:
            spec = pol["spec"]
            seen.add("types:" + ",".join(spec.get("policyTypes", ["inferred"])))
            if spec["podSelector"] == {}:
                seen.add("empty-pod-selector")
            for section, key in (("ingress", "from"), ("egress", "to")):
                for rule in spec.get(section) or ():
                    if not rule:
                        seen.add("rule:empty")
                    seen.add(f"{key}:" + ("absent" if key not in rule else "empty" if not rule[key] else "peers"))
                    seen.add("ports:" + ("absent" if "ports" not in rule else "empty" if not rule["ports"] else "set"))
                    for peer in rule.get(key) or ():
                        seen.add("peer:" + "+".join(sorted(peer)))
                        for sel in (peer.get("podSelector"), peer.get("namespaceSelector")):
                            for expr in (sel or {}).get("matchExpressions", ()):
                                seen.add("op:" + expr["operator"])
                        if "ipBlock" in peer:
                            seen.add("ipv6" if ":" in peer["ipBlock"]["cidr"] else "ipv4")
                            if peer["ipBlock"].get("except"):
                                seen.add("except")
                    for port in rule.get("ports") or ():
                        seen.add("protocol:" + port.get("protocol", "default"))
                        p = port.get("port")
                        seen.add("port:" + ("range" if "endPort" in port else "none" if p is None
                                            else "named" if isinstance(p, str) else "number"))
    expected = {
        "types:inferred", "types:Ingress", "types:Egress", "types:Ingress,Egress", "empty-pod-selector",
        "rule:empty",
        "from:absent", "from:empty", "from:peers", "to:absent", "to:empty", "to:peers",
        "ports:absent", "ports:empty", "ports:set", "peer:podSelector", "peer:namespaceSelector",
        "peer:namespaceSelector+podSelector", "peer:ipBlock", "op:In", "op:NotIn", "op:Exists",
        "op:DoesNotExist", "ipv4", "ipv6", "except", "protocol:default", "protocol:TCP",
        "protocol:UDP", "protocol:SCTP", "port:none", "port:number", "port:named", "port:range",
    }
    assert expected <= seen, sorted(expected - seen)
