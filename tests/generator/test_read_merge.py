"""Inputs are read merged in time order: one node's observation of a connection meets the
other node's in the aggregator however large the captures (pipeline.read_into)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator import pipeline
from generator.pipeline import read_into
from recorder.aggregate import Aggregator
from recorder.report import ReadReport
from recorder.sources import ReadOptions

CONNECTIONS = 600


def _syn(t_ms: int, sport: int, node: str, point: str) -> str:
    seconds, ms = divmod(t_ms, 1000)
    flow = {"time": f"2026-11-20T09:{seconds // 60:02d}:{seconds % 60:02d}.{ms:03d}Z",
            "verdict": "FORWARDED",
            "IP": {"source": "10.244.1.5", "destination": "10.244.2.7", "ipVersion": "IPv4"},
            "l4": {"TCP": {"source_port": sport, "destination_port": 8080,
                           "flags": {"SYN": True}}},
            "source": {"namespace": "a", "labels": ["k8s:app=x"], "pod_name": "x-1"},
            "destination": {"namespace": "b", "labels": ["k8s:app=y"], "pod_name": "y-1"},
            "Type": "L3_L4", "node_name": node, "trace_observation_point": point,
            "is_reply": False}
    return json.dumps({"flow": flow, "node_name": node}, separators=(",", ":")) + "\n"


def _node_files(tmp_path: Path) -> list[Path]:
    """The client's node sees each SYN leave, the server's node 2 ms later arrive."""
    a = tmp_path / "node-a.jsonl"
    b = tmp_path / "node-b.jsonl"
    a.write_text("".join(_syn(i * 50, 20000 + i, "node-a", "TO_OVERLAY")
                         for i in range(CONNECTIONS)))
    b.write_text("".join(_syn(i * 50 + 2, 20000 + i, "node-b", "TO_ENDPOINT")
                         for i in range(CONNECTIONS)))
    return [a, b]


def _count(aggregator: Aggregator) -> int:
    return sum(r.count for r in aggregator.drain())


def test_two_nodes_count_each_connection_once_beyond_the_dedup_table(tmp_path: Path) -> None:
    files = _node_files(tmp_path)
    # A dedup table far smaller than one node's connections: read one file after the
    # other, the first node's observations are forgotten before the second's come.
    aggregator = Aggregator(dedup_capacity=64)
    errors = read_into(aggregator, [str(p) for p in files], ReadReport(), ReadOptions())
    assert errors == []
    assert aggregator.stats.duplicates == CONNECTIONS
    assert _count(aggregator) == CONNECTIONS


def test_one_after_the_other_would_count_twice(tmp_path: Path) -> None:
    # The failure the merge prevents, shown on the same files.
    aggregator = Aggregator(dedup_capacity=64)
    for path in _node_files(tmp_path):
        read_into(aggregator, [str(path)], ReadReport(), ReadOptions())
    assert _count(aggregator) > 1.8 * CONNECTIONS


def test_many_inputs_are_merged_a_group_at_a_time(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    files = _node_files(tmp_path)
    monkeypatch.setattr(pipeline, "MAX_MERGED_INPUTS", 1)
    aggregator = Aggregator()  # the default table holds both files' connections
    read_into(aggregator, [str(p) for p in files], ReadReport(), ReadOptions())
    assert _count(aggregator) == CONNECTIONS


def test_unreadable_inputs_are_reported_in_input_order(tmp_path: Path) -> None:
    a, b = _node_files(tmp_path)
    empty = tmp_path / "empty.json"
    empty.write_text("")
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("hello\n")
    report = ReadReport()
    aggregator = Aggregator()
    errors = read_into(aggregator, [str(a), str(unknown), str(tmp_path / "missing"),
                                    str(b), str(empty)], report, ReadOptions())
    assert [e.path for e in errors] == [str(unknown), str(tmp_path / "missing"), str(empty)]
    assert _count(aggregator) == CONNECTIONS and report.total_kept == 2 * CONNECTIONS


def test_bad_lines_are_listed_by_input_then_line(tmp_path: Path) -> None:
    a, b = _node_files(tmp_path)
    with a.open("a") as f:
        f.write('{"flow":{"time":\n')
    lines_b = b.read_text().splitlines(keepends=True)
    b.write_text("".join(lines_b[:3]) + "[1]\n" + "".join(lines_b[3:]))
    report = ReadReport()
    read_into(Aggregator(), [str(b), str(a)], report, ReadOptions())
    assert [str(e) for e in report.examples_in_input_order()] == [
        f"{b}:4: not-an-object (a Hubble line must be a JSON object)",
        f"{a}:{CONNECTIONS + 1}: invalid-json (the line is cut off (a truncated write?); "
        "it was left out)",
    ]


def test_the_order_of_the_inputs_does_not_change_the_output(tmp_path: Path) -> None:
    # Merged in time order, which file came first on the command line cannot show
    # through: not in the counts, not in which input a rule's evidence names.
    from generator.generate import GenerateRequest, run_generate

    demo = Path(__file__).resolve().parents[2] / "fixtures" / "demo"
    flows = sorted(str(p) for p in (demo / "flows").iterdir())
    outputs = []
    for order, inputs in enumerate((flows, flows[::-1])):
        out = tmp_path / f"out-{order}"
        run_generate(GenerateRequest(inputs=inputs, snapshot=[str(demo / "cluster.json")],
                                     out_dir=out))
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert len(flows) == 2 and outputs[0] == outputs[1]
