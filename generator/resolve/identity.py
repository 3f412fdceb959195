"""Resolve flow records to workloads, at the time each flow happened.

Order of evidence per endpoint (first that answers wins):
1. what the source itself says (Hubble identity: reserved:host, pod name, labels,
   workload) — recorded at the moment of the flow;
2. the IP timeline (recorder IP records, then snapshot pods) at the flow's time;
3. node addresses, Service ClusterIPs (expanded to backends on the targetPort: pods,
   and backends that are no pods, at their own address; see ``_expand_service``);
4. addresses inside the cluster's pod CIDRs that no pod held -> unresolved (reported);
   anything else -> external.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from generator.resolve.edges import (
    APISERVER, EXTERNAL, NODE, WORKLOAD, Connection, Edge, Peer, PeerIds, PodView,
)
from generator.inventory.declared import APISERVER_SERVICE
from generator.inventory.index import InventoryIndex, WorkloadRef
from generator.inventory.model import Pod
from generator.resolve.timeline import Holder, IpTimeline
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
    # destination side, a backend that is no pod (a node, the API server, an outside
    # address): its address, which the CNI sees after the DNAT instead of the ClusterIP
    ip: str | None = None


# One Connection per flow aggregate: a frozen dataclass's keyword __init__ costs
# several times what filling its slots does.
_new_connection = slots_maker(
    Connection, "src", "dst", "protocol", "port", "src_ip", "dst_ip", "src_pod", "dst_pod",
    "count", "first_seen", "last_seen", "inputs", "service", "service_port", "flow_id")

_MISSING = object()

_HINT_PEER_KINDS = {"host": NODE, "remote-node": NODE, "world": EXTERNAL,
                    "kube-apiserver": APISERVER}


_new_pod_view = slots_maker(PodView, "namespace", "name", "labels", "named_ports", "ip",
                            "host_network", "node")


def pod_view(pod: Pod) -> PodView:
    return _new_pod_view(
        pod.namespace, pod.name, pod.labels,
        tuple(sorted((p.name, p.protocol, p.port) for p in pod.ports if p.name)),  # named_ports
        pod.ips[0] if pod.ips else None, pod.host_network, pod.node,  # ip, host_network, node
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
        # id(pod) -> (pod, its side): a pod is reached under several addresses and
        # hints (each side of each peer), and its PodView and Peer are the same each
        # time. Holding the pod keeps its id unique.
        self._pod_sides: dict[int, tuple[Pod, _Side]] = {}
        # One Peer per workload, shared by its pods' sides: equal peers that are the
        # same object are grouped by id (PeerIds) without hashing their fields.
        self._workload_peers: dict[tuple[str, str, str], Peer] = {}
        self._in_range: dict[str, bool] = {}
        self._apiservers: dict[str, Peer] = {}

    # -- building blocks -------------------------------------------------------
    def node_peer(self, ip: str) -> Peer:
        node = self.index.node_by_ip(ip)
        return Peer(NODE, ip=ip, node_name=node.name if node else None)

    def apiserver_peer(self, ip: str) -> Peer:
        """The API server as a destination: by address only (no node name), the same
        peer whether a source's identity or the kubernetes Service named it."""
        peer = self._apiservers.get(ip)
        if peer is None:
            peer = self._apiservers[ip] = Peer(APISERVER, ip=ip)
        return peer

    def in_cluster_range(self, ip: str) -> bool:
        # Remembered per address: address-only flows (conntrack, pcap) ask it for the
        # same addresses again and again, and ipaddress parses and compares in Python.
        inside = self._in_range.get(ip)
        if inside is None:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                inside = False
            else:
                inside = any(addr.version == n.version and addr in n for n in self.cidrs)
            self._in_range[ip] = inside
        return inside

    def workload_peer(self, wl: WorkloadRef) -> Peer:
        key = (wl.namespace, wl.kind, wl.name)
        peer = self._workload_peers.get(key)
        if peer is None:
            peer = self._workload_peers[key] = Peer(WORKLOAD, wl.namespace, wl.kind, wl.name)
        return peer

    def from_pod(self, pod: Pod) -> _Side:
        hit = self._pod_sides.get(id(pod))
        if hit is not None and hit[0] is pod:
            return hit[1]
        if pod.host_network:
            side = _Side(self.node_peer(pod.ips[0] if pod.ips else ""), None)
        else:
            wl = self.index.workload_of(pod)
            side = _Side(self.workload_peer(wl), pod_view(pod))
        self._pod_sides[id(pod)] = (pod, side)
        return side

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
        return _Side(self.workload_peer(wl),
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
            return _Side(self.apiserver_peer(ip), None)
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
        return _Side(self.workload_peer(wl),
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


def flow_records(records: Sequence[LogRecord]) -> list[FlowRecord]:
    """The flows among ``records``; a Connection's ``flow_id`` indexes this list."""
    return [rec for rec in records if isinstance(rec, FlowRecord)]


def resolve(records: Iterable[LogRecord], index: InventoryIndex) -> ResolveResult:
    records = records if isinstance(records, (list, tuple)) else list(records)
    flows = flow_records(records)
    timeline_records: list[IpTimelineRecord] = (
        [rec for rec in records if isinstance(rec, IpTimelineRecord)]
        if len(flows) < len(records) else [])
    timeline = IpTimeline(index.inventory.pods, timeline_records)
    r = _Resolver(index, timeline)

    # The loops below run once per flow aggregate (tens of thousands): the common
    # cases of r.hint (a hit in its table by id) and of index.service_by_ip (a
    # repeated address) are done inline, and FlowRecord.server_ip/server_port (Python
    # properties) are spelled out. The full calls answer everything else.
    hint_by_id = r._hint_by_id
    service_of: dict[str, object] = {}

    # A flow whose two ends the source identified (every flow of a Hubble input) is
    # connected right away. Every other flow waits for one vectorised timeline join of
    # the addresses its source did not identify, at their first and last sighting;
    # its connections then go where the flow's place in the order is.
    q_ips: list[str] = []
    q_times: list[int] = []
    waiting: list[tuple] = []  # (flow index, place in connections, plan)
    connections: list[Connection] = []
    untimed = 0
    by_identity = 0
    for i, f in enumerate(flows):
        if not f.time_known:
            untimed += f.count
        src_ip, hints = f.src_ip, f.src
        hit = hint_by_id.get((src_ip, id(hints), False))
        src_hint = hit[1] if hit is not None and hit[0] is hints else r.hint(src_ip, hints, False)
        server_ip = f.xlated_ip or f.dst_ip
        svc = None
        svc_port = f.dst_port
        if f.xlated_ip is None and f.dst_port is not None:
            svc = service_of.get(server_ip, _MISSING)
            if svc is _MISSING:
                svc = service_of[server_ip] = index.service_by_ip(server_ip)
            if svc is None:
                by_node_port = index.service_by_node_port(server_ip, f.dst_port, f.protocol)
                if by_node_port is not None:
                    svc, svc_port = by_node_port
        dst_hint = None
        if svc is None:
            hints = f.dst
            hit = hint_by_id.get((server_ip, id(hints), True))
            dst_hint = (hit[1] if hit is not None and hit[0] is hints
                        else r.hint(server_ip, hints, True))
            if src_hint is not None and dst_hint is not None:
                by_identity += 2
                connections.append(_connect(f, i, src_hint, dst_hint))
                continue
        q_src = q_dst = -1
        if src_hint is None:
            q_src = len(q_ips)
            q_ips += [src_ip, src_ip]
            q_times += [f.first_seen, f.last_seen]
        if svc is None and dst_hint is None:
            q_dst = len(q_ips)
            q_ips += [server_ip, server_ip]
            q_times += [f.first_seen, f.last_seen]
        elif svc is not None:
            # Backends that are no pod of the snapshot (a selector-less Service's own
            # EndpointSlices) are addresses too: their holders join the same lookup.
            q_dst = len(q_ips)
            for b in index.backends(svc, svc_port, f.protocol).backends:
                if not b.pod_name or index.pod(b.namespace, b.pod_name) is None:
                    q_ips.append(b.ip)
                    q_times.append(f.first_seen)
        waiting.append((i, len(connections), src_hint, dst_hint, svc, svc_port, q_src, q_dst))
    holders = timeline.lookup(q_ips, q_times)

    unresolved: list[UnresolvedFlow] = []
    if waiting:
        merged: list[Connection] = []
        done = 0  # connections of identified flows already in merged
        for i, place, src_hint, dst_hint, svc_hit, svc_port, q_src, q_dst in waiting:
            merged += connections[done:place]
            done = place
            f = flows[i]
            src_sides: Sequence[_Side]
            dst_sides: Sequence[_Side]
            if src_hint is not None:
                by_identity += 1
                src_sides, src_why = (src_hint,), None
            else:
                src_sides, src_why = _resolve_address(r, f.src_ip, holders[q_src],
                                                      holders[q_src + 1])
            if svc_hit is not None:
                dst_sides, dst_why = _expand_service(r, svc_hit, svc_port, f, holders, q_dst)
            elif dst_hint is not None:
                by_identity += 1
                dst_sides, dst_why = (dst_hint,), None
            else:
                dst_sides, dst_why = _resolve_address(r, f.xlated_ip or f.dst_ip,
                                                      holders[q_dst], holders[q_dst + 1])
            if src_why is not None or dst_why is not None:
                _report_unresolved(unresolved, f, src_sides, src_why, dst_sides, dst_why)
            merged += [_connect(f, i, s, d) for s in src_sides for d in dst_sides]
        merged += connections[done:]
        connections = merged
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


def _connect(f: FlowRecord, flow_id: int, s: _Side, d: _Side) -> Connection:
    """The connection of flow ``f`` from side ``s`` to side ``d``."""
    server_port = f.xlated_port if f.xlated_port is not None else f.dst_port
    svc = (f.service.namespace, f.service.name) if f.service else None
    return _new_connection(
        s.peer, d.peer, f.protocol,
        d.port if d.port is not None else server_port,  # port
        f.src_ip,
        d.pod.ip if d.pod and d.pod.ip else d.ip or f.xlated_ip or f.dst_ip,  # dst ip
        s.pod, d.pod, f.count, f.first_seen, f.last_seen,
        (f.input,) if f.input else (),  # inputs
        svc or d.service,  # service
        f.dst_port if (f.xlated_ip or svc or d.service) else None,  # service_port
        flow_id,
    )


def _report_unresolved(unresolved: list[UnresolvedFlow], f: FlowRecord,
                       src_sides: Sequence[_Side], src_why: str | None,
                       dst_sides: Sequence[_Side], dst_why: str | None) -> None:
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


def _expand_service(r: _Resolver, svc, port: int, f: FlowRecord, holders: list[Holder | None],
                    q_backends: int) -> tuple[list[_Side], str | None]:
    """A Service destination (its ClusterIP, external or load-balancer address, or a
    nodePort): every backend of its ``port`` may have served it, on its targetPort.
    ``holders[q_backends:]``: the holders of its non-pod backends' addresses at the
    flow's first sighting, in backend order (see ``resolve``).

    This is where a Service address becomes what NetworkPolicy is enforced on (BRIEF
    §2: after kube-proxy's DNAT, the backend's address and targetPort), for pods and
    for backends that are not pods alike: a node or API-server address of
    ``default/kubernetes``, an outside address of a selector-less Service's own
    EndpointSlice. Each connection carries the backend's address, so synthesis (which
    writes the rule from the peer) and every check (generate's own, ``verify``,
    ``diff``; they judge the connection's addresses) see the same endpoint. A flow seen
    before the DNAT does not say which backend took it, and kube-proxy may send the
    next one to any of them: it becomes one connection per backend (one ``flow_id``,
    counted once), so the rules must allow every backend, and a check that denies
    any of them reports it."""
    result = r.index.backends(svc, port, f.protocol)
    for w in result.warnings:
        if w not in r.warnings:
            r.warnings.append(w)
    sides: list[_Side] = []
    q = q_backends
    via = (svc.namespace, svc.name)
    for b in result.backends:
        pod = r.index.pod(b.namespace, b.pod_name) if b.pod_name else None
        if pod is not None:
            side = r.from_pod(pod)
        else:
            side = r.from_address(b.ip, holders[q])
            q += 1
            if isinstance(side, str):
                continue
        if side.pod is not None:
            sides.append(_Side(side.peer, side.pod, b.target_port, via))
            continue
        peer = side.peer
        if via == APISERVER_SERVICE:
            # A backend of default/kubernetes is the API server, whatever else its
            # address is (a control-plane node's): the peer Hubble names it
            # (reserved:kube-apiserver), so a recording with and one without the
            # source's identities give the same edge.
            peer = r.apiserver_peer(b.ip)
        sides.append(_Side(peer, None, b.target_port, via, b.ip))
    r.stats["service-flows-expanded-to-backends"] += 1
    if not sides:
        return [], (f"Service {svc.namespace}/{svc.name} ({f.dst_ip}:{f.dst_port}/{f.protocol}) "
                "has no backends in the snapshot to map to a targetPort")
    return sides, None


def aggregate_edges(connections: Iterable[Connection]) -> tuple[Edge, ...]:
    """Group connections by (source peer, destination peer, protocol, port, DNS names)."""
    acc: dict[tuple, list] = {}
    # flow_id -> the group key its count went to; a set of keys when one flow's
    # connections (a Service flow expanded to backends) fall into several groups.
    # Most flows give one connection: a dict by int is cheaper than a set of
    # (key, flow_id) pairs.
    counted: dict[int, tuple | set[tuple]] = {}
    peer_id = PeerIds()
    # PeerIds' table by id(), read here directly: two method calls per connection
    # were a third of this loop.
    by_id = peer_id._by_id
    for c in connections:
        src, dst = c.src, c.dst
        hit = by_id.get(id(src))
        sid = hit[1] if hit is not None else peer_id(src)
        hit = by_id.get(id(dst))
        did = hit[1] if hit is not None else peer_id(dst)
        key = (sid, did, c.protocol, c.port, c.names)
        flow = c.flow_id
        if flow < 0:
            first_for_flow = True
        else:
            seen = counted.get(flow)
            if seen is None:
                counted[flow] = key
                first_for_flow = True
            else:
                first_for_flow = _count_again(counted, flow, seen, key)
        a = acc.get(key)
        if a is None:
            acc[key] = [c.count, c.first_seen, c.last_seen, set(c.inputs),
                        {c.service} if c.service else set(), src, dst]
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
        Edge(a[5], a[6], proto, port, a[0], a[1], a[2], tuple(sorted(a[3])), tuple(sorted(a[4])),
             names)
        for (_, _, proto, port, names), a in acc.items()
    ]
    # Peers order as their fields do (Peer is order=True): compared as plain tuples
    # here, without a Python-level __eq__/__lt__ per comparison.
    fields = {id(p): (p.kind, p.namespace, p.workload_kind, p.workload_name, p.ip, p.node_name)
              for e in edges for p in (e.src, e.dst)}
    edges.sort(key=lambda e: (fields[id(e.src)], fields[id(e.dst)], e.protocol,
                              e.port if e.port is not None else -1, e.names))
    return tuple(edges)


def _count_again(counted: dict[int, tuple | set[tuple]], flow: int, seen: tuple | set[tuple],
                 key: tuple) -> bool:
    """Whether another connection of an already seen flow counts for ``key``: only
    when the flow has not counted for that group yet."""
    if type(seen) is set:
        if key in seen:
            return False
        seen.add(key)
        return True
    if seen == key:
        return False
    counted[flow] = {seen, key}
    return True
