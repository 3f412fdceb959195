"""The fuzz tier: a few thousand mutated inputs of every kind through the real CLI
(tests/fuzz/README.md: how to run more seeds or runs, how to replay a failure)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.fuzz import harness, mutate

pytestmark = pytest.mark.fuzz


def test_every_seed_runs_clean_and_keeps_records(tmp_path: Path) -> None:
    # the tier's premise: unmutated, every seed reads with exit 0 and keeps records, so
    # an additive mutation's count has something to be compared with
    seeds = harness.build_seeds(tmp_path / "seeds")
    for seed in seeds.flows:
        for command in harness.COMMANDS[harness.FLOWS]:
            count = harness.clean_count(seeds, (seed.name, command), tmp_path)
            assert count, f"{seed.name} | {command}: the clean run kept {count!r} records"
    work = tmp_path / "policies"
    for policy in seeds.policies:
        for command in harness.COMMANDS[harness.POLICIES]:
            files = {harness.SNAPSHOT_NAME: seeds.snapshot.data, policy.name: policy.data,
                     harness.CLEAN_FLOWS: seeds.flows[0].data}
            harness.prepare(harness.Case(0, -1, policy.name, policy.kind, harness.POLICIES,
                                         command, (), files, "", "", False, False, "", None),
                            work)
            argv = harness.argv_for(command, harness.CLEAN_FLOWS, harness.SNAPSHOT_NAME,
                                    policy.name, False)
            res = harness.run_in_process(argv, work)
            assert res.code in (0, 1) and not res.crash, (policy.name, command, res.stderr)


def test_mutated_inputs_fail_cleanly(tmp_path: Path) -> None:
    s = harness.settings()
    indices = s["cases"] or list(range(s["runs"]))
    fail_root = s["out"]
    escape = Path(mutate.ESCAPE)
    if escape.is_dir():
        shutil.rmtree(escape)
    escape.unlink(missing_ok=True)
    start = time.perf_counter()
    outcomes = harness.run_all(s["seed"], indices, s["jobs"], s["subprocess_every"],
                               fail_root, tmp_path)
    text, failing = harness.summary(outcomes, s["seed"], time.perf_counter() - start)
    assert len(outcomes) == len(indices)
    assert failing == 0, text
    print(text)  # the figures, with -s


def test_the_judge_sees_each_symptom(tmp_path: Path) -> None:
    # the tier passes only if the judge can fail: one made-up result per symptom
    seeds = harness.build_seeds(tmp_path / "seeds")
    case = harness.make_case(seeds, 1, 0)
    case = harness.Case(**{**{f: getattr(case, f) for f in case.__slots__},
                           "command": "import", "argv": ("import", "x", "--out", "out.jsonl"),
                           "baseline": ("hubble.jsonl", "import"), "strict": False})
    rundir = tmp_path / "box" / "run"
    harness.prepare(case, rundir)
    (rundir / "out.jsonl").write_text('{"kind":"header"}\n{"kind":"flow"}\n')
    ok = harness.Result(0, "", "", None, 0.0)
    assert harness.judge(case, ok, rundir, 1) == []
    cases = {
        "crash": harness.Result("crash", "", "", "Traceback (most recent call last):\n"
                                "  File \"/x/generator/a.py\", line 3, in f\nKeyError: 'a'", 0.0),
        "traceback": harness.Result(1, "", "Traceback (most recent call last):\nValueError", None, 0.0),
        "exit code": harness.Result(3, "", "flowpol: error: x", None, 0.0),
        "timeout": harness.Result("timeout", "", "", None, 0.0),
        "exit 2 without an error line": harness.Result(2, "", "", None, 0.0),
    }
    for symptom, res in cases.items():
        assert symptom in {f.symptom for f in harness.judge(case, res, rundir, 1)}, symptom
    assert "records lost" in {f.symptom for f in harness.judge(case, ok, rundir, 2)}
    (rundir / "stray.txt").write_text("x")
    assert "escape" in {f.symptom for f in harness.judge(case, ok, rundir, 1)}
