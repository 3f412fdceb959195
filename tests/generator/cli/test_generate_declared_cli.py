"""`flowpol generate` on what the recording did not show: declared API server calls,
idle workloads, --isolate-idle, --apiserver-cidr, and declarations no rule can be
written for (reported, never a crash)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

import k8s_objects as k
from k8s_schema import validate_manifests

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = ROOT / "fixtures" / "scenarios" / "declared"


def generate(out: Path, *extra: str, snapshot: Path = SCENARIO / "cluster.json",
             flows: Path = SCENARIO / "flows.jsonl") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", "generate", str(flows),
                           "--snapshot", str(snapshot), "--out", str(out), *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def _docs(out: Path) -> dict[tuple[str, str], dict]:
    docs = {}
    for f in sorted(out.glob("*.yaml")):
        if f.name != "kustomization.yaml":
            for d in yaml.safe_load_all(f.read_text()):
                if d:
                    docs[(d["metadata"]["namespace"], d["metadata"]["name"])] = d
    return docs


def _ingress_cidrs(doc: dict, port: int) -> set[str]:
    return {peer["ipBlock"]["cidr"] for rule in doc["spec"].get("ingress", [])
            if any(p.get("port") == port for p in rule.get("ports", []))
            for peer in rule.get("from", []) if "ipBlock" in peer}


def test_declared_scenario_by_default(tmp_path: Path) -> None:
    run = generate(tmp_path)
    assert run.returncode == 0, run.stderr
    docs = _docs(tmp_path)
    assert validate_manifests(list(docs.values())) == len(docs)  # held-out policies too
    assert _ingress_cidrs(docs[("admission", "flowpol-policy-webhook")], 9443) == {
        "192.168.56.11/32"}
    assert _ingress_cidrs(docs[("admission", "flowpol-injector")], 10443) == {"192.168.56.11/32"}
    assert _ingress_cidrs(docs[("widgets", "flowpol-widget-converter")], 9443) == {
        "192.168.56.11/32"}
    assert ("shop", "flowpol-reports") in docs and ("shop", "flowpol-nightly-export") in docs
    out = run.stdout
    assert ("declared: admission/Deployment/policy-webhook TCP/9443 for "
            "ValidatingWebhookConfiguration/policy webhook validate.policy.example "
            "(failurePolicy Fail): rule written from kube-apiserver 192.168.56.11 (node node-a); "
            "no connection to it observed") in out
    assert ("declared, no rule: ValidatingWebhookConfiguration/policy webhook "
            "audit.policy.example: calls the URL https://audit.example.net/validate") in out
    assert ("  kube-apiserver 192.168.56.11 (node node-a) -> monitoring/Deployment/metrics-server "
            "TCP/10250: 12") in out
    assert ("idle: shop/CronJob/nightly-export: its schedule `0 3 * * *` did not fire during "
            "the recording") in out and "next run 2026-11-21T03:00:00Z" in out
    assert "idle: shop/Deployment/legacy-sync: scaled to zero (spec.replicas 0)" in out
    assert "node peers (ipBlock): node node-a (192.168.56.11), node node-b" in out  # probes

    report = json.loads((tmp_path / "report.json").read_text())
    calls = {(c["workload"], c["port"]): c for c in report["declared"]["calls"]}
    assert calls[("monitoring/Deployment/metrics-server", "TCP/10250")]["connections_observed"] == 12
    assert calls[("admission/Deployment/policy-webhook", "TCP/9443")]["failure_policy"] == "Fail"
    assert report["declared"]["apiserver"]["origin"] == "the default/kubernetes EndpointSlice"
    edges = [e for e in report["edges"] if e["src"]["kind"] == "kube-apiserver"]
    assert [(e["dst"]["workload_name"], e["port"]) for e in edges] == [("metrics-server", 10250)]
    idle = {i["workload"]: i for i in report["idle_workloads"]}
    assert idle["shop/CronJob/nightly-export"]["next_run"].startswith("2026-11-21T03:00:00")
    assert {i["status"] for i in idle.values()} == {"held out"}
    md = (tmp_path / "report.md").read_text()
    assert "## What the API server calls" in md and "## Idle workloads" in md
    # in the policy's rule table, the unobserved declared port says why it is there
    assert ("| ipBlock 192.168.56.11/32 | TCP/9443 | — | 0 | — | — | not observed; declared: "
            "ValidatingWebhookConfiguration/policy webhook validate.policy.example "
            "(failurePolicy Fail) |") in md


def test_isolate_idle(tmp_path: Path) -> None:
    run = generate(tmp_path, "--isolate-idle")
    assert run.returncode == 0, run.stderr
    docs = _docs(tmp_path)
    assert ("shop", "flowpol-reports") not in docs
    report = json.loads((tmp_path / "report.json").read_text())
    assert {i["status"] for i in report["idle_workloads"]} == {"isolated"}
    assert "isolated by default-deny" in run.stdout


def test_apiserver_cidr(tmp_path: Path) -> None:
    run = generate(tmp_path, "--apiserver-cidr", "172.16.0.0/28", "--apiserver-cidr",
                   "172.16.1.7")
    assert run.returncode == 0, run.stderr
    docs = _docs(tmp_path)
    assert _ingress_cidrs(docs[("admission", "flowpol-policy-webhook")], 9443) == {
        "172.16.0.0/28", "172.16.1.7/32"}
    assert "the API server calls from kube-apiserver 172.16.0.0/28, kube-apiserver " \
           "172.16.1.7/32 (--apiserver-cidr)" in run.stdout
    # 192.168.56.11 is no API server address now: its calls to metrics-server are a node's
    report = json.loads((tmp_path / "report.json").read_text())
    assert not [e for e in report["edges"] if e["src"]["kind"] == "kube-apiserver"]
    bad = generate(tmp_path / "x", "--apiserver-cidr", "10.0.0.0/33")
    assert bad.returncode == 2 and "--apiserver-cidr '10.0.0.0/33' is not an address or CIDR" \
        in bad.stderr
    assert "Traceback" not in bad.stderr


def test_declarations_no_rule_can_be_written_for_are_reported(tmp_path: Path) -> None:
    """Webhooks pointing at a missing Service and a missing port, a URL webhook, an
    APIService served locally (service: null), a conversion webhook without backends."""
    objs = k.base_cluster(namespaces=["shop"])
    objs += k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.10"],
                                   ports=[k.container_port(8080, "http")])
    objs.append(k.service("web", "shop", selector={"app": "web"}, cluster_ip="10.96.5.5",
                          ports=[k.service_port(80, 8080)]))
    objs.append(k.service("idle", "shop", selector={"app": "nothing"}, cluster_ip="10.96.5.6",
                          ports=[k.service_port(443, 9443)]))
    objs.append(k.webhook_configuration("ValidatingWebhookConfiguration", "broken", [
        k.webhook("missing-service.example", service=k.service_reference("shop", "gone")),
        k.webhook("missing-port.example", service=k.service_reference("shop", "web", 8443)),
        k.webhook("by-url.example", url="https://hooks.example/validate")]))
    objs.append(k.crd("gizmos", "example.com",
                      conversion_service=k.service_reference("shop", "idle")))
    snapshot = tmp_path / "cluster.json"
    snapshot.write_text(json.dumps(k.kube_list(objs)))
    web = next(o for o in objs if o["kind"] == "Pod" and o["metadata"]["namespace"] == "shop")
    time = "2026-11-20T09:10:00.000000000Z"
    ep = {"ID": 10, "identity": 5000, "namespace": "shop", "pod_name": web["metadata"]["name"],
          "labels": ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"],
          "workloads": [{"name": "web", "kind": "Deployment"}]}
    flow = {"flow": {"time": time, "verdict": "FORWARDED", "Type": "L3_L4", "node_name": "node-1",
                     "IP": {"source": "10.244.1.10", "destination": "203.0.113.5",
                            "ipVersion": "IPv4"},
                     "l4": {"TCP": {"source_port": 40000, "destination_port": 443,
                                    "flags": {"SYN": True}}},
                     "source": ep, "destination": {"identity": 2, "labels": ["reserved:world"]},
                     "traffic_direction": "EGRESS", "is_reply": False, "event_type": {"type": 4}},
            "node_name": "node-1", "time": time}
    flows = tmp_path / "flows.jsonl"
    flows.write_text(json.dumps(flow) + "\n")
    run = generate(tmp_path / "out", snapshot=snapshot, flows=flows)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    out = run.stdout
    assert ("declared, no rule: ValidatingWebhookConfiguration/broken webhook "
            "missing-service.example: Service shop/gone is not in the snapshot") in out
    assert "missing-port.example: Service shop/web has no port 8443/TCP (it has 80/TCP)" in out
    assert "by-url.example: calls the URL https://hooks.example/validate" in out
    assert ("CustomResourceDefinition/gizmos.example.com: Service shop/idle port 443 has no "
            "backend pod in the snapshot") in out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(report["declared"]["no_rule"]) == 4
    assert report["declared"]["calls"] == []
    # the local APIServices (service: null) need nothing and are no problem
    assert not any("v1.apps" in p["declared_by"] for p in report["declared"]["no_rule"])
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Declared, but no rule can be written" in md
