"""The same numbers under the same names in every output, through the real CLI: the
demo's connections counted once, grouped the same way by generate (summary,
report.json, report.md, report.html), verify (text and JSON), diff and migrate."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"
FLOWS = str(DEMO / "flows")
SNAPSHOT = str(DEMO / "cluster.json")
# flow aggregates are not what a user counts ("aggregated APIs", the Kubernetes term, is
# another thing)
AGGREGATES = re.compile(r"\baggregate(s|\(s\))?\b")
PHRASE = re.compile(r"([\d,]+) observed connections? in ([\d,]+) groups? \(client, server, "
                    r"port\): ([\d,]+) allowed, ([\d,]+) denied")


def flowpol(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def _numbers(text: str) -> set[tuple[int, ...]]:
    return {tuple(int(x.replace(",", "")) for x in m) for m in PHRASE.findall(text)}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("wording") / "policies"
    run = flowpol("generate", FLOWS, "-s", SNAPSHOT, "--out", str(out))
    assert run.returncode == 0, run.stderr
    return out, run.stdout


def test_generate_says_connections_for_connections_everywhere(generated) -> None:
    out, stdout = generated
    report = json.loads((out / "report.json").read_text())
    v, c = report["verification"], report["connections"]
    # the ground truth: every edge's connections, each connection counted once
    total = sum(e["count"] for e in report["edges"])
    expected = (total, v["groups"], total, 0)
    truth = json.loads((DEMO / "expected-edges.json").read_text())  # by the demo's generator
    assert c["connections"] == v["connections"] == total == sum(
        e["connections"] for e in truth["edges"])
    assert c["dropped_attempts_left_out"] == report["aggregation"]["dropped"] > 0
    assert _numbers(stdout) == {expected}
    assert f"{total:,} connection(s) (" in stdout
    for page in ("report.md", "report.html"):
        assert _numbers((out / page).read_text()) == {expected}, page
    for text in (stdout, (out / "report.md").read_text()):
        assert not AGGREGATES.search(text)


def test_verify_diff_and_migrate_give_the_same_numbers(generated, tmp_path: Path) -> None:
    out, stdout = generated
    expected = _numbers(stdout)
    [(total, groups, _, _)] = expected

    verify = flowpol("verify", FLOWS, "-s", SNAPSHOT, "-p", str(out))
    assert verify.returncode == 0, verify.stderr
    assert _numbers(verify.stdout) == expected
    as_json = json.loads(flowpol("verify", FLOWS, "-s", SNAPSHOT, "-p", str(out),
                                 "-o", "json").stdout)
    report = json.loads((out / "report.json").read_text())
    assert as_json["summary"] == {k: v for k, v in report["verification"].items()
                                  if k != "denied_list"}

    diff = flowpol("diff", FLOWS, "-s", SNAPSHOT, "--existing", str(out), "--out",
                   str(tmp_path / "diff"), "--min-observation", "1h")
    assert diff.returncode in (0, 1), diff.stderr
    assert _numbers(diff.stdout) == expected
    assert f"{total:,} connection(s)" in diff.stdout and not AGGREGATES.search(diff.stdout)

    migrate = flowpol("migrate", FLOWS, "-s", SNAPSHOT, "--out", str(tmp_path / "plan"),
                      "--min-observation", "1h")
    assert migrate.returncode == 0, migrate.stderr
    assert _numbers(migrate.stdout) == expected
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    for step in ("after_step1", "after_step3"):
        assert (plan["verification"][step]["connections"],
                plan["verification"][step]["groups"]) == (total, groups)


def test_migrate_with_nothing_ready_says_so_and_claims_no_step(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    run = flowpol("migrate", FLOWS, "-s", SNAPSHOT, "--out", str(out))  # 7d > the demo's 6h
    assert run.returncode == 1, run.stderr
    assert "nothing is ready to apply" in run.stdout
    assert "verified after" not in run.stdout and "step manifest(s)" not in run.stdout
    assert not list(out.rglob("*.yaml"))
    plan = json.loads((out / "plan.json").read_text())
    assert plan["verification"] == {"after_step1": None, "after_step3": None}
    md = (out / "plan.md").read_text()
    assert "nothing to replay" in md and "With existing policies" not in md


def test_migrate_never_verifies_a_held_back_step(tmp_path: Path) -> None:
    """Step 1 ready in every namespace, step 3 held back in one (a workload without
    enough connections): the replay after step 3 names only where it applies."""
    out = tmp_path / "plan"
    run = flowpol("migrate", FLOWS, "-s", SNAPSHOT, "--out", str(out), "--min-observation",
                  "1h", "--min-flows", "30")
    assert run.returncode == 1, run.stderr
    held = {line.split(":")[0] for line in run.stdout.splitlines() if "step 3 HELD BACK" in line}
    assert held
    for line in run.stdout.splitlines():
        if line.startswith("verified after step 3"):
            applies = line[line.index("in ") + 3:line.index(")")].split(", ")
            assert not set(applies) & held, line
    plan = json.loads((out / "plan.json").read_text())
    after3 = plan["verification"]["after_step3"]
    assert after3 is None or not set(after3["namespaces"]) & held
