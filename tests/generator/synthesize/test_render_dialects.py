"""The cilium and cluster-network-policy renderers and the kubernetes renderer's Cilium
warning, on the demo's model and on models changed the way learned DNS names change them
(``PolicyPeer.names`` of external peers)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from generator.output.yamlout import strip_comments
from generator.pipeline import observe
from generator.synthesize import model as m
from generator.synthesize.render import RenderOptions, render_policies
from generator.synthesize.synthesis import SynthesisOptions, build_model
from generator.verify.combined import make_evaluator
from generator.verify.names import NameBinding, NameBindings
from generator.verify.policyset import parse_manifests
from recorder.sources import ReadOptions

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"


@pytest.fixture(scope="module")
def demo():
    observed = observe([str(DEMO / "flows")], [str(DEMO / "cluster.json")], ReadOptions())
    return observed, build_model(observed.edges, observed.index, SynthesisOptions()).model


def _named(model: m.PolicyModel, name: str) -> m.PolicyModel:
    """The model with a DNS name on every external egress peer."""
    def peer(p: m.PolicyPeer) -> m.PolicyPeer:
        return dataclasses.replace(p, names=(name,)) if p.kind == m.EXTERNAL else p
    workloads = tuple(dataclasses.replace(w, egress=tuple(
        dataclasses.replace(r, peer=peer(r.peer)) for r in w.egress)) for w in model.workloads)
    return dataclasses.replace(model, workloads=workloads)


def _manifests(model, dialect, **opts):
    return [strip_comments(d.manifest) for d in
            render_policies(model, dialect, RenderOptions(**opts)).policies]


def test_cilium_names_become_tofqdns_and_are_judged_by_bindings(demo) -> None:
    observed, model = demo
    docs = _manifests(_named(model, "Api.Example.COM."), "cilium")
    fqdn_rules = [r for d in docs for r in d["spec"].get("egress", []) if "toFQDNs" in r]
    assert fqdn_rules and all(r["toFQDNs"] == [{"matchName": "api.example.com"}] for r in fqdn_rules)
    assert not any("toCIDR" in r for d in docs for r in d["spec"].get("egress", [])
                   if r.get("toCIDR", [""])[0].startswith("203.0.113.10"))
    kinds = parse_manifests(docs)
    ext = [c for c in observed.resolved.connections if c.dst.kind == "external" and c.src_pod
           and c.src.namespace in model.namespaces]
    assert ext
    # a connection resolution found no name for: judged by the bindings of its time
    c = dataclasses.replace(ext[0], names=())
    bound = NameBindings([NameBinding("api.example.com", c.dst_ip, c.first_seen - 10, c.first_seen + 10)])
    ev = make_evaluator((), observed.index.inventory, kinds.cilium, (), bound)
    assert ev.check(c.src_pod, ev.named_destination(c), c.protocol, c.port).allowed
    late = dataclasses.replace(c, first_seen=c.first_seen + 100)
    assert not ev.check(c.src_pod, ev.named_destination(late), c.protocol, c.port).allowed
    # the names resolution attributed to a connection are the ones it is judged by
    for names, allowed in ((("api.example.com",), True), (("other.example",), False)):
        named = dataclasses.replace(late, names=names)
        assert ev.check(c.src_pod, ev.named_destination(named), c.protocol,
                        c.port).allowed is allowed, names


def test_cilium_cluster_wide_baseline(demo) -> None:
    _, model = demo
    docs = _manifests(model, "cilium", cilium_cluster_wide=True)
    ccnp = [d for d in docs if d["kind"] == "CiliumClusterwideNetworkPolicy"]
    assert len(ccnp) == 1 and "namespace" not in ccnp[0]["metadata"]
    sel = ccnp[0]["spec"]["endpointSelector"]["matchExpressions"][0]
    assert sel["values"] == list(model.namespaces)
    assert ccnp[0]["spec"]["egress"][0]["toPorts"][0]["rules"] == {"dns": [{"matchPattern": "*"}]}
    assert not [d for d in docs if d["metadata"]["name"] in ("flowpol-default-deny",
                                                            "flowpol-allow-dns")]


def test_cluster_network_policy_workloads_carry_dns(demo) -> None:
    _, model = demo
    docs = _manifests(model, "cluster-network-policy")
    assert [d["kind"] for d in docs].count("ClusterNetworkPolicy") == 1
    for d in docs:
        if d["kind"] == "NetworkPolicy":
            ports = [p for r in d["spec"]["egress"] for p in r["ports"]]
            assert {"protocol": "UDP", "port": 53} in ports, d["metadata"]["name"]


def test_kubernetes_warns_on_cilium_only_when_told(demo) -> None:
    _, model = demo
    quiet = render_policies(model, "kubernetes", RenderOptions())
    assert quiet.warnings == ()
    loud = render_policies(model, "kubernetes", RenderOptions(cilium_evidence=("Hubble flows",)))
    (w,) = loud.warnings
    assert "policy-cidr-match-mode: nodes" in w and "--dialect cilium" in w
    assert "platform/flowpol-event-bus egress to kube-apiserver 192.168.56.11" in w


def test_node_entities_follow_pod_placement() -> None:
    from generator.synthesize.render.cilium import node_entities

    peer = m.PolicyPeer(m.NODE, cidr="192.168.56.11/32", names=("node-a",))
    assert node_entities(peer, frozenset({"node-a"})) == ["host"]
    assert node_entities(peer, frozenset({"node-b"})) == ["remote-node"]
    assert node_entities(peer, frozenset({"node-a", "node-b"})) == ["host", "remote-node"]
    assert node_entities(m.PolicyPeer(m.NODE), frozenset({"node-a"})) == ["host", "remote-node"]
