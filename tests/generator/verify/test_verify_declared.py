"""`flowpol verify` judges the calls the cluster declares the API server makes
(admission webhooks, aggregated APIs, conversion webhooks), observed or not, through the
real CLI on the `declared` scenario: generate's policies allow them; a policy set whose
webhook backend no longer accepts the API server on the webhook's targetPort is exit 1
with the call, its consequence and why; --apiserver-cidr moves the source;
--no-declared leaves them out; a snapshot without the kinds says they were not checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = ROOT / "fixtures" / "scenarios" / "declared"
FLOWS = str(SCENARIO / "flows.jsonl")
SNAPSHOT = str(SCENARIO / "cluster.json")
WEBHOOK_PORT = 9443  # admission/policy-webhook's targetPort (Service port 443)


def flowpol(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("declared") / "out"
    run = flowpol("generate", FLOWS, "-s", SNAPSHOT, "--out", str(out))
    assert run.returncode == 0, run.stderr
    return out


def _without_webhook_port(generated: Path, dest: Path) -> Path:
    """The generated set with TCP/9443 taken out of the webhook's ingress rules (the
    observed traffic stays allowed: the recording never called the webhook)."""
    dest.mkdir()
    removed = 0
    for f in sorted(generated.glob("*.yaml")):
        if f.name == "kustomization.yaml":
            continue
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d]
        for d in docs:
            if d["metadata"]["name"] != "flowpol-policy-webhook":
                continue
            for rule in d["spec"].get("ingress", []):
                kept = [p for p in rule.get("ports", []) if p.get("port") != WEBHOOK_PORT]
                removed += len(rule.get("ports", [])) - len(kept)
                rule["ports"] = kept
        (dest / f.name).write_text(yaml.safe_dump_all(docs))
    assert removed == 1
    return dest


def test_generated_policies_allow_every_declared_call(generated: Path) -> None:
    run = flowpol("verify", FLOWS, "-s", SNAPSHOT, "-p", str(generated), "--output", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    declared = json.loads(run.stdout)["declared"]
    assert declared["checked"] and not declared["denied"]
    # the scenario's four declared backend ports, each judged from the API server
    assert declared["calls"] == 4
    assert {c["call"] for c in declared["allowed"]} >= {
        "ValidatingWebhookConfiguration/policy webhook validate.policy.example",
        "APIService/v1beta1.metrics.k8s.io", "CustomResourceDefinition/widgets.example.com"}
    assert {c["source"] for c in declared["allowed"]} == {
        "kube-apiserver 192.168.56.11 (node node-a)"}
    # a URL webhook is outside the cluster's Services: listed as not checked
    assert [c["call"] for c in declared["not_checked"]] == [
        "ValidatingWebhookConfiguration/policy webhook audit.policy.example"]


def test_a_webhook_the_api_server_cannot_reach_is_a_finding(generated: Path,
                                                            tmp_path: Path) -> None:
    policies = _without_webhook_port(generated, tmp_path / "edited")
    run = flowpol("verify", FLOWS, "-s", SNAPSHOT, "-p", str(policies))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "60 allowed, 0 denied" in run.stdout  # every observed connection still allowed
    assert "1 call denied" in run.stdout
    denied = [ln for ln in run.stdout.splitlines()
              if ln.startswith("  kube-apiserver 192.168.56.11")]
    assert len(denied) == 1
    assert "admission/Deployment/policy-webhook TCP/9443" in denied[0]
    assert "validate.policy.example" in denied[0]
    assert "failurePolicy Fail every API request it matches is rejected" in denied[0]
    # --no-declared: only the observed traffic, which is allowed
    run = flowpol("verify", FLOWS, "-s", SNAPSHOT, "-p", str(policies), "--no-declared")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "declared:" not in run.stdout


def test_apiserver_cidr_is_where_the_calls_come_from(generated: Path) -> None:
    # generate's rules admit the EndpointSlice's address; a managed control plane's range
    # is not admitted, so every declared call is denied from there
    run = flowpol("verify", FLOWS, "-s", SNAPSHOT, "-p", str(generated), "--output", "json",
                  "--apiserver-cidr", "10.0.0.0/28")
    assert run.returncode == 1, run.stderr
    declared = json.loads(run.stdout)["declared"]
    assert declared["apiserver"] == {"origin": "--apiserver-cidr",
                                     "sources": ["kube-apiserver 10.0.0.0/28"]}
    assert len({(c["call"], c["port"]) for c in declared["denied"]}) == 4
    assert not declared["allowed"]
    run = flowpol("verify", FLOWS, "-s", SNAPSHOT, "-p", str(generated),
                  "--apiserver-cidr", "not-a-cidr")
    assert run.returncode == 2 and "--apiserver-cidr" in run.stderr


def test_a_snapshot_without_the_declaring_kinds_says_so(generated: Path,
                                                        tmp_path: Path) -> None:
    snap = json.loads(Path(SNAPSHOT).read_text())
    snap["items"] = [o for o in snap["items"] if o["kind"] not in (
        "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
        "CustomResourceDefinition")]
    bare = tmp_path / "cluster.json"
    bare.write_text(json.dumps(snap))
    run = flowpol("verify", FLOWS, "-s", str(bare), "-p", str(generated))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "could not be checked" in run.stdout and "declared:" not in run.stdout
    run = flowpol("verify", FLOWS, "-s", str(bare), "-p", str(generated), "--output", "json")
    assert json.loads(run.stdout)["declared"]["checked"] is False
