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


def _key(r: FlowRecord) -> tuple:
    return (r.protocol, r.src_ip, r.dst_ip, r.dst_port, r.xlated_ip, r.xlated_port, r.node,
            r.src, r.dst, r.service, r.verdict, r.source_format, r.input, r.inferred,
            r.time_known)


class _Timeline:
    """The node's IP timeline as it is read: when each address changed owner, and who
    held it throughout a span. Records are reduced in the order the recorder wrote
    them, which puts each IP record no later than the first window after the change it
    records (a segment holds its window's flows and the IP records that came before it
    was written), so a record's span is judged with every change up to its end."""

    def __init__(self) -> None:
        self._changes: dict[str, list[int]] = {}
        # ip -> [(valid_from, 0 closed / 1 open, record)], in the central join's order
        self._intervals: dict[str, list[tuple[int, int, int, IpTimelineRecord]]] = {}
        self._hints: dict[tuple, EndpointHints] = {}
        self._n = 0

    def add(self, r: IpTimelineRecord) -> None:
        times = self._changes.setdefault(r.ip, [])
        for t in (r.valid_from, r.valid_to):
            if t is not None:
                i = bisect.bisect_left(times, t)
                if i == len(times) or times[i] != t:
                    times.insert(i, t)
        self._n += 1
        bisect.insort(self._intervals.setdefault(r.ip, []),
                      (r.valid_from, 0 if r.valid_to is not None else 1, self._n, r))

    def changes_within(self, ips: tuple[str | None, ...], start: int, end: int) -> bool:
        """Does an address of ``ips`` change owner at a time t with start < t <= end?"""
        for ip in ips:
            if ip is None:
                continue
            times = self._changes.get(ip)
            if times:
                i = bisect.bisect_right(times, start)
                if i < len(times) and times[i] <= end:
                    return True
        return False

    def throughout(self, ip: str, first: int, last: int) -> IpTimelineRecord | None:
        """The holder of ``ip`` from ``first`` to ``last``: the interval with the latest
        start at or before ``first`` (a closed one first on equal starts), if the span
        ends before it does and no change of owner falls within the span."""
        intervals = self._intervals.get(ip)
        if not intervals:
            return None
        i = bisect.bisect_right(intervals, (first, 2)) - 1
        if i < 0:
            return None
        start = intervals[i][0]
        while i > 0 and intervals[i - 1][0] == start:
            i -= 1
        rec = intervals[i][3]
        if rec.valid_to is not None and last >= rec.valid_to:
            return None
        if self.changes_within((ip,), first, last):
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


def _attributed_key(r: FlowRecord, holders: _Timeline) -> tuple[tuple, FlowRecord] | None:
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
    """The records of one node (its flow log segments in the order written, IP records
    included) -> the same evidence in fewer records, sorted as a flow log is
    (``sorted_records``). ``attribute``: name the ends the node's IP timeline names by
    their workloads. Streams: memory holds one record per key being merged, the IP
    timeline and the output, not the input."""
    if bucket_ns <= 0:
        raise ValueError("bucket_ns must be positive")
    ips: list[IpTimelineRecord] = []
    timeline = _Timeline()
    # key -> [first, last, count, the key's first record, merged?, addresses kept]
    open_: dict[tuple, list] = {}
    out: list[LogRecord] = []
    flows_in = refused = 0
    for r in records:
        if isinstance(r, IpTimelineRecord):
            ips.append(r)
            timeline.add(r)
            continue
        if not isinstance(r, FlowRecord):
            raise TypeError(f"not a flow-log record: {type(r).__name__}")
        flows_in += 1
        named = _attributed_key(r, timeline) if attribute else None
        key, rec = named if named is not None else (_key(r), r)
        state = open_.get(key)
        if state is not None:
            first, last = min(state[0], rec.first_seen), max(state[1], rec.last_seen)
            if last - first < bucket_ns:
                # No merge across a change of owner of an address the key keeps (an
                # end named by its workload was named for the record's whole span).
                if not timeline.changes_within(state[5], first, last):
                    state[0], state[1] = first, last
                    state[2] += rec.count
                    state[4] = True
                    continue
                refused += 1
            out.append(_merged(state))
        addresses = (key[2], key[3], key[5]) if key[0] == "workloads" else (
            key[1], key[2], key[4])
        open_[key] = [rec.first_seen, rec.last_seen, rec.count, rec, False, addresses]
    out.extend(_merged(state) for state in open_.values())
    stats = ReduceStats(flows_in, len(out), len(ips), refused)
    return sorted_records(ips) + sorted_records(out), stats


def _merged(state: list) -> FlowRecord:
    first, last, count, r, merged, _ = state
    if not merged:
        return r
    return _make(first, last, r.protocol, r.src_ip, r.dst_ip, r.dst_port, None, r.xlated_ip,
                 r.xlated_port, count, r.node, r.src, r.dst, r.service, r.verdict,
                 r.source_format, r.input, r.inferred, r.time_known)
