"""`flowpol migrate --dialect`: the steps in the dialect the cluster enforces, each
manifest valid against its own schema, the rollbacks naming exactly what a step creates,
and the written steps, read back from disk, keeping every observed connection allowed when
judged by that dialect's evaluator (bank scenario, tests/bank_scenario.py: billing ready,
shop and ops held back)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bank_scenario import MINUTE, observe_bank, write
from generator.migrate.plan import MigrateRequest, run_migrate
from generator.review.evidence import Thresholds
from generator.verify.check import check_policies
from generator.verify.combined import make_evaluator
from generator.verify.policyset import load_policy_kinds
from k8s_schema import validate_manifests

REPO = Path(__file__).resolve().parents[3]
THRESHOLDS = Thresholds(min_observation_ns=30 * MINUTE, min_flows=3)
STEP_KINDS = {
    "cilium": ({"CiliumNetworkPolicy"}, {"CiliumNetworkPolicy"}),
    "cluster-network-policy": ({"NetworkPolicy"}, {"ClusterNetworkPolicy"}),
}


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return observe_bank(tmp_path_factory.mktemp("bank"))


def _kinds(path: Path) -> list[str]:
    return [d["kind"] for d in yaml.safe_load_all(path.read_text()) if d]


def _names(path: Path) -> list[tuple[str, str | None, str]]:
    return [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
            for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("dialect", sorted(STEP_KINDS))
def test_steps_in_the_dialect_keep_the_traffic(bank, dialect: str, tmp_path: Path) -> None:
    files, observed = bank
    out = tmp_path / "plan"
    plan, written, _ = run_migrate(MigrateRequest(files.inputs, files.snapshot, out,
                                                  thresholds=THRESHOLDS, dialect=dialect))
    assert plan.dialect == dialect and json.loads((out / "plan.json").read_text())["dialect"] == dialect
    [billing] = [p for p in plan.namespaces if p.ready]
    assert billing.namespace == "billing"
    step1_kinds, step3_kinds = STEP_KINDS[dialect]
    for ns in ("billing", "shop", "ops"):
        assert set(_kinds(out / ns / "step-1-allow.yaml")) == step1_kinds
    assert set(_kinds(out / "billing" / "step-3-default-deny.yaml")) == step3_kinds
    docs = [d for p in written if p.suffix == ".yaml" for d in yaml.safe_load_all(p.read_text()) if d]
    assert validate_manifests(docs) == len(docs)  # the CRDs' own schemas, NetworkPolicies too
    # each rollback names exactly the objects its step creates
    for ns, step, kind in (("billing", 1, "allow"), ("billing", 3, "default-deny"),
                           ("shop", 1, "allow"), ("ops", 1, "allow")):
        assert _names(out / ns / f"step-{step}-{kind}.yaml") == \
            _names(out / "rollback" / ns / f"step-{step}.yaml")
    # replay what a user applies: billing locked down, shop and ops with their step 1
    loaded, kinds = load_policy_kinds([str(out / "billing"), str(out / "shop/step-1-allow.yaml"),
                                       str(out / "ops/step-1-allow.yaml")])
    every = loaded.policies + kinds.cilium + kinds.cluster
    evaluator = make_evaluator(loaded.policies, observed.index.inventory, kinds.cilium, kinds.cluster)
    result = check_policies(observed.resolved.connections, every, observed.index, evaluator)  # type: ignore[arg-type]
    assert result.denied == 0 and result.allowed > 0
    assert plan.after_step3.denied == 0 and plan.after_step3.allowed_count == result.allowed_count
    # billing's step 3 isolates what step 1 did not: a pod of billing that no workload
    # policy selects is denied by it (the evaluator says which policy isolates it)
    step3_ids = {p.id for p in kinds.cilium if p.namespace == "billing" and "flowpol-default-deny" in p.id} \
        | {p.id for p in kinds.cluster}
    assert step3_ids
    md = (out / "plan.md").read_text()
    assert f"Dialect `{dialect}`" in md


def test_cluster_network_policy_baselines_are_per_namespace(bank, tmp_path: Path) -> None:
    files, observed = bank
    req = MigrateRequest(files.inputs, files.snapshot, tmp_path / "p",
                         thresholds=Thresholds(0, 1), namespaces=("billing", "shop"),
                         dialect="cluster-network-policy")
    plan, _, _ = run_migrate(req)
    step3 = {p.namespace: [d.manifest for d in p.step3] for p in plan.namespaces}
    assert {ns: [m["metadata"]["name"] for m in ms] for ns, ms in step3.items() if ms} == {
        "billing": ["flowpol-baseline-billing"], "shop": ["flowpol-baseline-shop"]}
    billing = step3["billing"][0]
    assert billing["spec"]["subject"]["namespaces"]["matchExpressions"][0]["values"] == ["billing"]


def test_cli_dialect(tmp_path: Path) -> None:
    files = write(tmp_path / "bank")

    def flowpol(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "generator.cli.main", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=300)

    ok = flowpol("migrate", *files.snapshot_args, "--out", str(tmp_path / "p"),
                 "--min-observation", "30m", "-n", "billing", "--dialect", "cilium")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert set(_kinds(tmp_path / "p" / "billing" / "step-3-default-deny.yaml")) == {"CiliumNetworkPolicy"}
    bad = flowpol("migrate", *files.snapshot_args, "--out", str(tmp_path / "q"), "--dialect", "calico")
    assert bad.returncode == 2 and "--dialect 'calico' is not one of" in bad.stderr
    assert not (tmp_path / "q").exists()
