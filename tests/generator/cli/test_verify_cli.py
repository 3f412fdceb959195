"""`flowpol verify`, run as a user runs it: a subprocess of the real CLI, real exit codes.

The scenario (tests/generator/verify/assets, written by make_shop.py): shop/web calls
shop/api through Service api port 80 -> targetPort 8080, both resolve names through
kube-dns (UDP 53, once TCP 53), api calls 203.0.113.10:443, kubelets probe api.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bad_input import append_cut_line, error_lines
from standin_apiserver import StandInApiServer

REPO = Path(__file__).resolve().parents[3]
ASSETS = REPO / "tests" / "generator" / "verify" / "assets"
POLICIES = ASSETS / "policies"
SHOP = [str(ASSETS / "shop" / "flows.jsonl"), "--snapshot", str(ASSETS / "shop" / "cluster.json")]
CORRECT = ["-p", str(POLICIES / "common"), "-p", str(POLICIES / "dns.yaml"),
           "-p", str(POLICIES / "api.yaml")]
SERVICE_PORT = ["-p", str(POLICIES / "common"), "-p", str(POLICIES / "dns.yaml"),
                "-p", str(POLICIES / "api-service-port.yaml")]
NO_DNS = ["-p", str(POLICIES / "common"), "-p", str(POLICIES / "api.yaml")]
DEMO = REPO / "fixtures" / "demo"


def flowpol(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env)


def verify_json(*args: str) -> tuple[int, dict]:
    run = flowpol("verify", *args, "--output", "json")
    assert run.returncode in (0, 1), run.stderr
    assert "Traceback" not in run.stderr
    return run.returncode, json.loads(run.stdout)


def test_correct_policy_set_allows_every_observed_connection() -> None:
    run = flowpol("verify", *SHOP, *CORRECT)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "policies: 4 NetworkPolicies in 1 namespace from 4 files" in out
    # kustomization.yaml in the directory holds no policy: ignored, said in one line, not
    # counted as a skipped document
    assert "ignored 1 file of the directory that hold no policy: kustomization.yaml" in out
    assert "skipped" not in out.split("flows:")[0]
    assert ", 0 denied" in out and "DENIED" not in out
    assert "UNUSED" not in out  # only with --unused


def test_service_port_instead_of_target_port_is_denied_at_destination_ingress() -> None:
    run = flowpol("verify", *SHOP, *SERVICE_PORT)
    assert run.returncode == 1, run.stdout + run.stderr
    text = run.stdout.splitlines()
    head = next(i for i, line in enumerate(text) if line.startswith("DENIED"))
    denied = text[head + 1:]
    # client, server, port, count, last seen, the Service dialled; then reason and hint
    assert denied[0].startswith("  shop/Deployment/web -> shop/Deployment/api TCP/8080: ")
    assert "last seen 2026-11-20T09:1" in denied[0] and "via Service shop/api:80" in denied[0]
    assert denied[1].strip().startswith("denied by destination ingress: isolated by "
                                        "shop/default-deny, shop/api; no ingress rule")
    assert "hint:" in denied[2] and "Service port TCP/80" in denied[2] and "use port 8080" in denied[2]
    assert len(denied) == 3  # nothing else is denied

    code, doc = verify_json(*SHOP, *SERVICE_PORT)
    assert code == 1 and doc["result"] == "denied" and doc["exit_code"] == 1
    [g] = doc["denied"]
    assert (g["client"], g["server"], g["protocol"], g["port"]) == (
        "shop/Deployment/web", "shop/Deployment/api", "TCP", 8080)
    assert g["denied_by"] == "destination ingress"
    assert g["destination_ingress"]["isolated"] and not g["destination_ingress"]["allowed"]
    assert g["destination_ingress"]["selecting"] == ["shop/default-deny", "shop/api"]
    assert g["source_egress"]["allowed_by"] == [{"policy": "shop/web", "rule": 0}]
    assert g["services"] == ["shop/api:80"] and g["connections"] >= 1


def test_egress_without_dns_rule_denies_dns_at_source_egress() -> None:
    code, doc = verify_json(*SHOP, *NO_DNS)
    assert code == 1
    denied = doc["denied"]
    assert {(g["client"], g["protocol"]) for g in denied} == {
        ("shop/Deployment/web", "UDP"), ("shop/Deployment/api", "UDP"), ("shop/Deployment/api", "TCP")}
    for g in denied:
        assert g["server"] == "kube-system/Deployment/coredns" and g["port"] == 53
        assert g["denied_by"] == "source egress"
        assert g["reason"].startswith("denied by source egress: isolated by shop/default-deny, ")
        assert g["source_egress"]["allowed_by"] == [] and g["destination_ingress"]["allowed"]
        assert "this is DNS" in g["hint"]
    # everything else is still allowed, with the rule that allows it on each side
    allowed = {(g["client"], g["server"], g["port"]): g for g in doc["allowed"]}
    web_api = allowed[("shop/Deployment/web", "shop/Deployment/api", 8080)]
    assert web_api["allowed_by"] == ["shop/web egress[0]", "shop/api ingress[0]"]
    assert doc["summary"]["denied_connections"] > 0 and doc["summary"]["denied_groups"] == 3


def test_json_output_shape_and_determinism() -> None:
    first = flowpol("verify", *SHOP, *CORRECT, "--output", "json", "--unused")
    second = flowpol("verify", *SHOP, *CORRECT, "--output", "json", "--unused")
    assert first.returncode == 0 and first.stdout == second.stdout
    doc = json.loads(first.stdout)
    assert set(doc) == {"flowpol_verify", "result", "exit_code", "policies", "inputs",
                        "snapshot_warnings", "resolution", "summary", "denied", "allowed",
                        "unused", "declared"}
    assert doc["flowpol_verify"] == 1 and doc["result"] == "allowed" and doc["denied"] == []
    assert doc["policies"]["origin"] == "files"
    assert doc["policies"]["ids"] == ["shop/default-deny", "shop/web", "shop/allow-dns", "shop/api"]
    assert doc["policies"]["skipped"] == []
    assert doc["policies"]["ignored"] == [str(POLICIES / "common" / "kustomization.yaml")]
    s = doc["summary"]
    assert s["denied_connections"] == 0 and s["allowed_connections"] == s["connections"] > 0
    assert s["allowed_connections"] == sum(g["connections"] for g in doc["allowed"])
    for g in doc["allowed"]:
        assert {"client", "server", "protocol", "port", "connections", "first_seen", "last_seen",
                "reason", "allowed_by", "source_egress", "destination_ingress"} <= set(g)
    # kubelet probes from the pod's own node: allowed by the exemption, not by a rule
    probes = [g for g in doc["allowed"] if g["client"].startswith("node ")]
    assert probes and all(g["destination_ingress"]["exemption"] == "own-node" for g in probes)


def test_unused_lists_rules_and_peer_port_combinations_no_connection_used() -> None:
    run = flowpol("verify", *SHOP, *CORRECT, "--unused")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("UNUSED"))
    assert lines[head].startswith("UNUSED: 1 rule and 1 peer/port combination")
    assert lines[head + 1:] == [
        "  shop/api ingress[1]: ingress of pods app=api in namespace shop from pods app=admin "
        "in namespace shop on TCP/9090",
        "  shop/web egress[0] to[0] x ports[1]: pods app=api in namespace shop on TCP/8443",
    ]
    code, doc = verify_json(*SHOP, *CORRECT, "--unused")
    unused = doc["unused"]
    assert [(r["policy"], r["direction"], r["rule"], r["peers"], r["ports"]) for r in unused["unused_rules"]] == [
        ("shop/api", "ingress", 1, ["pods app=admin in namespace shop"], ["TCP/9090"])]
    assert [(e["policy"], e["rule"], e["peer"], e["port"], e["port_text"]) for e in unused["unused_entries"]] == [
        ("shop/web", 0, 0, 1, "TCP/8443")]
    used = {(r["policy"], r["direction"], r["rule"]): r["connections"] for r in unused["rules"]}
    assert used[("shop/api", "ingress", 0)] > 0 and used[("shop/allow-dns", "egress", 0)] > 0


def test_show_allowed_lists_the_rules_allowing_each_connection() -> None:
    run = flowpol("verify", *SHOP, *CORRECT, "--show-allowed")
    assert run.returncode == 0
    out = run.stdout
    assert "ALLOWED:" in out
    assert "allowed by shop/web egress[0]" in out and "allowed by shop/api ingress[0]" in out
    assert "always allowed, from the pod's own node" in out


@pytest.mark.parametrize("name, where, what", [
    ("syntax.yaml", "syntax.yaml:8: ", "not valid YAML or JSON"),
    ("typo.yaml", "typo.yaml:9: ", "spec.ingress[0] has unknown field(s) form"),
])
def test_bad_policy_file_exits_2_with_file_and_line(name: str, where: str, what: str) -> None:
    run = flowpol("verify", *SHOP, "-p", str(POLICIES / "bad" / name))
    assert run.returncode == 2
    assert where in run.stderr and what in run.stderr
    assert run.stderr.startswith("flowpol: error: ") and "Traceback" not in run.stderr
    assert run.stdout == ""


@pytest.mark.parametrize("args, message", [
    ([], "give the policies to verify"),
    (["-p", str(POLICIES / "dns.yaml"), "--cluster"], "not both"),
    (["-p", str(POLICIES / "dns.yaml"), "--context", "x"], "only apply with --cluster"),
    (["-p", str(POLICIES / "dns.yaml"), "--output", "xml"], "--output 'xml' is not one of"),
    (["-p", str(ASSETS / "shop")], "no NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or ClusterNetworkPolicy found in"),
])
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    run = flowpol("verify", *SHOP, *args)
    assert run.returncode == 2 and message in run.stderr, run.stderr


def test_other_networkpolicy_apis_are_counted_and_fatal_under_strict(tmp_path: Path) -> None:
    calico = tmp_path / "calico.yaml"
    calico.write_text("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n"
                      "metadata: {name: c, namespace: shop}\nspec: {selector: all()}\n")
    run = flowpol("verify", *SHOP, *CORRECT, "-p", str(calico))
    assert run.returncode == 0
    assert f"warning: {calico}:1: other-networkpolicy-api:projectcalico.org" in run.stdout
    strict = flowpol("verify", *SHOP, *CORRECT, "-p", str(calico), "--strict")
    assert strict.returncode == 2
    assert f"{calico}:1: projectcalico.org NetworkPolicy" in strict.stderr


def _policy_objects(*paths: Path) -> list[dict]:
    out = []
    for path in paths:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for f in files:
            out += [d for d in yaml.safe_load_all(f.read_text()) if d and d.get("kind") == "NetworkPolicy"]
    return out


def _denied_section(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    return lines[next((i for i, x in enumerate(lines) if x.startswith("DENIED")), len(lines)):]


def test_bad_line_exits_2_after_the_verification_of_every_valid_record(tmp_path: Path) -> None:
    flows = tmp_path / "flows.jsonl"
    flows.write_text((ASSETS / "shop" / "flows.jsonl").read_text())
    args = [str(flows), "--snapshot", str(ASSETS / "shop" / "cluster.json")]
    clean = flowpol("verify", *args, *NO_DNS)
    assert clean.returncode == 1, clean.stderr
    line = append_cut_line(flows)
    message = (f"flowpol: error: 1 bad input item(s) skipped (invalid-json 1) at {flows}:{line}: "
               "invalid-json (the line is cut off (a truncated write?); it was left out). Output "
               "written from every valid record: the verification on stdout; fix or remove the "
               "bad lines to get exit code 0.")

    allowed = flowpol("verify", *args, *CORRECT)
    assert allowed.returncode == 2, allowed.stdout + allowed.stderr
    assert ", 0 denied" in allowed.stdout and f"e.g. {flows}:{line}: invalid-json" in allowed.stdout
    assert allowed.stderr.splitlines() == [message]
    # findings and bad input: the denied list as without the bad line, then exit 2
    denied = flowpol("verify", *args, *NO_DNS)
    assert denied.returncode == 2 and error_lines(denied.stderr) == [message]
    assert _denied_section(denied.stdout) == _denied_section(clean.stdout) != []
    as_json = flowpol("verify", *args, *CORRECT, "--output", "json")
    assert as_json.returncode == 2 and as_json.stderr.splitlines() == [message]
    doc = json.loads(as_json.stdout)
    assert doc["inputs"]["skipped"] == {"invalid-json": 1} and doc["exit_code"] == 2

    strict = flowpol("verify", *args, *CORRECT, "--strict")
    assert strict.returncode == 2 and strict.stdout == ""
    assert strict.stderr.startswith(f"flowpol: error: {flows}:{line}: invalid-json")


def test_cluster_reads_the_live_networkpolicies(tmp_path: Path) -> None:
    objects = _policy_objects(POLICIES / "common", POLICIES / "dns.yaml", POLICIES / "api-service-port.yaml")
    with StandInApiServer(objects) as srv:
        kubeconfig = srv.kubeconfig_path(tmp_path)
        run = flowpol("verify", *SHOP, "--cluster", "--kubeconfig", str(kubeconfig), "--output", "json")
        requests = [r.path for r in srv.requests]
    assert run.returncode == 1, run.stderr
    doc = json.loads(run.stdout)
    assert doc["policies"]["origin"] == "cluster" and doc["policies"]["context"] == "standin"
    assert sorted(doc["policies"]["ids"]) == ["shop/allow-dns", "shop/api", "shop/default-deny", "shop/web"]
    [g] = doc["denied"]
    assert g["port"] == 8080 and g["denied_by"] == "destination ingress"
    assert requests and all(p.endswith("/networkpolicies") for p in requests)  # nothing else listed


def test_cluster_errors_exit_2(tmp_path: Path) -> None:
    run = flowpol("verify", *SHOP, "--cluster", "--kubeconfig", str(tmp_path / "missing"))
    assert run.returncode == 2 and "no such kubeconfig file" in run.stderr


@pytest.mark.skipif(not (DEMO / "cluster.json").exists() or not (DEMO / "flows").is_dir(),
                    reason="fixtures/demo is not there")
def test_demo_generate_then_verify_allows_everything(tmp_path: Path) -> None:
    out = tmp_path / "policies"
    inputs = [str(DEMO / "flows"), "--snapshot", str(DEMO / "cluster.json")]
    generated = flowpol("generate", *inputs, "--out", str(out))
    assert generated.returncode == 0, generated.stdout + generated.stderr
    code, doc = verify_json(*inputs, "--policies", str(out))
    assert code == 0, doc["denied"]
    assert doc["summary"]["denied_connections"] == 0 and doc["summary"]["connections"] > 0
    assert doc["policies"]["count"] == len(json.loads((out / "report.json").read_text())["policies"])
    text = flowpol("verify", *inputs, "--policies", str(out))
    assert text.returncode == 0 and ", 0 denied" in text.stdout
