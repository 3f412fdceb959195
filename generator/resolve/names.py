"""Names for addresses outside the cluster, learned from DNS at the time.

A DNS answer binds a name to addresses for a client (the flow log's ``name`` records:
recorder/schema.py ``NameBinding``). A binding holds from its first answer until its
last answer's TTL runs out, plus ``GRACE_NS``: clients use an answer a little past its
TTL (they resolve, then connect; some cache for a while), and the node that saw the
answer and the one that saw the connection may not share a clock to the millisecond.
Cilium, which enforces names (toFQDNs), honours answer TTLs too (``--tofqdns-min-ttl``
defaults to 0 since cilium/cilium#21439) and keeps an expired address only while a
connection to it lives (pkg/fqdn/doc.go, "zombies"): a connection this module finds
no name for, made by a client that cached an answer past its TTL, is one a toFQDNs
rule would not allow.

A connection to an EXTERNAL address is attributed, at its time, to the names whose
bindings of that address hold then, looking in order at

1. what the source itself said about the flow: Hubble's ``destination_names`` (Cilium's
   DNS cache of that endpoint at that moment);
2. answers the same client (address) got;
3. answers another client of the same namespace got;
4. answers anyone got

and taking the first that has any. Among those, every name that still holds is kept (the connection carries them sorted;
``NameIndex.lookup`` gives the most recent answer's first): several names
for one address (a CDN, a shared front end) are reported as such, never narrowed to a
guess. One name for many addresses is as many bindings. An address no answer named is
reported with why: never resolved by anyone in the recording, or only by answers that
had expired by then.

Like identity, an aggregate of connections is looked at its first and last sighting;
when the two differ it becomes two connections (of the same flow: each count is then
an upper bound, as for an aggregate spanning an IP hand-over).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Sequence

from generator.inventory.index import InventoryIndex
from generator.resolve.edges import EXTERNAL, WORKLOAD, Connection
from generator.resolve.identity import flow_records
from generator.resolve.timeline import IpTimeline
from recorder.schema import IpTimelineRecord, LogRecord, NameBinding, dns_name

SECOND = 1_000_000_000
GRACE_NS = 30 * SECOND

# How a connection got its names.
BY_SOURCE = "source"  # the flow's own destination_names (Hubble)
BY_CLIENT = "client"  # an answer to the same client address
BY_NAMESPACE = "namespace"  # an answer to another client of the same namespace
BY_ANYONE = "anyone"  # an answer to some other client
# Why a connection has none.
NEVER_RESOLVED = "no DNS answer in the inputs named this address"
EXPIRED = ("DNS answers named this address, but none held when the connection was made "
           "(they came later, or their TTL and the grace period had run out)")


@dataclass(frozen=True, slots=True)
class Binding:
    """A name bound to an address for a client, from ``first_seen`` to ``valid_to``
    (the last answer's TTL plus GRACE_NS), in ns."""

    name: str
    address: str
    client_ip: str
    client_namespace: str | None
    first_seen: int
    valid_to: int
    answers: int


@dataclass(frozen=True, slots=True)
class ExternalAddress:
    """What the recording says about one external address a workload connected to:
    the connections per name set (``()``: unnamed) and why some had no name."""

    address: str
    by_names: tuple[tuple[tuple[str, ...], int], ...]
    unnamed_reason: str | None = None


@dataclass(frozen=True, slots=True)
class NamesResult:
    connections: tuple[Connection, ...]
    index: "NameIndex"
    addresses: tuple[ExternalAddress, ...]
    stats: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


class NameIndex:
    """The bindings per address, ordered by their first answer; ``lookup`` answers
    which names an address stood for, for a client, at a time."""

    def __init__(self, bindings: Sequence[Binding]) -> None:
        by_address: dict[str, list[Binding]] = defaultdict(list)
        for b in bindings:
            by_address[b.address].append(b)
        self._by_address = {a: sorted(bs, key=lambda b: (b.first_seen, b.name, b.client_ip))
                            for a, bs in by_address.items()}
        self._starts = {a: [b.first_seen for b in bs] for a, bs in self._by_address.items()}

    def __len__(self) -> int:
        return sum(len(bs) for bs in self._by_address.values())

    def bindings(self) -> list[Binding]:
        return [b for a in sorted(self._by_address) for b in self._by_address[a]]

    def knows(self, address: str) -> bool:
        return address in self._by_address

    def lookup(self, address: str, t: int, client_ip: str, client_namespace: str | None
               ) -> tuple[tuple[str, ...], str | None]:
        """(names, how) for a connection to ``address`` at ``t`` from ``client_ip`` (of
        ``client_namespace``): the names of the nearest circle of clients (the client,
        its namespace, anyone) with a binding that holds at ``t``, most recent first.
        ((), None) when none holds."""
        bindings = self._by_address.get(address)
        if not bindings:
            return (), None
        end = bisect.bisect_right(self._starts[address], t)
        holding = [b for b in reversed(bindings[:end]) if b.valid_to >= t]
        if not holding:
            return (), None
        for how, keep in ((BY_CLIENT, lambda b: b.client_ip == client_ip),
                          (BY_NAMESPACE, lambda b: client_namespace is not None
                           and b.client_namespace == client_namespace),
                          (BY_ANYONE, lambda b: True)):
            names = tuple(dict.fromkeys(b.name for b in holding if keep(b)))
            if names:
                return names, how
        return (), None  # pragma: no cover - BY_ANYONE keeps every binding


def _bindings(records: Sequence[LogRecord], index: InventoryIndex,
              timeline_records: Sequence[IpTimelineRecord]) -> list[Binding]:
    names = [r for r in records if isinstance(r, NameBinding)]
    if not names:
        return []
    # The client's namespace: what the source said (Hubble), else who held the address
    # at the time of the answer.
    unknown = [r for r in names if r.client.namespace is None]
    holders = IpTimeline(index.inventory.pods, timeline_records).lookup(
        [r.client_ip for r in unknown], [r.first_seen for r in unknown]) if unknown else []
    namespace_of = {id(r): (h.namespace if h is not None and not h.host_network else None)
                    for r, h in zip(unknown, holders)}
    return [Binding(r.name, r.address, r.client_ip,
                    r.client.namespace if r.client.namespace is not None
                    else namespace_of[id(r)],
                    r.first_seen, r.last_seen + r.ttl * SECOND + GRACE_NS, r.count)
            for r in names]


def attribute_names(connections: Sequence[Connection], records: Sequence[LogRecord],
                    index: InventoryIndex) -> NamesResult:
    """Names on the connections to EXTERNAL addresses (see the module docstring)."""
    timeline_records = [r for r in records if isinstance(r, IpTimelineRecord)]
    name_index = NameIndex(_bindings(records, index, timeline_records))
    flows = flow_records(records)
    stats: Counter = Counter()
    invalid: set[str] = set()
    source_names: dict[int, tuple[str, ...]] = {}
    out: list[Connection] = []
    per_address: dict[str, Counter] = defaultdict(Counter)
    unnamed_seen: dict[str, bool] = {}  # address -> whether some binding ever named it
    for c in connections:
        if c.dst.kind != EXTERNAL:
            out.append(c)
            continue
        said = source_names.get(c.flow_id)
        if said is None:
            said = source_names[c.flow_id] = _canonical(flows[c.flow_id].dst.names
                                                         if 0 <= c.flow_id < len(flows)
                                                         else (), invalid)
        if said:
            sightings = [(said, BY_SOURCE, c.count)]
        else:
            namespace = c.src.namespace if c.src.kind == WORKLOAD else None
            first = name_index.lookup(c.dst_ip, c.first_seen, c.src_ip, namespace)
            last = (name_index.lookup(c.dst_ip, c.last_seen, c.src_ip, namespace)
                    if c.last_seen != c.first_seen else first)
            sightings = [(first[0], first[1], c.count)]
            if last[0] != first[0]:
                stats["aggregates-spanning-a-name-change"] += 1
                sightings.append((last[0], last[1], c.count))
        for names, how, count in sightings:
            names = tuple(sorted(names))
            out.append(dataclasses.replace(c, names=names) if names else c)
            per_address[c.dst_ip][names] += count
            if names:
                stats[f"connections-named-by-{how}"] += count
                if len(names) > 1:
                    stats["connections-with-several-names"] += count
            else:
                stats["connections-unnamed"] += count
                unnamed_seen[c.dst_ip] = name_index.knows(c.dst_ip)
    addresses = tuple(
        ExternalAddress(address, tuple(sorted(counts.items())),
                        None if address not in unnamed_seen
                        else EXPIRED if unnamed_seen[address] else NEVER_RESOLVED)
        for address, counts in sorted(per_address.items()))
    stats.update({"name-records": sum(1 for r in records if isinstance(r, NameBinding)),
                  "names": len({b.name for b in name_index.bindings()}),
                  "addresses-named": sum(1 for a in addresses
                                         if any(n for n, _ in a.by_names)),
                  "addresses-unnamed": sum(1 for a in addresses
                                           if not any(n for n, _ in a.by_names)),
                  "grace-period-seconds": GRACE_NS // SECOND})
    warnings = []
    if invalid:
        stats["names-refused"] = len(invalid)
        warnings.append(
            f"{len(invalid)} DNS name(s) on flows are no host names and were left out: "
            + ", ".join(sorted(repr(n) for n in invalid)[:5]))
    return NamesResult(tuple(out), name_index, addresses, dict(sorted(stats.items())),
                       tuple(warnings))


def _canonical(raw: tuple[str, ...], invalid: set[str]) -> tuple[str, ...]:
    """A source's names (Hubble's destination_names) in canonical form, sorted."""
    out = set()
    for text in raw:
        name = dns_name(text)
        if name is None:
            invalid.add(text[:80])
        else:
            out.add(name)
    return tuple(sorted(out))
