"""The recorder's Prometheus metrics (``GET /metrics``), read at scrape time.

The loop and the sources keep their own counters (they are in the end-of-run summary
too); a scrape reads them through ``snapshot`` rather than keeping a second set, so
the metrics and the summary cannot disagree. Names (all counters end in ``_total``):

    flowpol_recorder_observed_connections_total{source}   connection starts a source reported
    flowpol_recorder_connections_total{source}            connections recorded (written), by
                                                           the source whose record counted it
    flowpol_recorder_lost_total{reason}                   kernel_drop (packets), enobufs
                                                           (event overflows), key_overflow and
                                                           disk_full (connections)
    flowpol_recorder_segments_written_total
    flowpol_recorder_segment_bytes_written_total
    flowpol_recorder_segments_deleted_total               by --segments-max-bytes
    flowpol_recorder_segment_bytes_deleted_total
    flowpol_recorder_segment_write_failures_total          failed attempts (a full disk, ...)
    flowpol_recorder_held_windows                          windows waiting for the disk
    flowpol_recorder_segment_bytes                         closed segments on disk now
    flowpol_recorder_last_write_timestamp_seconds          last segment written (0: none yet)
    flowpol_recorder_segment_reads_refused_total{reason}   /segments requests refused:
                                                           no_token, unauthenticated,
                                                           not_a_reader, review_unavailable
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric

from recorder.agent.readers import REFUSAL_REASONS

LOSS_REASONS = ("kernel_drop", "enobufs", "key_overflow", "disk_full")


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    observed: dict[str, int] = field(default_factory=dict)  # source -> connection starts
    recorded: dict[str, int] = field(default_factory=dict)  # source -> connections written
    lost: dict[str, int] = field(default_factory=dict)  # LOSS_REASONS -> count
    segments_written: int = 0
    segment_bytes_written: int = 0
    segments_deleted: int = 0
    segment_bytes_deleted: int = 0
    write_failures: int = 0
    held_windows: int = 0
    segment_bytes: int = 0
    last_write: float = 0.0  # epoch seconds
    refused: dict[str, int] = field(default_factory=dict)  # REFUSAL_REASONS -> count


class RecorderCollector:
    def __init__(self, snapshot: Callable[[], MetricsSnapshot]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot()
        observed = CounterMetricFamily(
            "flowpol_recorder_observed_connections",
            "Connection starts each source reported, before a connection both sources "
            "saw is counted once.", labels=["source"])
        for source, n in sorted(s.observed.items()):
            observed.add_metric([source], n)
        yield observed
        recorded = CounterMetricFamily(
            "flowpol_recorder_connections",
            "Connections recorded in closed windows, by the source whose record counted "
            "them.", labels=["source"])
        for source, n in sorted(s.recorded.items()):
            recorded.add_metric([source], n)
        yield recorded
        lost = CounterMetricFamily(
            "flowpol_recorder_lost",
            "What was lost: packets the kernel dropped before the capture read them "
            "(kernel_drop), conntrack event overflows (enobufs), connections over "
            "--max-keys (key_overflow), connections of windows that never reached the "
            "disk (disk_full; they went to stdout).", labels=["reason"])
        for reason in LOSS_REASONS:
            lost.add_metric([reason], s.lost.get(reason, 0))
        yield lost
        for name, text, value in (
                ("segments_written", "Segments written.", s.segments_written),
                ("segment_bytes_written", "Bytes of segments written.",
                 s.segment_bytes_written),
                ("segments_deleted", "Oldest segments deleted to stay under "
                                     "--segments-max-bytes.", s.segments_deleted),
                ("segment_bytes_deleted", "Bytes of segments deleted by the size limit.",
                 s.segment_bytes_deleted),
                ("segment_write_failures", "Failed attempts to write a segment (each "
                                           "retry counts).", s.write_failures)):
            yield CounterMetricFamily(f"flowpol_recorder_{name}", text, value=value)
        refused = CounterMetricFamily(
            "flowpol_recorder_segment_reads_refused",
            "Requests for segments refused: without a token (no_token), with a token the "
            "API server did not accept for the recorder (unauthenticated), of an identity "
            "that is not a reader (not_a_reader), or when no token review could be made "
            "(review_unavailable).", labels=["reason"])
        for reason in REFUSAL_REASONS:
            refused.add_metric([reason], s.refused.get(reason, 0))
        yield refused
        yield GaugeMetricFamily("flowpol_recorder_held_windows",
                                "Closed windows held in memory because the disk refused "
                                "them.", value=s.held_windows)
        yield GaugeMetricFamily("flowpol_recorder_segment_bytes",
                                "Bytes of closed segments on disk.", value=s.segment_bytes)
        yield GaugeMetricFamily("flowpol_recorder_last_write_timestamp_seconds",
                                "When the last segment was written (Unix time; 0 before "
                                "the first).", value=s.last_write)


def registry(snapshot: Callable[[], MetricsSnapshot]) -> CollectorRegistry:
    """A registry of its own (not the process-global one) with the recorder's metrics."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(RecorderCollector(snapshot))
    return reg
