"""report.md under --dialect cilium: every Cilium policy with its rules and their evidence;
per policy and direction the rules account for the same observed connections as the
kubernetes dialect's NetworkPolicy of the same name (same model, same traffic)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from bank_scenario import write
from generator.generate import GenerateRequest, run_generate
from generator.synthesize.synthesis import SynthesisOptions


def _connections_per_policy(md: str) -> dict[tuple[str, str], int]:
    """(policy "ns/name", direction) -> the Connections column summed over its rule rows."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    policy = direction = None
    for line in md.splitlines():
        heading = re.match(r"#### (?:CiliumNetworkPolicy )?(\S+/\S+)$", line)
        if heading:
            policy = heading.group(1)
            continue
        if line.startswith("## "):
            policy = None
        row = re.match(r"\| (`(ingress|egress)\[\d+\]`|  ) \|", line)
        if policy is None or not row:
            continue
        if row.group(2):
            direction = row.group(2)
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[(policy, direction)] += int(cells[4].replace(",", ""))  # type: ignore[index]
    return dict(out)


def test_cilium_rules_carry_the_same_evidence(tmp_path: Path) -> None:
    files = write(tmp_path / "bank")
    reports = {}
    for dialect in ("kubernetes", "cilium"):
        out = tmp_path / dialect
        result = run_generate(GenerateRequest(files.inputs, files.snapshot, out,
                                              synthesis=SynthesisOptions(dialect=dialect)))
        reports[dialect] = (out / "report.md").read_text()
    # an idle workload's hold-out policy allows everything on no evidence at all
    held_out = {f"{i['workload'].split('/')[0]}/{i['policy']}"
                for i in result.report["idle_workloads"] if i["policy"]}
    cilium_md = reports["cilium"]
    assert "CiliumNetworkPolicies" in cilium_md.split("\n## ")[0]
    assert "#### CiliumNetworkPolicy billing/flowpol-ledger" in cilium_md
    assert "| `egress[0]` | CIDR 203.0.113.10/32 | TCP/443 | external 203.0.113.10 |" in cilium_md
    k8s, cil = _connections_per_policy(reports["kubernetes"]), _connections_per_policy(cilium_md)
    workload_policies = {k for k in k8s if "flowpol-default-deny" not in k[0]
                         and "flowpol-allow-dns" not in k[0]}
    assert workload_policies and all(k8s[k] > 0 for k in workload_policies
                                     if k[0] not in held_out)
    assert all(k8s[k] == 0 for k in workload_policies if k[0] in held_out)
    assert {k: cil.get(k) for k in workload_policies} == {k: k8s[k] for k in workload_policies}
