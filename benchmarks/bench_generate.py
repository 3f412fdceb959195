"""`flowpol generate` on a synthetic cluster, against a bare orjson loop, in one run.

    python benchmarks/bench_generate.py [--lines 1000000] [--small 100000] [--dir DIR]
                                        [--repeat 3]

1. ``make_synthetic.py`` writes a cluster (>= 2,000 pods, 200 workloads, 20 namespaces)
   and N Hubble lines (about half replies) - once for ``--lines`` and once for
   ``--small`` (kept in --dir, reused when already there).
2. Baseline, measured in the same run on the same file: a child process that only
   does ``for line in f: orjson.loads(line)``.
3. ``flowpol generate`` as a child process (the real CLI, verification and reports
   included), pinned to one core with ``taskset`` when available, with its bytecode
   compiled first as an installed package has it.

Baseline and generate alternate ``--repeat`` times; each figure is the best of its runs
(the usual way to time on a shared machine: interference only ever adds time). Wall
time is the target's measure; CPU time (user + system of the child) is printed beside
it because it is what another process on the machine disturbs least. Peak RSS is the
child's ``ru_maxrss``.

Prints a table: lines, baseline and generate seconds (wall and CPU), the speed ratios
(baseline / generate; > 1 = faster than the bare loop), peak RSS, and the RSS ratio
between the two sizes.
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


def run_child(cmd: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (KiB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(_pin() + cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    # ru_maxrss of children is the max over all waited-for children: run the small
    # case first so that the large one's peak is its own.
    return elapsed, cpu, max(after.ru_maxrss, before.ru_maxrss)


def ensure_data(base: Path, lines: int) -> Path:
    d = base / f"syn-{lines}"
    if not (d / "flows.jsonl").exists():
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_synthetic.py"), str(d),
                        "--lines", str(lines)], check=True, cwd=ROOT)
    return d


def measure(d: Path, out: Path, repeat: int) -> dict:
    flows = d / "flows.jsonl"
    base = [run_child([sys.executable, "-c", BASELINE, str(flows)])]
    gen = []
    for i in range(repeat):
        gen.append(run_child([sys.executable, "-m", "generator.cli.main", "generate",
                              str(flows), "--snapshot", str(d / "cluster.json"),
                              "--out", str(out)]))
        if i + 1 < repeat:
            base.append(run_child([sys.executable, "-c", BASELINE, str(flows)]))
    n = sum(1 for _ in open(flows, "rb"))
    return {"lines": n,
            "baseline_s": min(b[0] for b in base), "baseline_cpu": min(b[1] for b in base),
            "generate_s": min(g[0] for g in gen), "generate_cpu": min(g[1] for g in gen),
            "rss_kib": max(g[2] for g in gen)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=None, help="keep the data here")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="flowpol-bench-"))
    # As installed: pip compiles the bytecode at install time; an editable checkout (with
    # PYTHONDONTWRITEBYTECODE set, as here) would otherwise compile every module per run.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "generator", "recorder"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    rows = []
    for n in (args.small, args.lines):  # small first: see run_child
        d = ensure_data(base, n)
        rows.append(measure(d, base / f"out-{n}", max(1, args.repeat)))
    print(f"machine: {os.cpu_count()} cores, {os.uname().machine}, Python "
          f"{sys.version.split()[0]}; pinned to one core: {bool(_pin())}")
    print(f"{'lines':>10} {'orjson loop s':>14} {'generate s':>11} {'speed ratio':>12} "
          f"{'CPU: loop s':>12} {'generate s':>11} {'ratio':>7} {'peak RSS MiB':>13}")
    for r in rows:
        print(f"{r['lines']:>10,} {r['baseline_s']:>14.2f} {r['generate_s']:>11.2f} "
              f"{r['baseline_s'] / r['generate_s']:>11.2f}x {r['baseline_cpu']:>12.2f} "
              f"{r['generate_cpu']:>11.2f} {r['baseline_cpu'] / r['generate_cpu']:>6.2f}x "
              f"{r['rss_kib'] / 1024:>13.0f}")
    print(f"peak RSS ratio {rows[1]['lines']:,} vs {rows[0]['lines']:,} lines: "
          f"{rows[1]['rss_kib'] / rows[0]['rss_kib']:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
