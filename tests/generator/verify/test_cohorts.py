"""Cohorts: check_policies, entry_evidence and rule_usage ask the evaluator once per
cohort of alike connections; their answers must be those of asking per connection.

The per-connection implementations they replaced are kept below as oracles and run
side by side on random traffic that has what the bookkeeping must get right: replicas
(same labels), one pod seen with two label sets, hostNetwork pods and node addresses
(own-node exemption), connections of a pod to itself, Service ports that differ from
the target port and DNS (hints), lower-case protocols and ICMP, Peer objects shared
and not, ClusterIP flows expanded to several backends (one flow_id, counted once per
verdict and per group), several inputs.
"""

from __future__ import annotations

import random

from generator.verify.check import (
    CheckedGroup, CheckResult, _hint, _rule_refs, _who, check_policies,
)
from generator.resolve.edges import EXTERNAL, NODE, WORKLOAD, Connection, Peer, PeerIds, PodView
from generator.review.evidence import EntryEvidence, entry_evidence
from generator.verify.cohorts import Cohort, cohorts, known_cohorts
from generator.verify.evaluator import POD, Evaluator, _peers_match, _ports_match, exempt
from generator.verify.policy import parse_policy
from generator.verify.usage import rule_usage

NAMESPACES = {"shop": {"team": "red"}, "tools": {"team": "blue"}, "kube-system": {}}
NODES = {"n1": ["192.168.0.1"], "n2": ["192.168.0.2", "fd00::2"]}

WEB1 = PodView("shop", "web-1", (("app", "web"),), (("http", "TCP", 8080),), "10.244.1.10", node="n1")
WEB2 = PodView("shop", "web-2", (("app", "web"),), (("http", "TCP", 8080),), "10.244.2.10", node="n2")
# web-1 again, relabelled during the recording: same pod, another identity
WEB1_V2 = PodView("shop", "web-1", (("app", "web"), ("v", "2")), (("http", "TCP", 8080),),
                  "10.244.1.10", node="n1")
API1 = PodView("shop", "api-1", (("app", "api"),), (("http", "TCP", 9090),), "10.244.1.11", node="n1")
API2 = PodView("shop", "api-2", (("app", "api"),), (("http", "TCP", 9091),), "10.244.2.11", node="n2")
ADMIN = PodView("tools", "admin-1", (("app", "admin"),), (), "10.244.1.12", node="n1")
DNS = PodView("kube-system", "coredns-1", (("k8s-app", "kube-dns"),), (("dns", "UDP", 53),),
              "10.244.2.53", node="n2")
AGENT = PodView("shop", "agent-n1", (("app", "web"),), (), "192.168.0.1", host_network=True, node="n1")
PODS = [WEB1, WEB2, WEB1_V2, API1, API2, ADMIN, DNS, AGENT]
ADDRESSES = ["192.168.0.1", "192.168.0.2", "fd00::2", "203.0.113.9", "198.51.100.7"]
INPUTS = ["a.jsonl", "b.jsonl", "c.pcap", "d.jsonl", "e.conntrack", "f.jsonl", "g.jsonl"]


def policy(spec: dict, name: str, namespace: str = "shop"):
    return parse_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                         "metadata": {"name": name, "namespace": namespace}, "spec": spec})


FIXED = [
    # the Service port (80) where the targetPort (9090) belongs: a hint
    policy({"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                         "ports": [{"port": 80}, {"port": "http"}]}]}, "api"),
    # egress isolated without DNS: a hint
    policy({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                        "ports": [{"port": 9090}, {"port": 9091}]},
                       {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]}]}, "web"),
]


def random_policy(rng: random.Random, i: int):
    peers = [{"podSelector": {"matchLabels": {"app": "web"}}},
             {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                                                    "values": ["api", "admin"]}]},
              "namespaceSelector": {}},
             {"namespaceSelector": {"matchLabels": {"team": "blue"}}},
             {"ipBlock": {"cidr": "192.168.0.0/24"}},
             {"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}},
             {"ipBlock": {"cidr": "fd00::/64"}}]
    ports = [{"port": 8080}, {"port": "http"}, {"protocol": "UDP", "port": 53},
             {"port": 9000, "endPort": 9500}, {"protocol": "TCP"}, {"protocol": "SCTP"}]

    def rule(key: str) -> dict:
        r: dict = {}
        if rng.random() < 0.7:
            r[key] = rng.sample(peers, rng.randint(1, 3))
        if rng.random() < 0.7:
            r["ports"] = rng.sample(ports, rng.randint(1, 3))
        return r

    spec = {"podSelector": rng.choice([{}, {"matchLabels": {"app": rng.choice(["web", "api", "admin"])}},
                                       {"matchLabels": {"v": "2"}}]),
            "policyTypes": rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]]),
            "ingress": [rule("from") for _ in range(rng.randint(0, 3))],
            "egress": [rule("to") for _ in range(rng.randint(0, 3))]}
    return policy(spec, f"r{i}", rng.choice(["shop", "tools", "kube-system"]))


def random_connections(rng: random.Random, n: int) -> list[Connection]:
    shared: dict[object, Peer] = {}

    def peer(end) -> Peer:
        if isinstance(end, str):
            node = next((name for name, ips in NODES.items() if end in ips), None)
            value = Peer(NODE, ip=end, node_name=node) if node else Peer(EXTERNAL, ip=end)
        elif end.host_network:
            value = Peer(NODE, ip=end.ip, node_name=end.node)
        else:
            # now and then another workload for the same pod object
            name = end.name.rsplit("-", 1)[0] + ("-canary" if rng.random() < 0.05 else "")
            value = Peer(WORKLOAD, end.namespace, "Deployment", name)
        if rng.random() < 0.3:  # an equal Peer, not the same object
            return Peer(value.kind, value.namespace, value.workload_kind, value.workload_name,
                        value.ip, value.node_name)
        return shared.setdefault(value, value)

    ends = PODS + ADDRESSES
    out: list[Connection] = []
    flow = 0
    while len(out) < n:
        src = rng.choice(ends)
        protocol = rng.choice(["TCP", "TCP", "UDP", "tcp", "SCTP", "ICMP"])
        port = None if protocol == "ICMP" else rng.choice([53, 80, 8080, 9090, 9091, 9200])
        service, service_port = None, None
        if rng.random() < 0.3:
            service, service_port = rng.choice([(("shop", "api"), 80), (("kube-system", "kube-dns"), 53),
                                                (("shop", "api"), None)])
        # a ClusterIP flow expanded to one connection per backend, all with its flow_id
        backends = rng.sample(ends, rng.randint(1, 3)) if rng.random() < 0.3 else [rng.choice(ends)]
        flow_id = -1 if rng.random() < 0.2 else (rng.randrange(flow + 1) if rng.random() < 0.1 else flow)
        flow += 1
        first = rng.randrange(1_000, 10_000)
        for dst in backends:
            if rng.random() < 0.05:
                dst = src  # to itself
            out.append(Connection(
                peer(src), peer(dst), protocol, port,
                src if isinstance(src, str) else src.ip or "", dst if isinstance(dst, str) else dst.ip or "",
                None if isinstance(src, str) else src, None if isinstance(dst, str) else dst,
                rng.randint(1, 5), first, first + rng.randrange(5_000),
                tuple(rng.sample(INPUTS, rng.choice([1, 1, 1, 2]))),
                service, service_port, flow_id))
    return out


# ---------------------------------------------------------------- the oracles


def reference_check(connections, policies, evaluator: Evaluator) -> CheckResult:
    """check_policies as it was, one evaluator call and one group update per connection."""
    no_hint_yet = object()
    groups: dict[tuple, list] = {}
    reasons: dict[int, str] = {}
    checked = allowed = denied = allowed_count = denied_count = 0
    counted: set[tuple] = set()
    peer_id = PeerIds()
    for c in connections:
        src = c.src_pod if c.src_pod is not None else c.src_ip
        dst = c.dst_pod if c.dst_pod is not None else c.dst_ip
        v = evaluator.check(src, dst, c.protocol, c.port)
        reason = reasons.get(id(v))
        if reason is None:
            reason = reasons[id(v)] = v.reason
        checked += 1
        new_flow = c.flow_id < 0 or (v.allowed, c.flow_id) not in counted
        counted.add((v.allowed, c.flow_id))
        if v.allowed:
            allowed += 1
            allowed_count += c.count if new_flow else 0
        else:
            denied += 1
            denied_count += c.count if new_flow else 0
        key = (peer_id(c.src), peer_id(c.dst), c.protocol,
               c.port if c.port is not None else -1, v.allowed, reason)
        new_in_group = c.flow_id < 0 or (key, c.flow_id) not in counted
        counted.add((key, c.flow_id))
        g = groups.get(key)
        if g is None:
            g = groups[key] = [c.count, 1, c.first_seen, c.last_seen, v,
                               f"{_who(c.src_pod, c.src_ip)} -> {_who(c.dst_pod, c.dst_ip)}",
                               c.port, set(), no_hint_yet, c.src, c.dst]
        else:
            g[0] += c.count if new_in_group else 0
            g[1] += 1
            g[2] = min(g[2], c.first_seen)
            g[3] = max(g[3], c.last_seen)
        if c.service is not None and c.service_port is not None:
            g[7].add(f"{c.service[0]}/{c.service[1]}:{c.service_port}")
        if g[8] is no_hint_yet and not v.allowed:
            g[8] = _hint(evaluator, c, src, dst, v)
    out = []
    for key in groups:
        _, _, proto, _, ok, reason = key
        count, n, first, last, v, example, port, services, hint, src, dst = groups[key]
        out.append(CheckedGroup(src, dst, proto, port, ok, count, n, first, last, reason,
                                v.denied_by, _rule_refs(v), example, v, tuple(sorted(services)),
                                None if hint is no_hint_yet else hint))
    out.sort(key=lambda g: (g.allowed, g.src, g.dst, g.protocol,
                            g.port if g.port is not None else -1, g.reason))
    return CheckResult(tuple(out), checked, allowed, denied, allowed_count, denied_count,
                       len(policies))


def reference_entries(e: Evaluator, src, dst, protocol: str, port: int | None) -> tuple:
    """Evaluator.matched_entries as it was: every rule of the selecting policies tried."""
    s, d = e._end(src), e._end(dst)
    protocol = protocol.upper()
    out: list = []
    for direction, end, peer in (("egress", s, d), ("ingress", d, s)):
        if end.kind != POD:
            continue
        selected = e._select(end.namespace, end.peer_key[2])
        for p in selected[0 if direction == "ingress" else 1]:
            for rule in getattr(p, direction):
                peers = (None,) if rule.peers is None else [
                    i for i, x in enumerate(rule.peers) if _peers_match((x,), peer)]
                if not peers:
                    continue
                ports = (None,) if rule.ports is None else [
                    i for i, x in enumerate(rule.ports) if _ports_match((x,), d, protocol, port)]
                out.extend((p.id, direction, rule.index, a, b) for a in peers for b in ports)
    return tuple(out)


def reference_evidence(connections, evaluator: Evaluator) -> dict:
    acc: dict = {}
    for c in connections:
        src = c.src_pod if c.src_pod is not None else c.src_ip
        dst = c.dst_pod if c.dst_pod is not None else c.dst_ip
        for entry in reference_entries(evaluator, src, dst, c.protocol, c.port):
            slot = acc.get(entry)
            if slot is None:
                slot = acc[entry] = [0, c.first_seen, c.last_seen, set(), set(), set()]
            slot[0] += c.count
            slot[1] = min(slot[1], c.first_seen)
            slot[2] = max(slot[2], c.last_seen)
            slot[3].update(c.inputs)
            if c.service is not None and c.service_port is not None:
                slot[4].add(f"{c.service[0]}/{c.service[1]}:{c.service_port}")
            slot[5].add((c.src if entry[1] == "ingress" else c.dst).display())
    return {k: EntryEvidence(v[0], v[1], v[2], tuple(sorted(v[3])), tuple(sorted(v[4])),
                             tuple(sorted(v[5])))
            for k, v in acc.items()}


def reference_cohorts(connections, e: Evaluator) -> tuple[Cohort, ...]:
    """Cohorts by their definition: connections grouped by their peers' values, both
    ends' EndpointKey numbers, protocol, port and exemption."""
    peer_id = PeerIds()
    members: dict[tuple, list[Connection]] = {}
    for c in connections:
        s = e.endpoint_key(c.src_pod if c.src_pod is not None else c.src_ip)
        d = e.endpoint_key(c.dst_pod if c.dst_pod is not None else c.dst_ip)
        key = (peer_id(c.src), peer_id(c.dst), s.peer, d.peer, d.ports, c.protocol, c.port, exempt(s, d))
        members.setdefault(key, []).append(c)
    flows: set[int] = set()
    repeats: set[int] = set()  # ids of connections whose flow_id an earlier one had
    for c in connections:
        if c.flow_id >= 0 and c.flow_id in flows:
            repeats.add(id(c))
        flows.add(c.flow_id)
    return tuple(
        Cohort(cs[0], cs[0].src_pod if cs[0].src_pod is not None else cs[0].src_ip,
               cs[0].dst_pod if cs[0].dst_pod is not None else cs[0].dst_ip,
               len(cs), sum(c.count for c in cs), sum(c.count for c in cs if id(c) not in repeats),
               min(c.first_seen for c in cs), max(c.last_seen for c in cs),
               frozenset(i for c in cs for i in c.inputs),
               frozenset((c.service, c.service_port) for c in cs
                         if c.service is not None and c.service_port is not None))
        for cs in members.values())


def evaluator(policies) -> Evaluator:
    return Evaluator(policies, NAMESPACES, NODES)


# ---------------------------------------------------------------- the tests


def test_per_cohort_answers_are_the_per_connection_ones() -> None:
    rng = random.Random(5)
    groups = denied_groups = hints = repeated = 0
    for round_ in range(40):
        policies = tuple(FIXED + [random_policy(rng, i) for i in range(rng.randint(0, 4))])
        connections = random_connections(rng, rng.randint(1, 120))
        expected = reference_check(connections, policies, evaluator(policies))
        evidence = reference_evidence(connections, evaluator(policies))
        # a tuple (its cohorts kept and shared), a list and an iterator
        for each in (tuple(connections), connections, iter(connections)):
            assert check_policies(each, policies, None, evaluator(policies)) == expected, round_
        shared, given = evaluator(policies), tuple(connections)
        assert check_policies(given, policies, None, shared) == expected
        for each in (tuple(connections), connections, iter(connections)):
            # dict order too: the review lists entries as they first matched
            assert list(entry_evidence(each, evaluator(policies)).items()) == list(evidence.items())
        assert list(entry_evidence(given, shared).items()) == list(evidence.items())
        assert known_cohorts(given, shared) is not None
        assert cohorts(given, shared).cohorts == reference_cohorts(connections, shared)
        # rule usage: per cohort when the check made them, else per connection
        for usage in (rule_usage(given, policies, shared), rule_usage(connections, policies, shared)):
            for rule in usage.rules:
                for use in rule.entries:
                    key = (use.policy, use.direction, use.rule, use.peer, use.port)
                    ev = evidence.get(key)
                    assert use.connections == (ev.connections if ev else 0), key
                    assert use.last_seen == (ev.last_seen if ev else None), key
        groups += len(expected.groups)
        denied_groups += sum(not g.allowed for g in expected.groups)
        hints += sum(g.hint is not None for g in expected.groups)
        repeated += len(cohorts(given, shared).repeated_flows)
    # the random traffic did reach what it is meant to exercise
    assert groups > 500 and denied_groups > 100 and hints > 20 and repeated > 50, \
        (groups, denied_groups, hints, repeated)


def test_cohorts_of_a_tuple_are_kept_with_the_evaluator() -> None:
    rng = random.Random(3)
    policies = tuple(FIXED)
    connections = tuple(random_connections(rng, 50))
    e = evaluator(policies)
    found = cohorts(connections, e)
    assert cohorts(connections, e) is found
    assert cohorts(tuple(list(connections)), e) is not found  # another tuple: made again
    assert cohorts(connections, evaluator(policies)) is not found
    assert cohorts(list(connections), e) == found
    assert known_cohorts(list(connections), e) is None
    assert sum(c.connections for c in found.cohorts) == len(connections)
    assert sum(c.count for c in found.cohorts) == sum(c.count for c in connections)


def test_counted_leaves_out_later_backends_of_a_flow() -> None:
    web, api1, api2 = (Peer(WORKLOAD, "shop", "Deployment", n) for n in ("web", "api", "api"))
    conns = tuple(
        Connection(web, dst_peer, "TCP", 9090, WEB1.ip, dst.ip, WEB1, dst, count, 10, 20, ("a",),
                   ("shop", "api"), 80, flow)
        for dst_peer, dst, count, flow in ((api1, API1, 3, 7), (api2, API2, 3, 7), (api1, API1, 2, -1),
                                           (api1, API1, 5, -1)))
    found = cohorts(conns, evaluator(()))
    # API1 and API2 differ in named ports: two cohorts
    assert [(c.connections, c.count, c.counted) for c in found.cohorts] == [(3, 10, 10), (1, 3, 0)]
    assert [(f.first, f.repeats) for f in found.repeated_flows] == [(0, ((conns[1], 1),))]
    assert found.cohorts[0].services == frozenset({(("shop", "api"), 80)})
    result = check_policies(conns, (), None, evaluator(()))
    # one group (same peers, port, verdict): the flow's second backend is not counted again
    assert [(g.connections, g.count) for g in result.groups] == [(4, 10)]
    assert (result.checked, result.allowed_count) == (4, 10)


def test_endpoint_keys_say_when_a_connection_is_exempt() -> None:
    e = evaluator(FIXED)
    key = e.endpoint_key
    assert exempt(key(WEB1), key(WEB1))  # itself
    assert exempt(key(WEB1), key(WEB1_V2))  # the same pod, whatever its labels then
    assert not exempt(key(WEB1), key(WEB2))
    assert exempt(key("192.168.0.1"), key(WEB1))  # its own node
    assert exempt(key(AGENT), key(API1))  # a hostNetwork pod on that node
    assert not exempt(key("192.168.0.2"), key(WEB1))
    assert not exempt(key("fd00::2"), key(WEB1))
    assert exempt(key("fd00::2"), key(WEB2))
    assert not exempt(key(WEB1), key("192.168.0.1"))  # egress to the own node is not
    assert not exempt(key("203.0.113.9"), key(WEB1))
    # and check agrees, for every pair
    for src in PODS + ADDRESSES:
        for dst in PODS + ADDRESSES:
            v = e.check(src, dst, "TCP", 8080)
            assert exempt(key(src), key(dst)) == (v.ingress.exemption is not None), (src, dst)
    # replicas look alike
    assert (key(WEB1).peer, key(WEB1).ports) == (key(WEB2).peer, key(WEB2).ports)
    assert key(API1).ports != key(API2).ports  # other named port numbers
