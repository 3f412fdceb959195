"""The stages of `flowpol generate`, wired in order. Each returns a typed result.

sources -> flow records -> (aggregate) -> resolve (identity, then DNS names of external
addresses) -> edges -> synthesize -> verify.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
import dataclasses
import gc
import heapq
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from generator import now_reading
from generator.parallel import WorkerReaders
from recorder.aggregate import Aggregator, record_time
from recorder.errors import InputError, UsageError
from recorder.report import ReadReport, Skipped
from recorder.schema import FlowRecord, LogRecord
from recorder.sources import ReadOptions, flow_files, read_inputs

if TYPE_CHECKING:  # the later stages are imported where they run: `flowpol import`
    # reads and aggregates only, and its start-up should not pay for them
    from generator.inventory.index import InventoryIndex
    from generator.resolve.edges import Edge
    from generator.resolve.identity import ResolveResult
    from generator.resolve.names import NamesResult

# Flows whose ends the source identified (Hubble pod names) are attributed without
# the timeline, so they aggregate over the whole recording. Others keep one-minute
# windows: time-aware attribution uses each aggregate's first and last sighting.
WHOLE_INPUT_WINDOW_NS = 1 << 62
ADDRESS_ONLY_WINDOW_NS = 60 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class ObservedTraffic:
    """What the inputs say, resolved against the inventory."""

    read: ReadReport
    aggregate_stats: dict
    resolved: ResolveResult
    edges: tuple[Edge, ...]
    index: InventoryIndex
    snapshot_warnings: tuple[str, ...] = ()
    unreadable: tuple[InputError, ...] = ()  # inputs that could not be read at all
    names: NamesResult | None = None  # DNS names of external addresses, at the time
    # connection attempts a DROPPED/ERROR verdict left out (without --include-dropped)
    dropped_attempts: tuple[Edge, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        """About the inputs, the snapshot and the resolution, in that order."""
        return (tuple(self.read.warnings) + tuple(self.snapshot_warnings)
                + tuple(self.resolved.warnings))

    @property
    def bad_input(self) -> bool:
        """Some input could not be read, or a line of it was skipped as bad: the command
        exits 2 after its output (``raise_for_bad_input``)."""
        return bool(self.read.total_skipped or self.unreadable)


# Inputs merged in time order at once; more are merged this many at a time, one group
# after the other. Each open input holds a file and a reader's buffers (a Hubble
# reader: up to a batch of lines).
MAX_MERGED_INPUTS = 64


def read_into(
    aggregator: Aggregator,
    inputs: list[str],
    report: ReadReport,
    options: ReadOptions,
    fmt: str | None = None,
    jobs: int = 1,
    ahead: WorkerReaders | None = None,
) -> list[InputError]:
    """Read every input into ``aggregator``, the inputs' records merged in time order.

    Each node's capture is one file: read one after the other, the same connection
    seen by two nodes would meet in the aggregator only while it still remembered the
    first file's (its dedup table is bounded), and a large capture would count it
    twice. Merged, the observations of a connection arrive together. Each input is in
    time order (near enough: the aggregator's dedup window absorbs the rest).

    An input that cannot be read at all (missing, empty, unknown format, newer schema)
    is collected and the others are still read, unless ``report.strict``; the caller
    decides when to raise. The errors come in the order of the inputs.

    ``jobs`` > 1: the readers run in that many worker processes (``parallel``); the
    records, their order, the report and the errors are the same. ``ahead``: workers
    already reading the first group (``reading_ahead``)."""
    errors: list[tuple[int, InputError]] = []
    paths: list[tuple[int, Path]] = []
    for raw in inputs:
        try:
            expanded = flow_files(raw, report)
        except InputError as e:
            if report.strict:
                raise
            errors.append((len(paths), e))
            continue
        paths.extend((len(paths) + i, p) for i, p in enumerate(expanded))
    for start in range(0, len(paths), MAX_MERGED_INPUTS):
        group = paths[start:start + MAX_MERGED_INPUTS]
        if ahead is not None and start == 0 and ahead.paths == [str(p) for _, p in group]:
            _merge_into(aggregator, [_guarded(ahead.stream(k), order, report, errors)
                                     for k, (order, path) in enumerate(group)])
        elif jobs > 1 and len(group) > 1:
            with WorkerReaders([str(path) for _, path in group], report, options, fmt,
                               jobs) as workers:
                workers.prime()
                _merge_into(aggregator, [_guarded(workers.stream(k), order, report, errors)
                                         for k, (order, path) in enumerate(group)])
        else:
            _merge_into(aggregator, [
                _guarded(read_inputs([str(path)], report, options, fmt), order, report, errors)
                for order, path in group])
    errors.sort(key=lambda item: item[0])
    return [e for _, e in errors]


@contextmanager
def reading_ahead(inputs: list[str], report: ReadReport, options: ReadOptions,
                  fmt: str | None, jobs: int) -> Iterator[WorkerReaders | None]:
    """Workers for the first group of inputs, started and reading now, so that they
    read while this process first does something else (loads the snapshot); pass them
    to ``read_into`` as ``ahead``. None when there is nothing to read in parallel (one
    input, ``jobs`` 1, or an input that cannot be found: read_into reports it)."""
    paths: list[str] = []
    if jobs > 1:
        try:  # what read_into will read (its report gets the warnings, not this one)
            paths = [str(p) for raw in inputs for p in flow_files(raw, ReadReport())]
        except InputError:
            paths = []
    group = paths[:MAX_MERGED_INPUTS]
    if len(group) < 2:
        yield None
        return
    with WorkerReaders(group, report, options, fmt, jobs) as workers:
        workers.prime()
        yield workers


def _merge_into(aggregator: Aggregator, streams: list[Iterable[LogRecord]]) -> None:
    aggregator.add_all(streams[0] if len(streams) == 1
                       else heapq.merge(*streams, key=record_time))


def _guarded(records: Iterable[LogRecord], order: int, report: ReadReport,
             errors: list[tuple[int, InputError]]) -> Iterator[LogRecord]:
    """The records of one input; an input error ends it and is collected (see read_into)."""
    try:
        yield from records
    except UsageError:
        raise
    except InputError as e:
        if report.strict:
            raise
        errors.append((order, e))


# Examples of skipped items named in the bad-input error: one per reason first, so every
# reason has a place to look at, then more in input order.
MAX_ERROR_EXAMPLES = 5


def _error_examples(report: ReadReport) -> list[Skipped]:
    examples = report.examples_in_input_order()
    first: dict[str, int] = {}
    for i, e in enumerate(examples):
        first.setdefault(e.reason, i)
    chosen = set(first.values())
    for i in range(len(examples)):
        if len(chosen) >= MAX_ERROR_EXAMPLES:
            break
        chosen.add(i)
    return [examples[i] for i in sorted(chosen)]


def bad_input_error(report: ReadReport, unreadable: Iterable[InputError],
                    output: str | None) -> InputError | None:
    """The input error of a run, or None when the input was good.

    Bad input is an input error (exit 2): an input that could not be read at all, and
    any item a reader skipped as bad (``ReadReport.skip``: invalid JSON, a truncated
    line or packet, missing fields, ...). Items a reader ignored as valid but not
    wanted (replies, non-flow events, dropped verdicts) are not. ``output`` names what
    the command wrote from every valid record, or None when it wrote nothing."""
    errors = list(unreadable)
    if not errors and not report.total_skipped:
        return None
    parts: list[str] = []
    fixes: list[str] = []
    if errors:
        parts.append(f"{len(errors)} input(s) could not be read: "
                     + "; ".join(clause(str(e)) for e in errors))
        fixes.append("fix or leave out the unreadable input(s)")
    if report.total_skipped:
        shown = _error_examples(report)
        parts.append(
            f"{report.total_skipped:,} bad input item(s) skipped ("
            + ", ".join(f"{reason} {n:,}" for reason, n in sorted(report.skipped.items()))
            + ") at " + "; ".join(str(e) for e in shown)
            + (f"; and {report.total_skipped - len(shown):,} more" if report.total_skipped
               > len(shown) else ""))
        units = sorted({e.unit for e in report.examples}) or ["line"]
        fixes.append("fix or remove the bad " + " and ".join(f"{u}s" for u in units))
    if output is None:
        kept = "Nothing was written"
    elif report.total_kept:
        kept = ("Output written from every valid record"
                + (" of the readable inputs" if errors else "") + f": {output}")
    else:
        kept = (f"No valid record was read, so {output} holds none"
                + (" (a wrong format? --format forces one)" if report.total_skipped else ""))
    error = InputError("; ".join(parts) + f". {kept}; " + " and ".join(fixes)
                       + " to get exit code 0.")
    error.hint = run_hint(errors)
    return error


def clause(text: str) -> str:
    """A message as a clause inside a longer one: without its own full stop."""
    return text.rstrip().rstrip(".")


def run_hint(errors: Iterable[InputError]) -> str | None:
    """The advice the errors share, each once (``FlowpolError.hint``)."""
    hints = list(dict.fromkeys(e.hint for e in errors if e.hint))
    return "; ".join(hints) if hints else None


def raise_for_bad_input(report: ReadReport, unreadable: Iterable[InputError],
                        output: str | None) -> None:
    """The one exit-code rule for bad input, called by every command that reads flows
    after it wrote its output (``bad_input_error``). ``--strict`` never gets here: the
    first bad item raised while reading, before anything was written."""
    error = bad_input_error(report, unreadable, output)
    if error is not None:
        raise error


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block.

    Reading and the stages after it allocate millions of objects and make no cycles;
    each pass of the collector re-scans everything alive (the inventory, the growing
    aggregate table, the connections), which cost ~10% of `flowpol generate` for
    nothing (peak memory is the same without it). Nests: the outermost block turns
    the collector back on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_records(inputs: list[str], report: ReadReport, options: ReadOptions,
                 fmt: str | None, index: InventoryIndex | None = None, jobs: int = 1,
                 ahead: WorkerReaders | None = None,
                 ) -> tuple[list[LogRecord], dict, list[InputError], list[FlowRecord]]:
    """The records, the aggregation's stats, the unreadable inputs and the dropped
    connections left out (aggregated, for the report).

    ``index``: the cluster, so that a connection seen before and after a Service's
    DNAT (kube-proxy mode, two nodes) counts once (``Aggregator(dnat_peers=...)``)."""
    agg = Aggregator(window_ns=ADDRESS_ONLY_WINDOW_NS, include_dropped=options.include_dropped,
                     identified_window_ns=WHOLE_INPUT_WINDOW_NS,
                     dnat_peers=index.dnat_peers if index is not None else None)
    with collector_paused():
        errors = read_into(agg, inputs, report, options, fmt, jobs, ahead)
        records = agg.drain()
    stats_dict = dataclasses.asdict(agg.stats)
    if report.total_kept == 0:
        error = InputError(
            "no flows could be read from the inputs"
            + "".join(f"; {clause(str(e))}" for e in errors)
            + "".join(f"; {clause(w)}" for w in report.warnings)
            + (f" ({report.total_skipped} item(s) skipped: "
               + ", ".join(f"{k}={v}" for k, v in sorted(report.skipped.items())) + ")"
               if report.total_skipped else "")
            + ("; ignored: " + ", ".join(f"{k}={v}" for k, v in sorted(report.ignored.items()))
               if report.ignored else ""),
            ", ".join(inputs))
        error.hint = run_hint(errors)
        raise error
    return records, stats_dict, errors, agg.left_out


def observe(inputs: list[str], snapshot: list[str], options: ReadOptions,
            fmt: str | None = None, strict: bool = False,
            allow_unreadable: bool = False,
            apiserver_cidrs: tuple[str, ...] = (), jobs: int = 1) -> ObservedTraffic:
    """``allow_unreadable``: go on when some inputs cannot be read at all. Either way
    the caller writes its output and then calls
    ``raise_for_bad_input(observed.read, observed.unreadable, ...)``.
    ``apiserver_cidrs``: where the API server calls from (``--apiserver-cidr``).
    ``jobs``: worker processes that read the inputs (``read_into``)."""
    from generator.inventory.index import InventoryIndex
    from generator.inventory.load import load_snapshot
    from generator.resolve.apiserver import label_apiserver
    from generator.resolve.identity import aggregate_edges, resolve
    from generator.resolve.names import attribute_names

    report = ReadReport(strict=strict)
    with reading_ahead(inputs, report, options, fmt, jobs) as ahead:
        with now_reading.reading("snapshot " + ", ".join(map(repr, snapshot))):
            snap = load_snapshot(snapshot)
        index = InventoryIndex(snap.inventory, apiserver_cidrs)
        records, agg_stats, errors, left_out = read_records(inputs, report, options, fmt,
                                                            index, jobs, ahead)
    if errors and not allow_unreadable:
        raise_for_bad_input(report, errors, None)
    resolved = label_apiserver(resolve(records, index), index)
    names = attribute_names(resolved.connections, records, index)
    resolved = dataclasses.replace(
        resolved, connections=names.connections,
        warnings=resolved.warnings + tuple(w for w in names.warnings
                                           if w not in resolved.warnings))
    edges = aggregate_edges(resolved.connections)
    dropped: tuple[Edge, ...] = ()
    if left_out:  # who tried what: resolved like the rest, never evidence for a rule
        timeline = [r for r in records if not isinstance(r, FlowRecord)]
        dropped = aggregate_edges(
            label_apiserver(resolve(timeline + left_out, index), index).connections)
    return ObservedTraffic(report, agg_stats, resolved, edges, index,
                           tuple(snap.warnings), tuple(errors), names=names,
                           dropped_attempts=dropped)


@dataclass(frozen=True, slots=True)
class ObserveRequest:
    """What every command that reads flows and writes a directory is given; the
    commands' own requests extend it."""

    inputs: list[str]
    snapshot: list[str]
    out_dir: Path
    fmt: str | None = None
    strict: bool = False
    read_options: ReadOptions = ReadOptions()
    apiserver_cidrs: tuple[str, ...] = ()  # --apiserver-cidr
    jobs: int = 1  # worker processes that read the inputs (read_into)


def observe_request(req, allow_unreadable: bool = False) -> ObservedTraffic:
    """``observe`` for a request that has inputs, snapshot, read_options, fmt, strict
    (and ``jobs``, else the inputs are read here)."""
    return observe(req.inputs, req.snapshot, req.read_options, req.fmt, req.strict,
                   allow_unreadable, req.apiserver_cidrs, getattr(req, "jobs", 1))
