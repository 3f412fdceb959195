"""The fuzz tier: a few thousand mutated inputs of every kind through the real CLI
(tests/fuzz/README.md: how to run more seeds or runs, how to replay a failure)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fuzz import harness

pytestmark = pytest.mark.fuzz


def test_every_seed_runs_clean_and_keeps_records(tmp_path: Path) -> None:
    # the tier's premise: unmutated, every seed reads with exit 0 and keeps records, so
    # an additive mutation's count has something to be compared with
    seeds = harness.build_seeds(tmp_path / "seeds")
    for seed in seeds.flows:
        for command in harness.COMMANDS[harness.FLOWS]:
            count = harness.clean_count(seeds, (seed.name, command), tmp_path)
            assert count, f"{seed.name} | {command}: the clean run kept {count!r} records"


def test_mutated_inputs_fail_cleanly(tmp_path: Path) -> None:
    s = harness.settings()
    indices = s["cases"] or list(range(s["runs"]))
    fail_root = s["out"]
    start = time.perf_counter()
    outcomes = harness.run_all(s["seed"], indices, s["jobs"], s["subprocess_every"],
                               fail_root, tmp_path)
    text, failing = harness.summary(outcomes, s["seed"], time.perf_counter() - start)
    print(text)
    assert len(outcomes) == len(indices)
    assert failing == 0, text
