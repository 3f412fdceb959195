"""The generated policies together with the cluster's existing ones: listed, replayed as
the effective set, and what the existing ones allow beyond the generated rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import k8s_objects as k
from generator.generate import GenerateRequest, run_generate
from generator.inventory.load import load_snapshot
from generator.synthesize.synthesis import SynthesisOptions
from generator.verify.evaluator import Evaluator
from generator.verify.policy import load_policies, parse_policies
from generator.resolve.edges import PodView

ROOT = Path(__file__).resolve().parents[3]
DECLARED = ROOT / "fixtures" / "scenarios" / "declared"


@pytest.fixture(scope="module")
def declared(tmp_path_factory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("union")
    return out, run_generate(GenerateRequest([str(DECLARED / "flows.jsonl")],
                                             [str(DECLARED / "cluster.json")], out))


def _views(inventory, namespace: str) -> dict[str, PodView]:
    return {p.labels and dict(p.labels).get("app"): PodView(
        p.namespace, p.name, p.labels, tuple((x.name, x.protocol, x.port) for x in p.ports
                                             if x.name), p.ips[0], False, p.node)
        for p in inventory.pods if p.namespace == namespace and p.ips}


def test_existing_policy_is_listed_and_its_extra_reach_reported(declared) -> None:
    out, result = declared
    union = result.union
    assert [(e.policy, e.selects) for e in union.existing] == [
        ("shop/allow-shop-to-api", ("shop/Deployment/api",))]
    assert union.effective is not None and union.effective.denied == 0
    (extra,) = union.extra
    assert (extra.policy, extra.rule, extra.peer, extra.port, extra.workload) == (
        "shop/allow-shop-to-api", "ingress[0]", "every pod in namespace shop", "every port",
        "shop/Deployment/api")
    assert "shop/Deployment/reports on TCP/8080, TCP/9090, any other TCP/UDP/SCTP port" \
        in extra.reaches
    # frontend is allowed on 8080 by flowpol's rules: only the rest is beyond them
    assert "shop/Deployment/frontend on TCP/9090, any other TCP/UDP/SCTP port" in extra.reaches
    # a CronJob between runs: its pods, when they run, are "every pod in namespace shop"
    assert any(r.startswith("shop/CronJob/nightly-export on ") for r in extra.reaches)

    # The evaluator agrees: after apply, reports reaches api on 8080 only through the
    # existing policy; the generated policies alone deny it.
    inventory = load_snapshot([str(DECLARED / "cluster.json")]).inventory
    generated = load_policies(str(out)).policies
    existing = parse_policies(list(inventory.network_policies))
    pods = _views(inventory, "shop")
    alone = Evaluator.from_inventory(generated, inventory)
    both = Evaluator.from_inventory(generated + existing, inventory)
    for port in (8080, 9090, 4000):
        assert not alone.check(pods["reports"], pods["api"], "TCP", port).allowed
        assert both.check(pods["reports"], pods["api"], "TCP", port).allowed
    assert not both.check(pods["frontend"], pods["reports"], "TCP", 8080).allowed

    report = json.loads((out / "report.json").read_text())["existing_policies"]
    assert report["selecting_pods_in_scope"][0]["policy"] == "shop/allow-shop-to-api"
    assert report["beyond_generated"][0]["rule"] == "ingress[0]"
    assert "flowpol diff" in report["note"]
    md = (out / "report.md").read_text()
    assert "## Existing policies" in md and "shop/allow-shop-to-api `ingress[0]`" in md
    assert any("what they allow beyond flowpol's rules" in line for line in result.summary)


def _cluster_with_outside_client(tmp_path: Path, extra: list[dict]) -> Path:
    objs = k.base_cluster(namespaces=["shop", "ops"])
    objs += k.deployment_with_pods("api", "shop", {"app": "api"}, ["10.244.1.11"],
                                   ports=[k.container_port(8080, "http")])
    objs += k.deployment_with_pods("backup", "ops", {"app": "backup"}, ["10.244.1.20"])
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(k.kube_list(objs + extra)))
    return path


def _flows(tmp_path: Path, snapshot: Path) -> Path:
    """backup (ops) -> api (shop) on 8080, three times, as Hubble prints it."""
    pods = {o["metadata"]["labels"]["app"]: o for o in json.loads(snapshot.read_text())["items"]
            if o["kind"] == "Pod" and o["metadata"]["namespace"] in ("shop", "ops")}

    def endpoint(p: dict) -> dict:
        ns = p["metadata"]["namespace"]
        app = p["metadata"]["labels"]["app"]
        return {"ID": 10, "identity": 5000, "namespace": ns, "pod_name": p["metadata"]["name"],
                "labels": [f"k8s:app={app}", f"k8s:io.kubernetes.pod.namespace={ns}"],
                "workloads": [{"name": app, "kind": "Deployment"}]}

    lines = []
    for minute in (10, 20, 30):
        time = f"2026-11-20T09:{minute:02d}:00.000000000Z"
        lines.append({"flow": {
            "time": time, "verdict": "FORWARDED", "Type": "L3_L4", "node_name": "node-1",
            "IP": {"source": pods["backup"]["status"]["podIP"],
                   "destination": pods["api"]["status"]["podIP"], "ipVersion": "IPv4"},
            "l4": {"TCP": {"source_port": 40000 + minute, "destination_port": 8080,
                           "flags": {"SYN": True}}},
            "source": endpoint(pods["backup"]), "destination": endpoint(pods["api"]),
            "traffic_direction": "EGRESS", "is_reply": False, "event_type": {"type": 4}},
            "node_name": "node-1", "time": time})
    path = tmp_path / "flows.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_what_only_existing_policies_deny_is_a_finding(tmp_path: Path) -> None:
    """ops is out of scope (--namespace shop): flowpol isolates nothing there, but an
    existing policy (written after the recording) isolates backup's egress."""
    snapshot = _cluster_with_outside_client(tmp_path, [k.network_policy(
        "deny-egress", "ops", {"podSelector": {}, "policyTypes": ["Egress"]})])
    flows = _flows(tmp_path, snapshot)
    run = subprocess.run([sys.executable, "-m", "generator.cli.main", "generate", str(flows),
                          "--snapshot", str(snapshot), "--out", str(tmp_path / "out"),
                          "--namespace", "shop"], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert run.returncode == 1, run.stderr
    assert "observed connections the cluster's existing policies would still DENY after " \
           "apply:" in run.stderr
    assert "ops/Deployment/backup -> shop/Deployment/api TCP/8080" in run.stderr
    assert "source egress" in run.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["verification"]["denied_connections"] == 0  # the generated ones allow it
    # every connection of the flows (one per line: each its own source port), one group
    effective = report["existing_policies"]["effective"]
    assert effective["denied_connections"] == len(flows.read_text().splitlines())
    assert effective["denied_groups"] == 1
    # deny-egress selects no pod in scope: not listed as one, but part of the effective set
    assert report["existing_policies"]["selecting_pods_in_scope"] == []


def test_an_existing_policy_that_cannot_be_read_is_reported(tmp_path: Path) -> None:
    bad = k.network_policy("typo", "shop", {"podSelector": {}, "policyTypes": ["ingress"]})
    snapshot = _cluster_with_outside_client(tmp_path, [bad])
    result = run_generate(GenerateRequest([str(_flows(tmp_path, snapshot))], [str(snapshot)],
                                          tmp_path / "out",
                                          synthesis=SynthesisOptions(namespaces=("shop",))))
    (line,) = result.union.unreadable
    assert "NetworkPolicy shop/typo" in line and "'ingress'" in line
    assert any("could not read" in s and "shop/typo" in s for s in result.summary)
    assert result.denied_lines == () and result.effective_denied_lines == ()


def test_an_existing_policy_of_a_generated_name_is_replaced_not_added(tmp_path: Path) -> None:
    """flowpol's own policy from an earlier run: apply replaces it, so what it allowed
    is not "beyond" the new rules."""
    old = k.network_policy("flowpol-api", "shop", {
        "podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"],
        "ingress": [{}]})
    snapshot = _cluster_with_outside_client(tmp_path, [old])
    result = run_generate(GenerateRequest([str(_flows(tmp_path, snapshot))], [str(snapshot)],
                                          tmp_path / "out"))
    (listed,) = result.union.existing
    assert listed.policy == "shop/flowpol-api" and listed.replaced
    assert result.union.extra == ()
    assert any("shop/flowpol-api selects shop/Deployment/api (replaced" in s
               for s in result.summary)
