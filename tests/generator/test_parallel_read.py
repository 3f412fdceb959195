"""``--jobs N``: inputs read in worker processes give exactly what ``--jobs 1`` gives -
the same records in the same order into the aggregator, the same report, the same
errors, the same files byte for byte (generator/parallel.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from generator.pipeline import read_into
from recorder.aggregate import Aggregator
from recorder.errors import InputError
from recorder.report import ReadReport
from recorder.sources import ReadOptions

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "tests" / "recorder" / "assets"
DEMO = ROOT / "fixtures" / "demo"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args], cwd=ROOT,
                          capture_output=True, text=True)


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def _inputs(tmp_path: Path) -> list[str]:
    """Both demo nodes' Hubble files, plus inputs of other formats with bad items."""
    bad = tmp_path / "bad-lines.jsonl"
    lines = (DEMO / "flows" / "hubble-node-a.jsonl").read_text().splitlines(keepends=True)
    bad.write_text("".join(lines[:5]) + "{not json\n" + "".join(lines[5:9]) + "[1]\n")
    return [str(DEMO / "flows"), str(bad), str(ASSETS / "conntrack" / "L-plain.txt"),
            str(ASSETS / "conntrack" / "garbage.txt"), str(ASSETS / "hubble" / "wrapped.json"),
            str(ASSETS / "pcap" / "ethernet-be-usec.pcap")]


def test_generate_writes_the_same_files_whatever_the_jobs(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    runs = {}
    for n in (1, 2, 3):
        out = tmp_path / f"out-{n}"
        proc = _cli("generate", *inputs, "--snapshot", str(DEMO / "cluster.json"),
                    "--out", str(out), "--jobs", str(n))
        runs[n] = (proc.returncode, proc.stdout.replace(str(out), "OUT"),
                   proc.stderr.replace(str(out), "OUT"), _tree(out))
    assert runs[1][0] == 2  # the bad lines: exit 2 after the output is written
    assert "bad-lines.jsonl:6" in runs[1][2]
    assert runs[1][3]  # policies and reports were written
    assert runs[2] == runs[1]
    assert runs[3] == runs[1]


def test_import_writes_the_same_flow_log_whatever_the_jobs(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"flows-{n}.jsonl"
        proc = _cli("import", *inputs, "--out", str(out), "--jobs", str(n))
        runs[n] = (proc.returncode, proc.stderr.replace(str(out), "OUT"), out.read_bytes())
    assert runs[1][0] == 2 and runs[1][2].count(b"\n") > 10
    assert runs[2] == runs[1]


def _syn(t_ms: int, sport: int, node: str) -> str:
    seconds, ms = divmod(t_ms, 1000)
    return ('{"flow":{"time":"2026-11-20T09:%02d:%02d.%03dZ","verdict":"FORWARDED",'
            '"IP":{"source":"10.244.1.5","destination":"10.244.2.7","ipVersion":"IPv4"},'
            '"l4":{"TCP":{"source_port":%d,"destination_port":8080,"flags":{"SYN":true}}},'
            '"source":{"namespace":"a","pod_name":"x-1"},'
            '"destination":{"namespace":"b","pod_name":"y-1"},"Type":"L3_L4",'
            '"node_name":"%s","is_reply":false},"node_name":"%s"}\n'
            % (seconds // 60, seconds % 60, ms, sport, node, node))


def test_the_same_connection_in_two_inputs_counts_once_in_workers(tmp_path: Path) -> None:
    # Each node's file holds far more connections than the aggregator's dedup table:
    # only the time-ordered merge of the two streams lets the observations meet.
    n = 3000
    files = []
    for node, delay in (("node-a", 0), ("node-b", 2)):
        path = tmp_path / f"{node}.jsonl"
        path.write_text("".join(_syn(i * 50 + delay, 20000 + i % 40000, node)
                                for i in range(n)))
        files.append(str(path))
    counts = {}
    for jobs in (1, 2):
        aggregator = Aggregator(dedup_capacity=64)
        report = ReadReport()
        assert read_into(aggregator, files, report, ReadOptions(), jobs=jobs) == []
        records = aggregator.drain()
        counts[jobs] = (sum(r.count for r in records), aggregator.stats.duplicates,
                        records, report.to_dict())
    assert counts[2][0] == n and counts[2][1] == n
    assert counts[2] == counts[1]


def test_strict_stops_at_the_same_bad_line(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    messages = []
    for jobs in (1, 2):
        with pytest.raises(InputError) as caught:
            read_into(Aggregator(), inputs, ReadReport(strict=True), ReadOptions(), jobs=jobs)
        messages.append((str(caught.value), caught.value.path, caught.value.line))
    assert messages[0] == messages[1]


def test_unreadable_inputs_are_collected_in_input_order(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("")
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("hello\n")
    inputs = [str(DEMO / "flows"), str(unknown), str(tmp_path / "missing"),
              str(ASSETS / "pcap" / "bad-magic.pcap"), str(empty)]
    seen = []
    for jobs in (1, 2):
        report = ReadReport()
        errors = read_into(Aggregator(), inputs, report, ReadOptions(), jobs=jobs)
        seen.append(([(str(e), e.hint) for e in errors], report.to_dict()))
    assert len(seen[0][0]) == 4
    assert any(hint for _, hint in seen[0][0])  # e.g. the formats flowpol reads
    assert seen[1] == seen[0]


def _dump(path: Path, tuples: range, odd_every: int) -> str:
    lines = []
    for i in tuples:
        if i % odd_every == 0:
            lines.append(f"tcp      6 99 ESTABLISHED src=10.0.{i % 250}.1 dst=10.96.0.1 "
                         f"sport=notaport dport=80 src=10.1.0.1 dst=10.0.0.1 sport=80 "
                         f"dport=1 [ASSURED] mark=0 use=1\n")
        lines.append(f"tcp      6 99 ESTABLISHED src=10.0.{i % 250}.{i // 250 % 250} "
                     f"dst=10.96.0.{i % 7} sport={20000 + i % 30000} dport=80 packets=1 "
                     f"bytes=60 src=10.1.{i % 3}.9 dst=10.0.{i % 250}.{i // 250 % 250} "
                     f"sport=8080 dport={20000 + i % 30000} [ASSURED] mark=0 use=1\n")
    path.write_text("".join(lines))
    return str(path)


def test_conntrack_dumps_go_to_the_workers_as_row_batches(tmp_path: Path) -> None:
    # Two nodes' `conntrack -L` dumps sharing a third of their connections, larger than
    # a worker's batch, with bad lines: the readers hand rows over in ListedRows, through
    # the workers too, and the flow log is the one of --jobs 1 byte for byte.
    from generator.parallel import BATCH, WorkerReaders
    from recorder.listed import ListedRows

    dumps = [_dump(tmp_path / "node-a.txt", range(0, 9000), 997),
             _dump(tmp_path / "node-b.txt", range(6000, 15000), 1009)]
    assert 9000 > 2 * BATCH
    with WorkerReaders(dumps, ReadReport(), ReadOptions(listed_batches=True), None, 2) as w:
        w.prime()
        items = list(w.stream(0))
    assert any(type(item) is ListedRows for item in items)
    runs = {}
    for n in (1, 2, 3):
        out = tmp_path / f"flows-{n}.jsonl"
        proc = _cli("import", *dumps, "--out", str(out), "--jobs", str(n))
        runs[n] = (proc.returncode, proc.stderr.replace(str(out), "OUT"), out.read_bytes())
    assert runs[1][0] == 2 and "node-a.txt:1:" in runs[1][1]  # the bad lines: exit 2
    assert runs[1][2].count(b"\n") > 9000
    assert runs[2] == runs[1] and runs[3] == runs[1]
