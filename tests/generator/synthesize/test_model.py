"""The neutral policy model: built from edges, rendered by the kubernetes renderer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from generator.inventory.refs import WorkloadRef
from generator.output.yamlout import strip_comments
from generator.pipeline import observe
from generator.synthesize import model as m
from generator.synthesize.render import render_policies
from generator.synthesize.render.kubernetes import render
from generator.synthesize.synthesis import SynthesisOptions, build_model, is_dns_edge
from recorder.sources import ReadOptions

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"


@pytest.fixture(scope="module")
def demo():
    observed = observe([str(DEMO / "flows")], [str(DEMO / "cluster.json")], ReadOptions())
    return observed, build_model(observed.edges, observed.index, SynthesisOptions())


def _walk(obj):
    yield obj
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _walk(getattr(obj, f.name))
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            yield from _walk(x)


def test_the_model_holds_no_dialect(demo) -> None:
    _, built = demo
    kinds = {type(x) for x in _walk(built.model)}
    assert dict not in kinds and list not in kinds  # no manifest fragments


def test_every_observed_connection_is_evidence_of_exactly_one_rule_port(demo) -> None:
    observed, built = demo
    scope = set(built.model.namespaces)
    policies = {(p.namespace, p.workload.kind, p.workload.name): p for p in built.model.workloads}
    for e in observed.edges:
        if e.port is None:
            continue
        for side, direction in ((e.dst, "ingress"), (e.src, "egress")):
            if side.kind != "workload" or side.namespace not in scope:
                continue
            if direction == "egress" and is_dns_edge(observed.index, e):
                continue  # in the namespace's DNS baseline
            p = policies[(side.namespace, side.workload_kind, side.workload_name)]
            other = e.src if direction == "ingress" else e.dst
            # an external destination is behind the peer of its DNS names
            hits = [rp for r in getattr(p, direction) if other.display() in r.peer.members
                    and (r.peer.kind != m.EXTERNAL or direction == "ingress"
                         or r.peer.names == e.names)
                    for rp in r.ports if rp.port == m.PortSpec(e.protocol, e.port)]
            assert len(hits) == 1, (e, direction)
            assert hits[0].evidence.connections >= e.count
    total = sum(rp.evidence.connections for p in built.model.workloads
                for r in p.ingress for rp in r.ports)
    assert total == sum(e.count for e in observed.edges if e.port is not None
                        and e.dst.kind == "workload" and e.dst.namespace in scope)


def test_baselines_carry_dns_with_its_evidence(demo) -> None:
    _, built = demo
    assert [b.namespace for b in built.model.baselines] == list(built.model.namespaces)
    for b in built.model.baselines:
        assert b.dns is not None and b.dns.resolvers
        assert 53 in b.dns.udp_ports and 53 in b.dns.tcp_ports
    assert any(b.dns.evidence and b.dns.evidence.connections for b in built.model.baselines)


def test_without_default_deny_each_workload_policy_carries_dns(demo) -> None:
    observed, _ = demo
    built = build_model(observed.edges, observed.index, SynthesisOptions(default_deny=False))
    assert not built.model.baselines
    assert all(p.dns is not None for p in built.model.workloads)
    docs = render_policies(built.model).policies
    for d in docs:
        first = strip_comments(d.manifest)["spec"]["egress"][0]
        assert first["ports"][0]["port"] == 53


def _wl(ns: str, name: str) -> m.PolicyPeer:
    return m.PolicyPeer(m.WORKLOAD, namespace=ns, workload=WorkloadRef(ns, "Deployment", name),
                        selector=m.PodSelector((("app", name),)),
                        members=(f"{ns}/Deployment/{name}",))


def _policy(ingress=(), egress=()) -> m.PolicyModel:
    return m.PolicyModel(("shop",), (), (m.WorkloadPolicy(
        "shop", WorkloadRef("shop", "Deployment", "api"), m.PodSelector((("app", "api"),)),
        "flowpol-api", tuple(ingress), tuple(egress)),))


EV = m.Evidence(3, 1_700_000_000_000_000_000, 1_700_000_060_000_000_000, (), ("a.jsonl",))


def test_peers_with_the_same_element_are_one_rule() -> None:
    node = m.PolicyPeer(m.NODE, cidr="10.0.0.5/32", addresses=("10.0.0.5",),
                        members=("node n1 (10.0.0.5)",))
    api = m.PolicyPeer(m.APISERVER, cidr="10.0.0.5/32", addresses=("10.0.0.5",),
                       members=("kube-apiserver 10.0.0.5",))
    model = _policy(ingress=[m.Rule(node, (m.RulePort(m.PortSpec("TCP", 8443), EV),)),
                             m.Rule(api, (m.RulePort(m.PortSpec("TCP", 8443), EV),))])
    (doc,) = render(model).policies
    (rule,) = doc.manifest["spec"]["ingress"]
    assert rule.value["from"] == [{"ipBlock": {"cidr": "10.0.0.5/32"}}]
    assert rule.comments[0] == "from kube-apiserver 10.0.0.5, node n1 (10.0.0.5)"
    assert "6 connection(s)" in rule.comments[1]  # evidence of both peers summed


def test_ports_render_as_numbers_names_ranges_and_whole_protocols() -> None:
    ports = (m.RulePort(m.PortSpec("TCP", 8080), EV), m.RulePort(m.PortSpec("TCP", "http"), None),
             m.RulePort(m.PortSpec("UDP", 30000, 30010), None), m.RulePort(m.PortSpec("SCTP"), None))
    (doc,) = render(_policy(egress=[m.Rule(_wl("db", "pg"), ports)])).policies
    (rule,) = doc.manifest["spec"]["egress"]
    assert rule.value["to"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "db"}}, "podSelector": {"matchLabels": {"app": "pg"}}}]
    assert sorted(rule.value["ports"], key=str) == sorted([
        {"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": "http"},
        {"protocol": "UDP", "port": 30000, "endPort": 30010}, {"protocol": "SCTP"}], key=str)
    # evidence only where there is some: one line for TCP/8080
    assert [c for c in rule.comments if "connection(s)" in c] == [
        c for c in rule.comments if c.startswith("  TCP/8080:")]


def test_a_workload_without_traffic_renders_isolated_with_no_rules() -> None:
    (doc,) = render(_policy()).policies
    spec = doc.manifest["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in spec and "egress" not in spec
    assert doc.manifest["metadata"]["annotations"]["flowpol.dev/evidence"] == "no observed traffic"
