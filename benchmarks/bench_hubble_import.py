"""Hubble import speed against a bare ``orjson.loads`` loop over the same file.

A diagnostic: it times the reader in-process. The figures users see (the command as
a process, against the same floor) are benchmarks/e2e.py's.

    python benchmarks/bench_hubble_import.py [N_LINES] [--mix realistic|syn-heavy] [--repeat R]
    python benchmarks/bench_hubble_import.py --file FLOWS.jsonl [--repeat R]

Writes N synthetic ``hubble observe -o jsonpb`` lines (default 1,000,000) to a temp
dir, then times, in the same run and on the same file:

* baseline: ``for line in f: orjson.loads(line)``
* read:     ``recorder.sources.read_inputs`` (detect, read, build records)
* read+agg: the same, fed into ``recorder.aggregate.Aggregator`` and drained

and prints lines/s and the ratio baseline_time / our_time (> 1 = faster than the
baseline). ``--mix realistic``: TCP connections seen at two observation points with
SYN, SYN-ACK, ACK, data and FIN packets, plus DNS over UDP; about half the lines are
replies. ``--mix syn-heavy``: every non-reply line is a TCP SYN (the worst case: each
non-reply line must be parsed and becomes a record). ``--file`` times an existing
file instead, e.g. the ``flows.jsonl`` of ``benchmarks/make_synthetic.py``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recorder.aggregate import Aggregator  # noqa: E402
from recorder.report import ReadReport  # noqa: E402
from recorder.sources import read_inputs  # noqa: E402
from recorder.timefmt import format_time  # noqa: E402

NAMESPACES = [f"ns-{i:02d}" for i in range(20)]
NODES = [f"node-{i}" for i in range(10)]


def _endpoint(ns: str, app: str, pod: str, ident: int) -> dict:
    return {
        "ID": ident % 4000,
        "identity": ident,
        "namespace": ns,
        "labels": [
            f"k8s:app={app}",
            f"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={ns}",
            "k8s:io.cilium.k8s.policy.cluster=default",
            f"k8s:io.cilium.k8s.policy.serviceaccount={app}",
            f"k8s:io.kubernetes.pod.namespace={ns}",
            "k8s:tier=backend",
        ],
        "pod_name": pod,
        "workloads": [{"name": app, "kind": "Deployment"}],
    }


def _pods(rng: random.Random) -> list[tuple[str, dict]]:
    pods = []
    for w in range(200):
        ns = NAMESPACES[w % len(NAMESPACES)]
        app = f"app-{w:03d}"
        for r in range(10):
            ip = f"10.{w // 100}.{w % 100}.{r + 10}"
            pods.append((ip, _endpoint(ns, app, f"{app}-7d9f8c6b5-{r:05d}", 10000 + w)))
    rng.shuffle(pods)
    return pods


def _line(t: int, src: tuple[str, dict], dst: tuple[str, dict], l4: dict, reply: bool,
          point: str, node: str, summary: str) -> bytes:
    flow = {
        "time": format_time(t),
        "verdict": "FORWARDED",
        "ethernet": {"source": "46:e5:ea:1f:95:ff", "destination": "d6:ec:b0:4a:ff:46"},
        "IP": {"source": src[0], "destination": dst[0], "ipVersion": "IPv4"},
        "l4": l4,
        "source": src[1],
        "destination": dst[1],
        "Type": "L3_L4",
        "node_name": node,
        "event_type": {"type": 4},
        "traffic_direction": "EGRESS" if point == "TO_STACK" else "INGRESS",
        "trace_observation_point": point,
        "is_reply": reply,
        "Summary": summary,
    }
    return orjson.dumps({"flow": flow, "node_name": node, "time": flow["time"]})


def generate(path: Path, n: int, mix: str, seed: int = 1) -> None:
    rng = random.Random(seed)
    pods = _pods(rng)
    t = 1_700_000_000 * 1_000_000_000
    written = 0
    with open(path, "wb") as f:
        while written < n:
            a, b = rng.sample(pods, 2)
            sport = rng.randint(32768, 60999)
            node = rng.choice(NODES)
            t += rng.randint(10_000, 2_000_000)
            if mix == "syn-heavy":
                packets = [("S", False), ("SA", True)]
                proto = "TCP"
            elif rng.random() < 0.2:
                proto = "UDP"
                packets = [("", False), ("", True)]
            else:
                proto = "TCP"
                packets = [("S", False), ("SA", True), ("A", False), ("PA", False),
                           ("PA", True), ("A", True), ("FA", False), ("FA", True)]
            dport = 53 if proto == "UDP" else rng.choice((80, 8080, 5432, 6379, 9090))
            lines = []
            for point in ("TO_STACK", "TO_ENDPOINT"):
                for flags, reply in packets:
                    src, dst = (b, a) if reply else (a, b)
                    ports = (dport, sport) if reply else (sport, dport)
                    if proto == "TCP":
                        fl = {"SYN": "S" in flags, "ACK": "A" in flags, "PSH": "P" in flags,
                              "FIN": "F" in flags}
                        l4 = {"TCP": {"source_port": ports[0], "destination_port": ports[1],
                                      "flags": {k: v for k, v in fl.items() if v}}}
                    else:
                        l4 = {"UDP": {"source_port": ports[0], "destination_port": ports[1]}}
                    t += rng.randint(1_000, 50_000)
                    lines.append(_line(t, src, dst, l4, reply, point, node, proto))
            for line in lines:
                if written >= n:
                    break
                f.write(line + b"\n")
                written += 1


def bare_loop(path: Path) -> float:
    start = time.perf_counter()
    loads = orjson.loads
    with open(path, "rb") as f:
        for line in f:
            loads(line)
    return time.perf_counter() - start


def read_only(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    n = 0
    for _ in read_inputs([str(path)], ReadReport()):
        n += 1
    return time.perf_counter() - start, n


def read_aggregate(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    agg = Aggregator()
    agg.add_all(read_inputs([str(path)], ReadReport()))
    out = agg.drain()
    return time.perf_counter() - start, len(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("lines", nargs="?", type=int, default=1_000_000)
    ap.add_argument("--mix", choices=("realistic", "syn-heavy"), default="realistic")
    ap.add_argument("--repeat", type=int, default=1, help="best of R runs of each")
    ap.add_argument("--file", type=Path, help="time this Hubble file instead")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="flowpol-bench-") as tmp:
        if args.file:
            path = args.file
            with open(path, "rb") as f:
                args.lines = sum(1 for _ in f)
            print(f"{path}: {args.lines:,} lines ({path.stat().st_size / 1e6:.0f} MB)")
        else:
            path = Path(tmp) / "hubble.json"
            t0 = time.perf_counter()
            generate(path, args.lines, args.mix)
            size = path.stat().st_size
            print(f"generated {args.lines:,} lines ({size / 1e6:.0f} MB, mix {args.mix}) "
                  f"in {time.perf_counter() - t0:.1f}s")
        bases, reads, aggs = [], [], []
        for _ in range(args.repeat):  # interleaved, so background load hits all alike
            bases.append(bare_loop(path))
            reads.append(read_only(path))
            aggs.append(read_aggregate(path))
        base = min(bases)
        read_t, kept = min(reads)
        agg_t, emitted = min(aggs)
        n = args.lines
        print(f"baseline orjson.loads loop: {n / base:12,.0f} lines/s  ({base:.2f}s)")
        print(f"read_inputs:                {n / read_t:12,.0f} lines/s  ({read_t:.2f}s, "
              f"{kept:,} records)  ratio {base / read_t:.2f}x")
        print(f"read_inputs + Aggregator:   {n / agg_t:12,.0f} lines/s  ({agg_t:.2f}s, "
              f"{emitted:,} aggregates)  ratio {base / agg_t:.2f}x")


if __name__ == "__main__":
    main()
