"""`flowpol diff` narrowing used rules, as a user runs it: the real CLI on the bank
scenario (tests/bank_scenario.py) against hand-written broad policies (assets/broad)
and against flowpol's own output made broad."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bank_scenario import observe_bank
from generator.verify.policy import load_policies
from test_tighten_propose import _allowed, _ends, _ports

REPO = Path(__file__).resolve().parents[3]
BROAD = Path(__file__).parent / "assets" / "broad"


def flowpol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    files, observed = observe_bank(tmp_path_factory.mktemp("bank"))
    return files.snapshot_args, observed


def test_broad_set_is_narrowed_with_before_and_after_side_by_side(bank, tmp_path: Path) -> None:
    args, _ = bank
    run = flowpol("diff", *args, "--existing", str(BROAD), "--out", str(tmp_path),
                  "--min-observation", "1h")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "(b) BROADER than their use: 10 used rule(s):" in run.stdout
    assert ("  billing/ledger-out egress[0]: to ipBlock 0.0.0.0/0: 4,294,967,295 address(es) "
            "beyond the 1 observed peer(s) → external 203.0.113.10 only [narrowed]") in run.stdout
    assert ("(b) NOT ISOLATED: 2 workload side(s) with observed traffic that no policy "
            "isolates:\n  billing/CronJob/report egress: 8 connection(s) to "
            "billing/StatefulSet/db, kube-system/Deployment/coredns [new policy "
            "billing/flowpol-report]\n") in run.stdout
    assert ("(c) proposed: 12 of 13 policies change (2 add-isolation, 10 narrow-rule, "
            "1 remove-rule)") in run.stdout
    assert "137 allowed, 0 denied" in run.stdout
    # the review: each narrowed rule as written beside what it becomes, line by line
    md = (tmp_path / "report.md").read_text()
    assert "## Narrowed: used rules broader than their use" in md
    assert "### billing/ledger-out egress[0]: narrowed" in md
    assert "| egress[0] as written | proposed |" in md
    indent = "\u00a0" * 6  # no-break spaces: a Markdown viewer keeps the indentation
    assert f"| `{indent}cidr: 0.0.0.0/0` | `{indent}cidr: 203.0.113.10/32` |" in md
    page = (tmp_path / "report.html").read_text()
    assert page.count('<table class="side">') == 10
    assert "cidr: 0.0.0.0/0" in page and "cidr: 203.0.113.10/32" in page
    data = json.loads((tmp_path / "diff.json").read_text())
    ledger = next(p for p in data["policies"] if p["policy"] == "billing/ledger-out")
    assert ledger["narrowed"][0]["status"] == "narrowed"
    assert ledger["narrowed"][0]["after"] == [
        {"to": [{"ipBlock": {"cidr": "203.0.113.10/32"}}],
         "ports": [{"protocol": "TCP", "port": 443}]}]
    added = yaml.safe_load_all((tmp_path / "proposed" / "flowpol-added-billing.yaml").read_text())
    assert [d["metadata"]["name"] for d in added if d] == ["flowpol-report"]
    assert data["not_isolated"][0]["policy"] == "billing/flowpol-report"
    # edited in place: the author's comment above the rule stays
    new = (tmp_path / "proposed" / "billing" / "ipblock-all.yaml").read_text()
    assert "  # the payment gateway, wherever it moves\n  - to:\n    - ipBlock:\n" \
           "        cidr: 203.0.113.10/32\n" in new
    # the proposed set verifies clean through the CLI
    check = flowpol("verify", *args, "--policies", str(tmp_path / "proposed"))
    assert check.returncode == 0, check.stdout + check.stderr


def test_without_enough_evidence_each_narrowing_is_listed_and_none_applied(bank, tmp_path):
    args, _ = bank
    run = flowpol("diff", *args, "--existing", str(BROAD), "--out", str(tmp_path),
                  "--min-observation", "3h")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "(b) BROADER than their use: 10 used rule(s):" in run.stdout
    listed = [line for line in run.stdout.splitlines() if "→" in line]
    assert len(listed) == 10
    assert all(line.endswith("[not enough evidence: the recording covers 1h 55m, less than "
                             "--min-observation 3h]") for line in listed)
    assert "(c) proposed: 0 of 11 policies change" in run.stdout
    assert ("  billing/CronJob/report egress: 8 connection(s) to billing/StatefulSet/db, "
            "kube-system/Deployment/coredns [would add billing/flowpol-report; not enough "
            "evidence: the recording covers 1h 55m") in run.stdout
    assert not (tmp_path / "proposed" / "flowpol-added-billing.yaml").exists()
    assert (tmp_path / "proposed.diff").read_text() == ""
    md = (tmp_path / "report.md").read_text()
    assert "| egress[0] as written | would become (not applied) |" in md
    assert md.count("would narrow to the rule(s) on the right; not enough evidence") == 10


def _broadened(doc: dict) -> dict:
    """A flowpol-written policy made broad: workload rules admit every peer on every
    port (ingress ``{}``; egress to every namespace or 0.0.0.0/0, no ports), DNS all of
    kube-system."""
    spec = doc["spec"]
    name = doc["metadata"]["name"]
    if name == "flowpol-allow-dns":
        for rule in spec["egress"]:
            rule["to"] = [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "kube-system"}}}]
        return doc
    if spec.get("ingress"):
        spec["ingress"] = [{}]
    for rule in spec.get("egress") or []:
        if "to" not in rule:
            continue  # already everything: an idle workload's held-out policy
        rule.pop("ports", None)
        rule["to"] = [{"ipBlock": {"cidr": "0.0.0.0/0"}} if "ipBlock" in p
                      else {"namespaceSelector": {}} for p in rule["to"]]
    return doc


def test_flowpol_written_set_made_broad_narrows_back_to_what_generate_allows(bank, tmp_path):
    args, observed = bank
    gen = flowpol("generate", *args, "--out", str(tmp_path / "gen"))
    assert gen.returncode == 0, gen.stdout + gen.stderr
    broad = tmp_path / "broad"
    broad.mkdir()
    for f in sorted((tmp_path / "gen").glob("*.yaml")):
        if f.name == "kustomization.yaml":
            continue
        docs = [_broadened(d) for d in yaml.safe_load_all(f.read_text()) if d]
        (broad / f.name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    run = flowpol("diff", *args, "--existing", str(broad), "--out", str(tmp_path / "out"),
                  "--min-observation", "1h")
    assert run.returncode == 1, run.stdout + run.stderr
    listed = [line for line in run.stdout.splitlines() if "→" in line]
    assert listed and all(line.endswith("[narrowed]") for line in listed)
    generated = tuple(load_policies([str(tmp_path / "gen")]).policies)
    made_broad = tuple(load_policies([str(broad)]).policies)
    proposed = tuple(load_policies([str(tmp_path / "out" / "proposed")]).policies)
    ends, ports = _ends(observed), _ports(generated + made_broad, observed)
    wanted = _allowed(generated, observed, ends, ports)
    assert _allowed(made_broad, observed, ends, ports) > wanted  # it was broader
    assert _allowed(proposed, observed, ends, ports) == wanted  # and is exactly generate's again


DECLARED = REPO / "fixtures" / "scenarios" / "declared"


def test_declared_api_server_calls_are_never_narrowed_or_removed_away(tmp_path: Path) -> None:
    """The `declared` scenario's webhook backend made open to everyone (`ingress: [{}]`):
    the narrowed rule keeps the API server on the webhook's targetPort though the
    recording never shows the call, and the unused rules for the other declared calls
    stay; the proposed set passes verify's declared check."""
    args = [str(DECLARED / "flows.jsonl"), "--snapshot", str(DECLARED / "cluster.json")]
    gen = flowpol("generate", *args, "--out", str(tmp_path / "gen"))
    assert gen.returncode == 0, gen.stdout + gen.stderr
    broad = tmp_path / "broad"
    broad.mkdir()
    for f in sorted((tmp_path / "gen").glob("*.yaml")):
        if f.name == "kustomization.yaml":
            continue
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d]
        for d in docs:
            if d["metadata"]["name"] == "flowpol-policy-webhook":
                d["spec"]["ingress"] = [{}]
        (broad / f.name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    out = tmp_path / "out"
    run = flowpol("diff", *args, "--existing", str(broad), "--out", str(out),
                  "--min-observation", "1m")
    assert run.returncode == 1, run.stdout + run.stderr
    assert ("  admission/flowpol-policy-webhook ingress[0]: from any peer (every pod and "
            "address)") in run.stdout
    assert "→ kube-apiserver 192.168.56.11, node node-a (192.168.56.11)" in run.stdout
    assert ("  widgets/flowpol-widget-converter ingress[0].from[0].ports[0]: ipBlock "
            "192.168.56.11/32 on TCP/9443; never seen [kept: declared: the cluster declares "
            "that the API server calls it: CustomResourceDefinition/widgets.example.com]"
            ) in run.stdout
    webhook = next(d for d in yaml.safe_load_all((out / "proposed" / "admission.yaml").read_text())
                   if d and d["metadata"]["name"] == "flowpol-policy-webhook")
    rules = {(p["cidr"], port["port"]) for r in webhook["spec"]["ingress"]
             for p in (x["ipBlock"] for x in r["from"]) for port in r["ports"]}
    assert ("192.168.56.11/32", 9443) in rules  # the declared call, never observed
    data = json.loads((out / "diff.json").read_text())
    [narrowed] = [n for p in data["policies"] for n in p["narrowed"]]
    assert "kept for the API server's declared calls: ValidatingWebhookConfiguration/policy" \
        in narrowed["evidence"]
    check = flowpol("verify", *args, "--policies", str(out / "proposed"))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "every call allowed" in check.stdout
