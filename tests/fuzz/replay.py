"""Replay a failing fuzz run saved by the tier:

    python -m tests.fuzz.replay /tmp/flowpol-fuzz/seed20261207/case00042 [--in-process]

It copies the saved directory (the mutated input, the clean snapshot, policies and flows
beside it, case.json) to a fresh temporary directory, runs the same command line there
as ``python -m generator.cli.main`` (or in this process), shows the exit code and the
output, and judges the run as the tier does. Exit 0 when the run now passes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from tests.fuzz import harness


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.replay")
    ap.add_argument("case", type=Path, help="a directory the fuzz tier saved (has case.json)")
    ap.add_argument("--in-process", action="store_true",
                    help="call generator.cli.main.main() here instead of a subprocess")
    opts = ap.parse_args()
    meta = json.loads((opts.case / "case.json").read_text())
    files = {name: (opts.case / name).read_bytes() for name in meta["inputs"]}
    case = harness.Case(meta["seed"], meta["index"], meta["target"], meta["kind"], meta["role"],
                        meta["command"], tuple(meta["argv"]), files, meta["mutation"],
                        meta["detail"], meta["additive"], meta["strict"], meta["gzip"],
                        (meta["target"], meta["command"]) if meta["clean_count"] is not None
                        else None)
    with tempfile.TemporaryDirectory(prefix="flowpol-replay-") as tmp:
        rundir = Path(tmp) / "box" / "run"
        harness.prepare(case, rundir)
        print(f"mutation: {meta['detail']}")
        print(f"run in {rundir}: flowpol {shlex.join(case.argv)}")
        run = harness.run_in_process if opts.in_process else harness.run_subprocess
        res = run(case.argv, rundir)
        print(f"exit: {res.code}")
        sys.stdout.write(res.stdout[-4000:])
        sys.stdout.write(res.stderr[-4000:])
        if res.crash:
            sys.stdout.write(res.crash)
        failures = harness.judge(case, res, rundir, meta["clean_count"])
        for f in failures:
            print(f"FAIL {f.symptom}: {f.key}")
        if not failures:
            print("passes now")
        shutil.rmtree(rundir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
