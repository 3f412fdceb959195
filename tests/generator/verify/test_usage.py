"""Rule usage: which policy, rule, peer element and port entry allowed each connection."""

from __future__ import annotations

import random
from pathlib import Path

from generator.resolve.edges import EXTERNAL, WORKLOAD, Connection, Peer, PodView
from generator.inventory.model import Inventory, Pod
from generator.pipeline import observe
from generator.verify.evaluator import Evaluator
from generator.verify.policy import load_policies, parse_policy
from generator.verify.usage import describe_peer, describe_port, rule_usage
from recorder.sources import ReadOptions

ASSETS = Path(__file__).parent / "assets"
POLICIES = ASSETS / "policies"
NAMESPACES = {"shop": {"team": "red"}, "tools": {"team": "blue"}}
NODES = {"n1": ["192.168.0.1"]}

WEB = PodView("shop", "web-1", (("app", "web"),), (("http", "TCP", 8080),), "10.244.1.10", node="n1")
API = PodView("shop", "api-1", (("app", "api"),), (("http", "TCP", 9090),), "10.244.1.11", node="n1")
ADMIN = PodView("tools", "admin-1", (("app", "admin"),), (), "10.244.1.12", node="n1")


def policy(spec: dict, name: str = "p", namespace: str = "shop"):
    return parse_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                         "metadata": {"name": name, "namespace": namespace}, "spec": spec})


def connection(src, dst, port: int | None, protocol: str = "TCP", count: int = 1,
               last_seen: int = 100) -> Connection:
    def peer(end):
        if isinstance(end, str):
            return Peer(EXTERNAL, ip=end)
        return Peer(WORKLOAD, end.namespace, "Deployment", end.name.rsplit("-", 1)[0])

    return Connection(peer(src), peer(dst), protocol, port,
                      src if isinstance(src, str) else src.ip, dst if isinstance(dst, str) else dst.ip,
                      None if isinstance(src, str) else src, None if isinstance(dst, str) else dst,
                      count, 1, last_seen)


API_POLICY = {
    "podSelector": {"matchLabels": {"app": "api"}},
    "policyTypes": ["Ingress", "Egress"],
    "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app": "web"}}},
                  {"namespaceSelector": {"matchLabels": {"team": "blue"}},
                   "podSelector": {"matchLabels": {"app": "admin"}}}],
         "ports": [{"port": 9090}, {"port": 9443}, {"port": "http"}]},
        {},  # every peer, every port
    ],
    "egress": [{"to": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}}],
                "ports": [{"protocol": "TCP", "port": 443}]}],
}


def test_entries_name_the_peer_and_port_that_matched() -> None:
    e = Evaluator([policy(API_POLICY, "api")], NAMESPACES, NODES)
    assert set(e.matched_entries(WEB, API, "TCP", 9090)) == {
        # peer 0 (app=web); port 0 (9090) and port 2 (named http = 9090 on the api pod)
        ("shop/api", "ingress", 0, 0, 0), ("shop/api", "ingress", 0, 0, 2),
        ("shop/api", "ingress", 1, None, None),
    }
    assert set(e.matched_entries(ADMIN, API, "TCP", 9443)) == {
        ("shop/api", "ingress", 0, 1, 1), ("shop/api", "ingress", 1, None, None)}
    # WEB is not selected by the policy: nothing of it applies at WEB's end.
    assert e.matched_entries(API, WEB, "TCP", 8080) == ()
    assert e.matched_entries(API, "203.0.113.7", "TCP", 443) == (("shop/api", "egress", 0, 0, 0),)
    assert e.matched_entries(API, "203.0.113.200", "TCP", 443) == ()  # in except
    assert e.matched_entries(API, "203.0.113.7", "UDP", 443) == ()


def test_entries_count_a_side_even_when_the_other_side_denies() -> None:
    deny_web_egress = {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]}
    e = Evaluator([policy(API_POLICY, "api"), policy(deny_web_egress, "web")], NAMESPACES, NODES)
    v = e.check(WEB, API, "TCP", 9443)
    assert not v.allowed and v.denied_by == "source egress"
    assert ("shop/api", "ingress", 0, 0, 1) in e.matched_entries(WEB, API, "TCP", 9443)


def _random_spec(rng: random.Random) -> dict:
    peers = [{"podSelector": {"matchLabels": {"app": "web"}}},
             {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                                                    "values": ["api", "admin"]}]},
              "namespaceSelector": {}},
             {"namespaceSelector": {"matchLabels": {"team": "blue"}}},
             {"ipBlock": {"cidr": "10.244.1.0/24", "except": ["10.244.1.11/32"]}},
             {"ipBlock": {"cidr": "203.0.113.0/24"}}]
    ports = [{"port": 8080}, {"port": "http"}, {"protocol": "UDP", "port": 53},
             {"port": 9000, "endPort": 9500}, {"protocol": "TCP"}]

    def rule(key: str) -> dict:
        r: dict = {}
        if rng.random() < 0.8:
            r[key] = rng.sample(peers, rng.randint(1, 3))
        if rng.random() < 0.8:
            r["ports"] = rng.sample(ports, rng.randint(1, 3))
        return r

    return {"podSelector": rng.choice([{}, {"matchLabels": {"app": rng.choice(["web", "api", "admin"])}}]),
            "policyTypes": rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]]),
            "ingress": [rule("from") for _ in range(rng.randint(0, 3))],
            "egress": [rule("to") for _ in range(rng.randint(0, 3))]}


def test_entries_agree_with_check_and_each_entry_alone_allows() -> None:
    """Oracle: the evaluator's own verdicts. Rules in entries == rules in allowed_by, and a
    policy reduced to one entry's rule with only that peer and port still allows that side."""
    rng = random.Random(11)
    ends = [WEB, API, ADMIN, "203.0.113.9", "192.168.0.1"]
    checked = 0
    for round_ in range(60):
        specs = [_random_spec(rng) for _ in range(rng.randint(1, 3))]
        namespaces = [rng.choice(["shop", "tools"]) for _ in specs]
        policies = [policy(s, f"p{i}", ns) for i, (s, ns) in enumerate(zip(specs, namespaces))]
        e = Evaluator(policies, NAMESPACES, NODES)
        for _ in range(25):
            src, dst = rng.choice(ends), rng.choice(ends)
            protocol, port = rng.choice([("TCP", 8080), ("TCP", 9090), ("UDP", 53), ("TCP", 9200)])
            v = e.check(src, dst, protocol, port)
            entries = e.matched_entries(src, dst, protocol, port)
            assert {(p, d, r) for p, d, r, _, _ in entries} == (
                {(p, "egress", r) for p, r in v.egress.allowed_by}
                | {(p, "ingress", r) for p, r in v.ingress.allowed_by}), (round_, src, dst, port)
            by_id = {p.id: (s, p.namespace) for s, p in zip(specs, policies)}
            for pid, direction, r, peer_i, port_i in entries:
                spec, ns = by_id[pid]
                raw = dict(spec[direction][r])
                key = "from" if direction == "ingress" else "to"
                if peer_i is not None:
                    raw[key] = [raw[key][peer_i]]
                if port_i is not None:
                    raw["ports"] = [raw["ports"][port_i]]
                alone = Evaluator([policy({"podSelector": spec["podSelector"], "policyTypes": spec["policyTypes"],
                                           direction: [raw]}, "alone", ns)], NAMESPACES, NODES)
                side = getattr(alone.check(src, dst, protocol, port), direction)
                assert side.allowed_by == (("%s/alone" % ns, 0),), (pid, direction, r, peer_i, port_i)
                checked += 1
    assert checked > 300, checked  # the oracle really ran


def test_rule_usage_counts_and_lists_what_was_not_used() -> None:
    only_egress = {"podSelector": {}, "policyTypes": ["Egress"],
                   "ingress": [{"from": [{"podSelector": {}}]}]}  # ignored: not in policyTypes
    policies = [policy(API_POLICY, "api"), policy(only_egress, "egress-only")]
    e = Evaluator(policies, NAMESPACES, NODES)
    conns = [connection(WEB, API, 9090, count=3, last_seen=50),
             connection(WEB, API, 9090, count=2, last_seen=70),
             connection(API, "203.0.113.7", 443, count=4)]
    usage = rule_usage(conns, policies, e)
    by_ref = {r.ref: r for r in usage.rules}
    assert set(by_ref) == {"shop/api ingress[0]", "shop/api ingress[1]", "shop/api egress[0]",
                           "shop/egress-only ingress[0]"}
    rule0 = by_ref["shop/api ingress[0]"]
    assert [(x.peer, x.port, x.connections) for x in rule0.entries] == [
        (0, 0, 5), (0, 1, 0), (0, 2, 5), (1, 0, 0), (1, 1, 0), (1, 2, 0)]
    assert rule0.entries[0].last_seen == 70
    assert by_ref["shop/api ingress[1]"].connections == 5
    assert by_ref["shop/api egress[0]"].connections == 4
    assert [r.ref for r in usage.unused_rules] == ["shop/egress-only ingress[0]"]
    assert "policyTypes does not list Ingress" in (usage.unused_rules[0].note or "")
    assert [(x.policy, x.rule, x.peer, x.port) for x in usage.unused_entries] == [
        ("shop/api", 0, 0, 1), ("shop/api", 0, 1, 0), ("shop/api", 0, 1, 1), ("shop/api", 0, 1, 2)]
    assert usage.unused_entries[1].peer_text == "pods app=admin in namespaces team=blue"
    assert usage.unused_entries[0].port_text == "TCP/9443"


def test_rule_usage_notes_policies_that_select_no_pod() -> None:
    ghost = {"podSelector": {"matchLabels": {"app": "ghost"}}, "ingress": [{}]}
    policies = [policy(ghost, "ghost"), policy(API_POLICY, "api")]
    inventory = Inventory(pods=(Pod("shop", "api-1", labels=(("app", "api"),)),))
    usage = rule_usage([], policies, Evaluator(policies, NAMESPACES, NODES), inventory)
    notes = {r.ref: r.note for r in usage.rules}
    assert notes["shop/ghost ingress[0]"] == "the policy selects no pod in the snapshot"
    assert notes["shop/api ingress[0]"] is None
    assert len(usage.unused_rules) == len(usage.rules)  # no traffic: nothing used


def test_readable_peers_and_ports() -> None:
    p = policy({"podSelector": {}, "ingress": [{"from": [
        {"podSelector": {"matchLabels": {"app": "web"}}},
        {"podSelector": {}},
        {"namespaceSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tools"}},
         "podSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}},
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
        "ports": [{"port": 80}, {"port": "http"}, {"port": 8000, "endPort": 8099},
                  {"protocol": "UDP"}]}]})
    rule = p.ingress[0]
    assert [describe_peer(x, "shop") for x in rule.peers] == [
        "pods app=web in namespace shop", "every pod in namespace shop",
        "every pod in every namespace", "pods tier notin (db) in namespace tools",
        "ipBlock 10.0.0.0/8 except 10.1.0.0/16"]
    assert [describe_port(x) for x in rule.ports] == [
        "TCP/80", "TCP/http (named port)", "TCP/8000-8099", "every UDP port"]


def test_usage_of_the_shop_scenario() -> None:
    loaded = load_policies([str(POLICIES / "common"), str(POLICIES / "dns.yaml"),
                            str(POLICIES / "api.yaml")])
    observed = observe([str(ASSETS / "shop" / "flows.jsonl")], [str(ASSETS / "shop" / "cluster.json")],
                       ReadOptions())
    e = Evaluator.from_inventory(loaded.policies, observed.index.inventory)
    usage = rule_usage(observed.resolved.connections, loaded.policies, e, observed.index.inventory)
    assert [r.ref for r in usage.unused_rules] == ["shop/api ingress[1]"]  # admin on 9090
    assert [(x.policy, x.direction, x.rule, x.peer, x.port, x.port_text) for x in usage.unused_entries] == [
        ("shop/web", "egress", 0, 0, 1, "TCP/8443")]
    used = {r.ref: r for r in usage.rules if r.used}
    # web -> api arrived at ClusterIP:80; the rule matched the targetPort 8080
    assert used["shop/web egress[0]"].entries[0].port_text == "TCP/8080"
    dns = used["shop/allow-dns egress[0]"]
    assert all(x.used for x in dns.entries)  # UDP and TCP 53 both observed
