"""CronJob spec.timeZone and spec.suspend in `flowpol migrate`'s readiness, on the bank
scenario (tests/bank_scenario.py: recording 2026-11-20 09:00-11:00 UTC; billing/report
runs every 30 minutes and was seen, ops/archive is weekly and never ran)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import k8s_objects as k
from bank_scenario import MINUTE, observe_bank
from generator.inventory.index import InventoryIndex
from generator.inventory.load import load_snapshot
from generator.migrate.plan import MigrateRequest, plan_migration
from generator.migrate.readiness import NOT_READY, READY
from generator.review.evidence import Thresholds
from recorder.errors import SnapshotError

THRESHOLDS = Thresholds(min_observation_ns=30 * MINUTE, min_flows=3)


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return observe_bank(tmp_path_factory.mktemp("bank"))


def _readiness(bank, tmp_path: Path, name: str, **changes):
    """The readiness of CronJob ``name`` with its spec changed as given."""
    files, observed = bank
    inventory = observed.index.inventory
    controllers = tuple(dataclasses.replace(c, **changes)
                        if (c.kind, c.name) == ("CronJob", name) else c
                        for c in inventory.controllers)
    index = InventoryIndex(dataclasses.replace(inventory, controllers=controllers))
    plan = plan_migration(dataclasses.replace(observed, index=index),
                          MigrateRequest(files.inputs, files.snapshot, tmp_path,
                                         thresholds=THRESHOLDS))
    return next(r for ns in plan.namespaces for r in ns.workloads
                if (r.workload.kind, r.workload.name) == ("CronJob", name))


def test_the_schedule_is_read_in_the_cronjobs_time_zone(bank, tmp_path: Path) -> None:
    # 11:30 in UTC is after the recording; in Berlin (UTC+1 in November) it is 10:30 UTC
    utc = _readiness(bank, tmp_path, "report", schedule="30 11 * * *")
    assert utc.verdict == NOT_READY and utc.fired == 0
    berlin = _readiness(bank, tmp_path, "report", schedule="30 11 * * *",
                        time_zone="Europe/Berlin")
    assert berlin.verdict == READY and berlin.fired == 1
    assert "`30 11 * * *` (Europe/Berlin) fired 1 time(s)" in berlin.notes[0]


def test_an_unknown_time_zone_holds_the_cronjob_back(bank, tmp_path: Path) -> None:
    r = _readiness(bank, tmp_path, "report", time_zone="Mars/Olympus_Mons")
    assert r.verdict == NOT_READY
    assert r.reasons[0].startswith("its time zone 'Mars/Olympus_Mons' is not one this machine")


def test_a_suspended_cronjob_never_seen_is_held_back_with_the_reason(bank, tmp_path) -> None:
    r = _readiness(bank, tmp_path, "archive", suspended=True)
    assert r.verdict == NOT_READY and r.fired is None and r.suspended
    assert r.reasons == ("it is suspended (spec.suspend) and was not seen running, so its "
                         "traffic is unknown: resume it while recording before default-deny, "
                         "or it will run into default-deny when it is resumed",)


def test_a_suspended_cronjob_seen_before_is_judged_by_what_was_seen(bank, tmp_path) -> None:
    r = _readiness(bank, tmp_path, "report", suspended=True)
    assert r.verdict == READY and r.fired is None
    assert r.notes[0] == "suspended at the snapshot; 4 run pod(s) seen before"


def _cronjob_snapshot(tmp_path: Path, spec: dict) -> Path:
    cj = {"apiVersion": "batch/v1", "kind": "CronJob",
          "metadata": {"name": "nightly", "namespace": "ops"},
          "spec": {"schedule": "0 2 * * *",
                   "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
                   **spec}}
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(k.kube_list(k.base_cluster(namespaces=["ops"]) + [cj])))
    return path


def test_the_snapshot_keeps_time_zone_and_suspend(tmp_path: Path) -> None:
    snap = load_snapshot([str(_cronjob_snapshot(
        tmp_path, {"timeZone": "Asia/Kolkata", "suspend": True}))])
    [cj] = [c for c in snap.inventory.controllers if c.kind == "CronJob"]
    assert (cj.schedule, cj.time_zone, cj.suspended) == ("0 2 * * *", "Asia/Kolkata", True)


def test_a_suspend_that_is_not_a_boolean_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="spec.suspend must be true or false"):
        load_snapshot([str(_cronjob_snapshot(tmp_path, {"suspend": "yes"}))])
