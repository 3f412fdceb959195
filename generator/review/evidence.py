"""What the observed traffic says about each rule entry, and how much traffic there is.

An *entry* is one (policy, direction, rule, peer element, port entry) combination, as in
``generator.verify.usage``; here each gets its full evidence - count, first and last
seen, the inputs and Services it came through - for reviewers. ``Thresholds`` are the
minimum-evidence settings shared by `flowpol diff` and `flowpol migrate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from generator.resolve.edges import WORKLOAD, Connection, Edge, Peer
from generator.inventory.index import InventoryIndex, WorkloadRef
from generator.pipeline import ObservedTraffic
from generator.verify.cohorts import cohorts, summed_services
from generator.verify.evaluator import Evaluator, RuleEntry
from recorder.timefmt import format_time

NS_PER_S = 1_000_000_000
DEFAULT_MIN_OBSERVATION_NS = 7 * 86400 * NS_PER_S


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Minimum evidence before flowpol removes a rule or isolates a workload.

    ``min_observation_ns``: the recording (or a workload's observed activity) must span
    at least this long; ``min_flows``: at least this many observed connections.
    """

    min_observation_ns: int = DEFAULT_MIN_OBSERVATION_NS
    min_flows: int = 1


@dataclass(frozen=True, slots=True)
class Span:
    """First and last observation of the recording (ns since the epoch)."""

    start: int
    end: int

    @property
    def duration(self) -> int:
        return max(0, self.end - self.start)


def recording_span(observed: ObservedTraffic) -> Span | None:
    """From the first to the last observed connection, unresolved ones included."""
    firsts = [c.first_seen for c in observed.resolved.connections]
    firsts += [u.first_seen for u in observed.resolved.unresolved]
    lasts = [c.last_seen for c in observed.resolved.connections]
    lasts += [u.last_seen for u in observed.resolved.unresolved]
    if not firsts:
        return None
    return Span(min(firsts), max(lasts))


@dataclass(frozen=True, slots=True)
class EntryEvidence:
    connections: int
    first_seen: int
    last_seen: int
    inputs: tuple[str, ...]
    services: tuple[str, ...]  # "ns/name:port" the clients dialled
    peers: tuple[str, ...]  # the observed peers on the rule's side, displayed


def entry_evidence(connections: Iterable[Connection],
                   evaluator: Evaluator) -> dict[RuleEntry, EntryEvidence]:
    """Per matched entry, the connections it allowed on its side (see
    ``Evaluator.matched_entries``). Entries nothing matched are absent."""
    acc: dict[RuleEntry, list] = {}
    matched_entries = evaluator.matched_entries
    # Peer.display() per peer object, not per cohort and entry (the connections keep
    # the peers alive, so their ids stay unique)
    shown: dict[int, str] = {}
    # A cohort's connections match the same entries and share their peers' values; in
    # the order of their first connections, entries come in the order they first match.
    for co in cohorts(connections, evaluator).cohorts:
        c = co.first
        for entry in matched_entries(co.src, co.dst, c.protocol, c.port):
            slot = acc.get(entry)
            if slot is None:
                slot = acc[entry] = [0, co.first_seen, co.last_seen, set(), set(), set()]
            slot[0] += co.count
            if co.first_seen < slot[1]:
                slot[1] = co.first_seen
            if co.last_seen > slot[2]:
                slot[2] = co.last_seen
            slot[3] |= co.inputs
            slot[4] |= co.services
            other = c.src if entry[1] == "ingress" else c.dst
            text = shown.get(id(other))
            if text is None:
                text = shown[id(other)] = other.display()
            slot[5].add(text)
    return {k: EntryEvidence(v[0], v[1], v[2], tuple(sorted(v[3])), summed_services(v[4]),
                             tuple(sorted(v[5])))
            for k, v in acc.items()}


def workload_ref(peer: Peer) -> WorkloadRef:
    """The WorkloadRef of a workload peer."""
    return WorkloadRef(peer.namespace, peer.workload_kind, peer.workload_name)  # type: ignore[arg-type]


def is_dns_traffic(item: Connection | Edge, index: InventoryIndex) -> bool:
    """To the cluster resolver on one of its DNS ports (as synthesize recognises DNS)."""
    dns = index.dns_resolvers()
    ports = dns.udp_ports if item.protocol == "UDP" else \
        dns.tcp_ports if item.protocol == "TCP" else ()
    if item.port not in ports:
        return False
    if item.dst.kind == WORKLOAD:
        return workload_ref(item.dst) in dns.workloads
    return item.dst.ip in dns.node_local_ips


# ---------------------------------------------------------------- readable text


def when(ns: int | None) -> str:
    """``2026-11-20T09:00:04Z`` (seconds), or ``never``."""
    return "never" if ns is None else format_time(ns)[:19] + "Z"


def duration_text(ns: int) -> str:
    """``6h``, ``1d 2h``, ``45m``, ``30s``: two units at most, rounded down."""
    seconds = ns // NS_PER_S
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts) or "0s"


def input_names(inputs: Iterable[str]) -> str:
    """Inputs by file name (the full paths are in report.json)."""
    names = sorted({_file_name(i) for i in inputs})
    return ", ".join(names)


@lru_cache(maxsize=1024)
def _file_name(path: str) -> str:
    # one per table row of the review, for a handful of inputs: a Path each is costly
    return Path(path).name
