"""`flowpol verify --unused` reports used rules that are broader than their use, with
the same measure `flowpol diff` narrows by (peers and ports admitted beyond the
observed ones): the real CLI on the bank scenario (tests/bank_scenario.py) against
broad and exact policy sets (tests/generator/tighten/assets)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bank_scenario import write

REPO = Path(__file__).resolve().parents[3]
TIGHTEN = REPO / "tests" / "generator" / "tighten" / "assets"


def flowpol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> list[str]:
    return write(tmp_path_factory.mktemp("bank")).snapshot_args


def test_an_allow_all_ingress_policy_is_used_but_broader_than_its_use(bank) -> None:
    run = flowpol("verify", *bank, "--policies", str(TIGHTEN / "broad" / "shop" /
                                                     "allow-all-rule.yaml"), "--unused")
    assert run.returncode == 0, run.stdout + run.stderr  # a finding to read, not a denial
    assert "unused: none" in run.stdout  # every connection into api used ingress: [{}]
    assert ("BROADER than their use: 1 used rule admits more peers or ports than the "
            "connections that used them") in run.stdout
    assert ("  shop/api-open ingress[0]: from any peer (every pod and address): 10 pod(s) of "
            "6 workload(s) and every address beyond the observed; every port of every "
            "protocol: 196,604 port(s) beyond the observed (49 connections used it)") in run.stdout


def test_each_broad_rule_is_measured_in_json(bank) -> None:
    run = flowpol("verify", *bank, "--policies", str(TIGHTEN / "broad"), "--unused",
                  "-o", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    broader = {(b["policy"], b["direction"], b["rule"]): b
               for b in json.loads(run.stdout)["unused"]["broader_than_use"]}
    assert len(broader) == 10
    gateway = broader[("billing/ledger-out", "egress", 0)]
    assert gateway["peers"] == [{"peer": 0, "beyond": 2 ** 32 - 1, "text":
                                 "ipBlock 0.0.0.0/0: 4,294,967,295 address(es) beyond the 1 "
                                 "observed peer(s)"}] and gateway["ports"] == []
    assert broader[("shop/web-out", "egress", 0)]["ports"][0]["beyond"] == 999  # 8000-8999
    assert broader[("shop/api-out", "egress", 0)]["peers"] == []  # the ledger: exact
    # a podSelector {} whose namespace holds only the observed pods (and the server
    # itself) is still broad: every pod added later is admitted too
    dns = broader[("ops/backup-dns", "egress", 0)]["peers"][0]
    assert dns["beyond"] == 0 and "every pod added later" in dns["text"]


def test_exact_rules_are_not_broader_than_their_use(bank) -> None:
    run = flowpol("verify", *bank, "--policies", str(TIGHTEN / "exact"), "--unused")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "unused: none" in run.stdout and "BROADER" not in run.stdout.upper()
