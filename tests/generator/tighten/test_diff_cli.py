"""`flowpol diff` as a user runs it: the real CLI in a subprocess, real exit codes, the
files it writes, and the live-cluster source through the stand-in API server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bad_input import append_cut_line, error_lines
from bank_scenario import write
from generator.verify.policy import load_policies
from standin_apiserver import StandInApiServer

REPO = Path(__file__).resolve().parents[3]
ASSETS = Path(__file__).parent / "assets"


def flowpol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> list[str]:
    return write(tmp_path_factory.mktemp("bank")).snapshot_args


def test_exact_set_exits_0_and_proposes_the_same_files(bank, tmp_path: Path) -> None:
    run = flowpol("diff", *bank, "--existing", str(ASSETS / "exact"), "--out", str(tmp_path),
                  "--min-observation", "1h")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "(a) denied: none" in run.stdout and "(b) unused: none" in run.stdout
    assert "(c) proposed: 0 of 11 policies change" in run.stdout
    assert (tmp_path / "proposed.diff").read_text() == ""
    for f in (ASSETS / "exact").rglob("*"):
        if f.is_file():
            assert (tmp_path / "proposed" / f.relative_to(ASSETS / "exact")).read_text() == \
                f.read_text()


def test_too_broad_set_exits_1_with_a_diff_the_proposed_files_and_a_report(bank, tmp_path):
    run = flowpol("diff", *bank, "-p", str(ASSETS / "too-broad"), "--out", str(tmp_path),
                  "--min-observation", "1h")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "shop/api-server ingress[2]:" in run.stdout and "never seen [remove]" in run.stdout
    assert "ops/legacy-app ingress[0]" in run.stdout and "[not enough evidence:" in run.stdout
    assert ("proposed set verified: 137 observed connections in " in run.stdout
            and "137 allowed, 0 denied" in run.stdout)
    udiff = (tmp_path / "proposed.diff").read_text()
    assert "--- a/shop/api-server.yaml\n+++ b/shop/api-server.yaml\n" in udiff
    assert "-  # ssh for debugging, from anywhere\n" in udiff
    # The proposed directory is a complete policy set that loads and verifies.
    loaded = load_policies([str(tmp_path / "proposed")])
    assert len(loaded.policies) == 14
    verify = flowpol("verify", *bank, "-p", str(tmp_path / "proposed"))
    assert verify.returncode == 0, verify.stdout
    doc = json.loads((tmp_path / "diff.json").read_text())
    assert doc["exit_code"] == 1 and doc["proposed_verification"]["denied_connections"] == 0
    report = (tmp_path / "report.md").read_text()
    for heading in ("## Denied: observed connections the existing policies deny",
                    "## Unused in the window", "## Proposed changes", "## Unified diff",
                    "## Traffic graph", "## The proposed set"):
        assert heading in report
    assert "```mermaid\nflowchart LR" in report and "```diff\n" in report
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    # Running again replaces the proposal.
    again = flowpol("diff", *bank, "-p", str(ASSETS / "exact"), "--out", str(tmp_path),
                    "--min-observation", "1h")
    assert again.returncode == 0 and not (tmp_path / "proposed" / "shop" / "web-extra.yaml").exists()


def test_too_narrow_set_lists_the_denied_connections(bank, tmp_path: Path) -> None:
    run = flowpol("diff", *bank, "-p", str(ASSETS / "too-narrow"), "--out", str(tmp_path),
                  "--min-observation", "1h")
    assert run.returncode == 1
    assert "(a) DENIED: 35 observed connection(s)" in run.stdout
    assert "shop/Deployment/web -> shop/Deployment/api TCP/8080: 24 connection(s)" in run.stdout
    new = yaml.safe_load_all((tmp_path / "proposed" / "flowpol-added-shop.yaml").read_text())
    assert [d["metadata"]["name"] for d in new if d] == ["flowpol-web"]


def test_default_min_observation_is_a_week(bank, tmp_path: Path) -> None:
    run = flowpol("diff", *bank, "-p", str(ASSETS / "too-broad"), "--out", str(tmp_path))
    assert "removal needs --min-observation 7d" in run.stdout
    assert "less than --min-observation 7d" in run.stdout


def test_usage_and_input_errors_exit_2_with_a_message(bank, tmp_path: Path) -> None:
    both = flowpol("diff", *bank, "-p", str(ASSETS / "exact"), "--cluster", "--out", str(tmp_path))
    assert both.returncode == 2 and "not both" in both.stderr
    neither = flowpol("diff", *bank, "--out", str(tmp_path))
    assert neither.returncode == 2 and "--existing PATH" in neither.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n"
                   "  name: x\n  namespace: shop\nspec:\n  podSelector: {}\n  ingress:\n"
                   "  - form: []\n")
    typo = flowpol("diff", *bank, "-p", str(bad), "--out", str(tmp_path / "out"))
    assert typo.returncode == 2 and "Traceback" not in typo.stderr
    assert f"{bad}:9:" in typo.stderr and "form" in typo.stderr
    duration = flowpol("diff", *bank, "-p", str(bad), "--out", str(tmp_path / "out"),
                       "--min-observation", "soon")
    assert duration.returncode == 2 and "not a duration" in duration.stderr
    occupied = tmp_path / "occupied"
    (occupied / "proposed").mkdir(parents=True)
    (occupied / "proposed" / "mine.txt").write_text("keep me")
    refused = flowpol("diff", *bank, "-p", str(ASSETS / "exact"), "--out", str(occupied))
    assert refused.returncode == 2 and "was not written by flowpol diff" in refused.stderr
    assert (occupied / "proposed" / "mine.txt").read_text() == "keep me"


def test_bad_line_exits_2_after_writing_the_proposal_of_every_valid_record(tmp_path: Path) -> None:
    files = write(tmp_path / "bank")
    line = append_cut_line(files.flows)
    out = tmp_path / "out"
    run = flowpol("diff", *files.snapshot_args, "-p", str(ASSETS / "exact"), "--out", str(out),
                  "--min-observation", "1h")
    assert run.returncode == 2, run.stdout + run.stderr
    # the same result as the exact set without the bad line (exit 0 there)
    assert "(a) denied: none" in run.stdout and "(c) proposed: 0 of 11 policies change" in run.stdout
    assert (out / "proposed.diff").read_text() == ""
    assert json.loads((out / "diff.json").read_text())["exit_code"] == 2
    [error] = error_lines(run.stderr)
    assert error.startswith(f"flowpol: error: 1 bad input item(s) skipped (invalid-json 1) at "
                            f"{files.flows}:{line}: invalid-json")
    assert error.endswith(f"Output written from every valid record: the proposal and reports in "
                          f"{out}; fix or remove the bad lines to get exit code 0.")
    strict = flowpol("diff", *files.snapshot_args, "-p", str(ASSETS / "exact"),
                     "--out", str(tmp_path / "strict"), "--strict")
    assert strict.returncode == 2 and not (tmp_path / "strict").exists()
    assert strict.stderr.startswith(f"flowpol: error: {files.flows}:{line}: invalid-json")


def test_cluster_policies_are_the_existing_set(bank, tmp_path: Path) -> None:
    objects = [d for f in sorted((ASSETS / "too-broad" / "shop").iterdir())
               for d in yaml.safe_load_all(f.read_text()) if d]
    with StandInApiServer(objects) as srv:
        kubeconfig = srv.kubeconfig_path(tmp_path)
        run = flowpol("diff", *bank, "--cluster", "--kubeconfig", str(kubeconfig),
                      "--out", str(tmp_path / "out"), "--min-observation", "1h")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "existing: 6 NetworkPolicies from the cluster (context standin)" in run.stdout
    udiff = (tmp_path / "out" / "proposed.diff").read_text()
    assert udiff.startswith("--- a/shop.yaml\n+++ b/shop.yaml\n")
    assert "-  - ports:\n-    - protocol: TCP\n-      port: 22\n" in udiff
