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
more than ``bucket_ns`` (default a day: the evidence keeps each day's count and its
exact first and last sighting), so the output is at most distinct keys x (buckets +
owner changes).

With ``attribute``, the node also does the central step's first join itself: an end
with no identity of its own whose address one pod held, per the IP timeline, for the
whole of a record (no change of owner within it, a root owner known, not host
network) is named by that pod's workload - namespace, owner and labels, as Hubble
names its endpoints - and the records of one workload pair are merged whatever pod
of either side they came from. The central step attributes such an end by those hints
(``generator/resolve``: ``from_hints``) to the workload the timeline gives for the
address: the same edge. The record keeps the addresses of its first window (for the
report's examples). So what reaches the central step is bounded by the workload
edges the node saw x buckets, not by pod pairs. It relies on the node's timeline
holding every pod address it attributes (a pod watch of the addresses the node
talks to); an address it does not hold stays an address.

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
from recorder.schema import NO_HINTS, EndpointHints, FlowRecord, IpTimelineRecord, LogRecord
from recorder.sources.fastrecord import flow_record_maker

HOUR = 3600 * 1_000_000_000
DAY = 24 * HOUR

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


class _Holders:
    """Who held an address throughout a span, from the IP timeline records: the
    interval with the latest start at or before the span's start (on equal starts a
    closed one first, as the central join orders them), accepted when the span ends
    before it does and no other interval of the address starts within the span."""

    def __init__(self, ip_records: list[IpTimelineRecord],
                 changes: dict[str, list[int]]) -> None:
        self._by_ip: dict[str, list[tuple[int, int, IpTimelineRecord]]] = {}
        for r in ip_records:
            self._by_ip.setdefault(r.ip, []).append(
                (r.valid_from, 0 if r.valid_to is not None else 1, r))
        for intervals in self._by_ip.values():
            intervals.sort(key=lambda x: (x[0], x[1]))
        self._starts = {ip: [x[0] for x in v] for ip, v in self._by_ip.items()}
        self._changes = changes
        self._hints: dict[tuple, EndpointHints] = {}

    def throughout(self, ip: str, first: int, last: int) -> IpTimelineRecord | None:
        starts = self._starts.get(ip)
        if not starts:
            return None
        i = bisect.bisect_right(starts, first) - 1
        if i < 0:
            return None
        start = starts[i]
        while i > 0 and starts[i - 1] == start:  # equal starts: the closed one first
            i -= 1
        rec = self._by_ip[ip][i][2]
        if rec.valid_to is not None and last >= rec.valid_to:
            return None
        if _changes_within(self._changes, (ip,), first, last):
            return None
        return rec

    def hints(self, holder: IpTimelineRecord) -> EndpointHints | None:
        """The holder's workload as endpoint hints, or None when it cannot be named."""
        if holder.owner is None or holder.host_network:
            return None
        key = (holder.namespace, holder.owner, holder.labels)
        hit = self._hints.get(key)
        if hit is None:
            hit = self._hints[key] = EndpointHints(
                namespace=holder.namespace, labels=holder.labels, workload=holder.owner,
                peer_kind="pod")
        return hit


def _attributed_key(r: FlowRecord, holders: _Holders) -> tuple[tuple, FlowRecord] | None:
    """The key of a record whose ends the timeline names (the workloads instead of the
    addresses), and the record with those hints; None to keep it by address."""
    src_hints = r.src
    src_ip: str | None = r.src_ip
    if r.src is NO_HINTS:
        holder = holders.throughout(r.src_ip, r.first_seen, r.last_seen)
        named = holders.hints(holder) if holder is not None else None
        if named is not None:
            src_hints, src_ip = named, None
    server_ip = r.xlated_ip or r.dst_ip
    dst_hints = r.dst
    dst_ip: str | None = r.dst_ip
    xlated_ip = r.xlated_ip
    if r.dst is NO_HINTS:
        holder = holders.throughout(server_ip, r.first_seen, r.last_seen)
        named = holders.hints(holder) if holder is not None else None
        if named is not None:
            dst_hints = named
            if r.xlated_ip is not None:
                xlated_ip = None  # the backend is named; the ClusterIP stays in the key
            else:
                dst_ip = None
    if src_ip is not None and dst_ip is not None and xlated_ip == r.xlated_ip:
        return None
    key = ("workloads", r.protocol, src_ip, dst_ip, r.dst_port, xlated_ip, r.xlated_port,
           r.node, src_hints, dst_hints, r.service, r.verdict, r.source_format, r.input,
           r.inferred, r.time_known)
    return key, _make(r.first_seen, r.last_seen, r.protocol, r.src_ip, r.dst_ip, r.dst_port,
                      r.src_port, r.xlated_ip, r.xlated_port, r.count, r.node, src_hints,
                      dst_hints, r.service, r.verdict, r.source_format, r.input, r.inferred,
                      r.time_known)


def reduce_records(records: Iterable[LogRecord], bucket_ns: int = DAY,
                   attribute: bool = False) -> tuple[list[LogRecord], ReduceStats]:
    """The records of one node (its flow log segments, IP records included) -> the
    same evidence in fewer records, sorted as a flow log is (``sorted_records``).
    ``attribute``: name the ends the node's IP timeline names by their workloads."""
    if bucket_ns <= 0:
        raise ValueError("bucket_ns must be positive")
    ips: list[IpTimelineRecord] = []
    flows: list[FlowRecord] = []
    for r in records:
        if isinstance(r, IpTimelineRecord):
            ips.append(r)
        elif isinstance(r, FlowRecord):
            flows.append(r)
        else:
            raise TypeError(f"not a flow-log record: {type(r).__name__}")
    flows_in = len(flows)
    changes = owner_changes(ips)
    holders = _Holders(ips, changes) if attribute else None
    groups: dict[tuple, list[FlowRecord]] = {}
    for r in flows:
        named = _attributed_key(r, holders) if holders is not None else None
        if named is not None:
            groups.setdefault(named[0], []).append(named[1])
        else:
            groups.setdefault(_key(r), []).append(r)
    out: list[LogRecord] = []
    refused = 0
    for key, group in groups.items():
        group.sort(key=lambda r: (r.first_seen, r.last_seen))
        # No merge across a change of owner of an address the key keeps (an end named
        # by its workload was named per record, for that record's whole span).
        addresses = (key[2], key[3], key[5]) if key[0] == "workloads" else (
            key[1], key[2], key[4])
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
