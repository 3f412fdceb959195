"""Benchmark: conntrack import rate against a bare loop that only splits lines.

A diagnostic: it times the reader in-process. The figures users see (the command as
a process, against the same floor) are benchmarks/e2e.py's.

    /work/venv/bin/python benchmarks/bench_conntrack.py [--lines 1000000] [--small 100000]

Generates two inputs in a temp dir, each ``--lines`` lines, pod traffic through
ClusterIPs with kube-proxy DNAT (service port != targetPort):

* ``events``: ``conntrack -E -o timestamp`` as a node records it: every TCP connection
  NEW, 5 UPDATEs (SYN_RECV ... TIME_WAIT) and DESTROY with counters; every DNS lookup
  over UDP NEW, UPDATE, DESTROY; connections overlap (DESTROY arrives hundreds of
  connections later).
* ``dump``: ``conntrack -L`` listing, one distinct connection per line (counters,
  [ASSURED], mark, use).

Measured in the same run, interleaved, best of ``--repeat``:

* floor: ``for line in open(path): line.split()`` (text mode, what any line reader
  starts with); the bytes-mode variant ``open(path, "rb")`` is shown too;
* import: flowpol's conntrack reader, every record consumed;

and peak memory of an import in a fresh subprocess (tracemalloc peak and ru_maxrss) at
``--small`` vs ``--lines`` lines. Targets (issue #3): import >= 0.3x the floor's line
rate; peak memory within 1.5x.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TCP_STATES = (("SYN_RECV", 60), ("ESTABLISHED", 432000), ("FIN_WAIT", 120),
              ("LAST_ACK", 30), ("TIME_WAIT", 120))


def _population(rnd: random.Random) -> tuple[list[str], list[tuple[str, int, list[str], int]]]:
    pods = [f"10.244.{i // 250}.{i % 250 + 1}" for i in range(3000)]
    services = []
    for i in range(150):
        backends = [rnd.choice(pods) for _ in range(3)]
        services.append((f"10.96.{i // 250}.{i % 250 + 1}", 80, backends, 8080))
    return pods, services


def generate_events(path: Path, lines: int, seed: int = 1) -> int:
    rnd = random.Random(seed)
    pods, services = _population(rnd)
    dns_backends = ["10.244.200.2", "10.244.200.3"]
    t = 1_700_000_000.0
    pending: deque[str] = deque()
    sport = 32768
    out: list[str] = []
    written = 0
    with open(path, "w") as f:
        while written + len(out) < lines:
            client = rnd.choice(pods)
            sport = sport + 1 if sport < 60999 else 32768
            vip, port, backends, target = rnd.choice(services)
            orig = f"src={client} dst={vip} sport={sport} dport={port}"
            reply = f"src={rnd.choice(backends)} dst={client} sport={target} dport={sport}"
            t += 0.0003
            out.append(f"[{t:.6f}]\t    [NEW] tcp      6 120 SYN_SENT {orig} [UNREPLIED] {reply}\n")
            for state, timeout in TCP_STATES:
                flag = " [ASSURED]" if state != "SYN_RECV" else ""
                out.append(f"[{t:.6f}]\t [UPDATE] tcp      6 {timeout} {state} {orig} {reply}{flag}\n")
            pending.append(f"[DESTROY] tcp      6 {orig} packets=5 bytes=270 {reply} "
                           "packets=5 bytes=1270 [ASSURED]")
            qport = 32768 + rnd.randrange(28000)
            orig = f"src={client} dst=10.96.0.10 sport={qport} dport=53"
            reply = f"src={rnd.choice(dns_backends)} dst={client} sport=5353 dport={qport}"
            out.append(f"[{t:.6f}]\t    [NEW] udp      17 30 {orig} [UNREPLIED] {reply}\n")
            out.append(f"[{t:.6f}]\t [UPDATE] udp      17 30 {orig} {reply}\n")
            pending.append(f"[DESTROY] udp      17 {orig} packets=1 bytes=70 {reply} "
                           "packets=1 bytes=160")
            while len(pending) > 800:  # connections end hundreds of connections later
                out.append(f"[{t:.6f}]\t{pending.popleft()}\n")
            if len(out) >= 20000:
                f.writelines(out)
                written += len(out)
                out.clear()
        while pending and written + len(out) < lines:
            out.append(f"[{t:.6f}]\t{pending.popleft()}\n")
        f.writelines(out[: lines - written])
    return lines


def generate_dump(path: Path, lines: int, seed: int = 2) -> int:
    rnd = random.Random(seed)
    pods, services = _population(rnd)
    sport = 32768
    with open(path, "w") as f:
        out: list[str] = []
        for i in range(lines):
            client = rnd.choice(pods)
            sport = sport + 1 if sport < 60999 else 32768
            if i % 4 == 3:
                vip, port, backend, target = "10.96.0.10", 53, "10.244.200.2", 5353
                out.append(f"udp      17 {rnd.randrange(1, 30)} src={client} dst={vip} "
                           f"sport={sport} dport={port} packets=1 bytes=70 src={backend} "
                           f"dst={client} sport={target} dport={sport} packets=1 bytes=160 "
                           "mark=0 use=1\n")
            else:
                vip, port, backends, target = rnd.choice(services)
                out.append(f"tcp      6 {rnd.randrange(1, 432000)} ESTABLISHED src={client} "
                           f"dst={vip} sport={sport} dport={port} packets=12 bytes=1570 "
                           f"src={rnd.choice(backends)} dst={client} sport={target} "
                           f"dport={sport} packets=10 bytes=9120 [ASSURED] mark=0 use=1\n")
            if len(out) >= 20000:
                f.writelines(out)
                out.clear()
        f.writelines(out)
    return lines


def floor_text(path: Path) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    with open(path) as f:
        for line in f:
            line.split()
            n += 1
    return n, time.perf_counter() - start


def floor_bytes(path: Path) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    with open(path, "rb") as f:
        for line in f:
            line.split()
            n += 1
    return n, time.perf_counter() - start


def import_run(path: Path) -> tuple[int, int, float]:
    from recorder.report import ReadReport
    from recorder.sources import ReadOptions, open_input
    from recorder.sources.conntrack import SOURCE

    report = ReadReport()
    start = time.perf_counter()
    records = 0
    with open_input(path) as stream:
        for _ in SOURCE.read(stream, str(path), report, ReadOptions(dump_time=0)):
            records += 1
    elapsed = time.perf_counter() - start
    if report.total_skipped:
        raise SystemExit(f"benchmark input had skipped lines: {report.to_dict()}")
    return report.lines[str(path)], records, elapsed


def child_memory(path: Path) -> None:
    import tracemalloc

    tracemalloc.start()
    lines, records, _ = import_run(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"lines": lines, "records": records, "peak": peak,
                      "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def memory(path: Path) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child-memory", str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child-memory", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_memory:
        child_memory(args.child_memory)
        return 0

    ok = True
    print(f"{'input':<8}{'measure':<44}{'value':>14}{'target':>10}")
    with tempfile.TemporaryDirectory(prefix="flowpol-bench-") as tmp:
        for kind, gen in (("events", generate_events), ("dump", generate_dump)):
            big, small = Path(tmp) / f"{kind}-big.txt", Path(tmp) / f"{kind}-small.txt"
            gen(big, args.lines)
            gen(small, args.small)
            texts, bytes_, imports = [], [], []
            for _ in range(args.repeat):
                texts.append(floor_text(big))
                bytes_.append(floor_bytes(big))
                imports.append(import_run(big))
            n, t_text = min(texts, key=lambda r: r[1])
            _, t_bytes = min(bytes_, key=lambda r: r[1])
            lines, records, t_imp = min(imports, key=lambda r: r[2])
            assert lines == n, (lines, n)
            m_small, m_big = memory(small), memory(big)
            ratio = t_text / t_imp
            rss = m_big["maxrss"] / m_small["maxrss"]
            rows = [
                ("lines / records", f"{lines:,} / {records:,}", ""),
                ("floor: text split (lines/s)", f"{n / t_text:,.0f}", ""),
                ("floor: bytes split (lines/s)", f"{n / t_bytes:,.0f}", ""),
                ("flowpol conntrack import (lines/s)", f"{lines / t_imp:,.0f}", ""),
                ("import / text floor", f"{ratio:.2f}", ">= 0.30"),
                ("import / bytes floor", f"{t_bytes / t_imp:.2f}", "(info)"),
                ("peak Python memory small/large (MiB)",
                 f"{m_small['peak'] / 2**20:.1f} / {m_big['peak'] / 2**20:.1f}", ""),
                ("large / small (tracemalloc peak)", f"{m_big['peak'] / m_small['peak']:.2f}",
                 "(info)"),
                ("process peak RSS small/large (MiB)",
                 f"{m_small['maxrss'] / 2**20:.1f} / {m_big['maxrss'] / 2**20:.1f}", ""),
                ("large / small (ru_maxrss)", f"{rss:.2f}", "<= 1.50"),
            ]
            for name, value, target in rows:
                print(f"{kind:<8}{name:<44}{value:>14}{target:>10}")
            ok = ok and ratio >= 0.3 and rss <= 1.5
    print("result:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
