"""The recorder on a full disk (a small real tmpfs): it keeps recording, stdout first,
holds the windows the disk refuses and writes them when space returns; what it cannot
hold is counted as lost, never silently dropped."""

from __future__ import annotations

import errno
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from agent_process import AgentProcess
from netlab import NetLab, ServicePort, call_in_netns

from recorder.agent.segments import SegmentWriter
from recorder.report import ReadReport
from recorder.schema import FlowLogHeader, FlowRecord
from recorder.sources import read_inputs

pytestmark = pytest.mark.root

T0 = 1_700_000_000 * 1_000_000_000
WEB_VIP = "10.96.0.10"


@contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; returns it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * 4096
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
    return filler


def _flows(n: int, t: int) -> list[FlowRecord]:
    return [FlowRecord(t + i, t + i, "TCP", "10.0.0.1", "10.0.9.9", 80, src_port=1000 + i)
            for i in range(n)]


def _read(path: Path) -> list[FlowRecord]:
    return [r for r in read_inputs([str(path)], ReadReport(strict=True))
            if isinstance(r, FlowRecord)]


def test_writer_holds_refused_windows_and_writes_them_in_order(tmp_path: Path) -> None:
    now = [100.0]
    logged: list[str] = []
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        w = SegmentWriter(disk / "segments", FlowLogHeader(), log=logged.append,
                          max_held_records=25, clock=lambda: now[0])
        w.open()
        filler = fill(disk)
        assert w.submit(_flows(10, T0), T0) == []
        assert w.held_windows == 1 and w.write_failures == 1
        assert "No space left on device" in logged[-1] and "held in memory" in logged[-1]
        assert w.submit(_flows(10, T0 + 60), T0 + 60) == []
        now[0] += 1
        assert w.retry() == []  # not yet time to try again
        assert w.submit(_flows(10, T0 + 120), T0 + 120) == []  # 30 held > 25: the oldest goes
        assert (w.lost_windows, w.lost_connections, w.held_windows) == (1, 10, 2)
        assert "10 connection(s) in 1 window(s) not written to disk" in logged[-1]
        assert list((disk / "segments").iterdir()) == []  # no half-written file either

        filler.unlink()
        now[0] += 5
        written = w.retry()
        assert [p.name[:14] for p in written] == ["flows-00000000", "flows-00000001"]
        assert [r.first_seen for r in _read(written[0])] == [T0 + 60 + i for i in range(10)]
        assert [r.first_seen for r in _read(written[1])] == [T0 + 120 + i for i in range(10)]
        assert w.held_windows == 0 and "writing again" in logged[-1]
        assert [i.name for i in w.catalog()] == [p.name for p in written]


def test_agent_keeps_recording_through_a_full_disk(tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat"
    with small_tmpfs(tmp_path / "disk", "1m") as disk, NetLab() as lab:
        segments = disk / "segments"
        segments.mkdir()
        client, web = lab.add_pod("client"), lab.add_pod("web")
        lab.add_service("web", WEB_VIP, [ServicePort("TCP", 80, 8080)], [web])
        lab.serve(web, "TCP", 8080)
        filler = fill(disk)
        agent = AgentProcess(lab, ["--source", "capture", "--source", "conntrack",
                                   "--segments", str(segments), "--stdout", "--window", "1s",
                                   "--heartbeat", str(heartbeat),
                                   "--http-listen", "127.0.0.1:9401"])
        agent.wait_for("capture: listening on", count=2)
        agent.wait_for("conntrack: following")
        assert lab.connect(client, "TCP", WEB_VIP, 80, count=3) == 3
        agent.wait_for("held: not on disk yet", timeout=15)
        agent.wait_for("warning: segments: cannot write")

        # Still alive: the heartbeat goes on, the metrics say what is happening.
        beat = heartbeat.stat().st_mtime
        time.sleep(2.5)
        assert agent.bg.proc.poll() is None and heartbeat.stat().st_mtime > beat

        def scrape() -> str:
            with urllib.request.urlopen("http://127.0.0.1:9401/metrics", timeout=5) as r:
                return r.read().decode()

        metrics = call_in_netns(lab.node_ns, scrape)
        assert "flowpol_recorder_held_windows 1.0" in metrics, metrics
        failures = next(line for line in metrics.splitlines()
                        if line.startswith("flowpol_recorder_segment_write_failures_total "))
        assert float(failures.split()[1]) >= 1
        assert not [p for p in segments.iterdir() if p.name.startswith("flows-")]

        filler.unlink()  # space returns
        agent.wait_for("writing again", timeout=15)
        assert lab.connect(client, "TCP", WEB_VIP, 80, count=2) == 2
        assert agent.stop() == 0, agent.stderr
        on_disk = _read(segments)  # before the tmpfs goes

    assert "Traceback" not in agent.stderr
    stdout = tmp_path / "stdout.jsonl"
    stdout.write_bytes(bytes(agent.stdout))
    # Every connection on stdout and, once space returned, in the segments: each once.
    assert sum(r.count for r in _read(stdout)) == 5, agent.stderr
    assert sum(r.count for r in on_disk) == 5, agent.stderr
    assert "recorded 5 connection(s)" in agent.stderr
    assert "not written to the segments" not in agent.stderr  # nothing lost
