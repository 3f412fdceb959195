"""`flowpol migrate` on the bank scenario (tests/bank_scenario.py): shop/admin made a
single connection (too little evidence) and is held back, so shop gets no default-deny;
ops/archive is a weekly CronJob that never ran during the recording, so ops gets none
either; billing is ready, its CronJob ran on schedule."""

from __future__ import annotations

import json

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bad_input import append_cut_line, error_lines
from bank_scenario import MINUTE, observe_bank, write
from generator.verify.check import check_policies
from generator.migrate.plan import MigrateRequest, plan_migration, run_migrate
from generator.migrate.readiness import NOT_AFFECTED, NOT_READY, READY
from generator.pipeline import observe
from generator.resolve.identity import pod_view
from generator.review.evidence import Thresholds
from generator.verify.evaluator import Evaluator
from generator.verify.policy import load_policies, parse_policies
from generator.output.yamlout import strip_comments
from k8s_schema import validate_manifests
from recorder.sources import ReadOptions

REPO = Path(__file__).resolve().parents[3]
THRESHOLDS = Thresholds(min_observation_ns=30 * MINUTE, min_flows=3)


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return observe_bank(tmp_path_factory.mktemp("bank"))


def _request(files, out: Path, **kw) -> MigrateRequest:
    return MigrateRequest(files.inputs, files.snapshot, out, thresholds=THRESHOLDS, **kw)


def _verdicts(plan) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {r.display: (r.verdict, r.reasons) for ns in plan.namespaces for r in ns.workloads}


def test_a_workload_with_too_little_evidence_is_held_back(bank, tmp_path: Path) -> None:
    files, observed = bank
    plan = plan_migration(observed, _request(files, tmp_path))
    verdicts = _verdicts(plan)
    verdict, reasons = verdicts["shop/Deployment/admin"]
    assert verdict == NOT_READY
    assert reasons == ("seen in 1 connection(s), fewer than --min-flows 3",
                       "observed for 0s (2026-11-20T10:50:00Z to 2026-11-20T10:50:00Z), less "
                       "than --min-observation 30m")
    assert {k: v[0] for k, v in verdicts.items()} == {
        "shop/Deployment/admin": NOT_READY, "shop/Deployment/api": READY,
        "shop/Deployment/web": READY, "billing/CronJob/report": READY,
        "billing/Deployment/ledger": READY, "billing/StatefulSet/db": READY,
        "ops/CronJob/archive": NOT_READY, "ops/Deployment/backup": READY}
    archive = verdicts["ops/CronJob/archive"][1]
    assert archive[0].startswith("its schedule `0 3 * * 0` did not fire during the recording")
    shop, billing, ops = (next(p for p in plan.namespaces if p.namespace == ns)
                          for ns in ("shop", "billing", "ops"))
    # Step 1: the ready workloads only; the held-back one keeps running unisolated.
    assert [d.workload for d in shop.step1] == [("Deployment", "api"), ("Deployment", "web")]
    step1 = [p for ns in plan.namespaces for p in ns.step1]
    evaluator = Evaluator.from_inventory(
        parse_policies([strip_comments(d.manifest) for d in step1]), observed.index.inventory)
    [admin_pod] = [p for p in observed.index.inventory.pods if p.name.startswith("admin-")]
    assert evaluator.selecting(pod_view(admin_pod)) == ((), ())
    # Step 3 only where every workload is ready, and the plan says why not elsewhere.
    assert not shop.ready and shop.step3 == ()
    assert shop.not_ready[0].startswith("`Deployment/admin`: seen in 1 connection(s)")
    assert not ops.ready and ops.step3 == () and "`CronJob/archive`" in ops.not_ready[0]
    assert billing.ready and [d.name for d in billing.step3] == ["flowpol-default-deny",
                                                                 "flowpol-allow-dns"]
    report = next(r for r in billing.workloads if r.workload.name == "report")
    assert report.schedule == "*/30 * * * *" and report.fired == 3  # 09:30, 10:00, 10:30
    assert len(report.activity.pods) == 4  # the 09:00 run too (the recording starts at 09:00:04)
    # Every observed connection stays allowed after each step.
    assert plan.after_step1.denied == 0 and plan.after_step3.denied == 0
    assert plan.exit_code == 1
    # The CronJob's schedule sets how long to watch ops: a week between runs.
    assert ops.watch_ns > 7 * 24 * 60 * MINUTE and billing.watch_ns == 60 * MINUTE


def test_a_ready_namespace_applied_step_by_step_keeps_the_traffic(bank, tmp_path: Path) -> None:
    files, observed = bank
    plan, written, _ = run_migrate(_request(files, tmp_path / "plan"))
    out = tmp_path / "plan"
    assert sorted(p.relative_to(out).as_posix() for p in written) == [
        "billing/step-1-allow.yaml", "billing/step-3-default-deny.yaml",
        "ops/step-1-allow.yaml", "plan.html", "plan.json", "plan.md",
        "rollback/billing/step-1.yaml", "rollback/billing/step-3.yaml",
        "rollback/ops/step-1.yaml", "rollback/shop/step-1.yaml", "shop/step-1-allow.yaml"]
    docs = [d for p in written if p.suffix == ".yaml" for d in yaml.safe_load_all(p.read_text()) if d]
    assert validate_manifests(docs) == len(docs)
    # Each rollback manifest names exactly the objects its step creates.
    for ns, step, kind in (("billing", 1, "allow"), ("billing", 3, "default-deny"),
                           ("shop", 1, "allow"), ("ops", 1, "allow")):
        apply = load_policies([str(out / ns / f"step-{step}-{kind}.yaml")])
        rollback = load_policies([str(out / "rollback" / ns / f"step-{step}.yaml")])
        assert [p.id for p in apply.policies] == [p.id for p in rollback.policies]
    # Replay: billing fully locked down, the others with their step 1, nothing denied.
    applied = load_policies([str(out / "billing"), str(out / "shop/step-1-allow.yaml"),
                             str(out / "ops/step-1-allow.yaml")])
    assert "billing/flowpol-default-deny" in [p.id for p in applied.policies]
    result = check_policies(observed.resolved.connections, applied.policies, observed.index)
    assert result.denied == 0
    md = (out / "plan.md").read_text()
    assert "## Namespace shop: not ready for default-deny" in md
    assert "## Namespace billing: ready for default-deny" in md
    assert "kubectl apply -f billing/step-3-default-deny.yaml" in md
    assert "kubectl delete -f rollback/billing/step-3.yaml" in md
    assert "Not part of this plan: the namespace is not ready." in md


def test_everything_ready_with_enough_evidence(bank, tmp_path: Path) -> None:
    files, observed = bank
    req = MigrateRequest(files.inputs, files.snapshot, tmp_path,
                         thresholds=Thresholds(30 * MINUTE, 1), namespaces=("billing",))
    plan = plan_migration(observed, req)
    [billing] = plan.namespaces
    assert billing.ready and plan.exit_code == 0


def test_host_network_workloads_are_not_affected(tmp_path: Path) -> None:
    demo = REPO / "fixtures" / "demo"
    observed = observe([str(demo / "flows")], [str(demo / "cluster.json")], ReadOptions())
    plan = plan_migration(observed, MigrateRequest([], [], tmp_path,
                                                   thresholds=Thresholds(60 * MINUTE, 1)))
    verdicts = _verdicts(plan)
    assert verdicts["platform/DaemonSet/metrics-agent"][0] == NOT_AFFECTED
    assert all(ns.ready for ns in plan.namespaces) and plan.exit_code == 0
    payments = next(p for p in plan.namespaces if p.namespace == "payments")
    assert payments.existing == ("postgres-ingress",)  # existing policies stay


def test_cli_exit_codes_and_refusal_to_overwrite(tmp_path: Path) -> None:
    files = write(tmp_path / "bank")

    def flowpol(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "generator.cli.main", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=300)

    held = flowpol("migrate", *files.snapshot_args, "--out", str(tmp_path / "p"),
                   "--min-observation", "30m", "--min-flows", "3")
    assert held.returncode == 1, held.stderr
    assert "shop: step 1 2 allow policies (2 workload(s) ready), watch 1h, step 3 HELD BACK" \
        in held.stdout
    assert "  held back Deployment/admin: seen in 1 connection(s)" in held.stdout
    ready = flowpol("migrate", *files.snapshot_args, "--out", str(tmp_path / "p"),
                    "--min-observation", "30m", "-n", "billing")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert not (tmp_path / "p" / "shop").exists()  # the previous plan was replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    refused = flowpol("migrate", *files.snapshot_args, "--out", str(tmp_path / "mine"))
    assert refused.returncode == 2 and "not written by flowpol migrate" in refused.stderr
    both = flowpol("migrate", *files.snapshot_args, "--out", str(tmp_path / "q"), "-n", "shop",
                   "--exclude-namespace", "shop")
    assert both.returncode == 2 and "both included and excluded" in both.stderr

    # a bad line: the same plan from every valid record, then exit 2
    line = append_cut_line(files.flows)
    bad = flowpol("migrate", *files.snapshot_args, "--out", str(tmp_path / "bad"),
                  "--min-observation", "30m", "-n", "billing")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert bad.stdout == ready.stdout.replace(str(tmp_path / "p"), str(tmp_path / "bad"))
    [error] = error_lines(bad.stderr)
    assert error.startswith(f"flowpol: error: 1 bad input item(s) skipped (invalid-json 1) at "
                            f"{files.flows}:{line}: invalid-json")
    assert error.endswith(f"Output written from every valid record: the plan and manifests in "
                          f"{tmp_path / 'bad'}; fix or remove the bad lines to get exit code 0.")
    bad_plan = json.loads((tmp_path / "bad" / "plan.json").read_text())
    good_plan = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert bad_plan["exit_code"] == 2 and good_plan["exit_code"] == 0
    assert {**bad_plan, "exit_code": 0} == good_plan
