"""The recorder loop: sources -> windows -> segments / stdout / one flow log.

Each source runs in its own thread and hands batches of records to one bounded queue.
The loop owns the Aggregator (recorder/aggregate.py): windows of ``window_ns``, one
record per distinct connection key with count and first/last seen, at most
``max_keys`` keys held (the rest counted as overflow and reported, so a SYN flood from
random sources cannot grow memory). A connection that two sources both report (the
capture sees the SYN, conntrack its NEW event) is counted once by the Aggregator's
dedup.

A window is written when it has closed plus ``late_ns`` (records of a source that
lags, e.g. conntrack events, still land in their window): one segment per written
window, with the IP timeline records that arrived meanwhile. SIGTERM/SIGINT or the end
of ``duration_ns`` flush everything, the open window included, and end the run. A
source that fails ends the run too, after the flush (the DaemonSet restarts the pod).
Loss is never silent: kernel drops, conntrack ENOBUFS, key overflow, deleted segments
and windows the disk never took are logged as warnings and returned in the result.

A closed window goes to stdout first, then to a segment: a full disk delays the segment
(the window is held and retried, recorder/agent/segments.py) but never stops the loop,
its heartbeat or stdout. With ``http_listen`` the agent serves its closed segments (to
the tokens of ``segment_readers``, recorder/agent/readers.py) and its metrics
(recorder/agent/serve.py, metrics.py).
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from recorder.agent.readers import DEFAULT_READERS, parse_readers
from recorder.aggregate import Aggregator, record_time, sorted_records
from recorder.errors import FlowpolError, UsageError
from recorder.flowlog import write_flow_log
from recorder.schema import FlowLogHeader, FlowRecord, IpTimelineRecord, LogRecord
from recorder.timefmt import format_time

SECOND = 1_000_000_000
DEFAULT_WINDOW_NS = 60 * SECOND
DEFAULT_MAX_KEYS = 100_000
SOURCES = ("capture", "conntrack")
QUEUE_BATCHES = 4096


@dataclass(frozen=True, slots=True)
class RecordConfig:
    sources: tuple[str, ...]
    interfaces: tuple[str, ...] = ()
    window_ns: int = DEFAULT_WINDOW_NS
    max_keys: int = DEFAULT_MAX_KEYS
    duration_ns: int | None = None
    output: str | None = None  # one flow log written at the end
    segments: str | None = None  # segment directory
    stdout: bool = False  # closed windows as flow-log lines on stdout
    node: str | None = None  # pod watch on this node (None: no pod watch)
    kubeconfig: str | None = None
    context: str | None = None
    heartbeat: str | None = None  # touched every second while the loop is healthy
    segments_max_bytes: int = 1 << 30
    # Above the capture's NAT hold (capture.NAT_HOLD_NS, 3.5 s): a start held there still
    # reaches its window before the window is written.
    late_ns: int = 5 * SECOND
    http_listen: tuple[str, int] | None = None  # (host, port) of /segments and /metrics
    # Usernames whose tokens may read /segments (recorder/agent/readers.py)
    segment_readers: tuple[str, ...] = parse_readers(DEFAULT_READERS)


@dataclass(frozen=True, slots=True)
class RecordResult:
    windows: int  # windows (or final flushes) written
    flows: int  # flow records written
    connections: int  # connections they stand for (sum of counts)
    ip_records: int
    segments: tuple[str, ...]
    aggregation: dict
    sources: dict  # source name -> its counters
    warnings: tuple[str, ...]
    stopped_by: str  # "signal", "duration", "source-failed"


@dataclass
class _Totals:
    windows: int = 0
    flows: int = 0
    connections: int = 0
    ip_records: int = 0
    collected: list[LogRecord] = field(default_factory=list)
    recorded: Counter = field(default_factory=Counter)  # source -> connections written
    last_tick: float = field(default_factory=time.monotonic)


def _build_sources(cfg: RecordConfig, log: Callable[[str], None],
                   seed: list | None = None) -> list[Any]:
    unknown = [s for s in cfg.sources if s not in SOURCES]
    if unknown or not cfg.sources:
        raise UsageError(f"--source {unknown[0] if unknown else '(none)'}: choose capture "
                         "and/or conntrack (repeat --source for both)")
    if cfg.interfaces and "capture" not in cfg.sources:
        raise UsageError("--interface only applies to --source capture")
    sources: list[Any] = []
    for name in dict.fromkeys(cfg.sources):
        if name == "capture":
            from recorder.agent.capture import CaptureSource

            sources.append(CaptureSource(cfg.interfaces, log=log))
        else:
            from recorder.agent.conntrack_events import ConntrackEventsSource

            sources.append(ConntrackEventsSource(log=log))
    if cfg.node:
        from recorder.agent.podwatch import PodWatch

        sources.append(PodWatch(cfg.node, cfg.kubeconfig, cfg.context, log=log,
                                seed=seed or ()))
    return sources


def run_record(cfg: RecordConfig, log: Callable[[str], None],
               stop: threading.Event | None = None) -> RecordResult:
    """Record until a signal, ``duration_ns`` or a failing source; see the module doc."""
    if cfg.output is None and cfg.segments is None and not cfg.stdout:
        raise UsageError("nowhere to write: give -o FLOWLOG, --segments DIR or --stdout")
    if cfg.window_ns <= 0 or cfg.max_keys < 1:
        raise UsageError("--window must be positive and --max-keys at least 1")
    stop = stop or threading.Event()
    header = FlowLogHeader(created_by="flowpol record", node=cfg.node)
    segments = None
    if cfg.segments is not None:
        from recorder.agent.segments import SegmentWriter

        segments = SegmentWriter(cfg.segments, header, cfg.segments_max_bytes, log=log,
                                 max_held_records=cfg.max_keys)
        segments.open()
    sink = None
    if cfg.stdout:
        from recorder.agent.segments import LineSink

        sink = LineSink(header=header)

    # A restarted pod watch resumes from the IP records it wrote: held addresses keep
    # their start, and a reuse after a release it saw stays ordered after it.
    seed = segments.ip_records() if segments is not None and cfg.node else []
    sources = _build_sources(cfg, log, seed)
    agg = Aggregator(window_ns=cfg.window_ns, max_keys=cfg.max_keys)
    totals = _Totals()
    observed: dict[str, int] = {src.name: 0 for src in sources if src.name in SOURCES}
    totals.recorded.update(dict.fromkeys(observed, 0))  # fixed keys: read by the metrics thread
    http = None
    if cfg.http_listen is not None:
        from recorder.agent.metrics import registry
        from recorder.agent.readers import ApiTokenReview, SegmentReaders
        from recorder.agent.serve import AgentHttpServer, heartbeat_check

        readers = SegmentReaders(cfg.segment_readers,
                                 ApiTokenReview(cfg.kubeconfig, cfg.context))
        snapshot = _metrics_snapshot(sources, agg, segments, observed, totals, readers)
        http = AgentHttpServer(cfg.http_listen, segments, readers, registry(snapshot),
                               heartbeat_check(lambda: totals.last_tick), log=log)
        http.start()
    started: list[Any] = []
    try:
        for src in sources:
            src.start()
            started.append(src)
    except BaseException:
        for src in started:  # their threads never ran: release sockets and processes
            if hasattr(src, "close"):
                src.close()
            _stop_source(src)
        if http is not None:
            http.stop()
        raise

    batches: queue.Queue = queue.Queue(QUEUE_BATCHES)
    failures: list[str] = []
    threads = [_start_thread(src, _counting(src.name, observed, batches.put), stop, failures,
                             log) for src in sources]
    restore = _install_signal_handlers(stop)
    add = _Admit(agg)
    warnings: list[str] = []
    reported: dict[str, int] = {}

    def write(records: list[LogRecord]) -> None:
        if not records:
            return
        flows = [r for r in records if isinstance(r, FlowRecord)]
        connections = sum(r.count for r in flows)
        ips = sum(1 for r in records if isinstance(r, IpTimelineRecord))
        totals.windows += 1
        totals.flows += len(flows)
        totals.connections += connections
        totals.ip_records += ips
        for r in flows:
            totals.recorded[r.source_format] += r.count
        first = min(record_time(r) for r in records)
        if sink is not None:  # first: stdout never waits for the disk
            sink.write(records)
        if segments is not None:
            done = segments.submit(records, first)
            log(f"window from {format_time(first)}: {len(flows)} flow record(s) for "
                f"{connections} connection(s), {ips} IP record(s), "
                f"{len(records) - len(flows) - ips} DNS name record(s) -> "
                + (", ".join(p.name for p in done) if done else "held: not on disk yet"))
        if cfg.output is not None:
            totals.collected.extend(records)

    def check_loss() -> None:
        counters = {"overflow": agg.stats.overflow}
        for src in sources:
            st = src.stats()
            for key in ("kernel_drops", "enobufs"):
                if key in st:
                    counters[f"{src.name}:{key}"] = st[key]
        if sink is not None:
            counters["stdout:stdout_failed"] = sink.failed
        if segments is not None:
            counters["segments:deleted"] = segments.deleted
            counters["segments:disk_full"] = segments.lost_connections
        for key, value in counters.items():
            new = value - reported.get(key, 0)
            if new > 0:
                reported[key] = value
                text = _LOSS_TEXT[key.split(":")[-1]].format(n=new, max_keys=cfg.max_keys)
                warnings.append(text)
                log(f"warning: {text}")

    stopped_by = "signal"
    deadline = time.monotonic() + cfg.duration_ns / SECOND if cfg.duration_ns else None
    window_written = time.time_ns() // cfg.window_ns
    next_tick = time.monotonic()
    try:
        while True:
            try:
                add(batches.get(timeout=0.1))
                for _ in range(256):  # whatever else is waiting, without blocking
                    add(batches.get_nowait())
            except queue.Empty:
                pass
            if stop.is_set():
                break
            mono = time.monotonic()
            if failures:
                stopped_by = "source-failed"
                break
            if deadline is not None and mono >= deadline:
                stopped_by = "duration"
                break
            if mono >= next_tick:
                next_tick = mono + 1.0
                totals.last_tick = mono
                if segments is not None:
                    for path in segments.retry():
                        log(f"held window written -> {path.name}")
                now = time.time_ns()
                closed_upto = (now - cfg.late_ns) // cfg.window_ns
                if closed_upto > window_written:
                    window_written = closed_upto
                    write(agg.flush_before(closed_upto * cfg.window_ns))
                check_loss()
                if cfg.heartbeat:
                    _touch(cfg.heartbeat)
    finally:
        stop.set()
        restore()
        for src in sources:
            _stop_source(src)
        drain_until = time.monotonic() + 10.0
        for t in threads:
            if t.name == "source-pods":  # an idle watch is not waited for
                continue
            while t.is_alive() and time.monotonic() < drain_until:
                t.join(0.05)
                _drain(batches, add)  # a source blocked on a full queue can finish
        _drain(batches, add)
        write(agg.drain())
        if segments is not None:
            segments.abandon()  # what the disk still refused after the last try
        check_loss()
        if http is not None:
            http.stop()
        if cfg.output is not None:
            try:
                write_flow_log(sorted_records(totals.collected), cfg.output, header)
            except OSError as e:
                raise FlowpolError(f"-o {cfg.output}: cannot write the flow log "
                                   f"({e.strerror}); what was recorded is "
                                   + ("on stdout and in the segments" if cfg.stdout
                                      else "lost: free space and record again")) from None
    if failures:
        warnings.extend(failures)
    stats = agg.stats
    return RecordResult(
        windows=totals.windows, flows=totals.flows, connections=totals.connections,
        ip_records=totals.ip_records,
        segments=tuple(str(p) for p in (segments.written if segments else [])),
        aggregation={"seen": stats.seen, "duplicates": stats.duplicates,
                     "overflow": stats.overflow, "max_keys": cfg.max_keys,
                     "loopback_ignored": add.loopback},
        sources={src.name: src.stats() for src in sources},
        warnings=tuple(warnings), stopped_by=stopped_by)


_LOSS_TEXT = {
    "overflow": "{n} connection(s) not recorded: the window already held --max-keys "
                "{max_keys} distinct keys (raise --max-keys, or shorten --window)",
    "kernel_drops": "capture: the kernel dropped {n} packet(s) (socket buffer full); "
                    "connection starts among them are missing from the capture source",
    "enobufs": "conntrack: {n} event overflow(s) (ENOBUFS); connections in those bursts "
               "may be missing from the conntrack source",
    "deleted": "{n} old segment(s) deleted to respect --segments-max-bytes",
    "stdout_failed": "{n} window(s) could not be written to stdout (see --segments for "
                     "what reached the disk)",
    "disk_full": "{n} connection(s) not written to the segments: the disk refused their "
                 "windows until the memory bound or the end of the run (they went to stdout)",
}


def _counting(name: str, observed: dict[str, int],
              put: Callable[[list], None]) -> Callable[[list], None]:
    """``put``, counting the connection starts of a recording source (metrics)."""
    if name not in observed:
        return put

    def emit(batch: list) -> None:
        observed[name] += sum(1 for r in batch if type(r) is FlowRecord)
        put(batch)

    return emit


def _metrics_snapshot(sources: list[Any], agg: Aggregator, segments: Any,
                      observed: dict[str, int], totals: _Totals,
                      readers: Any) -> Callable[[], Any]:
    from recorder.agent.metrics import MetricsSnapshot

    def snapshot() -> MetricsSnapshot:
        lost = {"key_overflow": agg.stats.overflow}
        # The two counters themselves, not stats(): that walks dicts the source threads
        # may be growing.
        lost["kernel_drop"] = sum(getattr(src, "kernel_drops", 0) for src in sources)
        lost["enobufs"] = sum(getattr(src, "enobufs", 0) for src in sources)
        seg = {}
        if segments is not None:
            lost["disk_full"] = segments.lost_connections
            seg = dict(segments_written=len(segments.written),
                       segment_bytes_written=segments.bytes_written,
                       segments_deleted=segments.deleted,
                       segment_bytes_deleted=segments.bytes_deleted,
                       write_failures=segments.write_failures,
                       held_windows=segments.held_windows,
                       segment_bytes=segments.bytes_on_disk, last_write=segments.last_write)
        return MetricsSnapshot(observed=dict(observed), recorded=dict(totals.recorded),
                               lost=lost, refused=dict(readers.refused), **seg)

    return snapshot


class _Admit:
    """Batches into the Aggregator, minus loopback traffic: it never crosses a pod's
    network boundary (in a pod's namespace it is the pod talking to itself, in the
    node's it is node-local), so no NetworkPolicy can be about it. Counted."""

    def __init__(self, agg: Aggregator) -> None:
        self.agg = agg
        self.loopback = 0

    def __call__(self, batch: list) -> None:
        add = self.agg.add
        for r in batch:
            if type(r) is FlowRecord and (r.src_ip[:4] == "127." or r.dst_ip[:4] == "127."
                                          or r.src_ip == "::1" or r.dst_ip == "::1"):
                self.loopback += 1
                continue
            add(r)


def _drain(batches: queue.Queue, add: Callable[[list], None]) -> None:
    while True:
        try:
            add(batches.get_nowait())
        except queue.Empty:
            return


def _start_thread(src: Any, emit: Callable[[list], None], stop: threading.Event,
                  failures: list[str], log: Callable[[str], None]) -> threading.Thread:
    def body() -> None:
        try:
            src.run(emit, stop)
        except Exception as e:  # noqa: BLE001 - reported, then the run ends
            if not stop.is_set():
                text = f"source {src.name} failed: {e}"
                failures.append(text)
                log(f"error: {text}")

    t = threading.Thread(target=body, name=f"source-{src.name}", daemon=True)
    t.start()
    return t


def _stop_source(src: Any) -> None:
    stop = getattr(src, "stop", None)
    if stop is not None:
        stop()


def _install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    for s in previous:
        signal.signal(s, handler)

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore


def _touch(path: str) -> None:
    try:
        Path(path).touch()
    except OSError:
        pass


def describe(result: RecordResult) -> list[str]:
    """The end-of-run summary, for stderr."""
    lines = [f"recorded {result.connections} connection(s) in {result.flows} flow "
             f"record(s) and {result.ip_records} IP record(s), {result.windows} write(s); "
             f"stopped by {result.stopped_by}"]
    agg = result.aggregation
    lines.append(f"aggregation: {agg['seen']} observation(s), {agg['duplicates']} "
                 f"duplicate(s) of counted connections, {agg['overflow']} over the key cap, "
                 f"{agg['loopback_ignored']} loopback connection(s) ignored")
    for name, st in result.sources.items():
        lines.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in st.items()))
    lines.extend(f"warning: {w}" for w in result.warnings)
    return lines


def ensure_root_capabilities(sources: tuple[str, ...]) -> None:
    """Fail early with a clear message when the raw-socket sources cannot work."""
    if os.geteuid() != 0 and any(s in SOURCES for s in sources):
        try:
            caps = Path("/proc/self/status").read_text()
        except OSError:
            return
        eff = next((line.split()[1] for line in caps.splitlines()
                    if line.startswith("CapEff:")), "0")
        net_raw, net_admin = 1 << 13, 1 << 12
        need = (net_raw if "capture" in sources else 0) | (net_admin if "conntrack" in sources else 0)
        if int(eff, 16) & need != need:
            raise FlowpolError("recording needs root or the capabilities NET_RAW (capture) "
                               "and NET_ADMIN (conntrack); run as root or grant them")
