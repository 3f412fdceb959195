"""Segments: a crash mid-write never leaves a corrupt or partial segment, a restart never
overwrites one, the size bound deletes the oldest and says so."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from recorder.agent.segments import LineSink, SegmentWriter
from recorder.report import ReadReport
from recorder.schema import FlowLogHeader, FlowRecord
from recorder.sources import read_inputs

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000 * 1_000_000_000


def _flows(n: int, port: int = 80) -> list[FlowRecord]:
    return [FlowRecord(T0 + i, T0 + i, "TCP", f"10.0.{i // 250}.{i % 250 + 1}", "10.0.9.9", port)
            for i in range(n)]


def _read_dir(directory: Path) -> tuple[list, ReadReport]:
    report = ReadReport(strict=True)  # any corrupt line would raise
    return list(read_inputs([str(directory)], report)), report


def test_kill_during_a_write_leaves_only_complete_segments(tmp_path: Path) -> None:
    seg = tmp_path / "segments"
    w = SegmentWriter(seg, FlowLogHeader(node="n1"))
    w.open()
    closed = w.write(_flows(3), T0)
    closed_bytes = closed.read_bytes()
    child = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from recorder.agent.segments import SegmentWriter
        from recorder.schema import FlowLogHeader, FlowRecord
        def records():
            for i in range(200000):
                if i == 5000:
                    print("mid", flush=True)
                    time.sleep(60)
                yield FlowRecord({T0} + i, {T0} + i, "UDP", "10.1.0.1", "10.1.0.2", 53)
        w = SegmentWriter({str(seg)!r}, FlowLogHeader(node="n1"), compress=False)
        w.open()
        w.write(records(), {T0})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"mid"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = sorted(p.name for p in seg.iterdir() if not p.name.endswith(".meta"))
    assert len(names) == 2 and names[0].startswith(".flows-00000001-")  # the unfinished one
    records, report = _read_dir(seg)  # hidden temporaries are not inputs
    assert len(records) == 3 and report.total_skipped == 0

    again = SegmentWriter(seg, FlowLogHeader(node="n1"))
    again.open()
    assert again.stale_temporaries == 1
    path = again.write(_flows(2, port=443), T0)
    # The crashed write never became a segment: its number is free, the closed one is
    # untouched.
    assert path.name.startswith("flows-00000001-") and closed.read_bytes() == closed_bytes
    records, _ = _read_dir(seg)
    assert sorted(r.dst_port for r in records) == [80, 80, 80, 443, 443]


def test_size_bound_deletes_oldest_and_counts(tmp_path: Path) -> None:
    logged: list[str] = []
    w = SegmentWriter(tmp_path, FlowLogHeader(), max_bytes=1, log=logged.append)
    w.open()
    first = w.write(_flows(10), T0)
    second = w.write(_flows(10), T0 + 60)
    assert not first.exists() and second.exists()  # the newest is always kept
    assert w.deleted == 1 and "deleted the oldest segment" in logged[0]


def test_line_sink_writes_the_header_once(tmp_path: Path) -> None:
    buf = io.BytesIO()
    sink = LineSink(buf, FlowLogHeader(node="n1"))
    sink.write(_flows(1))
    sink.write(_flows(2))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4 and lines[0].startswith(b'{"created_by"') and b'"node":"n1"' in lines[0]
    (tmp_path / "log.jsonl").write_bytes(buf.getvalue())
    records, _ = _read_dir(tmp_path)
    assert len(records) == 3


def test_unwritable_directory_is_a_usage_error(tmp_path: Path) -> None:
    import pytest

    from recorder.errors import UsageError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot use the segment directory"):
        SegmentWriter(blocker / "sub", FlowLogHeader()).open()


def test_line_sink_on_a_full_device_counts_and_goes_on() -> None:
    with open("/dev/full", "wb", buffering=0) as full:  # every write: ENOSPC
        sink = LineSink(full, FlowLogHeader(node="n1"))
        sink.write(_flows(2))
        sink.write(_flows(1))
    assert sink.failed == 2 and not sink.broken
