"""Hubble JSON as people have it besides the compact lines: `hubble observe -o json |
jq .` (objects over many lines, one after the other), documentation-style examples,
and dumps of L7 records only. Pretty-printed input is made by the real `jq`."""

from __future__ import annotations

import dataclasses

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.report import ReadReport
from recorder.schema import NameBinding
from recorder.sources import ReadOptions, detect_format, jsonframes, read_inputs

ROOT = Path(__file__).resolve().parents[2]
ASSETS = Path(__file__).parent / "assets" / "hubble"
DEMO_FLOWS = ROOT / "fixtures" / "demo" / "flows" / "hubble-node-a.jsonl"


def _jq() -> str:
    found = shutil.which("jq")
    if found is None:
        message = "jq is not installed (apt-get install -y jq; scripts/test-deps.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def jq(src: Path, dst: Path, *args: str) -> Path:
    with dst.open("wb") as out:
        subprocess.run([_jq(), *args, ".", str(src)], stdout=out, check=True, timeout=120)
    return dst


def read(path: Path, fmt: str | None = None) -> tuple[list, ReadReport]:
    report = ReadReport()
    return list(read_inputs([str(path)], report, ReadOptions(), fmt)), report


def _same_records(a: list, b: list, path_a: Path, path_b: Path) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y)
        assert x.input == str(path_a) and y.input == str(path_b)
        if isinstance(x, NameBinding):
            assert dataclasses.replace(x, input=y.input) == y
            continue
        assert (x.first_seen, x.protocol, x.src_ip, x.dst_ip, x.dst_port, x.src_port, x.src,
                x.dst, x.verdict, x.node) == (y.first_seen, y.protocol, y.src_ip, y.dst_ip,
                                              y.dst_port, y.src_port, y.src, y.dst, y.verdict,
                                              y.node)


@pytest.mark.parametrize("indent", [["--indent", "2"], ["--indent", "4"], ["--tab"]])
def test_jq_output_reads_like_the_compact_lines(tmp_path: Path, indent: list[str]) -> None:
    compact = tmp_path / "compact.json"
    shutil.copy(DEMO_FLOWS, compact)
    pretty = jq(compact, tmp_path / "pretty.json", *indent)
    assert pretty.read_bytes().startswith(b"{\n")
    assert detect_format(pretty) == "hubble"
    want, want_report = read(compact)
    got, got_report = read(pretty)
    _same_records(want, got, compact, pretty)
    assert got_report.ignored == want_report.ignored  # repeats, replies: counted alike
    assert got_report.lines[str(pretty)] == want_report.lines[str(compact)]
    assert got_report.total_skipped == 0


def test_forced_format_reads_pretty_input_without_blaming_every_line(tmp_path: Path) -> None:
    pretty = jq(ASSETS / "wrapped.json", tmp_path / "pretty.json")
    records, report = read(pretty, fmt="hubble")
    want, _ = read(ASSETS / "wrapped.json")
    assert len(records) == len(want) == 8 and report.total_skipped == 0


def test_documentation_style_examples(tmp_path: Path) -> None:
    """Objects separated by commas (an example list without its brackets), braces inside
    strings, two objects on one line, CRLF line ends."""
    objs = [json.loads(line) for line in (ASSETS / "wrapped.json").read_text().splitlines()]
    objs[0]["flow"]["Summary"] = "TCP Flags: SYN } { ]"
    text = ",\n".join(json.dumps(o, indent=4) for o in objs[:5])
    text += "\n" + json.dumps(objs[5], indent=1).replace("\n", "\r\n")
    text += json.dumps(objs[6], indent=2) + "\n"
    example = tmp_path / "example.json"
    example.write_text(text)
    assert detect_format(example) == "hubble"
    records, report = read(example)
    compact = tmp_path / "compact.json"
    compact.write_text("".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objs[:7]))
    want, want_report = read(compact)
    assert [(r.protocol, r.src_ip, r.dst_ip, r.dst_port) for r in records] == \
        [(r.protocol, r.src_ip, r.dst_ip, r.dst_port) for r in want]
    assert report.ignored == want_report.ignored and report.total_skipped == 0


def test_a_cut_off_last_object_and_stray_text_are_bad_input_at_their_lines(tmp_path: Path
                                                                          ) -> None:
    pretty = jq(ASSETS / "wrapped.json", tmp_path / "pretty.json")
    text = pretty.read_text()
    lines = text.splitlines(keepends=True)
    starts = [i + 1 for i, line in enumerate(lines) if line == "{\n"]
    # stray text before the third object, and the last object cut in half
    lines.insert(starts[2] - 1, "this line is not JSON\n")
    last = starts[-1] + 1  # moved down by the inserted line
    cut = lines[:last - 1] + lines[last - 1:last + 10]
    broken = tmp_path / "broken.json"
    broken.write_text("".join(cut))
    records, report = read(broken)
    assert len(records) == 7  # every whole object but the cut one (the last SCTP flow)
    examples = sorted((e.line, e.reason) for e in report.examples)
    assert examples == [(starts[2], "invalid-json"), (last, "invalid-json")]


def test_a_compact_file_whose_first_line_was_cut_stays_line_by_line(tmp_path: Path) -> None:
    lines = (ASSETS / "wrapped.json").read_text().splitlines(keepends=True)
    damaged = tmp_path / "damaged.json"
    damaged.write_text(lines[0][:120] + "\n" + "".join(lines[1:]))
    records, report = read(damaged, fmt="hubble")
    assert [e.line for e in report.examples] == [1]
    assert len(records) == 8  # line 2 repeats line 1's SYN, which is now its first sighting


def test_is_multiline() -> None:
    assert jsonframes.is_multiline(b"{\n", b'  "flow": {\n')
    assert jsonframes.is_multiline(b'{"flow": {\n', b'    "time": "x",\n')
    assert not jsonframes.is_multiline(b'{"flow":{}}\n', b'{"flow":{}}\n')
    assert not jsonframes.is_multiline(b'{"flow":{"ti\n', b'{"flow":{}}\n')  # cut compact line
    assert not jsonframes.is_multiline(b"[\n", b"{\n")


def test_an_object_larger_than_any_flow_is_not_held_in_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("w") as f:
        f.write('{\n  "flow": {\n    "Summary": "')
        f.write("x" * (jsonframes.MAX_OBJECT + 1024))
        f.write('"\n  }\n}\n')
        f.write(json.dumps(json.loads((ASSETS / "wrapped.json").read_text().splitlines()[0]),
                           indent=2) + "\n")
    records, report = read(big, fmt="hubble")
    assert len(records) == 1  # the flow after it
    assert report.examples[0].line == 1 and "longer than 16 MiB" in report.examples[0].detail


# ---------------------------------------------------------------- L7 records only


def test_l7_only_dump_says_so_and_how_to_record_l3_l4(tmp_path: Path) -> None:
    records, report = read(ASSETS / "l7-only.json")
    [warning] = report.warnings
    assert "holds only L7 records" in warning and "--type l7" in warning
    assert "hubble observe -o json" in warning and "--type trace --type drop" in warning
    assert not any(getattr(r, "protocol", None) == "TCP" for r in records)  # names only
    # not for a dump with L3/L4 records in it
    _, report = read(ASSETS / "wrapped.json")
    assert report.warnings == []


def test_l7_only_dump_through_the_cli(tmp_path: Path) -> None:
    snapshot = ROOT / "fixtures" / "demo" / "cluster.json"
    run = subprocess.run([sys.executable, "-m", "generator.cli.main", "generate",
                          str(ASSETS / "l7-only.json"), "-s", str(snapshot), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert "holds only L7 records" in run.stdout + run.stderr
    assert "Traceback" not in run.stderr


# ---------------------------------------------------------------- real captures


SAMPLES = ROOT.parent / "shared" / "samples" / "hubble"


@pytest.mark.samples
@pytest.mark.parametrize("name", ["basic-sample-10-flows.json", "basic-sample-400-tcp-flows.json",
                                  "basic-sample-400-udp-flows.json",
                                  "basic-sample-400-icmpv4-flows.json",
                                  "basic-sample-5-dns-flows.json"])
def test_real_captures_pretty_printed_read_like_themselves(tmp_path: Path, name: str) -> None:
    sample = SAMPLES / name
    if not sample.exists():
        pytest.skip(f"{sample} not present (the samples tier needs ../shared/samples)")
    compact = tmp_path / name
    shutil.copy(sample, compact)
    pretty = jq(compact, tmp_path / f"pretty-{name}")
    want, want_report = read(compact)
    got, got_report = read(pretty)
    _same_records(want, got, compact, pretty)
    assert got_report.ignored == want_report.ignored and got_report.total_skipped == 0
    # the DNS sample is L7 only (its header above): said for both forms
    l7 = name == "basic-sample-5-dns-flows.json"
    assert bool(want_report.warnings) == bool(got_report.warnings) == l7


def test_pretty_demo_through_the_cli_verifies_the_same(tmp_path: Path) -> None:
    flows = ROOT / "fixtures" / "demo" / "flows"
    pretty = tmp_path / "pretty"
    pretty.mkdir()
    for f in sorted(flows.iterdir()):
        jq(f, pretty / f.name)
    snapshot = str(ROOT / "fixtures" / "demo" / "cluster.json")

    def verified(*inputs: str) -> list[str]:
        run = subprocess.run([sys.executable, "-m", "generator.cli.main", "generate", *inputs,
                              "-s", snapshot, "--out", str(tmp_path / "out")],
                             capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert run.returncode == 0, run.stderr
        return [line for line in run.stdout.splitlines()
                if line.startswith(("verified:", "resolved", "wrote"))]

    assert verified(str(pretty)) == verified(str(flows))
