"""`flowpol generate` on a synthetic cluster, against a bare orjson loop, in one run.

    python benchmarks/bench_generate.py [--lines 1000000] [--small 100000] [--dir DIR]

1. ``make_synthetic.py`` writes a cluster (>= 2,000 pods, 200 workloads, 20 namespaces)
   and N Hubble lines (about half replies) — once for ``--lines`` and once for
   ``--small`` (kept in --dir, reused when already there).
2. Baseline, measured in the same run on the same file: a child process that only
   does ``for line in f: orjson.loads(line)``.
3. ``flowpol generate`` as a child process (the real CLI, verification included),
   pinned to one core with ``taskset`` when available; wall time and peak RSS
   (``ru_maxrss`` of the child).

Prints a table: lines, baseline s, generate s, speed ratio (baseline / generate; > 1 =
faster than the bare loop), peak RSS, and the RSS ratio between the two sizes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "import orjson,sys\nwith open(sys.argv[1],'rb') as f:\n    for line in f: orjson.loads(line)\n"


def _pin() -> list[str]:
    return ["taskset", "-c", "0"] if shutil.which("taskset") else []


def run_child(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(_pin() + cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    # ru_maxrss of children is the max over all waited-for children: run the small
    # case first so that the large one's peak is its own.
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(after, before)


def ensure_data(base: Path, lines: int) -> Path:
    d = base / f"syn-{lines}"
    if not (d / "flows.jsonl").exists():
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_synthetic.py"), str(d),
                        "--lines", str(lines)], check=True, cwd=ROOT)
    return d


def measure(d: Path, out: Path) -> dict:
    flows = d / "flows.jsonl"
    base_s, _ = run_child([sys.executable, "-c", BASELINE, str(flows)])
    gen_s, rss = run_child([sys.executable, "-m", "generator.cli.main", "generate", str(flows),
                            "--snapshot", str(d / "cluster.json"), "--out", str(out)])
    n = sum(1 for _ in open(flows, "rb"))
    return {"lines": n, "baseline_s": base_s, "generate_s": gen_s, "rss_kib": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=None, help="keep the data here")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="flowpol-bench-"))
    rows = []
    for n in (args.small, args.lines):  # small first: see run_child
        d = ensure_data(base, n)
        rows.append(measure(d, base / f"out-{n}"))
    print(f"machine: {os.cpu_count()} cores, {os.uname().machine}, Python "
          f"{sys.version.split()[0]}; pinned to one core: {bool(_pin())}")
    print(f"{'lines':>10} {'orjson loop s':>14} {'generate s':>11} {'speed ratio':>12} "
          f"{'peak RSS MiB':>13}")
    for r in rows:
        print(f"{r['lines']:>10,} {r['baseline_s']:>14.2f} {r['generate_s']:>11.2f} "
              f"{r['baseline_s'] / r['generate_s']:>11.2f}x {r['rss_kib'] / 1024:>13.0f}")
    print(f"peak RSS ratio {rows[1]['lines']:,} vs {rows[0]['lines']:,} lines: "
          f"{rows[1]['rss_kib'] / rows[0]['rss_kib']:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
