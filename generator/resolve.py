"""Resolve flow records to workloads, at the time each flow happened.

Order of evidence per endpoint (first that answers wins):
1. what the source itself says (Hubble identity: reserved:host, pod name, labels,
   workload) — recorded at the moment of the flow;
2. the IP timeline (recorder IP records, then snapshot pods) at the flow's time;
3. node addresses, Service ClusterIPs (expanded to backends on the targetPort);
4. addresses inside the cluster's pod CIDRs that no pod held -> unresolved (reported);
   anything else -> external.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from generator.edges import (
    APISERVER, EXTERNAL, NODE, WORKLOAD, Connection, Edge, Peer, PeerIds, PodView,
)
from generator.inventory.index import InventoryIndex
from generator.inventory.model import Pod
from generator.timeline import Holder, IpTimeline
from recorder.schema import NO_HINTS, EndpointHints, FlowRecord, IpTimelineRecord, LogRecord
from recorder.sources.fastrecord import slots_maker


@dataclass(frozen=True, slots=True)
class UnresolvedFlow:
    side: str  # "source" or "destination"
    ip: str
    port: int | None
    protocol: str
    other_ip: str
    count: int
    first_seen: int
    last_seen: int
    input: str
    reason: str


@dataclass(frozen=True, slots=True)
class ResolveResult:
    connections: tuple[Connection, ...]
    unresolved: tuple[UnresolvedFlow, ...]
    warnings: tuple[str, ...]
    stats: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Side:
    peer: Peer
    pod: PodView | None
    port: int | None = None  # destination side: the backend's targetPort when expanded
    service: tuple[str, str] | None = None  # destination side: the Service it came through


# One Connection per flow aggregate: a frozen dataclass's keyword __init__ costs
# several times what filling its slots does.
_new_connection = slots_maker(
    Connection, "src", "dst", "protocol", "port", "src_ip", "dst_ip", "src_pod", "dst_pod",
    "count", "first_seen", "last_seen", "inputs", "service", "service_port", "flow_id")

_HINT_PEER_KINDS = {"host": NODE, "remote-node": NODE, "world": EXTERNAL,
                    "kube-apiserver": APISERVER}


def pod_view(pod: Pod) -> PodView:
    return PodView(
        namespace=pod.namespace, name=pod.name, labels=pod.labels,
        named_ports=tuple(sorted((p.name, p.protocol, p.port) for p in pod.ports if p.name)),
        ip=pod.ips[0] if pod.ips else None, host_network=pod.host_network, node=pod.node,
    )


class _Resolver:
    def __init__(self, index: InventoryIndex, timeline: IpTimeline):
        self.index = index
        self.timeline = timeline
        self.cidrs = tuple(index.pod_cidrs())
        self.warnings: list[str] = []
        self.stats: Counter = Counter()
        self._hint_cache: dict[tuple, _Side | None] = {}
        # In front of it, by the hints' identity: EndpointHints' dataclass hash walks
        # its labels in Python on every call, and the aggregated records share one
        # hints object per endpoint (the aggregator interns them). Each entry holds
        # its hints object, so that the id stays unique.
        self._hint_by_id: dict[tuple, tuple[EndpointHints, _Side | None]] = {}

    # -- building blocks -------------------------------------------------------
    def node_peer(self, ip: str) -> Peer:
        node = self.index.node_by_ip(ip)
        return Peer(NODE, ip=ip, node_name=node.name if node else None)

    def in_cluster_range(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr.version == n.version and addr in n for n in self.cidrs)

    def from_pod(self, pod: Pod) -> _Side:
        if pod.host_network:
            return _Side(self.node_peer(pod.ips[0] if pod.ips else ""), None)
        wl = self.index.workload_of(pod)
        return _Side(Peer(WORKLOAD, wl.namespace, wl.kind, wl.name), pod_view(pod))

    def from_holder(self, ip: str, h: Holder) -> _Side | str:
        if h.host_network:
            return _Side(self.node_peer(ip), None)
        pod = self.index.pod(h.namespace, h.pod)
        if pod is not None and ip in pod.ips:
            return self.from_pod(pod)
        owner = (h.owner.kind, h.owner.name) if h.owner else None
        wl = self.index.workload_for_hints(h.namespace, h.labels, owner, h.pod)
        if wl is None:
            return (f"pod {h.namespace}/{h.pod} held {ip} then, but it is not in the "
                    "snapshot and no workload in it matches its labels")
        self.stats["attributed-by-ip-timeline-dead-pod"] += 1
        return _Side(Peer(WORKLOAD, wl.namespace, wl.kind, wl.name),
                     PodView(h.namespace, h.pod, h.labels, (), ip, False, h.node))

    def hint(self, ip: str, hints: EndpointHints, is_destination: bool) -> _Side | None:
        """``from_hints``, cached: aggregates of one pod repeat the same hints."""
        if hints is NO_HINTS:
            return None
        id_key = (ip, id(hints), is_destination)
        hit = self._hint_by_id.get(id_key)
        if hit is not None and hit[0] is hints:
            return hit[1]
        key = (ip, hints, is_destination)
        try:
            side = self._hint_cache[key]
        except KeyError:
            side = self._hint_cache[key] = self.from_hints(ip, hints, is_destination)
        self._hint_by_id[id_key] = (hints, side)
        return side

    def from_hints(self, ip: str, hints: EndpointHints, is_destination: bool
                   ) -> _Side | None:
        """None = the hints do not decide."""
        kind = _HINT_PEER_KINDS.get(hints.peer_kind or "")
        # Cilium labels a control-plane node's address kube-apiserver as well as host:
        # connecting to it is calling the API server, coming from it is the node
        # (kubelet probes, hostNetwork pods).
        if kind == APISERVER and not is_destination and self.index.node_by_ip(ip):
            kind = NODE
        if kind == NODE:
            return _Side(self.node_peer(ip), None)
        if kind == APISERVER:
            return _Side(Peer(APISERVER, ip=ip), None)
        if kind == EXTERNAL and not self.in_cluster_range(ip):
            return _Side(Peer(EXTERNAL, ip=ip), None)
        if hints.namespace is None or (hints.pod is None and not hints.labels
                                       and hints.workload is None):
            return None
        if hints.pod is not None:
            pod = self.index.pod(hints.namespace, hints.pod)
            if pod is not None:
                return self.from_pod(pod)
        owner = (hints.workload.kind, hints.workload.name) if hints.workload else None
        wl = self.index.workload_for_hints(hints.namespace, hints.labels, owner, hints.pod)
        if wl is None:
            return None  # let the timeline try; the source's identity was not enough
        self.stats["pods-gone-attributed-by-source-identity"] += 1
        return _Side(Peer(WORKLOAD, wl.namespace, wl.kind, wl.name),
                     PodView(hints.namespace, hints.pod or "", hints.labels, (), ip))

    def from_address(self, ip: str, holder: Holder | None) -> _Side | str:
        if holder is not None:
            return self.from_holder(ip, holder)
        if self.index.node_by_ip(ip) is not None:
            return _Side(self.node_peer(ip), None)
        if self.in_cluster_range(ip):
            return (f"{ip} is inside the cluster's pod CIDRs but no pod held it at that "
                    "time (pod gone before the snapshot and no IP timeline record)")
        return _Side(Peer(EXTERNAL, ip=ip), None)


def resolve(records: Iterable[LogRecord], index: InventoryIndex) -> ResolveResult:
    flows: list[FlowRecord] = []
    timeline_records: list[IpTimelineRecord] = []
    for rec in records:
        if isinstance(rec, FlowRecord):
            flows.append(rec)
        else:
            timeline_records.append(rec)
    timeline = IpTimeline(index.inventory.pods, timeline_records)
    r = _Resolver(index, timeline)

    # What each side's source identity settles needs no timeline; every other address
    # goes into one vectorised timeline join, at its first and last sighting.
    q_ips: list[str] = []
    q_times: list[int] = []
    plans: list[tuple] = []
    for f in flows:
        src_hint = r.hint(f.src_ip, f.src, False)
        svc = None
        if f.xlated_ip is None and f.dst_port is not None:
            svc = index.service_by_ip(f.server_ip)
        dst_hint = r.hint(f.server_ip, f.dst, True) if svc is None else None
        q_src = q_dst = -1
        if src_hint is None:
            q_src = len(q_ips)
            q_ips += [f.src_ip, f.src_ip]
            q_times += [f.first_seen, f.last_seen]
        if svc is None and dst_hint is None:
            q_dst = len(q_ips)
            q_ips += [f.server_ip, f.server_ip]
            q_times += [f.first_seen, f.last_seen]
        plans.append((src_hint, dst_hint, svc, q_src, q_dst))
    holders = timeline.lookup(q_ips, q_times)

    connections: list[Connection] = []
    unresolved: list[UnresolvedFlow] = []
    untimed = 0
    by_identity = 0
    for i, f in enumerate(flows):
        if not f.time_known:
            untimed += f.count
        src_hint, dst_hint, svc_hit, q_src, q_dst = plans[i]
        by_identity += (src_hint is not None) + (dst_hint is not None)
        if src_hint is not None:
            src_sides, src_why = [src_hint], None
        else:
            src_sides, src_why = _resolve_address(r, f.src_ip, holders[q_src],
                                                  holders[q_src + 1])
        if svc_hit is not None:
            dst_sides, dst_why = _expand_service(r, svc_hit, f)
        elif dst_hint is not None:
            dst_sides, dst_why = [dst_hint], None
        else:
            dst_sides, dst_why = _resolve_address(r, f.server_ip, holders[q_dst],
                                                  holders[q_dst + 1])
        if src_why is not None or dst_why is not None:
            _report_unresolved(unresolved, f, src_sides, src_why, dst_sides, dst_why)
        if not src_sides or not dst_sides:
            continue
        svc = (f.service.namespace, f.service.name) if f.service else None
        for s in src_sides:
            for d in dst_sides:
                connections.append(_new_connection(
                    s.peer, d.peer, f.protocol,
                    d.port if d.port is not None else f.server_port,  # port
                    f.src_ip, d.pod.ip if d.pod and d.pod.ip else f.server_ip,  # src/dst ip
                    s.pod, d.pod, f.count, f.first_seen, f.last_seen,
                    (f.input,) if f.input else (),  # inputs
                    svc or d.service,  # service
                    f.dst_port if (f.xlated_ip or svc or d.service) else None,  # service_port
                    i,  # flow_id
                ))
    if flows:
        r.stats["sides-attributed-by-source-identity"] += by_identity
    if untimed:
        r.warnings.append(
            f"{untimed} flow(s) came from inputs without time (conntrack -L dumps): they "
            "were attributed with the snapshot, so time-aware attribution was not possible")
    stats = dict(sorted(r.stats.items()))
    stats.update(flows=len(flows), timeline_records=len(timeline_records),
                 connections=len(connections), unresolved=len(unresolved))
    return ResolveResult(tuple(connections), tuple(unresolved), tuple(r.warnings), stats)


def _report_unresolved(unresolved: list[UnresolvedFlow], f: FlowRecord,
                       src_sides: list[_Side], src_why: str | None,
                       dst_sides: list[_Side], dst_why: str | None) -> None:
    for side_name, sides, why, ip, port in (
            ("source", src_sides, src_why, f.src_ip, None),
            ("destination", dst_sides, dst_why, f.server_ip, f.server_port)):
        if why is not None:
            if sides:  # some of the aggregate was attributed, some not
                why = ("part of this aggregate (how many connections is unknown): "
                       + why)
            unresolved.append(UnresolvedFlow(
                side_name, ip, port, f.protocol,
                f.server_ip if side_name == "source" else f.src_ip,
                f.count, f.first_seen, f.last_seen, f.input, why))


def _resolve_address(r: _Resolver, ip: str, h_first: Holder | None, h_last: Holder | None
                     ) -> tuple[list[_Side], str | None]:
    """The peers an address was over an aggregate, and why (part of) it is unresolved."""
    first = r.from_address(ip, h_first)
    if h_last is h_first or h_last is None:
        return ([], first) if isinstance(first, str) else ([first], None)
    # The aggregate spans an IP hand-over: the first sighting was the earlier holder's
    # connection and the last one the later holder's; both really talked.
    r.stats["aggregates-spanning-ip-reuse"] += 1
    last = r.from_address(ip, h_last)
    sides = [x for x in (first, last) if isinstance(x, _Side)]
    reasons = [x for x in (first, last) if isinstance(x, str)]
    return sides, (reasons[0] if reasons else None)


def _expand_service(r: _Resolver, svc, f: FlowRecord) -> tuple[list[_Side], str | None]:
    """A ClusterIP destination: every backend may have served it, on its targetPort."""
    result = r.index.backends(svc, f.dst_port, f.protocol)
    for w in result.warnings:
        if w not in r.warnings:
            r.warnings.append(w)
    sides: list[_Side] = []
    for b in result.backends:
        pod = r.index.pod(b.namespace, b.pod_name) if b.pod_name else None
        if pod is not None:
            side = r.from_pod(pod)
        else:
            holders = r.timeline.lookup([b.ip], [f.first_seen])
            side = r.from_address(b.ip, holders[0])
            if isinstance(side, str):
                continue
        sides.append(_Side(side.peer, side.pod, b.target_port, (svc.namespace, svc.name)))
    r.stats["service-flows-expanded-to-backends"] += 1
    if not sides:
        return [], (f"Service {svc.namespace}/{svc.name} ({f.dst_ip}:{f.dst_port}/{f.protocol}) "
                "has no backends in the snapshot to map to a targetPort")
    return sides, None


def aggregate_edges(connections: Iterable[Connection]) -> tuple[Edge, ...]:
    """Group connections by (source peer, destination peer, protocol, port)."""
    acc: dict[tuple, list] = {}
    counted: set[tuple] = set()
    peer_id = PeerIds()
    for c in connections:
        key = (peer_id(c.src), peer_id(c.dst), c.protocol, c.port)
        first_for_flow = c.flow_id < 0 or (key, c.flow_id) not in counted
        counted.add((key, c.flow_id))
        a = acc.get(key)
        if a is None:
            acc[key] = [c.count, c.first_seen, c.last_seen, set(c.inputs),
                        {c.service} if c.service else set(), c.src, c.dst]
        else:
            if first_for_flow:
                a[0] += c.count
            if c.first_seen < a[1]:
                a[1] = c.first_seen
            if c.last_seen > a[2]:
                a[2] = c.last_seen
            a[3].update(c.inputs)
            if c.service:
                a[4].add(c.service)
    edges = [
        Edge(a[5], a[6], proto, port, a[0], a[1], a[2], tuple(sorted(a[3])), tuple(sorted(a[4])))
        for (_, _, proto, port), a in acc.items()
    ]
    edges.sort(key=lambda e: (e.src, e.dst, e.protocol, e.port if e.port is not None else -1))
    return tuple(edges)
