"""Hostile and broken inputs, through the real CLI: junk before the records, NULs left by
copytruncate, over-long lines, gzip as gunzip reads it, broken pcapng interfaces and
clocks. Every one is exit 2 with its ``path:line`` (or file, or packet) named, every
valid record kept, and no traceback; ``--strict`` stops at it.

The assets are made by assets/hostile/make_hostile.py (it says what each holds)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOSTILE = REPO / "tests" / "recorder" / "assets" / "hostile"
FLOWS = 20  # valid records in each text asset (make_hostile.FLOWS)


def flowpol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "generator.cli.main", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )


def records_in(log: Path) -> int:
    """Records the flow log was aggregated from (the sum of its flows' counts)."""
    data = log.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    lines = [json.loads(line) for line in data.splitlines()]
    assert lines[0]["kind"] == "header"
    return sum(line["count"] for line in lines[1:] if line["kind"] == "flow")


def imported(path: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str],
                                                                Path]:
    out = tmp_path / "out.jsonl"
    run = flowpol("import", str(path), "--out", str(out), *extra)
    assert "Traceback" not in run.stderr, run.stderr
    return run, out


# (asset, format, records kept, where the bad item is named, its reason)
CASES = [
    ("hubble-junk-first-line.json", "hubble", FLOWS, ":1", "invalid-json"),
    ("hubble-junk-lines-first.json", "hubble", FLOWS, ":3", "invalid-json"),
    ("hubble-array-first-line.json", "hubble", FLOWS, ":1", "not-an-object"),
    # "[" then no object: junk, not a JSON array holding the whole file
    ("hubble-conntrack-event-first.json", "hubble", FLOWS, ":1", "invalid-json"),
    ("hubble-bracketed-number-first.json.gz", "hubble", FLOWS, ":1", "invalid-json"),
    ("hubble-bracket-line-first.json", "hubble", FLOWS, ":1", "invalid-json"),
    ("hubble-bracket-brace-first.json", "hubble", FLOWS, ":1", "invalid-json"),
    ("hubble-nuls-first.json", "hubble", FLOWS, ":1", "nul-bytes"),
    ("conntrack-json-first-line.txt", "conntrack", FLOWS, ":1", "not-conntrack"),
    ("conntrack-long-hubble-lines-first.txt.gz", "conntrack", FLOWS, ":2", "line-too-long"),
    ("trailing-garbage.json.gz", "hubble", FLOWS, "", "trailing-garbage"),
    ("two-members-trailing-garbage.json.gz", "hubble", FLOWS, "", "trailing-garbage"),
    ("corrupt-second-member.json.gz", "hubble", 10, "", "bad-compressed-data"),
    ("empty-idb.pcapng", "pcap", 5, ": packet 3", "corrupt-block"),
    ("far-times.pcapng", "pcap", 4, ": packet 4", "bad-time"),
]


@pytest.mark.parametrize(("name", "fmt", "kept", "where", "reason"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_items_are_counted_and_every_valid_record_kept(
        tmp_path: Path, name: str, fmt: str, kept: int, where: str, reason: str) -> None:
    path = HOSTILE / name
    run, out = imported(path, tmp_path)
    assert run.returncode == 2, run.stderr
    assert f"{path}: {fmt}, " in run.stderr  # the format, told by most lines
    assert f"{path}{where}: {reason}" in run.stderr
    assert records_in(out) == kept


@pytest.mark.parametrize("name", ["hubble-junk-first-line.json", "trailing-garbage.json.gz",
                                  "far-times.pcapng"])
def test_strict_stops_at_the_bad_item(tmp_path: Path, name: str) -> None:
    run, out = imported(HOSTILE / name, tmp_path, "--strict")
    assert run.returncode == 2, run.stderr
    assert str(HOSTILE / name) in run.stderr and "--strict" in run.stderr
    assert not out.exists()


def test_a_text_file_starting_like_gzip_is_an_input_error(tmp_path: Path) -> None:
    path = HOSTILE / "text-starting-1f8b.txt"
    run, out = imported(path, tmp_path)
    assert run.returncode == 2, run.stderr
    assert f"{path}: the file starts like gzip (bytes 1f 8b) but is not gzip data" in run.stderr


def test_a_small_and_a_large_gzip_with_trailing_garbage_read_alike(tmp_path: Path) -> None:
    # A large member: Python's gzip refused the small file whole (while sniffing) but
    # read the large one; both keep every record now.
    flows = (HOSTILE / "hubble-junk-first-line.json").read_bytes().split(b"\n", 1)[1]
    # Hubble events, not flows: ignored, never an error
    junk = b'{"node_status":{"message":"' + b"x" * 200 + b'"},"node_name":"worker-1"}\n'
    big = tmp_path / "big.json.gz"
    big.write_bytes(gzip.compress(junk * 2000 + flows, mtime=0) + b"garbage")
    assert len(gzip.decompress(big.read_bytes()[:-7])) > 256 * 1024  # past any first read
    run, out = imported(big, tmp_path)
    assert run.returncode == 2, run.stderr
    assert f"{big}: trailing-garbage" in run.stderr
    assert records_in(out) == FLOWS


@pytest.mark.parametrize("suffix", ["json", "txt"])
def test_an_over_long_line_is_skipped_without_losing_the_file(tmp_path: Path,
                                                              suffix: str) -> None:
    # longer than the 1 MiB any line may have (recorder.sources.base.MAX_LINE), first
    # and in the middle: in a Hubble file and a conntrack file
    source = HOSTILE / ("hubble-junk-first-line.json" if suffix == "json"
                        else "conntrack-json-first-line.txt")
    lines = source.read_bytes().splitlines(keepends=True)[1:]
    long_line = b"x" * (1 << 20) + b"y" * 1000 + b"\n"
    path = tmp_path / f"long.{suffix}"
    path.write_bytes(long_line + b"".join(lines[:5]) + long_line + b"".join(lines[5:]))
    run, out = imported(path, tmp_path)
    assert run.returncode == 2, run.stderr
    assert f"{path}:1: line-too-long" in run.stderr
    assert f"{path}:7: line-too-long" in run.stderr
    assert records_in(out) == FLOWS


def test_nuls_longer_than_the_sniff_window(tmp_path: Path) -> None:
    # copytruncate of a large log: the hole is far longer than the bytes format
    # detection reads
    flows = (HOSTILE / "hubble-junk-first-line.json").read_bytes().split(b"\n", 1)[1]
    path = tmp_path / "rotated.json"
    path.write_bytes(b"\0" * (3 << 20) + flows)
    run, out = imported(path, tmp_path)
    assert run.returncode == 2, run.stderr
    assert f"{path}:1: nul-bytes ({3 << 20} NUL bytes" in run.stderr
    assert records_in(out) == FLOWS


def test_what_import_writes_from_a_capture_with_far_times_import_reads(tmp_path: Path) -> None:
    run, out = imported(HOSTILE / "far-times.pcapng", tmp_path)
    assert run.returncode == 2, run.stderr
    again = tmp_path / "again.jsonl"
    second = flowpol("import", str(out), "--out", str(again))
    assert second.returncode == 0, second.stderr
    assert records_in(again) == records_in(out) == 4
    snapshot = REPO / "tests" / "generator" / "verify" / "assets" / "shop" / "cluster.json"
    generated = flowpol("generate", str(out), "-s", str(snapshot), "--out",
                        str(tmp_path / "p"))
    assert generated.returncode == 0, generated.stderr


def test_a_flow_log_with_junk_and_nuls_first(tmp_path: Path) -> None:
    run, log = imported(HOSTILE / "hubble-junk-first-line.json", tmp_path)
    good = log.read_bytes()
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b"\0" * 3000 + b"junk line\n[1]\n" + good)
    again = tmp_path / "again.jsonl"
    second = flowpol("import", str(damaged), "--out", str(again))
    assert second.returncode == 2, second.stderr
    assert f"{damaged}: flowlog, " in second.stderr
    for where in (":1: nul-bytes", ":1: invalid-json (not JSON: 'junk line'", ":2: not-an-object"):
        assert f"{damaged}{where}" in second.stderr
    assert records_in(again) == records_in(log) == FLOWS


def test_an_over_long_json_array_element_is_bounded(tmp_path: Path) -> None:
    # longer than any object may be (jsonframes.MAX_OBJECT, 16 MiB): not held whole;
    # the records before it are kept
    flows = (HOSTILE / "hubble-junk-first-line.json").read_bytes().splitlines()[1:]
    path = tmp_path / "array.json"
    path.write_bytes(b"[" + b",\n".join(flows[:3]) + b",\n"
                     + b'{"flow":{"x":"' + b"a" * (17 << 20) + b'"}},\n' + flows[3] + b"]\n")
    run, out = imported(path, tmp_path)
    assert run.returncode == 2, run.stderr
    assert f"{path}:4: invalid-json (a JSON array element longer than 16 MiB" in run.stderr
    assert records_in(out) == 3


@pytest.mark.parametrize("ending", [b"\r\n", b"\r\r\n", b" \t\n"],
                         ids=["crlf", "cr-cr-lf", "trailing-blanks"])
def test_other_line_ends_read_as_the_same_lines(tmp_path: Path, ending: bytes) -> None:
    """A Hubble file that went through a Windows tool (twice: CRs doubled), or with
    blanks at the line ends: the same records and the same counts (repeated
    observations of one connection found by the reader, not left to the aggregator)."""
    clean = (REPO / "fixtures" / "scenarios" / "dns" / "flows.jsonl").read_bytes()
    lf = tmp_path / "lf.jsonl"
    lf.write_bytes(clean)
    other = tmp_path / "other.jsonl"
    other.write_bytes(clean.replace(b"\n", ending))
    runs = []
    for path in (lf, other):
        run, out = imported(path, tmp_path)
        assert run.returncode == 0, run.stderr
        summary = run.stderr.replace(str(path), "INPUT")
        runs.append((summary, records_in(out)))
    assert "repeated-observation" in runs[0][0]
    assert runs[0] == runs[1]

def plain_or_gzip(name: str, plain: bool, tmp_path: Path) -> Path:
    """The asset ``name`` (gzip, to be small in the repository), or decompressed."""
    path = HOSTILE / name
    if not plain:
        return path
    out = tmp_path / name.removesuffix(".gz")
    out.write_bytes(gzip.decompress(path.read_bytes()))
    return out


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "gzip"])
@pytest.mark.parametrize(("name", "fmt"), [("conntrack-spaces-first.txt.gz", "conntrack"),
                                           ("hubble-long-blank-lines.json.gz", "hubble")])
def test_blank_lines_of_any_length_are_no_bad_items(tmp_path: Path, name: str, fmt: str,
                                                    plain: bool) -> None:
    # longer than the 64 KiB format detection reads, and (hubble) than MAX_LINE, first
    # and between the records
    path = plain_or_gzip(name, plain, tmp_path)
    run, out = imported(path, tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"{path}: {fmt}, {FLOWS} lines read, {FLOWS} records kept" in run.stderr
    assert records_in(out) == FLOWS


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "gzip"])
def test_a_nul_line_before_a_long_blank_line(tmp_path: Path, plain: bool) -> None:
    path = plain_or_gzip("conntrack-nul-line-spaces-first.txt.gz", plain, tmp_path)
    run, out = imported(path, tmp_path)
    assert run.returncode == 2, run.stderr
    assert f"{path}: conntrack, " in run.stderr
    assert f"{path}:1: nul-bytes (1 NUL bytes" in run.stderr
    assert records_in(out) == FLOWS


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "gzip"])
def test_a_file_of_only_whitespace_is_empty(tmp_path: Path, plain: bool) -> None:
    path = plain_or_gzip("only-whitespace.txt.gz", plain, tmp_path)
    run, _ = imported(path, tmp_path)
    assert run.returncode == 2, run.stderr
    assert f"{path}: the file is empty; give a file with flows or leave it out" in run.stderr


def test_a_flow_log_with_a_blank_line_of_1_mib_first_and_junk(tmp_path: Path) -> None:
    run, log = imported(HOSTILE / "hubble-junk-first-line.json", tmp_path)
    good = log.read_bytes().splitlines(keepends=True)
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b" " * (1 << 20) + b"\n" + b"".join(good) + b"[junk\n\xff\xfe")
    again = tmp_path / "again.jsonl"
    second = flowpol("import", str(damaged), "--out", str(again))
    assert second.returncode == 2, second.stderr
    assert f"{damaged}: flowlog, " in second.stderr
    junk = len(good) + 2
    assert f"{damaged}:{junk}: invalid-json" in second.stderr
    assert f"{damaged}:{junk + 1}: invalid-json" in second.stderr
    assert "line-too-long" not in second.stderr
    assert records_in(again) == records_in(log) == FLOWS


def test_a_pretty_printed_array_with_a_long_blank_line_after_its_bracket(tmp_path: Path
                                                                        ) -> None:
    flows = (HOSTILE / "hubble-junk-first-line.json").read_bytes().splitlines()[1:]
    path = tmp_path / "array.json"
    path.write_bytes(b"[\n" + b" " * 70_000 + b"\n  " + b",\n  ".join(flows) + b"\n]\n")
    run, out = imported(path, tmp_path)
    assert run.returncode == 0, run.stderr
    assert records_in(out) == FLOWS


def test_a_conntrack_event_line_among_hubble_lines_is_not_called_cut_off(tmp_path: Path
                                                                        ) -> None:
    # it starts like JSON ("[") but stops being JSON at its second byte: not a
    # truncated write
    path = HOSTILE / "hubble-conntrack-event-first.json"
    run, _ = imported(path, tmp_path)
    assert f"{path}:1: invalid-json (not valid JSON (unexpected character" in run.stderr
    assert "cut off" not in run.stderr


def test_a_blank_line_longer_than_any_element_between_array_elements(tmp_path: Path
                                                                     ) -> None:
    # longer than an element may be (jsonframes.MAX_OBJECT, 16 MiB): whitespace, not
    # an element, so neither held nor the end of the array
    flows = (HOSTILE / "hubble-junk-first-line.json").read_bytes().splitlines()[1:]
    path = tmp_path / "array.json"
    path.write_bytes(b"[" + b",\n".join(flows[:5]) + b",\n" + b" " * (17 << 20) + b"\n"
                     + b",\n".join(flows[5:]) + b"]\n")
    run, out = imported(path, tmp_path)
    assert run.returncode == 0, run.stderr
    assert records_in(out) == FLOWS


def test_a_pipe_as_a_flow_input_is_refused_not_half_read(tmp_path: Path) -> None:
    """A FIFO (or `<(zcat ...)`) cannot be opened twice: refused at once with what to do,
    instead of blocking or losing the lines format detection read."""
    fifo = tmp_path / "flows.fifo"
    os.mkfifo(fifo)
    run, out = imported(fifo, tmp_path)  # nothing opens the FIFO: no writer needed
    assert run.returncode == 2, run.stderr
    assert f"{fifo}: not a regular file" in run.stderr and "write it to a file first" in run.stderr
    # the same in a directory of inputs
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "dir" / "x.json")
    run, _ = imported(tmp_path / "dir", tmp_path)
    assert run.returncode == 2 and "x.json: not a regular file" in run.stderr, run.stderr
