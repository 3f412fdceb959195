"""Observed connections in cohorts the evaluator cannot tell apart.

The verification, the review's evidence and rule usage all want the evaluator's answer
for every connection plus a few sums. Connections are distinct per (pod, pod, protocol,
port), so tens of thousands of them, but the answer depends only on the ends'
``EndpointKey`` - a few thousand combinations. One pass puts each connection in a
cohort (same peers, same keys, protocol, port and exemption) and folds its count,
times, inputs and Services into the cohort's; callers then ask the evaluator and do
their bookkeeping once per cohort.

`flowpol generate` and `flowpol verify` hand the same connections and Evaluator to
several of those callers: the cohorts of the last tuple of connections are kept with
the evaluator, so that pass runs once.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Iterable
from weakref import WeakKeyDictionary

from generator.resolve.edges import Connection, PeerIds
from generator.verify.evaluator import Endpoint, Evaluator

Service = tuple[tuple[str, str], int]  # ((namespace, name), the port the client dialled)


@dataclass(frozen=True, slots=True)
class Cohort:
    """Connections with equal peers (``Peer`` values), protocol and port whose ends
    ``Evaluator.check`` and ``matched_entries`` see alike: one verdict, one set of entries."""

    first: Connection  # the first of them in input order
    src: Endpoint  # ``first``'s ends as the evaluator takes them
    dst: Endpoint
    connections: int
    count: int  # sum of their counts
    # the same without connections whose flow_id an earlier connection (of any cohort)
    # had: a ClusterIP flow expanded to several backends counts once
    counted: int
    first_seen: int
    last_seen: int
    inputs: frozenset[str]
    services: frozenset[Service]  # the Services dialled, when via one


@dataclass(frozen=True, slots=True)
class RepeatedFlow:
    """A flow_id held by several connections: where each went, in input order."""

    first: int  # the cohort (index) of its first connection, the one counted there
    repeats: tuple[tuple[Connection, int], ...]  # the others, each with its cohort


@dataclass(frozen=True, slots=True)
class Cohorts:
    cohorts: tuple[Cohort, ...]  # in the order of their first connections
    repeated_flows: tuple[RepeatedFlow, ...]


_last: WeakKeyDictionary[Evaluator, tuple[tuple[Connection, ...], Cohorts]] = WeakKeyDictionary()


def cohorts(connections: Iterable[Connection], evaluator: Evaluator) -> Cohorts:
    """Cohorts of ``connections`` (iterated once) for ``evaluator``."""
    if not isinstance(connections, tuple):
        return _cohorts(connections, evaluator)
    found = known_cohorts(connections, evaluator)
    if found is None:
        found = _cohorts(connections, evaluator)
        _last[evaluator] = (connections, found)
    return found


def known_cohorts(connections: Iterable[Connection], evaluator: Evaluator) -> Cohorts | None:
    """The cohorts ``cohorts`` made last for this evaluator, if of these connections."""
    # a tuple of frozen connections, held in _last, cannot change: same object, same cohorts
    last = _last.get(evaluator)
    return last[1] if last is not None and last[0] is connections else None


def summed_services(services: Iterable[Service]) -> tuple[str, ...]:
    """``ns/name:port`` texts, sorted."""
    return tuple(sorted({f"{svc[0]}/{svc[1]}:{port}" for svc, port in services}))


# indexes into a cohort's accumulator list
(_FIRST, _SRC, _DST, _N, _COUNT, _FIRST_SEEN, _LAST_SEEN, _INPUTS, _SERVICES, _INDEX,
 _LAST_INPUTS) = range(11)
_FLOW_ID = attrgetter("flow_id")


def _cohorts(connections: Iterable[Connection], evaluator: Evaluator) -> Cohorts:
    if not isinstance(connections, (tuple, list)):
        connections = tuple(connections)  # read twice below
    endpoint_key = evaluator.endpoint_key
    peer_id = PeerIds()
    # Per endpoint object and the Peer it came with: (endpoint, peer, number, tag or
    # tags); equal numbers, equal Peer values and equal EndpointKeys for that side.
    # Keyed by id(endpoint): the record holds the endpoint, so while it is here no
    # other object has that id. Resolved connections share their Peer objects, so
    # comparing Peer values (Python-level) is rare.
    srcs: dict[int, tuple] = {}
    dsts: dict[int, tuple] = {}
    src_numbers: dict[tuple, int] = {}
    dst_numbers: dict[tuple, int] = {}
    acc: dict[tuple, list] = {}
    placed: list[list] = []  # each connection's cohort accumulator, for repeated flows
    place = placed.append
    src_get, dst_get, acc_get = srcs.get, dsts.get, acc.get
    # an evaluator that judges names (toFQDNs) sees an external destination with the
    # names bound to it at the connection's time
    named = getattr(evaluator, "named_destination", None)
    for c in connections:
        src = c.src_pod
        if src is None:
            src = c.src_ip
        s = src_get(id(src))
        if s is None or (s[1] is not c.src and s[1] != c.src):
            k = endpoint_key(src)
            number = src_numbers.setdefault((peer_id(c.src), k.peer), len(src_numbers))
            s = srcs[id(src)] = (src, c.src, number, k.source_tag)
        dst = c.dst_pod
        if dst is None:
            dst = c.dst_ip if named is None else named(c)
        d = dst_get(id(dst))
        if d is None or (d[1] is not c.dst and d[1] != c.dst):
            k = endpoint_key(dst)
            number = dst_numbers.setdefault((peer_id(c.dst), k.peer, k.ports), len(dst_numbers))
            d = dsts[id(dst)] = (dst, c.dst, number, k.destination_tags)
        key = (s[2], d[2], c.protocol, c.port, s[3] in d[3])  # the last: see exempt()
        a = acc_get(key)
        if a is None:
            a = acc[key] = [c, src, dst, 1, c.count, c.first_seen, c.last_seen, set(c.inputs),
                            set(), len(acc), c.inputs]
        else:
            a[_N] += 1
            a[_COUNT] += c.count
            if c.first_seen < a[_FIRST_SEEN]:
                a[_FIRST_SEEN] = c.first_seen
            if c.last_seen > a[_LAST_SEEN]:
                a[_LAST_SEEN] = c.last_seen
            if c.inputs != a[_LAST_INPUTS]:  # mostly equal: no set update
                a[_INPUTS].update(c.inputs)
                a[_LAST_INPUTS] = c.inputs
        if c.service is not None and c.service_port is not None:
            a[_SERVICES].add((c.service, c.service_port))
        place(a)
    counted = [a[_COUNT] for a in acc.values()]
    repeated: tuple[RepeatedFlow, ...] = ()
    flows = list(map(_FLOW_ID, connections))
    if len(set(flows)) < len(flows):  # some flow_id held twice (or several without one)
        first_cohort: dict[int, int] = {}
        repeats: dict[int, list[tuple[Connection, int]]] = {}
        for flow, a, c in zip(flows, placed, connections):
            if flow < 0:
                continue
            if flow not in first_cohort:
                first_cohort[flow] = a[_INDEX]
            else:
                repeats.setdefault(flow, []).append((c, a[_INDEX]))
                counted[a[_INDEX]] -= c.count
        repeated = tuple(RepeatedFlow(first_cohort[flow], tuple(r)) for flow, r in repeats.items())
    return Cohorts(
        tuple(Cohort(a[_FIRST], a[_SRC], a[_DST], a[_N], a[_COUNT], n, a[_FIRST_SEEN],
                     a[_LAST_SEEN], frozenset(a[_INPUTS]), frozenset(a[_SERVICES]))
              for a, n in zip(acc.values(), counted)),
        repeated,
    )
