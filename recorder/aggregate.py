"""Streaming aggregation: many observations -> one record per edge and time window.

Two steps per flow record:

1. Dedup: the same connection observed twice (the source and the destination node both
   saw the SYN, a retransmitted SYN, a UDP packet train) is counted once. A connection
   is (protocol, src ip, src port, dst ip, dst port) - and, for a record seen before a
   Service's DNAT that knows its backend, also the same with the backend's address and
   port, which is what the backend's node saw; observations closer than
   ``dedup_ns`` to the last one of the same connection are duplicates. The table of
   recent connections is bounded (``dedup_capacity``): memory does not grow with the
   input. Aggregated inputs (count > 1, or no src port on TCP/UDP/SCTP) skip this step.
2. Aggregate by every field except first/last seen, count and src port, plus the window
   index ``first_seen // window_ns``: count, min first_seen, max last_seen.

DNS bindings (``NameBinding``) are aggregated the same way, by every field except the
times, count and TTL, per window: count, min first_seen, max last_seen, and the TTL of
the latest answer (the binding holds until the last answer's TTL runs out). Their table
is bounded by ``max_keys`` too.

Dropped wins: when one observation of a connection says DROPPED or ERROR (the
destination node's policy denied the SYN the source node forwarded), the connection is
counted as dropped, whichever observation came first. Dropped connections are left out
of the output unless ``include_dropped``: a dropped flow is no proof of need. This is
why readers pass dropped records on instead of filtering them.

Records are grouped with keys built from their fields. EndpointHints are frozen
dataclasses whose hash is computed in Python on every call; they are interned once and
keyed by identity after that (the intern table holds every object it has seen keyed by
id, so an id is never reused while it is in the table).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import chain
from typing import Any, Callable, Iterable, Iterator, Sequence

from recorder.flowlog import EncodedLines, flow_filler, record_to_json
from recorder.listed import ListedRows
from recorder.schema import (
    NO_HINTS, EndpointHints, FlowRecord, IpTimelineRecord, LogRecord, NameBinding,
)
from recorder.sources.fastrecord import flow_record_maker

_ADD_BATCH = 4096
SECOND = 1_000_000_000
DEDUP_NS = 10 * SECOND  # repeats of one connection closer than this are one connection
# A Service with more backends: a ClusterIP record looks up this many of them (each
# costs a lookup for every new connection to the Service).
MAX_DNAT_PEERS = 32
DROPPED_VERDICTS = frozenset({"DROPPED", "ERROR"})
# Dropped aggregates kept for the report (who tried what): beyond this many they are
# only counted (``AggregateStats.dropped``).
MAX_LEFT_OUT = 50_000
_ICMP = ("ICMP", "ICMPv6")


class RecentTable:
    """A bounded map of recently used keys: two generations of plain dicts. Lookups
    check both (an old hit moves to the young one), inserts go to the young one, and
    when it is full the old one is dropped. O(1) per operation, at most ``capacity``
    entries, so memory does not grow with the input.

    With ``horizon_ns``, inserts that give their time (``at``) also turn the young
    generation old once it spans more than the horizon. The entries dropped then were
    last inserted more than a horizon before the newest insert, so while inputs come in
    time order (give or take the slack a caller adds to its horizon) no key that
    matters is lost, and the table holds about a horizon of keys instead of
    ``capacity``: the memory of a long, quiet capture stays small."""

    __slots__ = ("_young", "_old", "_generation_size", "_horizon", "_young_since")

    def __init__(self, capacity: int, horizon_ns: int | None = None) -> None:
        self._young: dict[Any, Any] = {}
        self._old: dict[Any, Any] = {}
        self._generation_size = max(1, capacity // 2)
        self._horizon = horizon_ns
        self._young_since: int | None = None  # time of the young generation's first insert

    def get(self, key: Any) -> Any:
        value = self._young.get(key)
        if value is None:
            value = self._old.pop(key, None)
            if value is not None:
                self.put(key, value)
        return value

    def put(self, key: Any, value: Any, at: int | None = None) -> None:
        young = self._young
        if key not in young:
            since = self._young_since
            if len(young) >= self._generation_size or (
                    at is not None and since is not None and self._horizon is not None
                    and at - since > self._horizon):
                self._old = young
                self._young = young = {}
                self._young_since = since = None
            if since is None and at is not None:
                self._young_since = at
        young[key] = value

    def prune(self, keep: Callable[[Any], bool]) -> None:
        """Drop the entries whose value ``keep`` rejects."""
        for table in (self._young, self._old):
            for key in [k for k, v in table.items() if not keep(v)]:
                del table[key]

    def clear(self) -> None:
        self._young.clear()
        self._old.clear()
        self._young_since = None

    def __len__(self) -> int:
        return len(self._young) + len(self._old)


@dataclass
class AggregateStats:
    seen: int = 0  # flow records given to add()
    duplicates: int = 0  # ... of which were another observation of a counted connection
    keys: int = 0  # aggregates currently held (drain/flush_before hand them out)
    overflow: int = 0  # records dropped because max_keys aggregates were held
    dropped: int = 0  # connections left out because a verdict said DROPPED/ERROR
    ip_records: int = 0  # IP timeline records passed through
    emitted: int = 0  # aggregates handed out by drain/flush_before
    name_records: int = 0  # DNS bindings given to add()
    name_records_emitted: int = 0  # ... their aggregates handed out (within ``emitted``)
    name_keys: int = 0  # binding aggregates currently held
    name_overflow: int = 0  # bindings dropped because max_keys binding aggregates were held


class _Interner:
    """Equal EndpointHints -> one number, the id() of the first of them, looked up by
    id() on the hot path. The same int object is handed out every time: the aggregate
    keys of a large input would otherwise hold two fresh ints each. ``canonical``
    turns a number back into that first object."""

    def __init__(self, limit: int = 200_000) -> None:
        # canonical object -> (canonical, its id). Holding it keeps the id unique.
        self._by_value: dict[EndpointHints, tuple[EndpointHints, int]] = {}
        # id(obj) -> (obj, id of its canonical). Holding obj keeps its id from being reused.
        self.by_id: dict[int, tuple[Any, int]] = {}
        self.canonical: dict[int, EndpointHints] = {}
        self._limit = limit

    def __call__(self, h: EndpointHints) -> int:
        hit = self.by_id.get(id(h))
        if hit is not None:
            return hit[1]
        first = self._by_value.setdefault(h, (h, id(h)))
        number = first[1]
        self.canonical[number] = first[0]
        if len(self.by_id) >= self._limit:
            # Readers that make a new object per record would grow this without bound.
            self.by_id.clear()
        self.by_id[id(h)] = (h, number)
        return number


# Peer kinds that identify an endpoint without a pod name (Hubble's reserved: identities).
_NON_POD_KINDS = frozenset({"host", "remote-node", "world", "kube-apiserver"})

_make_aggregate = flow_record_maker(
    "first_seen", "last_seen", "protocol", "src_ip", "dst_ip", "dst_port", "src_port",
    "xlated_ip", "xlated_port", "count", "node", "src", "dst", "service", "verdict",
    "source_format", "input", "inferred", "time_known")


class Aggregator:
    def __init__(
        self,
        window_ns: int = 60 * SECOND,
        dedup_ns: int = DEDUP_NS,
        max_keys: int = 1_000_000,
        dedup_capacity: int = 131_072,
        include_dropped: bool = False,
        identified_window_ns: int | None = None,
        dnat_peers: Callable[[str, int, str], Sequence[tuple[str, int]]] | None = None,
    ) -> None:
        """``identified_window_ns``: a (longer) window for records whose both ends the
        source itself identified (pod names, reserved identities): their attribution
        does not depend on time, so they need not be split by time (``generate`` sets
        it). ``flush_before`` assumes it is None.

        ``dnat_peers(ip, port, protocol)``: the other side of a Service's DNAT of
        ``ip:port`` (a backend's ClusterIP:port frontends, a frontend's backends), when
        the caller knows the cluster (generate does). A connection the client's node saw
        addressed to the ClusterIP and the backend's node saw addressed to the backend is
        then one connection, whichever comes first, and a drop on the backend's side wins
        (kube-proxy mode, where neither record names the other address). At most
        ``MAX_DNAT_PEERS`` are looked up per record."""
        if window_ns <= 0:
            raise ValueError("window_ns must be positive")
        self.window_ns = window_ns
        self.identified_window_ns = identified_window_ns
        self.dedup_ns = dedup_ns
        self.max_keys = max_keys
        self.include_dropped = include_dropped
        self.stats = AggregateStats()
        self._ip_records: list[IpTimelineRecord] = []
        # key -> [first_seen, last_seen, count, ttl of the latest answer, template]
        self._names: dict[tuple[Any, ...], list[Any]] = {}
        # key -> [first_seen, last_seen, count, src_port of the first observation (None
        #         once that one was moved away), key]. A key is (window index,
        #         protocol, src_ip, dst_ip, dst_port, xlated_ip, xlated_port, meta
        #         number), a meta (node, src hints number, dst hints number, service
        # number, verdict, source_format, input, inferred, time_known) being few
        # distinct, shared by every key of an input. Keys hold its number, not the
        # tuple: a key is hashed on every lookup, and the meta's nine fields were about
        # half of the cost of hashing a key. The record is rebuilt from the key when
        # handed out.
        self._aggs: dict[tuple[Any, ...], list[Any]] = {}
        self._metas: dict[tuple[Any, ...], int] = {}  # meta -> its number
        self._meta_list: list[tuple[Any, ...]] = []  # number -> meta
        # connection -> [last time seen, aggregate key of its counted observation,
        #                whether that observation is a drop]
        # Bounded by count only: inputs are read one after the other, so times go back
        # at every new file, and one node's observation of a connection must still be
        # found when the next node's file is read.
        self._recent = RecentTable(dedup_capacity)
        self._intern = _Interner()
        self._dnat_peers = dnat_peers
        # the dropped connections left out, as aggregates (the first MAX_LEFT_OUT)
        self.left_out: list[FlowRecord] = []

    # ------------------------------------------------------------------------ input

    def add_all(self, records: Iterable[LogRecord]) -> None:
        """``add`` each record, a few thousand at a time: a reader parsing a large input
        between two records evicts the aggregate tables from the CPU caches, and taking
        its records in batches keeps them warm (~6% of a large Hubble import). The
        records a failing reader produced before it failed are still added."""
        pending: list[LogRecord] = []
        try:
            for rec in records:
                pending.append(rec)
                # a ListedRows is a batch of its own: held back, thousands of them would
                # be the whole input in memory
                if len(pending) == _ADD_BATCH or type(rec) is ListedRows:
                    batch, pending = pending, []
                    self._add_batch(batch)
        finally:
            batch, pending = pending, []
            self._add_batch(batch)

    def add(self, rec: LogRecord) -> None:
        self._add_batch((rec,))

    def _add_batch(self, batch: Iterable[LogRecord]) -> None:
        """The work of ``add`` for many records, with what it looks up held in locals
        (the per-record cost is most of an import of single observations)."""
        aggs = self._aggs
        metas = self._metas
        recent = self._recent
        recent_get = recent.get
        recent_put = recent.put
        intern = self._intern
        interned = intern.by_id.get
        window_ns = self.window_ns
        identified_window = self.identified_window_ns
        dedup_ns = self.dedup_ns
        dnat_peers = self._dnat_peers
        max_keys = self.max_keys
        seen = duplicates = overflow = 0
        try:
            for rec in batch:
                if type(rec) is not FlowRecord:
                    if type(rec) is ListedRows:
                        self._add_listed(rec)
                        continue
                    if isinstance(rec, IpTimelineRecord):
                        self._ip_records.append(rec)
                        self.stats.ip_records += 1
                        continue
                    if isinstance(rec, NameBinding):
                        self._add_name(rec)
                        continue
                    if not isinstance(rec, FlowRecord):
                        raise TypeError(f"not a flow-log record: {type(rec).__name__}")
                seen += 1
                t = rec.first_seen
                protocol = rec.protocol
                src_port = rec.src_port
                verdict = rec.verdict
                conn = served = None
                moved = None  # the entry of a connection that turned out to be dropped
                dropped = verdict is not None and verdict in DROPPED_VERDICTS
                if rec.count == 1 and (src_port is not None or protocol in _ICMP):
                    conn = (protocol, rec.src_ip, src_port, rec.dst_ip, rec.dst_port)
                    entry = recent_get(conn)
                    if rec.xlated_ip is not None:
                        # Seen before the Service's DNAT with the backend known
                        # (conntrack's reply tuple, the recorder's DNAT twin): the
                        # backend's node saw the same connection addressed to the
                        # backend, so it is known under both.
                        port = rec.xlated_port if rec.xlated_port is not None else rec.dst_port
                        if rec.xlated_ip != rec.dst_ip or port != rec.dst_port:
                            served = (protocol, rec.src_ip, src_port, rec.xlated_ip, port)
                            if entry is None:
                                entry = recent_get(served)
                    elif entry is None and dnat_peers is not None and rec.dst_port is not None:
                        # Seen on one side of a Service's DNAT: the other node may have
                        # seen the other side.
                        peers = dnat_peers(rec.dst_ip, rec.dst_port, protocol)
                        for ip, port in peers[:MAX_DNAT_PEERS]:
                            entry = recent_get((protocol, rec.src_ip, src_port, ip, port))
                            if entry is not None:
                                break
                    if entry is not None and -dedup_ns <= t - entry[0] <= dedup_ns:
                        duplicates += 1
                        if t > entry[0]:
                            entry[0] = t
                        counted = aggs.get(entry[1])
                        if not dropped or entry[2]:
                            if counted is not None:  # extend the evidence of the counted one
                                if t < counted[0]:
                                    counted[0] = t
                                if rec.last_seen > counted[1]:
                                    counted[1] = rec.last_seen
                            continue
                        # Dropped wins: take the connection off the aggregate that
                        # counted it and count it below, under this observation's
                        # (dropped) key.
                        if counted is not None:
                            counted[2] -= 1
                            if counted[2] == 0:
                                del aggs[entry[1]]
                            elif counted[3] == src_port:  # the first one was the moved one
                                counted[3] = None
                        moved = entry
                src = rec.src
                dst = rec.dst
                hit = interned(id(src))
                src_number = hit[1] if hit is not None else intern(src)
                hit = interned(id(dst))
                dst_number = hit[1] if hit is not None else intern(dst)
                service = rec.service
                if service is not None:
                    hit = interned(id(service))
                    service = hit[1] if hit is not None else intern(service)
                meta = (rec.node, src_number, dst_number, service, verdict,
                        rec.source_format, rec.input, rec.inferred, rec.time_known)
                number = metas.get(meta)
                if number is None:
                    number = self._meta_number(meta)
                window = window_ns
                if identified_window is not None and (
                        src.pod is not None or src.peer_kind in _NON_POD_KINDS) and (
                        dst.pod is not None or dst.peer_kind in _NON_POD_KINDS) and (
                        dst.peer_kind != "world" or service is not None):
                    # Not to an address outside the cluster: which DNS name it stood for
                    # depends on the time (the answers before the connection). A
                    # Service's address that Hubble calls world (kube-proxy mode) is no
                    # such address.
                    window = identified_window
                key = (t // window, protocol, rec.src_ip, rec.dst_ip, rec.dst_port,
                       rec.xlated_ip, rec.xlated_port, number)
                agg = aggs.get(key)
                if agg is None:
                    if len(aggs) >= max_keys:
                        overflow += 1
                        continue
                    aggs[key] = [t, rec.last_seen, rec.count, src_port, key]
                else:
                    key = agg[4]  # the key object the table holds: the recent entry shares it
                    if t < agg[0]:
                        agg[0] = t
                    if rec.last_seen > agg[1]:
                        agg[1] = rec.last_seen
                    agg[2] += rec.count
                if moved is not None:
                    moved[1] = key
                    moved[2] = True
                elif conn is not None:
                    # A new connection, or one seen again after a long gap.
                    entry = [t, key, dropped]
                    recent_put(conn, entry)
                    if served is not None:
                        recent_put(served, entry)
        finally:
            stats = self.stats
            stats.seen += seen
            stats.duplicates += duplicates
            stats.overflow += overflow
            stats.keys = len(aggs)

    def _add_listed(self, batch: ListedRows) -> None:
        """``_add_batch(batch.records())`` without the records: the same steps, with
        what every row of the batch shares (time, count 1, no hints, service or verdict,
        so never dropped and never in the identified window) worked out once, and the
        recent table's get and put done on its dicts where they cannot flip a
        generation (its methods where they might)."""
        aggs = self._aggs
        recent = self._recent
        young = recent._young
        old = recent._old
        generation_size = recent._generation_size
        dnat_peers = self._dnat_peers
        max_keys = self.max_keys
        dedup_ns = self.dedup_ns
        t = batch.first_seen
        hints = self._intern(NO_HINTS)
        meta = (None, hints, hints, None, None, batch.source_format, batch.input, False,
                batch.time_known)
        number = self._metas.get(meta)
        if number is None:
            number = self._meta_number(meta)
        window = t // self.window_ns
        seen = duplicates = overflow = 0
        try:
            for protocol, src_ip, dst_ip, dst_port, src_port, xlated_ip, xlated_port \
                    in batch.rows:
                seen += 1
                conn = served = None
                if src_port is not None or protocol in _ICMP:
                    conn = (protocol, src_ip, src_port, dst_ip, dst_port)
                    entry = young.get(conn)
                    if entry is None and old:
                        entry = old.pop(conn, None)
                        if entry is not None:  # RecentTable.get: an old hit moves up
                            recent.put(conn, entry)
                            young, old = recent._young, recent._old
                    if xlated_ip is not None:
                        port = xlated_port if xlated_port is not None else dst_port
                        if xlated_ip != dst_ip or port != dst_port:
                            served = (protocol, src_ip, src_port, xlated_ip, port)
                            if entry is None:
                                entry = young.get(served)
                                if entry is None and old:
                                    entry = old.pop(served, None)
                                    if entry is not None:
                                        recent.put(served, entry)
                                        young, old = recent._young, recent._old
                    elif entry is None and dnat_peers is not None and dst_port is not None:
                        for ip, port in dnat_peers(dst_ip, dst_port, protocol)[:MAX_DNAT_PEERS]:
                            entry = recent.get((protocol, src_ip, src_port, ip, port))
                            young, old = recent._young, recent._old
                            if entry is not None:
                                break
                    if entry is not None and -dedup_ns <= t - entry[0] <= dedup_ns:
                        duplicates += 1
                        if t > entry[0]:
                            entry[0] = t
                        counted = aggs.get(entry[1])
                        if counted is not None:  # never dropped: extend the counted one
                            if t < counted[0]:
                                counted[0] = t
                            if t > counted[1]:
                                counted[1] = t
                        continue
                key = (window, protocol, src_ip, dst_ip, dst_port, xlated_ip, xlated_port,
                       number)
                agg = aggs.get(key)
                if agg is None:
                    if len(aggs) >= max_keys:
                        overflow += 1
                        continue
                    aggs[key] = [t, t, 1, src_port, key]
                else:
                    key = agg[4]
                    if t < agg[0]:
                        agg[0] = t
                    if t > agg[1]:
                        agg[1] = t
                    agg[2] += 1
                if conn is not None:
                    entry = [t, key, False]
                    # RecentTable.put: a new key flips a full young generation
                    if len(young) < generation_size or conn in young:
                        young[conn] = entry
                    else:
                        recent.put(conn, entry)
                        young, old = recent._young, recent._old
                    if served is not None:
                        if len(young) < generation_size or served in young:
                            young[served] = entry
                        else:
                            recent.put(served, entry)
                            young, old = recent._young, recent._old
        finally:
            stats = self.stats
            stats.seen += seen
            stats.duplicates += duplicates
            stats.overflow += overflow
            stats.keys = len(aggs)

    def _meta_number(self, meta: tuple[Any, ...]) -> int:
        number = self._metas[meta] = len(self._meta_list)
        self._meta_list.append(meta)
        return number

    def _add_name(self, rec: NameBinding) -> None:
        self.stats.name_records += 1
        key = (rec.first_seen // self.window_ns, rec.client_ip, rec.name, rec.address,
               rec.node, self._intern(rec.client), rec.source_format, rec.input)
        agg = self._names.get(key)
        if agg is None:
            if len(self._names) >= self.max_keys:
                self.stats.name_overflow += 1
                return
            self._names[key] = [rec.first_seen, rec.last_seen, rec.count, rec.ttl, rec]
            self.stats.name_keys = len(self._names)
            return
        if rec.first_seen < agg[0]:
            agg[0] = rec.first_seen
        if rec.last_seen > agg[1] or (rec.last_seen == agg[1] and rec.ttl > agg[3]):
            agg[1] = rec.last_seen
            agg[3] = rec.ttl
        agg[2] += rec.count

    # ----------------------------------------------------------------------- output

    def drain(self) -> list[LogRecord]:
        """Every IP record and aggregate held, in a deterministic order; empties."""
        out = self._take(None, list(self._names))
        self._recent.clear()
        return out

    def flush_before(self, t_ns: int) -> list[LogRecord]:
        """Aggregates of windows that ended at or before ``t_ns`` (and every IP record
        held), for a recorder that writes as it goes. Later observations of a flushed
        connection start a new aggregate."""
        closed = [k for k in self._aggs if (k[0] + 1) * self.window_ns <= t_ns]
        closed_names = [k for k in self._names if (k[0] + 1) * self.window_ns <= t_ns]
        horizon = t_ns - self.dedup_ns
        self._recent.prune(lambda entry: entry[0] >= horizon)
        return self._take(closed, closed_names)

    def _take_names(self, keys: list[tuple[Any, ...]]) -> list[LogRecord]:
        out: list[LogRecord] = []
        for key in keys:
            first, last, count, ttl, rec = self._names.pop(key)
            if (first, last, count, ttl) != (rec.first_seen, rec.last_seen, rec.count, rec.ttl):
                rec = dataclasses.replace(rec, first_seen=first, last_seen=last, count=count,
                                          ttl=ttl)
            out.append(rec)
        self.stats.name_keys = len(self._names)
        self.stats.name_records_emitted += len(out)
        return out

    def _take(self, keys: list[tuple[Any, ...]] | None,
              name_keys: Sequence[tuple[Any, ...]] = ()) -> list[LogRecord]:
        canonical = self._intern.canonical
        metas = self._meta_list
        make = _make_aggregate
        flows = []
        for first, last, count, src_port, (_, protocol, src_ip, dst_ip, dst_port, xlated_ip,
                                           xlated_port, number) in self._take_flows(keys):
            node, src, dst, service, verdict, fmt, input_, inferred, time_known = metas[number]
            flows.append(make(first, last, protocol, src_ip, dst_ip, dst_port, src_port,
                              xlated_ip, xlated_port, count, node, canonical[src],
                              canonical[dst], None if service is None else canonical[service],
                              verdict, fmt, input_, inferred, time_known))
        return self._take_others(name_keys) + flows  # type: ignore[operator]

    def drain_lines(self) -> EncodedLines:
        """What ``write_flow_log`` writes of ``drain()``, without the flow records: each
        flow aggregate's line comes from the line function of its shape (its meta and
        which of its fields are None), made once from a record of that shape. The
        table is emptied now; the lines are made as they are written (held all at
        once they would be the size of the flow log)."""
        flows = self._take_flows(None)
        others = self._take_others(list(self._names))
        self._recent.clear()
        return EncodedLines(chain((record_to_json(r).decode() for r in others),
                                  self._flow_lines(flows)))

    def _flow_lines(self, flows: list[list[Any]]) -> Iterator[str]:
        canonical = self._intern.canonical
        metas = self._meta_list
        fillers: dict[tuple[Any, ...], Callable[..., str]] = {}
        for first, last, count, src_port, key in flows:
            _, protocol, src_ip, dst_ip, dst_port, xlated_ip, xlated_port, number = key
            shape = (number, dst_port is None, src_port is None, xlated_ip is None,
                     xlated_port is None)
            fill = fillers.get(shape)
            if fill is None:
                node, src, dst, service, verdict, fmt, input_, inferred, time_known = \
                    metas[number]
                fill = fillers[shape] = flow_filler(_make_aggregate(
                    first, last, protocol, src_ip, dst_ip, dst_port, src_port, xlated_ip,
                    xlated_port, count, node, canonical[src], canonical[dst],
                    None if service is None else canonical[service], verdict, fmt, input_,
                    inferred, time_known))
            yield fill(count, dst_ip, dst_port, first, last, protocol, src_ip, src_port,
                       xlated_ip, xlated_port)

    def _take_others(self, name_keys: list[tuple[Any, ...]]) -> list[LogRecord]:
        """The IP records held and the name aggregates of ``name_keys``, sorted."""
        ips = self._ip_records
        self._ip_records = []
        names = self._take_names(list(name_keys))
        return sorted_records(ips) + sorted_records(names)

    def _take_flows(self, keys: list[tuple[Any, ...]] | None) -> list[list[Any]]:
        """The flow aggregates of ``keys`` (None: all of them, the table emptied at once
        rather than key by key) taken from the table, as [first, last, count, src_port
        (None unless count is 1), key], in ``sorted_records`` order of the records they
        stand for; dropped ones go to ``left_out`` instead.

        Sorted once here on keys built from the aggregates: ``_record_sort_key`` with
        its constant 2 left out and its elements that come from the meta (node ..
        time_known) replaced by the meta's rank among the metas' such elements, which
        orders the same (``_sorted_flat``, or ``_sorted_grouped`` when many share a
        time). Stable, as sorted_records' sorts are: equal keys keep the table's
        order."""
        flows: list[list[Any]] = []
        aggs = self._aggs
        canonical = self._intern.canonical
        metas = self._meta_list
        dropped = 0
        include_dropped = self.include_dropped
        left_out = self.left_out
        taken: Iterable[list[Any]]
        if keys is None:
            taken = list(aggs.values())
            aggs.clear()
        else:
            taken = [aggs.pop(key) for key in keys]
        for agg in taken:
            first, last, count, src_port, key = agg
            if count != 1:
                agg[3] = src_port = None  # the port of one observation; many have none
            number = key[7]
            if not include_dropped and metas[number][4] in DROPPED_VERDICTS:
                dropped += count
                if len(left_out) < MAX_LEFT_OUT:
                    _, protocol, src_ip, dst_ip, dst_port, xlated_ip, xlated_port, _ = key
                    node, src, dst, service, verdict, fmt, input_, inferred, time_known = \
                        metas[number]
                    left_out.append(_make_aggregate(
                        first, last, protocol, src_ip, dst_ip, dst_port, src_port, xlated_ip,
                        xlated_port, count, node, canonical[src], canonical[dst],
                        None if service is None else canonical[service], verdict, fmt,
                        input_, inferred, time_known))
                continue
            flows.append(agg)
        self.stats.keys = len(aggs)
        self.stats.dropped += dropped
        self.stats.emitted += len(flows)
        ranks = self._meta_ranks()
        if len(flows) >= _GROUPED * len({agg[0] for agg in flows}):
            return _sorted_grouped(flows, ranks)
        return _sorted_flat(flows, ranks)

    def _meta_ranks(self) -> list[int]:
        """meta number -> rank of its elements of ``_record_sort_key`` (equal ones,
        equal rank)."""
        canonical = self._intern.canonical
        metas = self._meta_list
        # The endpoints' sort keys ranked once: a Hubble capture has tens of thousands
        # of metas over a few thousand endpoints, and comparing whole hints keys in the
        # sort below was most of a drain. Equal keys get equal ranks, and ranks order as
        # the keys do, so the metas sort as they would on the keys themselves.
        numbers = {n for meta in metas for n in (meta[1], meta[2])}
        hints_keys = {n: _hints_key(canonical[n]) for n in numbers}
        hints_rank = {key: r for r, key in enumerate(sorted(set(hints_keys.values())))}
        rank_of = {n: hints_rank[key] for n, key in hints_keys.items()}
        parts = []
        for node, src, dst, service, verdict, fmt, input_, inferred, time_known in metas:
            svc = None if service is None else canonical[service]
            parts.append((node or "", rank_of[src], rank_of[dst],
                          (svc.namespace, svc.name) if svc else ("", ""), verdict or "",
                          fmt, input_, inferred, time_known))
        rank = {part: n for n, part in enumerate(sorted(set(parts)))}
        return [rank[part] for part in parts]


# Aggregates per distinct first_seen from which _take_flows sorts them in groups.
_GROUPED = 8


def _sorted_flat(flows: list[list[Any]], ranks: list[int]) -> list[list[Any]]:
    """``flows`` (aggregates, src_port already None unless count is 1) in the order of
    their sort keys (see ``_take_flows``), stable."""
    keys = [(first, protocol, src_ip, dst_ip, -1 if dst_port is None else dst_port,
             xlated_ip or "", -1 if xlated_port is None else xlated_port, ranks[number],
             last, count, -1 if src_port is None else src_port)
            for first, last, count, src_port, (_, protocol, src_ip, dst_ip, dst_port,
                                               xlated_ip, xlated_port, number) in flows]
    return [flows[i] for i in sorted(range(len(flows)), key=keys.__getitem__)]


def _sorted_grouped(flows: list[list[Any]], ranks: list[int]) -> list[list[Any]]:
    """What ``_sorted_flat`` returns, for aggregates that share few times (a conntrack
    dump has one): grouped by the keys' first three elements (first_seen, protocol,
    src_ip), the groups sorted by those and each group by the rest. The same order
    (a group's elements are equal, so the rest decides; sorts are stable and groups
    keep table order), for far fewer comparisons of long tuples: sorting the 578k
    aggregates of a 1M-line dump took 0.6-0.8 s instead of 1.1-1.5 s."""
    groups: dict[tuple[Any, ...], list[list[Any]]] = {}
    for agg in flows:
        key = agg[4]
        prefix = (agg[0], key[1], key[2])
        group = groups.get(prefix)
        if group is None:
            groups[prefix] = [agg]
        else:
            group.append(agg)
    out: list[list[Any]] = []
    for prefix in sorted(groups):
        group = groups[prefix]
        if len(group) > 1:
            keys = [(dst_ip, -1 if dst_port is None else dst_port, xlated_ip or "",
                     -1 if xlated_port is None else xlated_port, ranks[number], last, count,
                     -1 if src_port is None else src_port)
                    for _, last, count, src_port, (_, _, _, dst_ip, dst_port, xlated_ip,
                                                   xlated_port, number) in group]
            group = [group[i] for i in sorted(range(len(group)), key=keys.__getitem__)]
        out += group
    return out


def _hints_key(h: EndpointHints) -> tuple[Any, ...]:
    wl = h.workload
    return (
        h.namespace or "",
        h.pod or "",
        h.labels,
        (wl.kind, wl.name) if wl else ("", ""),
        h.peer_kind or "",
        h.names,
    )


def _record_sort_key(r: LogRecord, hints_keys: dict[int, tuple[Any, ...]]) -> tuple[Any, ...]:
    # After the time, the kind: records of different kinds never compare field by field.
    if isinstance(r, NameBinding):
        return (r.first_seen, 1, r.client_ip, r.name, r.address, r.last_seen, r.ttl, r.count,
                r.node or "", _hints_key(r.client), r.source_format, r.input)
    if isinstance(r, IpTimelineRecord):
        o = r.owner
        return (
            r.valid_from,
            0,
            r.ip,
            -1 if r.valid_to is None else r.valid_to,
            r.namespace,
            r.pod,
            r.labels,
            (o.kind, o.name) if o else ("", ""),
            r.node or "",
            r.host_network,
        )
    # keyed by id: the records (and so their hints) live until the sort is done
    src = hints_keys.get(id(r.src))
    if src is None:
        src = hints_keys[id(r.src)] = _hints_key(r.src)
    dst = hints_keys.get(id(r.dst))
    if dst is None:
        dst = hints_keys[id(r.dst)] = _hints_key(r.dst)
    svc = r.service
    return (
        r.first_seen,
        2,
        r.protocol,
        r.src_ip,
        r.dst_ip,
        -1 if r.dst_port is None else r.dst_port,
        r.xlated_ip or "",
        -1 if r.xlated_port is None else r.xlated_port,
        r.node or "",
        src,
        dst,
        (svc.namespace, svc.name) if svc else ("", ""),
        r.verdict or "",
        r.source_format,
        r.input,
        r.inferred,
        r.time_known,
        r.last_seen,
        r.count,
        -1 if r.src_port is None else r.src_port,
    )


def record_time(r: LogRecord) -> int:
    """When a record starts: the first element of ``_record_sort_key``."""
    return r.valid_from if isinstance(r, IpTimelineRecord) else r.first_seen



def _short_sort_key(r: LogRecord) -> tuple[Any, ...]:
    """The elements of ``_record_sort_key`` after the time that tell most records
    apart: (protocol, addresses and ports) for a flow, everything for an IP record."""
    if type(r) is FlowRecord:
        return (2, r.protocol, r.src_ip, r.dst_ip, -1 if r.dst_port is None else r.dst_port,
                r.xlated_ip or "", -1 if r.xlated_port is None else r.xlated_port)
    return _record_sort_key(r, {})[1:]


def _sort_runs(out: list[LogRecord], keys: list[Any],
               then: Callable[[list[LogRecord]], list[LogRecord]]) -> None:
    """Sort each run of equal ``keys`` of ``out`` (in place) with ``then``."""
    start = 0
    n = len(out)
    for end in range(1, n + 1):
        if end == n or keys[end] != keys[start]:
            if end - start > 1:
                out[start:end] = then(out[start:end])
            start = end


def sorted_records(records: Iterable[LogRecord]) -> list[LogRecord]:
    """Deterministic order: by time, then by every other field (a total order on
    distinct records, so input order never shows through).

    Building the whole key costs ~10x a sort by time alone, and records rarely share
    a time and addresses: they are sorted by time, each run of equal times by the
    short key (the whole key's next elements), and each run of equal short keys by
    the whole key, which is the same order (each key starts with the one before; the
    sorts are stable)."""
    out = sorted(records, key=record_time)
    hints_keys: dict[int, tuple[Any, ...]] = {}

    def by_whole_key(run: list[LogRecord]) -> list[LogRecord]:
        return sorted(run, key=lambda r: _record_sort_key(r, hints_keys))

    def by_short_key(run: list[LogRecord]) -> list[LogRecord]:
        run.sort(key=_short_sort_key)
        _sort_runs(run, [_short_sort_key(r) for r in run], by_whole_key)
        return run

    _sort_runs(out, [record_time(r) for r in out], by_short_key)
    return out
