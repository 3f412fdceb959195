"""`flowpol import`, run as a user runs it: a subprocess of the real CLI."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
ASSETS = REPO / "tests" / "recorder" / "assets" / "hubble"


def flowpol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "generator.cli.main", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )


def log_lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.splitlines()]


def test_import_writes_an_aggregated_flow_log(tmp_path: Path) -> None:
    out = tmp_path / "flows.jsonl.gz"
    run = flowpol("import", str(ASSETS / "wrapped.json"), str(ASSETS / "dropped.json"),
                  "--out", str(out))
    assert run.returncode == 0, run.stderr
    lines = log_lines(out)
    assert lines[0]["kind"] == "header" and lines[0]["schema"] == "flowpol.flowlog"
    flows = lines[1:]
    assert all(line["kind"] == "flow" for line in flows)
    assert sum(f["count"] for f in flows) == 8 + 4  # kept in wrapped.json + dropped.json
    assert not any(f.get("verdict") in ("DROPPED", "ERROR") for f in flows)
    # the summary: per input, ignored reasons, aggregation, the output
    assert f"{ASSETS / 'wrapped.json'}: hubble, 17 lines read, 8 records kept" in run.stderr
    assert "reply 2" in run.stderr
    assert "left out 3 dropped connections" in run.stderr
    assert f"wrote {len(flows)} records to {out}" in run.stderr
    assert run.stdout == ""


def test_output_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    assert flowpol("import", str(ASSETS), "--out", str(a)).returncode == 2  # bad assets inside
    assert flowpol("import", str(ASSETS), "--out", str(b)).returncode == 2
    assert a.read_bytes() == b.read_bytes()


def test_include_dropped_and_window(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    run = flowpol("import", str(ASSETS / "dropped.json"), "--out", str(out),
                  "--include-dropped", "--window", "1h")
    assert run.returncode == 0, run.stderr
    flows = log_lines(out)[1:]
    assert sorted(f["verdict"] for f in flows) == [
        "AUDIT", "DROPPED", "DROPPED", "ERROR", "REDIRECTED", "TRACED", "TRANSLATED"
    ]
    assert "window 3600s" in run.stderr


def test_flow_log_reimports_to_the_same_records(tmp_path: Path) -> None:
    first, second = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    assert flowpol("import", str(ASSETS / "wrapped.json"), "--out", str(first)).returncode == 0
    run = flowpol("import", str(first), "--out", str(second))
    assert run.returncode == 0, run.stderr
    assert f"{first}: flowlog" in run.stderr
    assert log_lines(first)[1:] == log_lines(second)[1:]


def test_stdout_output() -> None:
    run = flowpol("import", str(ASSETS / "legacy-bare.json"), "--out", "-")
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["kind"] for line in lines] == ["header", "flow", "flow"]


def test_bad_line_exits_2_after_writing_every_valid_record(tmp_path: Path) -> None:
    # A bad line inside a readable input is skipped, counted, reported with its
    # file:line, and makes the run an input error once the flow log is written;
    # --strict stops at it instead (below).
    out = tmp_path / "t.jsonl"
    path = ASSETS / "truncated-line.json"
    run = flowpol("import", str(path), "--out", str(out))
    assert run.returncode == 2, run.stderr
    assert f"{path}:2: invalid-json" in run.stderr
    assert "skipped 1 bad items" in run.stderr and "Traceback" not in run.stderr
    assert f"wrote 2 records to {out}" in run.stderr
    assert run.stderr.splitlines()[-1] == (
        f"flowpol: error: 1 bad input item(s) skipped (invalid-json 1) at {path}:2: "
        "invalid-json (the line is cut off (a truncated write?); it was left out). Output "
        f"written from every valid record: the flow log {out}; fix or remove the bad lines to "
        "get exit code 0.")
    assert len(log_lines(out)) == 1 + 2  # header + the SYNs of lines 1 and 3


def test_ignored_items_leave_exit_code_0(tmp_path: Path) -> None:
    # replies, non-flow events and dropped verdicts are valid input, not bad input
    out = tmp_path / "x.jsonl"
    run = flowpol("import", str(ASSETS / "wrapped.json"), str(ASSETS / "mixed-non-flow.json"),
                  str(ASSETS / "dropped.json"), "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "ignored (not a new connection, or not wanted): " in run.stderr
    assert "reply 2" in run.stderr and "non-flow:" in run.stderr
    assert "skipped" not in run.stderr and "error" not in run.stderr


def test_bad_lines_and_unreadable_inputs_make_one_message(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    run = flowpol("import", str(ASSETS / "empty.json"), str(ASSETS / "truncated-line.json"),
                  str(ASSETS / "bad-fields.json"), "--out", str(out))
    assert run.returncode == 2
    error = run.stderr.splitlines()[-1]
    assert error.startswith(f"flowpol: error: 1 input(s) could not be read: "
                            f"{ASSETS / 'empty.json'}: the file is empty")
    assert ("; 4 bad input item(s) skipped (bad-flow 2, invalid-json 1, not-an-object 1) at "
            f"{ASSETS / 'truncated-line.json'}:2: invalid-json") in error
    for n in (1, 2, 3):
        assert f"{ASSETS / 'bad-fields.json'}:{n}: " in error
    assert ("Output written from every valid record of the readable inputs: the flow log "
            f"{out}; fix or leave out the unreadable input(s) and fix or remove the bad lines "
            "to get exit code 0.") in error
    assert len(log_lines(out)) == 1 + 2  # valid records of truncated-line + bad-fields
    assert "Traceback" not in run.stderr


def test_strict_stops_at_the_first_bad_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    path = ASSETS / "truncated-line.json"
    run = flowpol("import", str(path), "--out", str(out), "--strict")
    assert run.returncode == 2
    assert run.stderr.startswith(f"flowpol: error: {path}:2: invalid-json")
    assert not out.exists()


def test_unusable_inputs_exit_2_and_the_rest_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    run = flowpol("import", str(ASSETS / "empty.json"), str(ASSETS / "not-json.txt"),
                  str(tmp_path / "missing.json"), str(ASSETS / "wrapped.json"), "--out", str(out))
    assert run.returncode == 2
    assert f"{ASSETS / 'empty.json'}: the file is empty" in run.stderr
    assert f"{ASSETS / 'not-json.txt'}: this is a text without any IP address" in run.stderr
    assert f"{tmp_path / 'missing.json'}: no such file or directory" in run.stderr
    assert "3 input(s) could not be read" in run.stderr
    assert sum(f["count"] for f in log_lines(out)[1:]) == 8  # wrapped.json still imported
    assert "Traceback" not in run.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    out = str(tmp_path / "x.jsonl")
    run = flowpol("import", str(ASSETS / "wrapped.json"), "--out", out, "--window", "soon")
    assert run.returncode == 2 and "--window" in run.stderr and "e.g. 60s" in run.stderr
    run = flowpol("import", str(ASSETS / "wrapped.json"), "--out", out, "--format", "pcapx")
    assert run.returncode == 2 and "unknown --format 'pcapx'" in run.stderr
    run = flowpol("import", str(ASSETS / "wrapped.json"))  # no --out
    assert run.returncode == 2 and "--out" in run.stderr
    run = flowpol("import", str(ASSETS / "wrapped.json"), "--out", str(tmp_path / "no" / "x"))
    assert run.returncode == 2 and "cannot write the flow log" in run.stderr


def test_format_override(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    run = flowpol("import", str(ASSETS / "wrapped.json"), "--out", str(out), "--format", "flowlog")
    # read as a flow log, every Hubble line lacks "kind": all skipped, exit 2
    assert run.returncode == 2
    assert "bad-record 17" in run.stderr
    assert (f"and 12 more. No valid record was read, so the flow log {out} holds none "
            "(a wrong format? --format forces one)") in run.stderr


def test_help_exits_0() -> None:
    run = flowpol("import", "--help")
    assert run.returncode == 0
    assert "--include-dropped" in run.stdout


def test_dns_answers_become_name_lines_and_every_outcome_is_counted(tmp_path: Path) -> None:
    """A capture and a Hubble file with DNS answers that bind (a CNAME chain asked in
    upper case, a TCP answer after a truncated UDP one, Hubble's trailing dots) and
    that do not (NXDOMAIN, malformed, truncated, a name no policy can carry): name
    lines for the first, counts for all, exit 2 only for the Hubble line with a bad
    address (bad input), the flow log written from every valid record."""
    out = tmp_path / "names.jsonl"
    run = flowpol("import", str(REPO / "tests/recorder/assets/pcap/dns-answers.pcap"),
                  str(ASSETS / "dns-l7.json"), "-o", str(out))
    assert run.returncode == 2, run.stderr
    assert "dns-l7.json:8: bad-flow (l7.dns.ips holds 'not-an-ip'" in run.stderr
    assert "dns-nxdomain 2" in run.stderr and "dns-truncated 1" in run.stderr
    assert "dns-malformed 1" in run.stderr and "dns-bad-name 2" in run.stderr
    assert "dns-name-lower-cased 2" in run.stderr and "dns-name-trailing-dot 5" in run.stderr
    lines = log_lines(out)
    assert lines[0]["revision"] == 2
    names = [line for line in lines if line["kind"] == "name"]
    assert {(n["name"], n["address"]) for n in names} >= {
        ("api.example.com", "203.0.113.5"), ("big.example", "203.0.113.111"),
        ("api.payment-gw.example", "203.0.113.10")}
    assert len(names) == 22 and all(n["name"] == n["name"].lower() for n in names)
    # the flow log reads back to the same records, names included
    again = tmp_path / "again.jsonl"
    assert flowpol("import", str(out), "-o", str(again)).returncode == 0
    assert log_lines(again)[1:] == lines[1:]
