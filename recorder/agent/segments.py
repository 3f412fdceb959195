"""Where closed windows go: rotating flow-log segments on disk, and stdout.

A segment is an ordinary flow log (``flows-<seq>-<UTC time>.jsonl.gz``), written by
``recorder.flowlog.write_flow_log``: a hidden temporary file in the same directory,
fsync, rename, fsync of the directory. A crash (SIGKILL, power loss) at any point
leaves either the complete segment or only a hidden ``.flows-*.tmp`` that readers skip
(``expand_inputs`` ignores hidden files) and the next start deletes; a closed segment
is never rewritten. Sequence numbers continue after the highest one on disk, so a
restart never overwrites an earlier segment. ``max_bytes`` bounds the directory: the
oldest segments are deleted (and reported) when it is exceeded.

Each segment has a catalog entry (size, sha256, first and last time), kept in a hidden
sidecar ``.<segment name>.meta`` so that a restarted agent lists its segments without
reading them again (a segment without one, e.g. from a crash between the two renames,
is read once). The agent's HTTP server lists the catalog (``GET /segments``).

A full disk (or any failing write) does not end the recording: the window stays in
memory and is retried (``retry``) until it is written, oldest first, with a warning when
writing fails and one when it works again. What is held is bounded
(``max_held_records``); beyond it the oldest held windows are dropped and counted as
lost (``lost_windows``, ``lost_connections``). The same records went to stdout first.

The same records go to stdout as flow-log lines (a header first), which is what
``flowpol collect --logs`` reads back from the recorder pods' logs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Callable, Sequence

from recorder.errors import FlowpolError, UsageError
from recorder.flowlog import header_to_json, record_to_json, write_flow_log
from recorder.schema import FlowLogHeader, FlowRecord, IpTimelineRecord, LogRecord
from recorder.timefmt import format_time

SEGMENT = re.compile(r"^flows-(\d{8,})-[0-9TZ]+\.jsonl(\.gz)?$")
DEFAULT_MAX_BYTES = 1 << 30
RETRY_EVERY_S = 5.0  # a failing write is tried again this often
WARN_EVERY_S = 60.0  # ... and a warning repeated this often while it fails
_SIDECAR_SUFFIX = ".meta"


def _stamp(ns: int) -> str:
    t = format_time(ns)  # 2024-05-01T12:00:00.000000000Z
    return t[:19].replace("-", "").replace(":", "") + "Z"


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One closed segment, as ``GET /segments`` lists it."""

    name: str
    size: int
    sha256: str
    first_time: str | None  # RFC 3339; None for a segment without records
    last_time: str | None


def _time_range(records: Sequence[LogRecord]) -> tuple[str | None, str | None]:
    first = last = None
    for r in records:
        if isinstance(r, FlowRecord):
            lo, hi = r.first_seen, r.last_seen
        elif isinstance(r, IpTimelineRecord):
            lo, hi = r.valid_from, r.valid_to if r.valid_to is not None else r.valid_from
        else:
            continue
        first = lo if first is None or lo < first else first
        last = hi if last is None or hi > last else last
    return (format_time(first) if first is not None else None,
            format_time(last) if last is not None else None)


def _sha256(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _connections(records: Sequence[LogRecord]) -> int:
    return sum(r.count for r in records if isinstance(r, FlowRecord))


class SegmentWriter:
    def __init__(self, directory: str | Path, header: FlowLogHeader,
                 max_bytes: int = DEFAULT_MAX_BYTES, compress: bool = True,
                 log: Callable[[str], None] = lambda _msg: None,
                 max_held_records: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = Path(directory)
        self.header = header
        self.max_bytes = max_bytes
        self.suffix = ".jsonl.gz" if compress else ".jsonl"
        self.log = log
        self.max_held_records = max_held_records
        self.clock = clock
        self.written: list[Path] = []
        self.bytes_written = 0
        self.deleted = 0  # segments removed by the size bound
        self.bytes_deleted = 0
        self.last_write = 0.0  # epoch seconds of the last segment written
        self.write_failures = 0  # failed attempts (each retry counts)
        self.lost_windows = 0  # held windows dropped (memory bound, or still held at the end)
        self.lost_connections = 0
        self.stale_temporaries = 0  # half-written files of a crashed run, removed
        self._next = 0
        self._held: deque[tuple[list[LogRecord], int]] = deque()
        self._held_records = 0
        self._failing_since: float | None = None
        self._next_try = 0.0
        self._next_warning = 0.0
        self._catalog: dict[str, SegmentInfo] = {}
        self._lock = threading.Lock()  # the catalog: the HTTP server reads it

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
        present = set(names)
        for name in names:  # sidecars whose segment is gone (deleted by an older run)
            if name.startswith(".flows-") and name.endswith(_SIDECAR_SUFFIX) \
                    and name[1:-len(_SIDECAR_SUFFIX)] not in present:
                (self.directory / name).unlink(missing_ok=True)
        seqs = [int(m.group(1)) for m in map(SEGMENT.match, names) if m]
        self._next = max(seqs) + 1 if seqs else 0

    def segments(self) -> list[Path]:
        """The closed segments: regular files (not links) named like one, by name."""
        out = []
        for p in self.directory.iterdir():
            if SEGMENT.match(p.name):
                try:
                    if stat.S_ISREG(p.lstat().st_mode):
                        out.append(p)
                except FileNotFoundError:
                    pass
        return sorted(out)

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

    # ------------------------------------------------------------------ writing

    def write(self, records: Sequence[LogRecord], first_time: int) -> Path:
        """Write one segment now; raises what the filesystem raises (OSError,
        UsageError). The sequence number advances only when the segment exists."""
        path = self.directory / f"flows-{self._next:08d}-{_stamp(first_time)}{self.suffix}"
        write_flow_log(records, path, self.header)
        self._next += 1
        self.written.append(path)
        size, digest = _sha256(path)
        self.bytes_written += size
        self.last_write = time.time()
        info = SegmentInfo(path.name, size, digest, *_time_range(records))
        with self._lock:
            self._catalog[path.name] = info
        self._write_sidecar(info)
        self._enforce_bound(keep=path)
        return path

    def submit(self, records: list[LogRecord], first_time: int) -> list[Path]:
        """Write a closed window, after any window still held; a window that cannot be
        written is held and retried (see the module doc). Returns the segments written."""
        self._held.append((records, first_time))
        self._held_records += len(records)
        self._next_try = 0.0
        return self.retry()

    def retry(self) -> list[Path]:
        """Write the held windows, oldest first, when it is time to try again."""
        now = self.clock()
        if not self._held or now < self._next_try:
            return []
        done: list[Path] = []
        while self._held:
            records, first_time = self._held[0]
            try:
                done.append(self.write(records, first_time))
            except (OSError, FlowpolError) as e:
                self._failed(e, now)
                break
            self._held.popleft()
            self._held_records -= len(records)
        if not self._held and self._failing_since is not None:
            self.log(f"segments: writing again after {now - self._failing_since:.0f} s; "
                     f"{len(done)} held window(s) written")
            self._failing_since = None
        self._bound_held()
        return done

    def _failed(self, e: BaseException, now: float) -> None:
        self.write_failures += 1
        self._next_try = now + RETRY_EVERY_S
        why = getattr(e, "strerror", None) or str(e)
        if self._failing_since is None:
            self._failing_since = now
        elif now < self._next_warning:
            return
        self._next_warning = now + WARN_EVERY_S
        self.log(f"warning: segments: cannot write to {self.directory} ({why}); "
                 f"{len(self._held)} window(s) held in memory and retried every "
                 f"{RETRY_EVERY_S:.0f} s (they went to stdout already); free space or "
                 "lower --segments-max-bytes")

    def _bound_held(self) -> None:
        dropped = connections = 0
        while self._held and self._held_records > self.max_held_records \
                and len(self._held) > 1:
            records, _ = self._held.popleft()
            self._held_records -= len(records)
            dropped += 1
            connections += _connections(records)
        if dropped:
            self._lose(dropped, connections, "more than the memory bound held")

    def abandon(self) -> None:
        """At the end of the run: what is still held will not reach the disk."""
        if self._held:
            connections = sum(_connections(r) for r, _ in self._held)
            n = len(self._held)
            self._held.clear()
            self._held_records = 0
            self._lose(n, connections, "still held when the recorder stopped")

    def _lose(self, windows: int, connections: int, why: str) -> None:
        self.lost_windows += windows
        self.lost_connections += connections
        self.log(f"warning: segments: {connections} connection(s) in {windows} window(s) "
                 f"not written to disk ({why}); they are only on stdout")

    @property
    def held_windows(self) -> int:
        return len(self._held)

    # ------------------------------------------------------------------ catalog

    def catalog(self) -> list[SegmentInfo]:
        """Every closed segment on disk now, by name."""
        names = [p.name for p in self.segments()]
        out: list[SegmentInfo] = []
        for name in names:
            with self._lock:
                info = self._catalog.get(name)
            if info is None:
                info = self._describe(name)
                if info is None:
                    continue  # deleted meanwhile
                with self._lock:
                    self._catalog[name] = info
            out.append(info)
        with self._lock:  # forget what was deleted
            for gone in set(self._catalog) - set(names):
                del self._catalog[gone]
        return out

    def _describe(self, name: str) -> SegmentInfo | None:
        path = self.directory / name
        try:
            size = path.stat().st_size
            sidecar = json.loads((self.directory / f".{name}{_SIDECAR_SUFFIX}").read_bytes())
            info = SegmentInfo(**sidecar)
            if info.name == name and info.size == size:
                return info
        except FileNotFoundError:
            if not path.exists():
                return None
        except (OSError, ValueError, TypeError):
            pass
        from recorder.report import ReadReport
        from recorder.sources import read_inputs

        try:
            size, digest = _sha256(path)
            records = list(read_inputs([str(path)], ReadReport()))
        except FileNotFoundError:
            return None
        except (OSError, FlowpolError):
            records = []
            try:
                size, digest = _sha256(path)
            except OSError:
                return None
        info = SegmentInfo(name, size, digest, *_time_range(records))
        self._write_sidecar(info)
        return info

    def _write_sidecar(self, info: SegmentInfo) -> None:
        # Derived data: no fsync; a lost or stale sidecar is rebuilt from the segment.
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{info.name}.", suffix=".tmp",
                                       dir=self.directory)
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(asdict(info), sort_keys=True).encode())
            os.replace(tmp, self.directory / f".{info.name}{_SIDECAR_SUFFIX}")
        except OSError:
            try:
                os.unlink(tmp)
            except (OSError, UnboundLocalError):
                pass

    def _enforce_bound(self, keep: Path) -> None:
        segments = self.segments()
        sizes = {p: p.stat().st_size for p in segments}
        total = sum(sizes.values())
        for p in segments:
            if total <= self.max_bytes or p == keep:
                break
            p.unlink(missing_ok=True)
            (self.directory / f".{p.name}{_SIDECAR_SUFFIX}").unlink(missing_ok=True)
            total -= sizes[p]
            self.deleted += 1
            self.bytes_deleted += sizes[p]
            with self._lock:
                self._catalog.pop(p.name, None)
            self.log(f"warning: segments: deleted the oldest segment {p.name} to stay "
                     f"under {self.max_bytes} bytes (collect more often or raise "
                     "--segments-max-bytes)")

    @property
    def bytes_on_disk(self) -> int:
        total = 0
        try:
            for p in self.segments():
                try:
                    total += p.stat().st_size
                except FileNotFoundError:
                    pass
        except OSError:
            pass
        return total


class LineSink:
    """Flow-log lines on a stream (stdout in the DaemonSet), header first."""

    def __init__(self, stream: IO[bytes] | None = None, header: FlowLogHeader = FlowLogHeader()):
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.header = header
        self._started = False
        self.broken = False
        self.failed = 0  # windows stdout refused (e.g. redirected to a full disk)

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
        except OSError:  # counted and reported by the loop; the next window tries again
            self.failed += 1
