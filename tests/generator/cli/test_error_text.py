"""Error text through the real CLI: the formats listed once per run, no doubled full
stops, a snapshot given as a flow input named as such, captures counted in packets, and
a directory input that holds more than flows."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"
ASSETS = ROOT / "tests" / "recorder" / "assets"
SNAPSHOT = str(DEMO / "cluster.json")
DOUBLED_STOP = re.compile(r"(?<!\.)\.\.(?!\.)")  # ".." but not an ellipsis
FORMAT_LIST = "conntrack (conntrack -L/-E text or XML"


def flowpol(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.fixture
def unknown(tmp_path: Path) -> list[str]:
    """Two files no reader knows: text that names addresses (so it might be flows)."""
    files = []
    for name in ("a.log", "b.log"):
        f = tmp_path / name
        f.write_text("2026-11-20 10.0.0.1 talked to 10.0.0.2 on port 80\n" * 3)
        files.append(str(f))
    return files


def test_the_format_list_is_given_once_per_run(unknown: list[str], tmp_path: Path) -> None:
    run = flowpol("generate", str(DEMO / "flows"), *unknown, "-s", SNAPSHOT, "--out",
                  str(tmp_path / "out"))
    assert run.returncode == 2
    assert run.stderr.count(FORMAT_LIST) == 1, run.stderr
    assert all(f"{f}: unknown input format" in run.stderr for f in unknown)
    assert "flowpol: hint: flowpol reads pcap" in run.stderr
    # verify writes nothing for an unreadable input, and still lists the formats once
    run = flowpol("import", *unknown, "--out", str(tmp_path / "x.jsonl"))
    assert run.returncode == 2 and run.stderr.count(FORMAT_LIST) == 1, run.stderr


@pytest.mark.parametrize("case", ["unknown", "strict-unknown", "cut-line", "no-flows",
                                  "pcap", "snapshot-as-input"])
def test_no_doubled_full_stops(case: str, unknown: list[str], tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    if case == "unknown":
        run = flowpol("generate", str(DEMO / "flows"), *unknown, "-s", SNAPSHOT, "--out", out)
    elif case == "strict-unknown":
        run = flowpol("generate", unknown[0], "-s", SNAPSHOT, "--out", out, "--strict")
    elif case == "cut-line":
        flows = tmp_path / "flows.jsonl"
        text = (DEMO / "flows" / "hubble-node-a.jsonl").read_text()
        flows.write_text(text + text.splitlines()[-1][:50] + "\n")
        run = flowpol("import", str(flows), "--out", str(tmp_path / "x.jsonl"))
    elif case == "no-flows":
        run = flowpol("generate", *unknown, "-s", SNAPSHOT, "--out", out)
    elif case == "pcap":
        run = flowpol("import", str(ASSETS / "pcap" / "truncated-record.pcap"), "--out",
                      str(tmp_path / "x.jsonl"))
    else:
        run = flowpol("generate", str(DEMO / "flows"), SNAPSHOT, "-s", SNAPSHOT, "--out", out)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("flowpol: ")]
    assert errors, run.stderr
    for line in errors:
        assert DOUBLED_STOP.search(line) is None, line
        assert ". ;" not in line and ".;" not in line, line


def test_a_snapshot_given_as_a_flow_input_is_named_as_one(tmp_path: Path) -> None:
    run = flowpol("generate", str(DEMO / "flows"), SNAPSHOT, "-s", SNAPSHOT, "--out",
                  str(tmp_path / "out"))
    assert run.returncode == 2
    assert (f"{SNAPSHOT}: this looks like a cluster snapshot; pass it with --snapshot"
            in run.stderr), run.stderr
    assert FORMAT_LIST not in run.stderr  # no list of formats: what it is is known
    yaml_snapshot = tmp_path / "cluster.yaml"
    yaml_snapshot.write_text("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n"
                             "  kind: Pod\n  metadata: {name: a, namespace: b}\n")
    run = flowpol("import", str(yaml_snapshot), "--out", str(tmp_path / "x.jsonl"), "--strict")
    assert run.returncode == 2 and "this looks like a cluster snapshot" in run.stderr


def test_captures_are_counted_in_packets(tmp_path: Path) -> None:
    pcap = ASSETS / "pcap" / "truncated-record.pcap"
    run = flowpol("import", str(pcap), "--out", str(tmp_path / "x.jsonl"))
    assert run.returncode == 2
    assert re.search(rf"{re.escape(str(pcap))}: pcap, \d+ packets read", run.stderr)
    assert f"{pcap}: packet 4: truncated-packet" in run.stderr
    assert "lines read" not in run.stderr and f"{pcap}:4" not in run.stderr
    assert "fix or remove the bad packets" in run.stderr
    strict = flowpol("import", str(pcap), "--out", str(tmp_path / "y.jsonl"), "--strict")
    assert strict.returncode == 2 and f"{pcap}: packet 4: truncated-packet" in strict.stderr


def test_a_directory_leaves_out_what_is_clearly_not_flows_with_one_warning(tmp_path: Path
                                                                         ) -> None:
    folder = tmp_path / "capture"
    folder.mkdir()
    shutil.copy(DEMO / "flows" / "hubble-node-a.jsonl", folder)
    shutil.copy(DEMO / "cluster.json", folder)
    shutil.copy(ROOT / "README.md", folder)
    (folder / "graph.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    alone = flowpol("generate", str(folder / "hubble-node-a.jsonl"), "-s", SNAPSHOT,
                    "--out", str(tmp_path / "alone"))
    run = flowpol("generate", str(folder), "-s", SNAPSHOT, "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stdout.splitlines()
                if line.startswith("warning:") and "not flow inputs" in line]
    assert len(warnings) == 1, run.stdout
    assert "left out 3 file(s) that are not flow inputs" in warnings[0]
    for name in ("README.md: documentation", "cluster.json: a cluster snapshot, pass it with "
                 "--snapshot", "graph.png: a PNG image"):
        assert name in warnings[0]
    # the flows in the folder are read as they are alone
    verified = [line for line in run.stdout.splitlines() if line.startswith("verified:")]
    assert verified == [line for line in alone.stdout.splitlines()
                        if line.startswith("verified:")]
    # named explicitly, a file that is not a flow input stays an error
    explicit = flowpol("generate", str(folder / "hubble-node-a.jsonl"), str(folder / "README.md"),
                       "-s", SNAPSHOT, "--out", str(tmp_path / "explicit"))
    assert explicit.returncode == 2
    assert "README.md: this is documentation (Markdown), not a flow input" in explicit.stderr


def test_a_damaged_flow_file_in_a_directory_is_still_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "capture"
    folder.mkdir()
    shutil.copy(DEMO / "flows" / "hubble-node-a.jsonl", folder)
    (folder / "node-b.log").write_text("10.0.0.1 -> 10.0.0.2 something unknown\n")
    run = flowpol("generate", str(folder), "-s", SNAPSHOT, "--out", str(tmp_path / "out"))
    assert run.returncode == 2 and "node-b.log: unknown input format" in run.stderr
