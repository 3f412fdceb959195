"""End-to-end benchmarks: the commands a user runs, timed as processes, against a floor.

    python benchmarks/e2e.py [SCENARIO ...] [--repeat 3] [--dir DIR] [--lines 1000000]

Scenarios (default: all of them, in this order):

  conntrack  `flowpol import DUMP --out LOG` on a `conntrack -L` dump of --lines lines
             (kube-proxy DNAT, ~58% distinct client/server/port keys as a busy node's
             table has) against a child that only splits every line on whitespace.
  pcap       `flowpol import CAPTURE --out LOG` on --lines packets of short connections
             (SYN, SYN-ACK, one request/response, FIN; one DNS query and answer per
             connection; 2,000 clients, 200 services) against a child that iterates
             scapy's RawPcapReader over the same file.
  hubble     `flowpol generate FLOWS -s CLUSTER --out DIR` on --lines Hubble lines of
             ~1.4 kB (benchmarks/make_synthetic.py: 2,282 pods, 200 workloads, 20
             namespaces, 20 nodes, ~85k connections per 1M lines) against a child that
             only runs `orjson.loads` on every line.
  gzip       `flowpol generate FLOWS.gz ...` on the same Hubble lines gzipped (level 6)
             against a child that runs `orjson.loads` on every line of `gzip.open`.
  memory     peak RSS of `flowpol import` on two conntrack dumps with the same 100,000
             distinct keys at 100k and 1M lines, of `flowpol generate` on 100k Hubble
             lines and on ten time-shifted copies of them (the same keys at 1M lines),
             and the bytes each distinct key costs (RSS slope between 100k and ~580k
             keys).
  jobs       two inputs of --lines lines each read by `flowpol generate --jobs 2` and
             `--jobs 1` (Hubble: the capture and the same cluster 6 h later), and
             `flowpol import --jobs 2` / `--jobs 1` (two conntrack dumps, the second a
             copy, so a later dump by its file time): the speed-up, with both outputs
             compared byte for byte.

Every measurement is a child process. The floor and the command alternate --repeat
times in the same run, on the same file, and each keeps its best wall time
(interference from other processes only ever adds time); CPU time (user + system of the
child) is printed beside it, and the ratio of each run to the floor run just before it
(median and range: how far the machine's speed drifted during the run). The floor's time is its loop alone (it reports it; its
interpreter start and imports are not counted), the command's time is the whole
process: start-up, reading, aggregation, writing. Single-core scenarios are pinned to
one CPU with taskset when it is there. Each scenario prints one `RESULT` line per
figure, in the form the README's table uses. Test data is generated once into --dir
(default: flowpol-e2e under the temporary directory) and reused.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FLOOR_SPLIT = """
import sys, time
t, c = time.perf_counter(), time.process_time()
with open(sys.argv[1]) as f:
    for line in f:
        line.split()
print(time.perf_counter() - t, time.process_time() - c)
"""
FLOOR_RAWPCAP = """
import sys, time
from scapy.utils import RawPcapReader
t, c = time.perf_counter(), time.process_time()
with RawPcapReader(sys.argv[1]) as reader:
    for _ in reader:
        pass
print(time.perf_counter() - t, time.process_time() - c)
"""
FLOOR_ORJSON = """
import sys, time, orjson
t, c = time.perf_counter(), time.process_time()
with open(sys.argv[1], "rb") as f:
    for line in f:
        orjson.loads(line)
print(time.perf_counter() - t, time.process_time() - c)
"""


FLOOR_GZIP_ORJSON = """
import gzip, sys, time, orjson
t, c = time.perf_counter(), time.process_time()
with gzip.open(sys.argv[1], "rb") as f:
    for line in f:
        orjson.loads(line)
print(time.perf_counter() - t, time.process_time() - c)
"""


@dataclass
class Run:
    wall: float  # seconds: the floor's loop, or the command's whole process
    cpu: float  # user + system seconds of the child
    rss_kib: int  # the child's peak RSS
    stderr: str = ""


def _pin(one_core: bool) -> list[str]:
    return ["taskset", "-c", "0"] if one_core and shutil.which("taskset") else []


_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None  # GNU time


def child(cmd: list[str], one_core: bool = True, floor: bool = False) -> Run:
    """Run one child; for a floor, its wall time is the loop time it prints. Its peak
    RSS comes from GNU time when there is one: a child forked from this process counts
    this process's memory until it execs."""
    wrap = [_TIME, "-f", "FLOWPOL_BENCH_MAXRSS_KIB %M"] if _TIME else []
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(_pin(one_core) + wrap + cmd, cwd=ROOT, stdout=out, stderr=err)
        _, status, rusage = os.wait4(proc.pid, 0)  # this child's own CPU time and RSS
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode not in (0, 1):
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{stderr[-3000:]}")
    cpu = rusage.ru_utime + rusage.ru_stime
    rss = rusage.ru_maxrss
    m = re.search(r"FLOWPOL_BENCH_MAXRSS_KIB (\d+)", stderr)
    if m is not None:
        rss = int(m.group(1))
    if floor:
        wall, cpu = map(float, stdout.split())
    return Run(wall, cpu, rss, stderr)


def flowpol(*args: str) -> list[str]:
    return [sys.executable, "-m", "generator.cli.main", *args]


def alternate(floor_cmd: list[str], cmd: list[str], repeat: int,
              one_core: bool = True) -> tuple[list[Run], list[Run]]:
    floors, runs = [], []
    for _ in range(repeat):
        floors.append(child(floor_cmd, one_core, floor=True))
        runs.append(child(cmd, one_core))
    return floors, runs


def best(runs: list[Run]) -> Run:
    """The best wall time and the best CPU time of the runs (of one command)."""
    return Run(min(r.wall for r in runs), min(r.cpu for r in runs),
               max(r.rss_kib for r in runs), runs[0].stderr)


def paired(runs: list[Run], floors: list[Run], rate: bool) -> str:
    """Each run against the floor run just before it: drift of the machine's speed
    between runs (a virtual machine's can be +-20% within minutes) mostly cancels in a
    pair, and the median of the pairs says how stable the best-of figure is."""
    ratios = sorted((f.wall / r.wall) if rate else (r.wall / f.wall)
                    for r, f in zip(runs, floors))
    mid = len(ratios) // 2
    median = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
    return (f"run by run: median {median:.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f}x over "
            f"{len(ratios)} pairs)")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def result(line: str) -> None:
    print(f"RESULT {line}", flush=True)


def aggregated(stderr: str) -> tuple[int, int]:
    """(flow records, aggregates written) from `flowpol import`'s summary."""
    m = re.search(r"aggregated ([\d,]+) flow records into ([\d,]+)", stderr)
    if m is None:
        raise SystemExit(f"no aggregation summary in:\n{stderr[-2000:]}")
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))


# ----------------------------------------------------------------------------- data


def conntrack_dump(base: Path, lines: int) -> Path:
    from bench_conntrack import generate_dump

    path = base / f"conntrack-L-{lines}.txt"
    if not path.exists():
        generate_dump(path.with_suffix(".tmp"), lines)
        path.with_suffix(".tmp").rename(path)
    return path


def conntrack_dump_keys(base: Path, lines: int, keys: int) -> Path:
    """A `conntrack -L` dump of ``lines`` connections over exactly ``keys`` distinct
    (client, ClusterIP, port, backend, targetPort) keys: line j is key j % keys, with
    its own client port."""
    path = base / f"conntrack-L-{lines}-keys-{keys}.txt"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        out = []
        for j in range(lines):
            i = j % keys
            client = f"10.{64 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}"
            vip = f"10.96.{i % 40}.{i % 200 + 1}"
            backend = f"10.244.{i % 30}.{i % 240 + 2}"
            sport = 32768 + j // keys
            out.append(f"tcp      6 431999 ESTABLISHED src={client} dst={vip} sport={sport} "
                       f"dport=80 packets=12 bytes=1570 src={backend} dst={client} "
                       f"sport=8080 dport={sport} packets=10 bytes=9120 [ASSURED] mark=0 "
                       "use=1\n")
            if len(out) >= 20000:
                f.writelines(out)
                out.clear()
        f.writelines(out)
    tmp.rename(path)
    return path


def pcap_short(base: Path, packets: int) -> Path:
    from bench_pcap import generate

    path = base / f"short-connections-{packets}.pcap"
    if not path.exists():
        generate(path.with_suffix(".tmp"), packets, exchanges=1)
        path.with_suffix(".tmp").rename(path)
    return path


def hubble(base: Path, lines: int) -> Path:
    d = base / f"hubble-{lines}"
    if not (d / "flows.jsonl").exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_synthetic.py"),
                        str(d), "--lines", str(lines)], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
    return d


def hubble_shifted_copies(base: Path, small: Path, copies: int, first: int = 0) -> Path:
    """Copies ``first`` to ``copies - 1`` of a Hubble file one after the other, copy k
    shifted k x 6 h later: the same connections, so the same aggregation keys, at
    ``copies - first`` times the lines."""
    from recorder.timefmt import format_time, parse_time

    path = base / (f"{small.parent.name}-x{copies}.jsonl" if not first else
                   f"{small.parent.name}-{first}-to-{copies - 1}.jsonl")
    if path.exists():
        return path
    stamp = re.compile(rb'"time":"([^"]+)"')
    cache: dict[tuple[bytes, int], bytes] = {}

    def shifted(offset: int):
        def sub(m: re.Match) -> bytes:
            text = m.group(1)
            key = (text, offset)
            hit = cache.get(key)
            if hit is None:
                hit = format_time(parse_time(text.decode()) + offset).encode()
                if len(cache) > 1_000_000:
                    cache.clear()
                cache[key] = hit
            return b'"time":"' + hit + b'"'
        return sub

    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out, open(small, "rb") as src:
        data = src.read()
        for k in range(first, copies):
            out.write(data if k == 0 else stamp.sub(shifted(k * 6 * 3600 * 10**9), data))
    tmp.rename(path)
    return path


# ------------------------------------------------------------------------ scenarios


def _times(r: Run, f: Run) -> str:
    return (f"{r.wall:.2f} s wall {r.cpu:.2f} s CPU, floor {f.wall:.2f} s wall {f.cpu:.2f} s "
            f"CPU | peak RSS {r.rss_kib / 1024:.0f} MiB | {load()}")


def scenario_conntrack(args: argparse.Namespace) -> None:
    dump = conntrack_dump(args.dir, args.lines)
    log = args.dir / "out-conntrack.log"
    floors, runs = alternate([sys.executable, "-c", FLOOR_SPLIT, str(dump)],
                             flowpol("import", str(dump), "--out", str(log)) + args.extra, args.repeat)
    f, r = best(floors), best(runs)
    records, keys = aggregated(r.stderr)
    result(f"import conntrack -L, {args.lines:,} lines, {keys:,} distinct keys "
           f"({keys / records:.0%}): {f.wall / r.wall:.2f}x the split floor's rate "
           f"(target >= 0.30; CPU time {f.cpu / r.cpu:.2f}x; {paired(runs, floors, True)}) "
           f"| import {_times(r, f)}")


def scenario_pcap(args: argparse.Namespace) -> None:
    cap = pcap_short(args.dir, args.lines)
    log = args.dir / "out-pcap.log"
    floors, runs = alternate([sys.executable, "-c", FLOOR_RAWPCAP, str(cap)],
                             flowpol("import", str(cap), "--out", str(log)) + args.extra,
                             args.repeat)
    f, r = best(floors), best(runs)
    records, keys = aggregated(r.stderr)
    result(f"import pcap, {args.lines:,} packets of short connections, {records:,} "
           f"connections, {keys:,} distinct keys: {f.wall / r.wall:.2f}x "
           f"RawPcapReader's rate (target >= 1.30; CPU time {f.cpu / r.cpu:.2f}x; "
           f"{paired(runs, floors, True)}) | import {_times(r, f)}")


def scenario_hubble(args: argparse.Namespace) -> None:
    d = hubble(args.dir, args.lines)
    out = args.dir / "out-hubble"
    floors, runs = alternate([sys.executable, "-c", FLOOR_ORJSON, str(d / "flows.jsonl")],
                             flowpol("generate", str(d / "flows.jsonl"), "--snapshot",
                                     str(d / "cluster.json"), "--out", str(out))
                             + args.extra, args.repeat)
    f, r = best(floors), best(runs)
    size = (d / "flows.jsonl").stat().st_size
    result(f"generate, {args.lines:,} Hubble lines of {size / args.lines / 1000:.1f} kB: "
           f"{r.wall / f.wall:.2f}x the time of the bare orjson.loads loop (target "
           f"<= 0.50; CPU time {r.cpu / f.cpu:.2f}x; {paired(runs, floors, False)}) | "
           f"generate {_times(r, f)}")


def hubble_gzipped(d: Path) -> Path:
    """The Hubble lines gzipped (level 6, as `gzip` and the exporter's rotation write)."""
    path = d / "flows.jsonl.gz"
    if not path.exists():
        import gzip

        tmp = path.with_suffix(".tmp")
        with open(d / "flows.jsonl", "rb") as src, gzip.open(tmp, "wb", 6) as out:
            shutil.copyfileobj(src, out, 4 << 20)
        tmp.rename(path)
    return path


def scenario_gzip(args: argparse.Namespace) -> None:
    d = hubble(args.dir, args.lines)
    gz = hubble_gzipped(d)
    out = args.dir / "out-hubble-gz"
    floors, runs = alternate([sys.executable, "-c", FLOOR_GZIP_ORJSON, str(gz)],
                             flowpol("generate", str(gz), "--snapshot",
                                     str(d / "cluster.json"), "--out", str(out))
                             + args.extra, args.repeat)
    f, r = best(floors), best(runs)
    result(f"generate, {args.lines:,} Hubble lines gzipped ({gz.stat().st_size >> 20} MiB): "
           f"{r.wall / f.wall:.2f}x the time of a gzip.open + orjson.loads loop (CPU time "
           f"{r.cpu / f.cpu:.2f}x; {paired(runs, floors, False)}) | generate {_times(r, f)}")


def scenario_memory(args: argparse.Namespace) -> None:
    keys = 100_000
    small = conntrack_dump_keys(args.dir, keys, keys)
    large = conntrack_dump_keys(args.dir, 10 * keys, keys)
    wide = conntrack_dump(args.dir, args.lines)
    log = args.dir / "out-memory.log"
    imp = {name: best([child(flowpol("import", str(p), "--out", str(log))
                             + args.extra) for _ in range(args.repeat)])
           for name, p in (("small", small), ("large", large), ("wide", wide))}
    _, wide_keys = aggregated(imp["wide"].stderr)
    per_key = (imp["wide"].rss_kib - imp["small"].rss_kib) * 1024 / (wide_keys - keys)
    result(f"import conntrack -L peak RSS, the same {keys:,} keys at {keys:,} and "
           f"{10 * keys:,} lines: {imp['large'].rss_kib / imp['small'].rss_kib:.2f}x "
           f"(target <= 1.50) | {imp['small'].rss_kib / 1024:.0f} / "
           f"{imp['large'].rss_kib / 1024:.0f} MiB")
    result(f"import conntrack -L, bytes per distinct key: {per_key:,.0f} (peak RSS "
           f"{imp['small'].rss_kib / 1024:.0f} MiB at {keys:,} keys, "
           f"{imp['wide'].rss_kib / 1024:.0f} MiB at {wide_keys:,})")
    d = hubble(args.dir, keys)
    copies = hubble_shifted_copies(args.dir, d / "flows.jsonl", 10)
    gen = {name: best([child(flowpol("generate", str(p), "--snapshot",
                                     str(d / "cluster.json"), "--out",
                                     str(args.dir / "out-memory-gen")) + args.extra)
                       for _ in range(args.repeat)])
           for name, p in (("small", d / "flows.jsonl"), ("large", copies))}
    result(f"generate peak RSS, the same keys at 100,000 and 1,000,000 Hubble lines: "
           f"{gen['large'].rss_kib / gen['small'].rss_kib:.2f}x (target <= 1.50) | "
           f"{gen['small'].rss_kib / 1024:.0f} / {gen['large'].rss_kib / 1024:.0f} MiB")
    big = hubble(args.dir, args.lines)
    wide_gen = best([child(flowpol("generate", str(big / "flows.jsonl"), "--snapshot",
                                   str(big / "cluster.json"), "--out",
                                   str(args.dir / "out-memory-gen")) + args.extra)
                     for _ in range(args.repeat)])
    result(f"generate peak RSS, 100,000 vs {args.lines:,} lines of the synthetic cluster "
           f"(more connections, more keys): "
           f"{wide_gen.rss_kib / gen['small'].rss_kib:.2f}x | "
           f"{gen['small'].rss_kib / 1024:.0f} / {wide_gen.rss_kib / 1024:.0f} MiB")


def scenario_jobs(args: argparse.Namespace) -> None:
    d = hubble(args.dir, args.lines)
    # the same cluster recorded again 6 h later: the same connections at other times
    later = hubble_shifted_copies(args.dir, d / "flows.jsonl", 2, first=1)
    pair = [str(d / "flows.jsonl"), str(later)]
    outs = [args.dir / f"out-jobs-{n}" for n in (1, 2)]
    one, two = [], []
    for _ in range(args.repeat):
        for n, runs in ((1, one), (2, two)):
            runs.append(child(flowpol("generate", *pair, "--snapshot",
                                      str(d / "cluster.json"), "--out",
                                      str(outs[n - 1]), "--jobs", str(n)) + args.extra,
                              one_core=False))
    same = _same_tree(outs[0], outs[1])
    result(f"generate, two inputs of {args.lines:,} Hubble lines: --jobs 2 is "
           f"{best(one).wall / best(two).wall:.2f}x faster than --jobs 1 (target >= 1.70) "
           f"| {best(one).wall:.2f} s / {best(two).wall:.2f} s wall; outputs identical: "
           f"{same} | {load()}")
    dumps = [conntrack_dump(args.dir, args.lines)]
    copy = args.dir / "conntrack-L-second.txt"  # a dump's time is its file's time
    if not copy.exists():
        shutil.copyfile(dumps[0], copy)
    dumps.append(copy)
    logs = [args.dir / f"out-jobs-{n}.log" for n in (1, 2)]
    one, two = [], []
    for _ in range(args.repeat):
        for n, runs in ((1, one), (2, two)):
            runs.append(child(flowpol("import", *map(str, dumps), "--out", str(logs[n - 1]),
                                      "--jobs", str(n)) + args.extra,
                              one_core=False))
    same = logs[0].read_bytes() == logs[1].read_bytes()
    result(f"import, two conntrack -L dumps of {args.lines:,} lines: --jobs 2 is "
           f"{best(one).wall / best(two).wall:.2f}x faster than --jobs 1 (target >= 1.70) "
           f"| {best(one).wall:.2f} s / {best(two).wall:.2f} s wall; outputs identical: "
           f"{same} | {load()}")


def _same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all((a / p).read_bytes() == (b / p).read_bytes()
                                      for p in files_a)


SCENARIOS = {"conntrack": scenario_conntrack, "pcap": scenario_pcap,
             "hubble": scenario_hubble, "gzip": scenario_gzip, "memory": scenario_memory,
             "jobs": scenario_jobs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], default=[])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path,
                    default=Path(tempfile.gettempdir()) / "flowpol-e2e")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                    help="more options for every flowpol command (last on the line)")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    # As installed: pip compiles the bytecode at install time.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "generator", "recorder"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    print(f"machine: {os.cpu_count()} CPUs, {os.uname().machine}, Python "
          f"{sys.version.split()[0]}; single-core scenarios pinned: {bool(_pin(True))}; "
          f"{load()}", flush=True)
    for name in args.scenarios or list(SCENARIOS):
        SCENARIOS[name](args)


if __name__ == "__main__":
    main()
