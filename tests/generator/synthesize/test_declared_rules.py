"""Rules for what the cluster declares the API server calls: from the API server's
addresses to each backend pod on its targetPort, observed or not, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import k8s_objects as k
from generator.inventory.index import InventoryIndex
from generator.inventory.load import load_snapshot
from generator.output.yamlout import strip_comments
from generator.resolve.edges import APISERVER, WORKLOAD, Edge, Peer, PodView
from generator.synthesize import model as m
from generator.synthesize.synthesis import (
    DECLARED_HELD_OUT, DECLARED_RULE, SynthesisOptions, SynthesisResult, synthesize,
)
from generator.verify.evaluator import Evaluator
from generator.verify.policy import parse_policies
from recorder.timefmt import parse_time

T0 = parse_time("2026-11-20T09:00:00Z")
T1 = parse_time("2026-11-20T11:00:00Z")
API_IP = "192.168.0.11"  # node-1, the kubernetes EndpointSlice's address
HOOK = Peer(WORKLOAD, "admission", "Deployment", "hook")
AGENT = Peer(WORKLOAD, "kube-system", "Deployment", "konnectivity-agent")


def _objects() -> list[dict]:
    """hook mid-rollout: its pods name the port "webhook" 9443 and 10443; the webhook
    dials Service port 443 -> targetPort "webhook". The pods also watch the API."""
    objs = k.base_cluster(namespaces=["admission"])
    objs.append(k.node("node-2", "192.168.0.12", pod_cidr="10.244.2.0/24"))
    objs += k.deployment_with_pods("hook", "admission", {"app": "hook"}, ["10.244.2.20"],
                                   node="node-2", ports=[k.container_port(9443, "webhook"),
                                                         k.container_port(8081, "healthz")])
    objs += k.deployment_with_pods("hook", "admission", {"app": "hook"}, ["10.244.2.21"],
                                   node="node-2", revision="2", with_deployment=False,
                                   ports=[k.container_port(10443, "webhook")])
    svc = k.service("hook", "admission", selector={"app": "hook"}, cluster_ip="10.96.7.7",
                    ports=[k.service_port(443, "webhook", name="https")])
    objs += [svc] + k.endpointslices_for(svc, [o for o in objs if o["kind"] == "Pod"
                                              and o["metadata"]["namespace"] == "admission"])
    objs.append(k.webhook_configuration("ValidatingWebhookConfiguration", "hook", [
        k.webhook("hook.example", service=k.service_reference("admission", "hook"))]))
    objs += k.deployment_with_pods("konnectivity-agent", "kube-system",
                                   {"k8s-app": "konnectivity-agent"}, ["10.244.1.30"])
    return objs


def _index(tmp_path: Path, cidrs: tuple[str, ...] = ()) -> InventoryIndex:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(k.kube_list(_objects())))
    return InventoryIndex(load_snapshot([str(path)]).inventory, cidrs)


WATCH = Edge(HOOK, Peer(APISERVER, ip=API_IP), "TCP", 6443, 4, T0, T1)


def _evaluator(result: SynthesisResult, index: InventoryIndex) -> Evaluator:
    return Evaluator.from_inventory(
        parse_policies([strip_comments(p.manifest) for p in result.policies]), index.inventory)


def _hook_pods(index: InventoryIndex) -> dict[int, PodView]:
    """Each hook pod by the port it names "webhook"."""
    out = {}
    for p in index.inventory.pods:
        if p.namespace == "admission":
            named = tuple((x.name, x.protocol, x.port) for x in p.ports if x.name)
            port = next(n for name, _, n in named if name == "webhook")
            out[port] = PodView(p.namespace, p.name, p.labels, named, p.ips[0], False, p.node)
    return out


def test_the_api_server_reaches_each_backend_on_its_targetport_and_nothing_else(
        tmp_path: Path) -> None:
    index = _index(tmp_path)
    result = synthesize((WATCH,), index, SynthesisOptions(namespaces=("admission",)))
    (policy,) = result.model.workloads
    (rule,) = policy.ingress
    assert rule.peer.kind == m.APISERVER and rule.peer.cidr == "192.168.0.11/32"
    assert rule.peer.names == ("node-1",)
    assert [(rp.port.port, rp.evidence, [d.display() for d in rp.declared])
            for rp in rule.ports] == [
        (9443, None, ["ValidatingWebhookConfiguration/hook webhook hook.example "
                      "(failurePolicy Fail)"]),
        (10443, None, ["ValidatingWebhookConfiguration/hook webhook hook.example "
                       "(failurePolicy Fail)"])]
    assert [(u.target.port, u.status, u.calls) for u in result.declared] == [
        (9443, DECLARED_RULE, 0), (10443, DECLARED_RULE, 0)]
    # Each pod on its own targetPort; the workload's rule holds both numbers (backends that
    # disagree on a named port get numbers, as for observed traffic). Nothing else: not
    # the Service port, not the health port, not from another address.
    ev = _evaluator(result, index)
    pods = _hook_pods(index)
    for port, pod in pods.items():
        assert ev.check(API_IP, pod, "TCP", port).allowed  # node-2's pods: not its own node
        for other in (443, 8081, 6443):
            assert not ev.check(API_IP, pod, "TCP", other).allowed
        assert not ev.check("203.0.113.7", pod, "TCP", port).allowed
        assert not ev.check("192.168.0.13", pod, "TCP", port).allowed
    # the evidence says declared, by which object, and that no call was seen
    manifest = next(p.manifest for p in result.policies if p.name == "flowpol-hook")
    comments = manifest["spec"]["ingress"][0].comments
    assert any("TCP/9443: declared: the API server calls it for ValidatingWebhookConfiguration/"
               "hook webhook hook.example (failurePolicy Fail) via Service admission/hook:443; "
               "no call observed in the recording" in c for c in comments)


def test_a_call_observed_from_another_source_is_what_the_rule_uses(tmp_path: Path) -> None:
    index = _index(tmp_path)
    via_agent = Edge(AGENT, HOOK, "TCP", 9443, 3, T0, T1)
    result = synthesize((WATCH, via_agent), index, SynthesisOptions(namespaces=("admission",)))
    (policy,) = result.model.workloads
    peers = {r.peer.kind: r for r in policy.ingress}
    # 9443 from the agent only (no rule for the EndpointSlice's address on it)
    (port,) = peers[m.WORKLOAD].ports
    assert port.port.port == 9443 and port.evidence.connections == 3 and port.declared
    assert [p.port.port for p in peers[m.APISERVER].ports] == [10443]
    uses = {u.target.port: u for u in result.declared}
    assert uses[9443].admits == ("kube-system/Deployment/konnectivity-agent",)
    assert uses[9443].calls == 3
    # 10443's backend was not seen called from anywhere: the EndpointSlice's address
    assert uses[10443].admits == ("kube-apiserver 192.168.0.11 (node node-1)",)


def test_apiserver_cidr_is_the_source_and_observed_calls_inside_it_join_it(tmp_path: Path) -> None:
    index = _index(tmp_path, ("172.16.0.0/28",))
    call = Edge(Peer(APISERVER, ip="172.16.0.5"), HOOK, "TCP", 9443, 2, T0, T1)
    via_agent = Edge(AGENT, HOOK, "TCP", 9443, 3, T0, T1)
    result = synthesize((WATCH, call, via_agent), index,
                        SynthesisOptions(namespaces=("admission",)))
    (policy,) = result.model.workloads
    api_rules = [r for r in policy.ingress if r.peer.kind == m.APISERVER]
    assert [r.peer.cidr for r in api_rules] == ["172.16.0.0/28"]
    (port_9443,) = [p for p in api_rules[0].ports if p.port.port == 9443]
    assert port_9443.evidence.connections == 2 and port_9443.declared
    ev = _evaluator(result, index)
    pod = _hook_pods(index)[9443]
    assert ev.check("172.16.0.9", pod, "TCP", 9443).allowed
    assert not ev.check(API_IP, pod, "TCP", 9443).allowed  # overridden: not the slice's


def test_an_idle_backend_is_held_out_or_gets_the_declared_rule(tmp_path: Path) -> None:
    index = _index(tmp_path)
    held = synthesize((), index, SynthesisOptions(namespaces=("admission",)))
    assert {u.status for u in held.declared} == {DECLARED_HELD_OUT}
    isolated = synthesize((), index, SynthesisOptions(namespaces=("admission",),
                                                      isolate_idle=True))
    (policy,) = isolated.model.workloads
    assert policy.egress == () and policy.ingress[0].peer.kind == m.APISERVER
    ev = _evaluator(isolated, index)
    for port, pod in _hook_pods(index).items():
        assert ev.check(API_IP, pod, "TCP", port).allowed
        assert not ev.check(pod, "203.0.113.7", "TCP", 443).allowed


def test_declared_off_writes_observed_rules_only(tmp_path: Path) -> None:
    result = synthesize((WATCH,), _index(tmp_path),
                        SynthesisOptions(namespaces=("admission",), declared=False))
    (policy,) = result.model.workloads
    assert policy.ingress == () and result.declared == ()
