"""Node-side reduction (recorder/reduce.py): what one node's day of recorder output
costs to reduce and how much of it reaches the central step.

    python benchmarks/bench_reduce.py [--hours 24] [--handovers 300]

Generates one node's day as the recorder writes it (``flowpol record``: one record per
connection key and 60-s window, in a flow log with the pod watch's IP timeline): its 30
pods of a cluster of 3,000 pods in 150 Deployments, each Deployment calling 3 others
load-balanced over their 20 pods, so the node sees each of its pods talk to (or be
called by) 60 pods - a few thousand address keys, each active in a random third of the
day's minutes; --handovers pod IPs handed to a new pod during the day. Then, as a child
process (CPU time and peak RSS are its own), reads the flow log, reduces it (by
addresses, then with the ends the timeline names merged by workload) and writes the
reduced log, and prints: records and
bytes per day before and after, node-side CPU seconds and peak RSS per day, and the
records 1,000 nodes x 7 days send to the central step (the measured node's reduced
records x 7,000, an upper bound: keys seen by two nodes are counted twice).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MINUTE = 60 * 1_000_000_000
DAY0 = 1_795_000_000 * 1_000_000_000


def generate(path: Path, hours: int, handovers: int, seed: int = 3) -> int:
    """One node's recorder output: its 30 pods' connections as client and as server."""
    from recorder.flowlog import write_flow_log
    from recorder.schema import FlowRecord, IpTimelineRecord, Workload

    rnd = random.Random(seed)
    pods = [f"10.244.{i // 250}.{i % 250 + 1}" for i in range(3000)]
    app = [i % 150 for i in range(3000)]  # 150 Deployments of 20 pods
    pods_of = {w: [i for i in range(3000) if app[i] == w] for w in range(150)}
    calls = {w: rnd.sample(range(150), 3) for w in range(150)}  # each calls 3 services
    called_by = {w: [c for c in range(150) if w in calls[c]] for w in range(150)}
    local = rnd.sample(range(3000), 30)
    keys = set()
    for p in local:
        for server in calls[app[p]]:
            keys.update((p, s) for s in pods_of[server])  # load-balanced over the backends
        for client in called_by[app[p]]:
            keys.update((c, p) for c in pods_of[client])
    key_list = sorted(keys)
    minutes = hours * 60
    ip_records = []

    def held(i: int, start: int, end: int | None, name: str) -> IpTimelineRecord:
        a = f"app-{app[i]}"
        return IpTimelineRecord(pods[i], start, end, "ns", name, labels=(("app", a),),
                                owner=Workload("Deployment", a))

    for i in range(3000):
        if i < handovers:  # replaced during the day: the address goes to another pod
            at = DAY0 + rnd.randrange(minutes) * MINUTE + rnd.randrange(MINUTE)
            ip_records.append(held(i, DAY0 - MINUTE, at, f"old-{i}"))
            ip_records.append(held(i, at + 3, None, f"new-{i}"))
        else:
            ip_records.append(held(i, DAY0 - MINUTE, None, f"pod-{i}"))

    def records():
        yield from ip_records
        for m in range(minutes):
            start = DAY0 + m * MINUTE
            for c, s in key_list:
                if rnd.random() < 1 / 3:
                    first = start + rnd.randrange(MINUTE // 2)
                    yield FlowRecord(first, first + rnd.randrange(MINUTE // 2), "TCP",
                                     pods[c], pods[s], 8080, count=rnd.randrange(1, 20),
                                     node="node-1", source_format="capture",
                                     input="capture:any")

    write_flow_log(records(), path)
    return len(key_list)


CHILD = """
import resource, sys, time
from recorder.flowlog import write_flow_log
from recorder.reduce import reduce_records
from recorder.report import ReadReport
from recorder.sources import ReadOptions, read_inputs
t = time.process_time()
out, stats = reduce_records(read_inputs([sys.argv[1]], ReadReport(), ReadOptions()),
                            attribute=sys.argv[3] == "attribute")
write_flow_log(out, sys.argv[2])
print(time.process_time() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
      stats.flows_in, stats.flows_out, stats.split_at_owner_change)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--handovers", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="flowpol-reduce-") as tmp:
        raw, reduced = Path(tmp) / "node-day.jsonl", Path(tmp) / "node-day-reduced.jsonl"
        t0 = time.perf_counter()
        args.keys = generate(raw, args.hours, args.handovers)
        print(f"generated one node's {args.hours} h in {time.perf_counter() - t0:.0f} s")
        # records scale with the hours recorded, reduced ones (a day's bucket) do not
        per_day = 24 / args.hours
        raw_bytes = raw.stat().st_size
        for mode in ("addresses", "attribute"):
            proc = subprocess.run([sys.executable, "-c", CHILD, str(raw), str(reduced), mode],
                                  cwd=ROOT, capture_output=True, text=True, check=True)
            cpu, rss_kib, flows_in, flows_out, refused = proc.stdout.split()
            out_bytes = reduced.stat().st_size
            _print(args, mode, per_day, raw_bytes, out_bytes, cpu, rss_kib, flows_in,
                   flows_out, refused)


def _print(args: argparse.Namespace, mode: str, per_day: float, raw_bytes: int,
           out_bytes: int, cpu: str, rss_kib: str, flows_in: str, flows_out: str,
           refused: str) -> None:
    n_in, n_out = int(flows_in) * per_day, int(flows_out)
    print(f"RESULT node-side reduction by {mode}, one node, {args.keys:,} address keys, "
          f"{args.handovers} pod IPs handed over in {args.hours} h: {n_in:,.0f} -> "
          f"{n_out:,.0f} flow records per day ({n_in / n_out:.0f}x fewer; {refused} merges "
          f"refused at an owner change) | {raw_bytes * per_day / 2**20:,.0f} -> "
          f"{out_bytes * per_day / 2**20:,.1f} MiB written per day | node CPU "
          f"{float(cpu) * per_day:.0f} s per day, peak RSS {int(rss_kib) / 1024:.0f} MiB | "
          f"{os.getloadavg()[0]:.1f} load on {os.cpu_count()} CPUs")
    print(f"RESULT by {mode}: records 1,000 such nodes send in 7 days (upper bound: this "
          f"node's reduced day x 7,000): {n_out * 7000:,.0f}")


if __name__ == "__main__":
    main()
