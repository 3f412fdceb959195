"""The stages of `flowpol generate`, wired in order. Each returns a typed result.

sources -> flow records -> (aggregate) -> resolve -> edges -> synthesize -> verify.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from generator.edges import Connection, Edge
from generator.inventory.index import InventoryIndex
from generator.inventory.load import load_snapshot
from generator.resolve import ResolveResult, aggregate_edges, resolve
from generator.synthesize import SynthesisOptions, SynthesisResult, synthesize
from recorder.aggregate import Aggregator
from recorder.errors import InputError
from recorder.report import ReadReport
from recorder.schema import LogRecord
from recorder.sources import ReadOptions, read_inputs

# generate aggregates over the whole recording: time-aware attribution uses each
# aggregate's first and last sighting, which is exact unless an IP changed hands more
# than once inside one aggregate.
WHOLE_INPUT_WINDOW_NS = 1 << 62


@dataclass(frozen=True, slots=True)
class ObservedTraffic:
    """What the inputs say, resolved against the inventory."""

    read: ReadReport
    aggregate_stats: dict
    resolved: ResolveResult
    edges: tuple[Edge, ...]
    index: InventoryIndex
    snapshot_warnings: tuple[str, ...] = ()


def read_records(inputs: list[str], report: ReadReport, options: ReadOptions,
                 fmt: str | None, progress: Callable[[int], None] | None = None
                 ) -> tuple[list[LogRecord], dict]:
    agg = Aggregator(window_ns=WHOLE_INPUT_WINDOW_NS)
    n = 0
    for rec in read_inputs(inputs, report, options, fmt):
        agg.add(rec)
        n += 1
        if progress is not None and n % 50_000 == 0:
            progress(n)
    records = agg.drain()
    stats = agg.stats
    stats_dict = {k: getattr(stats, k) for k in getattr(stats, "__slots__", ())} \
        or dict(getattr(stats, "__dict__", {}))
    if report.total_kept == 0:
        raise InputError(
            "no flows could be read from the inputs"
            + (f" ({report.total_skipped} item(s) skipped: "
               + ", ".join(f"{k}={v}" for k, v in sorted(report.skipped.items())) + ")"
               if report.total_skipped else "")
            + (f"; ignored: " + ", ".join(f"{k}={v}" for k, v in sorted(report.ignored.items()))
               if report.ignored else ""),
            ", ".join(inputs))
    return records, stats_dict


def observe(inputs: list[str], snapshot: list[str], options: ReadOptions,
            fmt: str | None = None, strict: bool = False,
            progress: Callable[[int], None] | None = None) -> ObservedTraffic:
    snap = load_snapshot(snapshot)
    index = InventoryIndex(snap.inventory)
    report = ReadReport(strict=strict)
    records, agg_stats = read_records(inputs, report, options, fmt, progress)
    resolved = resolve(records, index)
    edges = aggregate_edges(resolved.connections)
    return ObservedTraffic(report, agg_stats, resolved, edges, index,
                           tuple(snap.warnings))


def connections_of(observed: ObservedTraffic) -> Iterable[Connection]:
    return observed.resolved.connections


def plan_policies(observed: ObservedTraffic, opts: SynthesisOptions) -> SynthesisResult:
    return synthesize(observed.edges, observed.index, opts)
