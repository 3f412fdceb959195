"""Where closed windows go: rotating flow-log segments on disk, and stdout.

A segment is an ordinary flow log (``flows-<seq>-<UTC time>.jsonl.gz``), written by
``recorder.flowlog.write_flow_log``: a hidden temporary file in the same directory,
fsync, rename, fsync of the directory. A crash (SIGKILL, power loss) at any point
leaves either the complete segment or only a hidden ``.flows-*.tmp`` that readers skip
(``expand_inputs`` ignores hidden files) and the next start deletes; a closed segment
is never rewritten. Sequence numbers continue after the highest one on disk, so a
restart never overwrites an earlier segment. ``max_bytes`` bounds the directory: the
oldest segments are deleted (and reported) when it is exceeded.

The same records go to stdout as flow-log lines (a header first), which is what
``flowpol collect`` reads back from the recorder pods' logs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import IO, Callable, Sequence

from recorder.errors import FlowpolError, UsageError
from recorder.flowlog import header_to_json, record_to_json, write_flow_log
from recorder.schema import FlowLogHeader, IpTimelineRecord, LogRecord
from recorder.timefmt import format_time

SEGMENT = re.compile(r"^flows-(\d{8,})-[0-9TZ]+\.jsonl(\.gz)?$")
DEFAULT_MAX_BYTES = 1 << 30


def _stamp(ns: int) -> str:
    t = format_time(ns)  # 2024-05-01T12:00:00.000000000Z
    return t[:19].replace("-", "").replace(":", "") + "Z"


class SegmentWriter:
    def __init__(self, directory: str | Path, header: FlowLogHeader,
                 max_bytes: int = DEFAULT_MAX_BYTES, compress: bool = True,
                 log: Callable[[str], None] = lambda _msg: None) -> None:
        self.directory = Path(directory)
        self.header = header
        self.max_bytes = max_bytes
        self.suffix = ".jsonl.gz" if compress else ".jsonl"
        self.log = log
        self.written: list[Path] = []
        self.deleted = 0  # segments removed by the size bound
        self.stale_temporaries = 0  # half-written files of a crashed run, removed
        self._next = 0

    def open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            names = [p.name for p in self.directory.iterdir()]
        except OSError as e:
            raise UsageError(f"{self.directory}: cannot use the segment directory: "
                             f"{e.strerror}; give a writable directory with --segments") from None
        for name in names:
            if name.startswith(".flows-") and name.endswith(".tmp"):
                (self.directory / name).unlink(missing_ok=True)
                self.stale_temporaries += 1
        if self.stale_temporaries:
            self.log(f"segments: removed {self.stale_temporaries} unfinished temporary "
                     "file(s) of an interrupted run (their windows were not closed)")
        seqs = [int(m.group(1)) for m in map(SEGMENT.match, names) if m]
        self._next = max(seqs) + 1 if seqs else 0

    def segments(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if SEGMENT.match(p.name))

    def ip_records(self, max_bytes: int = 256 << 20) -> list[IpTimelineRecord]:
        """The IP timeline records of the newest segments (at most ``max_bytes`` of
        them), in the order written: what a restarted pod watch resumes from."""
        from recorder.report import ReadReport
        from recorder.sources import read_inputs

        chosen: list[Path] = []
        total = 0
        for p in reversed(self.segments()):
            total += p.stat().st_size
            if total > max_bytes and chosen:
                break
            chosen.append(p)
        out: list[IpTimelineRecord] = []
        report = ReadReport()
        for p in reversed(chosen):
            try:
                out.extend(r for r in read_inputs([str(p)], report)
                           if isinstance(r, IpTimelineRecord))
            except (FlowpolError, OSError) as e:
                self.log(f"warning: segments: cannot read {p.name} back ({e}); the pod "
                         "watch starts without it")
        return out

    def write(self, records: Sequence[LogRecord], first_time: int) -> Path:
        path = self.directory / f"flows-{self._next:08d}-{_stamp(first_time)}{self.suffix}"
        self._next += 1
        write_flow_log(records, path, self.header)
        self.written.append(path)
        self._enforce_bound(keep=path)
        return path

    def _enforce_bound(self, keep: Path) -> None:
        segments = self.segments()
        sizes = {p: p.stat().st_size for p in segments}
        total = sum(sizes.values())
        for p in segments:
            if total <= self.max_bytes or p == keep:
                break
            p.unlink(missing_ok=True)
            total -= sizes[p]
            self.deleted += 1
            self.log(f"warning: segments: deleted the oldest segment {p.name} to stay "
                     f"under {self.max_bytes} bytes (collect more often or raise "
                     "--segments-max-bytes)")


class LineSink:
    """Flow-log lines on a stream (stdout in the DaemonSet), header first."""

    def __init__(self, stream: IO[bytes] | None = None, header: FlowLogHeader = FlowLogHeader()):
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.header = header
        self._started = False
        self.broken = False

    def write(self, records: Sequence[LogRecord]) -> None:
        if self.broken:
            return
        lines = [] if self._started else [header_to_json(self.header)]
        self._started = True
        lines.extend(record_to_json(r) for r in records)
        lines.append(b"")
        try:
            self.stream.write(b"\n".join(lines))
            self.stream.flush()
        except BrokenPipeError:  # nobody reads stdout any more; segments still do
            self.broken = True
