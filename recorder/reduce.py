"""Node-side reduction: a node's flow records, widened in time where no address changed
owner, so what reaches the central step is bounded by distinct edges x time buckets.

The recorder writes one record per connection key and window (60 s). A node recording
for a week repeats most keys in thousands of windows; the central step only needs,
per key, the count and the first and last sighting - attributed to the pod that held
each address at those times (``generator/resolve``: the time-aware join against the
IP timeline). Merging a key's consecutive windows is exact for that attribution as
long as no address of the key (source, destination, translated destination) changed
owner inside the merged span: every window in it resolves to the same pods, so the
edges, their counts and their first and last sighting are the ones the unmerged
windows give.

Where an address changes owner is known from the IP timeline records of the node's
pod watch (``IpTimelineRecord``: ``valid_from``, ``valid_to``): every such time is a
boundary no merged record spans. A record that already spans one (a window during
which a pod IP was handed over) is passed on as it is; the central step splits it as
it always does. IP records pass through unchanged. A merged record also never spans
more than ``bucket_ns`` (default one hour: the evidence keeps hourly first/last
sightings), so the output is at most distinct keys x (buckets + owner changes).

What merging gives up: the client port of a single observation (a merged record has
none, like any aggregate), and with it the central step's dedup of one connection
seen by two nodes (aggregates are not deduplicated - the same as for the recorder's
own 60-s aggregates): the evidence counts of such connections are per observing node.
The rules are the same.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterable

from recorder.aggregate import sorted_records
from recorder.schema import FlowRecord, IpTimelineRecord, LogRecord
from recorder.sources.fastrecord import flow_record_maker

HOUR = 3600 * 1_000_000_000

_FIELDS = ("first_seen", "last_seen", "protocol", "src_ip", "dst_ip", "dst_port",
           "src_port", "xlated_ip", "xlated_port", "count", "node", "src", "dst",
           "service", "verdict", "source_format", "input", "inferred", "time_known")
_make = flow_record_maker(*_FIELDS)


@dataclass(frozen=True, slots=True)
class ReduceStats:
    flows_in: int
    flows_out: int
    ip_records: int
    split_at_owner_change: int  # merges refused because an address changed owner


def owner_changes(ip_records: Iterable[IpTimelineRecord]) -> dict[str, list[int]]:
    """Address -> the sorted times at which its owner changed (got or gave it up)."""
    times: dict[str, set[int]] = {}
    for r in ip_records:
        slot = times.setdefault(r.ip, set())
        slot.add(r.valid_from)
        if r.valid_to is not None:
            slot.add(r.valid_to)
    return {ip: sorted(t) for ip, t in times.items()}


def _changes_within(changes: dict[str, list[int]], ips: tuple[str | None, ...], start: int,
                    end: int) -> bool:
    """Does an address of ``ips`` change owner at a time t with start < t <= end?"""
    for ip in ips:
        if ip is None:
            continue
        times = changes.get(ip)
        if times:
            i = bisect.bisect_right(times, start)
            if i < len(times) and times[i] <= end:
                return True
    return False


def _key(r: FlowRecord) -> tuple:
    return (r.protocol, r.src_ip, r.dst_ip, r.dst_port, r.xlated_ip, r.xlated_port, r.node,
            r.src, r.dst, r.service, r.verdict, r.source_format, r.input, r.inferred,
            r.time_known)


def reduce_records(records: Iterable[LogRecord], bucket_ns: int = HOUR
                   ) -> tuple[list[LogRecord], ReduceStats]:
    """The records of one node (its flow log segments, IP records included) -> the
    same evidence in fewer records, sorted as a flow log is (``sorted_records``)."""
    if bucket_ns <= 0:
        raise ValueError("bucket_ns must be positive")
    ips: list[IpTimelineRecord] = []
    groups: dict[tuple, list[FlowRecord]] = {}
    flows_in = 0
    for r in records:
        if isinstance(r, IpTimelineRecord):
            ips.append(r)
        elif isinstance(r, FlowRecord):
            flows_in += 1
            groups.setdefault(_key(r), []).append(r)
        else:
            raise TypeError(f"not a flow-log record: {type(r).__name__}")
    changes = owner_changes(ips)
    out: list[LogRecord] = []
    refused = 0
    for group in groups.values():
        group.sort(key=lambda r: (r.first_seen, r.last_seen))
        addresses = (group[0].src_ip, group[0].dst_ip, group[0].xlated_ip)
        current = group[0]
        first, last, count = current.first_seen, current.last_seen, current.count
        merged = False
        for r in group[1:]:
            if r.first_seen - first < bucket_ns and r.last_seen - first < bucket_ns:
                if not _changes_within(changes, addresses, first, max(last, r.last_seen)):
                    last = max(last, r.last_seen)
                    count += r.count
                    merged = True
                    continue
                refused += 1
            out.append(_merged(current, first, last, count, merged))
            current, first, last, count, merged = r, r.first_seen, r.last_seen, r.count, False
        out.append(_merged(current, first, last, count, merged))
    stats = ReduceStats(flows_in, len(out), len(ips), refused)
    return sorted_records(ips) + sorted_records(out), stats


def _merged(template: FlowRecord, first: int, last: int, count: int,
            merged: bool) -> FlowRecord:
    if not merged:
        return template
    r = template
    return _make(first, last, r.protocol, r.src_ip, r.dst_ip, r.dst_port, None, r.xlated_ip,
                 r.xlated_port, count, r.node, r.src, r.dst, r.service, r.verdict,
                 r.source_format, r.input, r.inferred, r.time_known)
