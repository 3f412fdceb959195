"""Node-side reduction (recorder/reduce.py): what one node's day of recorder output
costs to reduce and how much of it reaches the central step.

    python benchmarks/bench_reduce.py [--keys 20000] [--hours 24] [--handovers 300]

Generates one node's day as the recorder writes it (``flowpol record``: one record per
connection key and 60-s window, in a flow log with the pod watch's IP timeline): --keys
distinct (client, server, port) keys of pod traffic, each active in a random third of the
day's minutes, --handovers pod IPs handed to a new pod during the day. Then, as a child
process (CPU time and peak RSS are its own), reads the flow log, reduces it and writes
the reduced log, and prints: records and bytes per day before and after, node-side CPU
seconds and peak RSS per day, and the records 1,000 nodes x 7 days send to the central
step (the measured node's reduced records x 7,000, an upper bound: keys seen by two
nodes are counted twice).
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


def generate(path: Path, keys: int, hours: int, handovers: int, seed: int = 3) -> int:
    from recorder.flowlog import write_flow_log
    from recorder.schema import FlowRecord, IpTimelineRecord

    rnd = random.Random(seed)
    pods = [f"10.244.{i // 250}.{i % 250 + 1}" for i in range(3000)]
    minutes = hours * 60
    ip_records = []
    for i, ip in enumerate(pods):
        if i < handovers:
            at = DAY0 + rnd.randrange(minutes) * MINUTE + rnd.randrange(MINUTE)
            ip_records.append(IpTimelineRecord(ip, DAY0 - MINUTE, at, "ns", f"old-{i}"))
            ip_records.append(IpTimelineRecord(ip, at + 3, None, "ns", f"new-{i}"))
        else:
            ip_records.append(IpTimelineRecord(ip, DAY0 - MINUTE, None, "ns", f"pod-{i}"))
    key_list = [(rnd.choice(pods), rnd.choice(pods), rnd.choice((80, 443, 5432, 8080)))
                for _ in range(keys)]

    def records():
        yield from ip_records
        for m in range(minutes):
            start = DAY0 + m * MINUTE
            for src, dst, port in key_list:
                if rnd.random() < 1 / 3:
                    first = start + rnd.randrange(MINUTE // 2)
                    yield FlowRecord(first, first + rnd.randrange(MINUTE // 2), "TCP", src,
                                     dst, port, count=rnd.randrange(1, 20), node="node-1",
                                     source_format="capture", input="capture:any")

    return write_flow_log(records(), path)


CHILD = """
import resource, sys, time
from recorder.flowlog import write_flow_log
from recorder.reduce import reduce_records
from recorder.report import ReadReport
from recorder.sources import ReadOptions, read_inputs
t = time.process_time()
out, stats = reduce_records(read_inputs([sys.argv[1]], ReadReport(), ReadOptions()))
write_flow_log(out, sys.argv[2])
print(time.process_time() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
      stats.flows_in, stats.flows_out, stats.split_at_owner_change)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=20_000)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--handovers", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="flowpol-reduce-") as tmp:
        raw, reduced = Path(tmp) / "node-day.jsonl", Path(tmp) / "node-day-reduced.jsonl"
        t0 = time.perf_counter()
        generate(raw, args.keys, args.hours, args.handovers)
        print(f"generated one node's {args.hours} h in {time.perf_counter() - t0:.0f} s")
        proc = subprocess.run([sys.executable, "-c", CHILD, str(raw), str(reduced)],
                              cwd=ROOT, capture_output=True, text=True, check=True)
        cpu, rss_kib, flows_in, flows_out, refused = proc.stdout.split()
        per_day = 24 / args.hours
        raw_bytes, out_bytes = raw.stat().st_size, reduced.stat().st_size
    print(f"RESULT node-side reduction, one node, {args.keys:,} keys, {args.handovers} pod "
          f"IPs handed over in {args.hours} h: {int(flows_in) * per_day:,.0f} -> "
          f"{int(flows_out) * per_day:,.0f} flow records per day "
          f"({int(flows_in) / int(flows_out):.0f}x fewer; {refused} merges refused at an "
          f"owner change) | {raw_bytes * per_day / 2**20:,.0f} -> "
          f"{out_bytes * per_day / 2**20:,.1f} MiB written per day | node CPU "
          f"{float(cpu) * per_day:.0f} s per day, peak RSS {int(rss_kib) / 1024:.0f} MiB | "
          f"{os.getloadavg()[0]:.1f} load on {os.cpu_count()} CPUs")
    print(f"RESULT records reaching the central step from 1,000 nodes x 7 days (upper "
          f"bound, this node's reduced day x 7,000): {int(flows_out) * per_day * 7000:,.0f}")


if __name__ == "__main__":
    main()
