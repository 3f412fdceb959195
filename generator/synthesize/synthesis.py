"""Edges -> the policy model (``generator.synthesize.model``), each rule with its evidence.

Per workload in scope one policy: ingress from each observed client, egress to each
observed server, ports merged per peer. Per namespace a default-deny baseline with DNS
(unless --no-default-deny, in which case each workload policy carries DNS itself, since
its egress isolation restricts DNS too). ``synthesize`` then renders the model in the
requested dialect (``generator.synthesize.render``).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field, replace

from generator.inventory.index import InventoryIndex, WorkloadRef
from generator.resolve.edges import APISERVER, EXTERNAL, NODE, WORKLOAD, Edge, Peer
from generator.resolve.external_snat import external_snat_warnings
from generator.synthesize import model as m
from generator.synthesize.render import DIALECTS, PolicyDoc, RenderOptions, render_policies

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
_MISSING = object()

__all__ = ["SYSTEM_NAMESPACES", "PolicyDoc", "SynthesisOptions", "SynthesisResult",
           "build_model", "is_dns_edge", "synthesize"]


@dataclass(frozen=True, slots=True)
class SynthesisOptions:
    default_deny: bool = True
    cidr_prefix_v4: int = 32
    cidr_prefix_v6: int = 128
    namespaces: tuple[str, ...] = ()  # explicit scope; empty = namespaces seen in flows
    exclude_namespaces: tuple[str, ...] = ()
    dialect: str = "kubernetes"  # a key of generator.synthesize.render.DIALECTS
    render: RenderOptions = RenderOptions()  # what the dialect's renderer takes besides


@dataclass(frozen=True, slots=True)
class ModelResult:
    """The model of the namespaces in scope, and what synthesis could not put in it."""

    model: m.PolicyModel
    warnings: tuple[str, ...]
    skipped_edges: tuple[tuple[str, str], ...]  # (edge display, reason)
    node_peers: tuple[str, ...]
    external_peers: tuple[str, ...]
    idle_workloads: tuple[str, ...]  # in scope, no observed traffic: isolated by deny
    dns: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    """The model and its rendering in one dialect (``policies``)."""

    policies: tuple[PolicyDoc, ...]
    namespaces: tuple[str, ...]
    warnings: tuple[str, ...]
    skipped_edges: tuple[tuple[str, str], ...]  # (edge display, reason)
    node_peers: tuple[str, ...]
    external_peers: tuple[str, ...]
    idle_workloads: tuple[str, ...]  # in scope, no observed traffic: isolated by deny
    dns: dict = field(default_factory=dict)
    model: m.PolicyModel | None = None


class _Evidence:
    """Evidence summed over the edges of one peer and port."""

    __slots__ = ("connections", "first", "last", "services", "inputs")

    def __init__(self) -> None:
        self.connections = 0
        self.first: int | None = None
        self.last: int | None = None
        self.services: set = set()
        self.inputs: set = set()

    def add(self, count: int, first: int, last: int, services, inputs) -> None:
        self.connections += count
        self.first = first if self.first is None or first < self.first else self.first
        self.last = last if self.last is None or last > self.last else self.last
        self.services.update(services)
        self.inputs.update(inputs)

    def frozen(self) -> m.Evidence | None:
        if self.first is None:
            return None
        return m.Evidence(self.connections, self.first, self.last,  # type: ignore[arg-type]
                          tuple(sorted(self.services)), tuple(sorted(self.inputs)))


class _Synth:
    def __init__(self, index: InventoryIndex, opts: SynthesisOptions):
        self.index = index
        self.opts = opts
        self.warnings: list[str] = []
        self._selector_cache: dict[Peer, m.PodSelector | None] = {}
        # Node and external peers repeat on many edges; ipaddress parsing is slow.
        self._cidr_cache: dict[tuple[str, bool], str] = {}
        self._peer_cache: dict[Peer, tuple | None] = {}

    def selector(self, peer: Peer) -> m.PodSelector | None:
        """The podSelector of a workload; None when no label singles it out (an empty
        selector would select the whole namespace, so such a workload gets no rule)."""
        sel = self._selector_cache.get(peer, _MISSING)
        if sel is not _MISSING:
            return sel  # type: ignore[return-value]
        choice = self.index.selector_for(
            WorkloadRef(peer.namespace, peer.workload_kind, peer.workload_name))
        for w in choice.warnings:
            if w not in self.warnings:
                self.warnings.append(w)
        sel = None if choice.is_empty() else m.PodSelector(
            tuple(choice.match_labels), tuple(choice.match_expressions))
        self._selector_cache[peer] = sel
        return sel

    def cidr(self, ip: str, exact: bool) -> str:
        text = self._cidr_cache.get((ip, exact))
        if text is not None:
            return text
        addr = ipaddress.ip_address(ip)
        if exact:
            prefix = 32 if addr.version == 4 else 128
        else:
            prefix = self.opts.cidr_prefix_v4 if addr.version == 4 else self.opts.cidr_prefix_v6
        text = self._cidr_cache[(ip, exact)] = str(
            ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
        return text

    def peer_key(self, peer: Peer) -> tuple | None:
        """What a rule admits for an observed peer, as a key: equal keys are one rule
        peer (several external addresses may share one aggregated CIDR). None when no
        label singles a workload out."""
        key = self._peer_cache.get(peer, _MISSING)
        if key is not _MISSING:
            return key  # type: ignore[return-value]
        if peer.kind == WORKLOAD:
            sel = self.selector(peer)
            key = None if sel is None else (m.WORKLOAD, peer.namespace, sel, WorkloadRef(
                peer.namespace, peer.workload_kind, peer.workload_name))
        elif peer.kind == NODE:
            key = (m.NODE, self.cidr(peer.ip, exact=True))
        elif peer.kind == APISERVER:
            key = (m.APISERVER, self.cidr(peer.ip, exact=True))
        else:
            key = (m.EXTERNAL, self.cidr(peer.ip, exact=False))
        self._peer_cache[peer] = key
        return key


def _rules(s: _Synth, edges: list[Edge], direction: str,
           skipped: list[tuple[str, str]]) -> tuple[m.Rule, ...]:
    """One rule per peer the policy admits, its ports and their evidence."""
    by_peer: dict[tuple, tuple[dict, set, set, set]] = {}
    for e in edges:
        other = e.src if direction == "ingress" else e.dst
        key = s.peer_key(other)
        if key is None:
            skipped.append((f"{e.src.display()} -> {e.dst.display()} {e.protocol}/{e.port}",
                            f"no label selects {other.display()} alone; no rule written"))
            continue
        if other.kind == EXTERNAL and direction == "egress":
            # One peer per set of DNS names: a dialect that admits names (toFQDNs) must
            # not admit by name what was connected to without one, and vice versa.
            key = (*key, e.names)
        ports, members, addresses, node_names = by_peer.setdefault(key, ({}, set(), set(), set()))
        members.add(other.display())
        if other.kind != WORKLOAD:
            addresses.add(other.ip)
            if other.node_name:
                node_names.add(other.node_name)
        ev = ports.get((e.protocol, e.port))
        if ev is None:
            ev = ports[(e.protocol, e.port)] = _Evidence()
        ev.add(e.count, e.first_seen, e.last_seen, e.services, e.inputs)
    rules = []
    for key, (ports, members, addresses, node_names) in by_peer.items():
        if key[0] == m.WORKLOAD:
            peer = m.PolicyPeer(m.WORKLOAD, namespace=key[1], workload=key[3], selector=key[2],
                                members=tuple(sorted(members)))
        else:
            names = key[2] if key[0] == m.EXTERNAL and len(key) > 2 else tuple(sorted(node_names))
            peer = m.PolicyPeer(key[0], cidr=key[1], addresses=tuple(sorted(addresses)),
                                names=names, members=tuple(sorted(members)))
        rules.append(m.Rule(peer, tuple(
            m.RulePort(m.PortSpec(proto, port), ports[(proto, port)].frozen())
            for proto, port in sorted(ports))))
    return tuple(sorted(rules, key=lambda r: r.peer))


def _dns_access(s: _Synth, evidence: _Evidence | None) -> m.DnsAccess | None:
    dns = s.index.dns_resolvers()
    resolvers = []
    for wl in dns.workloads:
        sel = s.selector(Peer(WORKLOAD, wl.namespace, wl.kind, wl.name))
        if sel is not None:
            resolvers.append(m.PolicyPeer(m.WORKLOAD, namespace=wl.namespace, workload=wl,
                                          selector=sel, members=(wl.display(),)))
    # node-local-dns is a hostNetwork listener: its addresses, the DNS Service's
    # ClusterIP included when it is one of them (see generator.inventory.dns.find_dns
    # for why that one is not left to the resolver workloads).
    if not resolvers and not dns.node_local_ips:
        return None
    return m.DnsAccess(
        resolvers=tuple(resolvers), node_local_ips=tuple(dns.node_local_ips),
        udp_ports=tuple(dns.udp_ports), tcp_ports=tuple(dns.tcp_ports),
        cluster_ips=tuple(dns.cluster_ips), node_local_source=dns.node_local_source,
        evidence=evidence.frozen() if evidence is not None else None)


def is_dns_edge(index: InventoryIndex, e: Edge) -> bool:
    """Traffic to the cluster resolver on a DNS port: it goes into the DNS rule."""
    dns = index.dns_resolvers()
    ports = dns.udp_ports if e.protocol == "UDP" else dns.tcp_ports if e.protocol == "TCP" else ()
    if e.port not in ports:
        return False
    if e.dst.kind == WORKLOAD:
        return any((w.namespace, w.kind, w.name) ==
                   (e.dst.namespace, e.dst.workload_kind, e.dst.workload_name)
                   for w in dns.workloads)
    return e.dst.ip in dns.node_local_ips


def _policy_name(kind: str, name: str, taken: set[str]) -> str:
    base = f"flowpol-{name}"
    if base in taken or base in ("flowpol-default-deny", "flowpol-allow-dns"):
        base = f"flowpol-{kind.lower()}-{name}"
    return base[:253]


def synthesize(edges: tuple[Edge, ...], index: InventoryIndex,
               opts: SynthesisOptions = SynthesisOptions()) -> SynthesisResult:
    """The model (``build_model``) rendered in ``opts.dialect``."""
    built = build_model(edges, index, opts)
    rendered = render_policies(built.model, opts.dialect, replace(
        opts.render, workload_nodes=_workload_nodes(built.model, index)))
    return SynthesisResult(
        policies=rendered.policies, namespaces=built.model.namespaces,
        warnings=built.warnings + tuple(w for w in rendered.warnings
                                        if w not in built.warnings),
        skipped_edges=built.skipped_edges, node_peers=built.node_peers,
        external_peers=built.external_peers, idle_workloads=built.idle_workloads,
        dns=built.dns, model=built.model)


def _workload_nodes(model: m.PolicyModel, index: InventoryIndex
                    ) -> dict[WorkloadRef, frozenset[str]]:
    """Where each workload's pods run (the snapshot's): Cilium tells a pod's own node
    (``host``) from the others (``remote-node``)."""
    out: dict[WorkloadRef, frozenset[str]] = {}
    for p in model.workloads:
        out[p.workload] = frozenset(pod.node for pod in index.pods_of(p.workload) if pod.node)
    return out


def build_model(edges: tuple[Edge, ...], index: InventoryIndex,
                opts: SynthesisOptions = SynthesisOptions()) -> ModelResult:
    if opts.dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {opts.dialect!r}")
    s = _Synth(index, opts)
    skipped: list[tuple[str, str]] = []

    seen_ns = {p.namespace for e in edges for p in (e.src, e.dst) if p.kind == WORKLOAD}
    if opts.namespaces:
        scope = set(opts.namespaces)
    else:
        scope = seen_ns - SYSTEM_NAMESPACES
    scope -= set(opts.exclude_namespaces)

    ingress: dict[Peer, list[Edge]] = defaultdict(list)
    egress: dict[Peer, list[Edge]] = defaultdict(list)
    # DNS evidence per namespace (default deny: one baseline) or per workload
    dns_evidence: dict[object, _Evidence] = defaultdict(_Evidence)
    node_peers: set[str] = set()
    external_peers: set[str] = set()
    for e in edges:
        label = f"{e.src.display()} -> {e.dst.display()} {e.protocol}/{e.port}"
        if e.port is None:
            skipped.append((label, "no port (ICMP): NetworkPolicy cannot allow ICMP alone; "
                                   "it is allowed only by rules without ports"))
            continue
        dns_edge = e.src.kind == WORKLOAD and is_dns_edge(index, e)
        # node-local-dns answers on node addresses, but the DNS rule covers it: no
        # node peer to flag for it
        for p in ((e.src,) if dns_edge else (e.src, e.dst)):
            if p.kind == NODE:
                node_peers.add(p.display())
            elif p.kind == EXTERNAL:
                external_peers.add(p.ip)
        if e.dst.kind == WORKLOAD and e.dst.namespace in scope:
            ingress[e.dst].append(e)
        if e.src.kind == WORKLOAD and e.src.namespace in scope:
            if dns_edge:
                dns_evidence[e.src.namespace if opts.default_deny else e.src].add(
                    e.count, e.first_seen, e.last_seen, (), e.inputs)
            else:
                egress[e.src].append(e)

    s.warnings.extend(w for w in external_snat_warnings(s.index, ingress) if w not in s.warnings)
    dns_info = s.index.dns_resolvers()
    if not dns_info.workloads and not dns_info.node_local_ips:
        s.warnings.append(
            "no cluster DNS resolver found in the snapshot (kube-dns Service in kube-system "
            "or node-local-dns): no DNS rule was written, and pods will fail DNS under "
            "egress isolation; add the resolver to the snapshot")
    else:
        # what the DNS rule may lack (a Service without 53/TCP, a backend that is no pod,
        # an assumed node-local-dns address): a reviewer of the rule must see it
        s.warnings.extend(w for w in dns_info.warnings if w not in s.warnings)

    baselines: list[m.NamespaceBaseline] = []
    policies: list[m.WorkloadPolicy] = []
    workloads = sorted(set(ingress) | set(egress))
    for ns in sorted(scope):
        taken: set[str] = set()
        if opts.default_deny:
            baselines.append(m.NamespaceBaseline(ns, _dns_access(s, dns_evidence.get(ns))))
        for wl in workloads:
            if wl.namespace != ns:
                continue
            own_selector = s.selector(wl)
            if own_selector is None:
                skipped.append((wl.display(), "no stable label selects this workload's pods "
                                              "alone; no policy written for it"))
                continue
            name = _policy_name(wl.workload_kind, wl.workload_name, taken)
            taken.add(name)
            ins, outs = ingress.get(wl, []), egress.get(wl, [])
            all_edges = ins + outs
            policies.append(m.WorkloadPolicy(
                namespace=ns,
                workload=WorkloadRef(ns, wl.workload_kind, wl.workload_name),
                selector=own_selector, name=name,
                ingress=_rules(s, ins, "ingress", skipped),
                egress=_rules(s, outs, "egress", skipped),
                dns=None if opts.default_deny else _dns_access(s, dns_evidence.get(wl)),
                edges_in=len(ins), edges_out=len(outs),
                connections=sum(e.count for e in all_edges),
                first_seen=min((e.first_seen for e in all_edges), default=None),
                last_seen=max((e.last_seen for e in all_edges), default=None)))

    covered = {(p.namespace, p.workload.kind, p.workload.name) for p in policies}
    idle = []
    for ref in index.workloads():
        if ref.namespace in scope and (ref.namespace, ref.kind, ref.name) not in covered:
            pods = index.pods_of(ref)
            if pods and all(p.host_network for p in pods):
                continue  # hostNetwork pods are their node: no NetworkPolicy applies
            idle.append(f"{ref.namespace}/{ref.kind}/{ref.name}")
    if idle and opts.default_deny:
        s.warnings.append(
            f"{len(idle)} workload(s) in scope had no observed traffic and will be fully "
            "isolated by default-deny (DNS only): " + ", ".join(idle[:10])
            + (" ..." if len(idle) > 10 else ""))
    return ModelResult(
        model=m.PolicyModel(tuple(sorted(scope)), tuple(baselines), tuple(policies)),
        warnings=tuple(s.warnings), skipped_edges=tuple(skipped),
        node_peers=tuple(sorted(node_peers)), external_peers=tuple(sorted(external_peers)),
        idle_workloads=tuple(idle),
        dns={"workloads": [f"{w.namespace}/{w.kind}/{w.name}" for w in dns_info.workloads],
             "node_local_ips": list(dns_info.node_local_ips),
             "udp_ports": list(dns_info.udp_ports), "tcp_ports": list(dns_info.tcp_ports)},
    )
