"""Workloads the recording never showed are never isolated silently: held out of
default-deny by a policy that selects exactly their pods, listed with why, isolated with
--isolate-idle; checked with the evaluator."""

from __future__ import annotations

import json
from pathlib import Path

import k8s_objects as k
from generator.inventory.index import InventoryIndex
from generator.inventory.load import load_snapshot
from generator.output.yamlout import strip_comments
from generator.resolve.edges import WORKLOAD, Edge, Peer, PodView
from generator.synthesize import model as m
from generator.synthesize.synthesis import SynthesisOptions, SynthesisResult, synthesize
from generator.verify.evaluator import Evaluator
from generator.verify.policy import parse_policies
from recorder.timefmt import parse_time

T0 = parse_time("2026-11-20T09:00:00Z")  # a Friday
T1 = parse_time("2026-11-20T11:00:00Z")
WEB = Peer(WORKLOAD, "shop", "Deployment", "web")
API = Peer(WORKLOAD, "shop", "Deployment", "api")


def _objects() -> list[dict]:
    objs = k.base_cluster(namespaces=["shop"])
    objs += k.deployment_with_pods("web", "shop", {"app": "web", "tier": "front"},
                                   ["10.244.1.10"], ports=[k.container_port(8080, "http")])
    objs += k.deployment_with_pods("api", "shop", {"app": "api", "tier": "back"},
                                   ["10.244.1.11"], ports=[k.container_port(8080, "http"),
                                                           k.container_port(9090, "metrics")])
    # idle: shares tier=back with api (a default-deny with `tier NotIn (back)` would leave
    # api out too), and a nightly CronJob that does not fire 09:00-11:00
    objs += k.deployment_with_pods("reports", "shop", {"app": "reports", "tier": "back"},
                                   ["10.244.1.12"], ports=[k.container_port(8080, "http")])
    objs.append(k.cronjob("export", "shop", {"app": "export"}, schedule="0 3 * * *"))
    return objs


def _index(tmp_path: Path, objs: list[dict]) -> InventoryIndex:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(k.kube_list(objs)))
    return InventoryIndex(load_snapshot([str(path)]).inventory)


EDGES = (Edge(WEB, API, "TCP", 8080, 5, T0, T1),)


def _evaluator(result: SynthesisResult, index: InventoryIndex) -> Evaluator:
    return Evaluator.from_inventory(
        parse_policies([strip_comments(p.manifest) for p in result.policies]), index.inventory)


def _pods(index: InventoryIndex) -> dict[str, PodView]:
    return {p.name.split("-")[0]: PodView(p.namespace, p.name, p.labels,
                                           tuple((x.name, x.protocol, x.port) for x in p.ports
                                                 if x.name), p.ips[0], False, p.node)
            for p in index.inventory.pods if p.namespace == "shop"}


def test_idle_workloads_are_held_out_exactly_and_listed_with_why(tmp_path: Path) -> None:
    index = _index(tmp_path, _objects())
    result = synthesize(EDGES, index, SynthesisOptions())
    idle = {i.workload.name: i for i in result.model.idle}
    assert set(idle) == {"reports", "export"}
    assert idle["reports"].status == m.HELD_OUT and idle["reports"].name == "flowpol-reports"
    assert idle["reports"].reason == "no connection observed"
    assert idle["export"].reason.startswith("its schedule `0 3 * * *` did not fire during the "
                                            "recording (2026-11-20T09:00:00Z to "
                                            "2026-11-20T11:00:00Z); next run 2026-11-21T03:00:00Z")
    assert idle["export"].next_run == parse_time("2026-11-21T03:00:00Z")
    held = next(p for p in result.policies if p.name == "flowpol-reports")
    assert strip_comments(held.manifest)["spec"] == {
        "podSelector": {"matchLabels": {"app": "reports", "tier": "back"}},  # its spec.selector
        "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]}

    # Only the idle workload is exempt: reports reaches and is reached on any port, api
    # (which shares tier=back) and web keep exactly their observed rules.
    ev = _evaluator(result, index)
    pods = _pods(index)
    web, api, reports = pods["web"], pods["api"], pods["reports"]
    assert ev.check(web, api, "TCP", 8080).allowed
    for port in (8080, 9090, 12345):
        assert ev.check(reports, api, "TCP", port).allowed is False  # api's ingress denies
        assert ev.check(web, reports, "TCP", port).allowed is False  # web's egress denies
        assert ev.check(reports, "203.0.113.9", "TCP", port).allowed  # reports' own egress
        assert ev.check("203.0.113.9", reports, "UDP", port).allowed
        assert not ev.check("203.0.113.9", api, "TCP", port).allowed
        assert not ev.check(api, "203.0.113.9", "TCP", port).allowed
    # a workload observed on one of its ports is not held out: 9090 stays closed
    assert not ev.check(web, api, "TCP", 9090).allowed


def test_isolate_idle_isolates_them(tmp_path: Path) -> None:
    index = _index(tmp_path, _objects())
    result = synthesize(EDGES, index, SynthesisOptions(isolate_idle=True))
    assert {i.status for i in result.model.idle} == {m.ISOLATED}
    assert not [p for p in result.policies if p.name in ("flowpol-reports", "flowpol-export")]
    ev = _evaluator(result, index)
    reports = _pods(index)["reports"]
    assert not ev.check(reports, "203.0.113.9", "TCP", 443).allowed
    assert not ev.check("203.0.113.9", reports, "TCP", 8080).allowed
    assert any("isolated by default-deny" in w and "shop/Deployment/reports" in w
               for w in result.warnings)


def test_no_label_of_its_own_means_it_cannot_be_held_out(tmp_path: Path) -> None:
    objs = _objects()
    # a bare pod with only api's labels: any selector for it selects api too
    objs.append(k.pod("debug", "shop", labels={"app": "api", "tier": "back"}, ip="10.244.1.13"))
    index = _index(tmp_path, objs)
    result = synthesize(EDGES, index, SynthesisOptions())
    debug = next(i for i in result.model.idle if i.workload.name == "debug")
    assert debug.status == m.NOT_HELD_OUT and debug.name is None
    assert "also selects shop/Deployment/api" in debug.note
    assert "flowpol-debug" not in {p.name for p in result.policies}
    assert any("shop/Pod/debug (isolated: cannot be held out)" in w for w in result.warnings)


def test_directions_existing_policies_isolate_stay_as_they_are(tmp_path: Path) -> None:
    objs = _objects()
    objs.append(k.network_policy("reports-ingress", "shop", {
        "podSelector": {"matchLabels": {"app": "reports"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}))
    objs.append(k.network_policy("export-locked", "shop", {
        "podSelector": {"matchLabels": {"app": "export"}}, "policyTypes": ["Ingress", "Egress"]}))
    index = _index(tmp_path, objs)
    result = synthesize(EDGES, index, SynthesisOptions())
    idle = {i.workload.name: i for i in result.model.idle}
    assert idle["reports"].status == m.HELD_OUT and idle["reports"].directions == ("egress",)
    held = next(p for p in result.policies if p.name == "flowpol-reports")
    assert strip_comments(held.manifest)["spec"]["policyTypes"] == ["Egress"]
    assert idle["export"].status == m.ALREADY_ISOLATED
    assert "shop/export-locked" in idle["export"].note


def test_without_default_deny_nothing_isolates_them(tmp_path: Path) -> None:
    result = synthesize(EDGES, _index(tmp_path, _objects()), SynthesisOptions(default_deny=False))
    assert {i.status for i in result.model.idle} == {m.NOT_ISOLATED}
    assert not [p for p in result.policies if p.name == "flowpol-reports"]
