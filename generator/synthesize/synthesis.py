"""Edges -> the policy model (``generator.synthesize.model``), each rule with its evidence.

Per workload in scope one policy: ingress from each observed client, egress to each
observed server, ports merged per peer, plus ingress from the API server on every
targetPort the cluster declares it calls (webhooks, aggregated APIs, conversion
webhooks: ``generator.inventory.declared``), observed or not. Per namespace a
default-deny baseline with DNS (unless --no-default-deny, in which case each workload
policy carries DNS itself, since its egress isolation restricts DNS too).

Workloads the recording never showed (``idle``) are not isolated on that non-evidence:
each is held out of the baseline by a policy of its own that allows everything, unless
--isolate-idle. ``synthesize`` then renders the model in the requested dialect
(``generator.synthesize.render``).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field, replace

from generator.inventory.cron import in_window
from generator.inventory.declared import (
    ApiServerAddresses, ApiServerSource, DeclaredProblem, DeclaredTarget,
)
from generator.inventory.index import InventoryIndex, WorkloadRef
from generator.resolve.edges import APISERVER, EXTERNAL, NODE, WORKLOAD, Edge, Peer
from generator.resolve.external_snat import external_snat_warnings
from generator.synthesize import model as m
from generator.synthesize.render import DIALECTS, PolicyDoc, RenderOptions, render_policies
from generator.verify.policy import EGRESS, INGRESS, NetworkPolicy, parse_each
from generator.verify.selectors import matches
from recorder.timefmt import format_time

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
    isolate_idle: bool = False  # --isolate-idle: the baseline isolates idle workloads too
    declared: bool = True  # allow what the cluster declares the API server calls
    render: RenderOptions = RenderOptions()  # what the dialect's renderer takes besides


# What became of a declared API server call (``DeclaredUse.status``).
DECLARED_RULE = "rule written"
DECLARED_HELD_OUT = "not needed: the backend is held out of default-deny (idle)"
DECLARED_NOT_ISOLATED = "not needed: nothing isolates the backend"
DECLARED_OUT_OF_SCOPE = "out of scope: no policy is written for its namespace"
DECLARED_NO_SOURCE = "no rule: where the API server calls from is unknown (--apiserver-cidr)"
DECLARED_NO_SELECTOR = "no rule: no label selects the backend's pods alone"


@dataclass(frozen=True, slots=True)
class DeclaredUse:
    """One backend port the API server is declared to call, and what synthesis made of
    it: ``status``, ``calls``: the observed connections to that port (from any source)
    and ``admits``: the peers the rule admits for it."""

    target: DeclaredTarget
    status: str
    calls: int
    admits: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelResult:
    """The model of the namespaces in scope, and what synthesis could not put in it."""

    model: m.PolicyModel
    warnings: tuple[str, ...]
    skipped_edges: tuple[tuple[str, str], ...]  # (edge display, reason)
    node_peers: tuple[str, ...]
    external_peers: tuple[str, ...]
    idle_workloads: tuple[str, ...]  # in scope, no observed traffic (model.idle: what happens)
    dns: dict = field(default_factory=dict)
    declared: tuple[DeclaredUse, ...] = ()
    declared_problems: tuple[DeclaredProblem, ...] = ()  # declarations no rule is written for
    apiserver: ApiServerAddresses | None = None


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    """The model and its rendering in one dialect (``policies``)."""

    policies: tuple[PolicyDoc, ...]
    namespaces: tuple[str, ...]
    warnings: tuple[str, ...]
    skipped_edges: tuple[tuple[str, str], ...]  # (edge display, reason)
    node_peers: tuple[str, ...]
    external_peers: tuple[str, ...]
    idle_workloads: tuple[str, ...]  # in scope, no observed traffic (model.idle: what happens)
    dns: dict = field(default_factory=dict)
    model: m.PolicyModel | None = None
    declared: tuple[DeclaredUse, ...] = ()
    declared_problems: tuple[DeclaredProblem, ...] = ()
    apiserver: ApiServerAddresses | None = None


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
        # rule peer key of each source the API server calls from -> that source
        self.apiserver_sources: dict[tuple, ApiServerSource] = {
            (m.APISERVER, src.cidr): src for src in index.apiserver().sources}
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
            # an address of a --apiserver-cidr range is admitted as that range
            source = self.index.apiserver().source_of(peer.ip or "")
            key = (m.APISERVER, source.cidr if source is not None
                   else self.cidr(peer.ip, exact=True))
        else:
            key = (m.EXTERNAL, self.cidr(peer.ip, exact=False))
        self._peer_cache[peer] = key
        return key


# Declared ports of one workload's ingress: rule peer key -> (protocol, port) -> objects.
DeclaredPorts = dict[tuple, dict[tuple[str, int], list[m.Declared]]]


def _rules(s: _Synth, edges: list[Edge], direction: str,
           skipped: list[tuple[str, str]], declared: DeclaredPorts | None = None
           ) -> tuple[m.Rule, ...]:
    """One rule per peer the policy admits, its ports and their evidence; ``declared``
    adds ports the API server is declared to call (observed or not)."""
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
    for key, declared_ports in (declared or {}).items():
        ports, members, addresses, node_names = by_peer.setdefault(key, ({}, set(), set(), set()))
        source = s.apiserver_sources.get(key)
        if source is not None:
            members.add(source.display())
            addresses.update(source.addresses)
            node_names.update(source.node_names)
        for proto_port in declared_ports:
            ports.setdefault(proto_port, _Evidence())
    rules = []
    for key, (ports, members, addresses, node_names) in by_peer.items():
        if key[0] == m.WORKLOAD:
            peer = m.PolicyPeer(m.WORKLOAD, namespace=key[1], workload=key[3], selector=key[2],
                                members=tuple(sorted(members)))
        else:
            names = key[2] if key[0] == m.EXTERNAL and len(key) > 2 else tuple(sorted(node_names))
            peer = m.PolicyPeer(key[0], cidr=key[1], addresses=tuple(sorted(addresses)),
                                names=names, members=tuple(sorted(members)))
        why = (declared or {}).get(key, {})
        rules.append(m.Rule(peer, tuple(
            m.RulePort(m.PortSpec(proto, port), ports[(proto, port)].frozen(),
                       tuple(sorted(why.get((proto, port), ()), key=m.Declared.sort_key)))
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
        dns=built.dns, model=built.model, declared=built.declared,
        declared_problems=built.declared_problems, apiserver=built.apiserver)


def _when(ns: int) -> str:
    return format_time(ns)[:19] + "Z"


def _is_other_source(s: _Synth, peer: Peer) -> bool:
    """Whether an observed client of a declared port may be the API server calling from
    somewhere the EndpointSlice does not say: an outside address (a managed control
    plane's range), an API server address the snapshot does not list, or a pod of a
    system namespace (a konnectivity agent). Nodes are not: the kubelet probes pods
    from its node, often on the webhook's own port."""
    if peer.kind == EXTERNAL:
        return True
    if peer.kind == APISERVER:
        return s.index.apiserver().source_of(peer.ip or "") is None
    return peer.kind == WORKLOAD and peer.namespace in SYSTEM_NAMESPACES


def _declared_ports(s: _Synth, targets: list[DeclaredTarget], ins: list[Edge]
                    ) -> tuple[DeclaredPorts, dict[DeclaredTarget, tuple[int, tuple[str, ...]]]]:
    """The ports of one workload the API server is declared to call, by the rule peer
    that admits the call: the API server's addresses, unless calls were observed only
    from another source (``_is_other_source``) and no --apiserver-cidr was given, in
    which case the observed source is what the rule uses."""
    api = s.index.apiserver()
    out: DeclaredPorts = {}
    used: dict[DeclaredTarget, tuple[int, tuple[str, ...]]] = {}
    for t in targets:
        why = m.Declared(t.call.kind, t.call.name, t.call.webhook, t.call.failure_policy,
                         t.service)
        calls = [e for e in ins if e.protocol == t.protocol and e.port == t.port]
        from_api = [e for e in calls if e.src.kind == APISERVER and not _is_other_source(s, e.src)]
        others = [e for e in calls if _is_other_source(s, e.src)]
        if others and not from_api and not api.overridden:
            keys = {k: e.src.display() for e in others if (k := s.peer_key(e.src)) is not None}
        else:
            keys = {(m.APISERVER, src.cidr): src.display() for src in api.sources}
        for key in keys:
            out.setdefault(key, {}).setdefault((t.protocol, t.port), []).append(why)
        used[t] = (sum(e.count for e in calls), tuple(sorted(set(keys.values()))))
    return out, used


def _isolated_by(existing: tuple[NetworkPolicy, ...], namespace: str,
                 label_sets: list[dict[str, str]]) -> dict[str, list[str]]:
    """Direction ("ingress", "egress") -> existing policies that isolate a workload whose
    pods have one of ``label_sets``."""
    out: dict[str, list[str]] = {}
    for p in existing:
        if p.namespace != namespace or not any(matches(p.pod_selector, ls) for ls in label_sets):
            continue
        for kind, direction in ((INGRESS, "ingress"), (EGRESS, "egress")):
            if kind in p.policy_types:
                out.setdefault(direction, []).append(p.id)
    return out


def _idle_reason(index: InventoryIndex, ref: WorkloadRef,
                 window: tuple[int, int] | None) -> tuple[str, int | None]:
    """Why nothing was observed of a workload, and a CronJob's next run."""
    pods = index.pods_of(ref)
    controller = index.controller(ref)
    if ref.kind == "CronJob" and controller is not None and controller.schedule:
        zone = f" ({controller.time_zone})" if controller.time_zone else ""
        schedule = f"its schedule `{controller.schedule}`{zone}"
        if controller.suspended:
            return ("a CronJob suspended (spec.suspend) and not seen running, so its traffic "
                    "is unknown"), None
        if window is None:
            after = index.inventory.captured_at
            w = in_window(controller.schedule, after, after, controller.time_zone) \
                if after is not None else None
            return (f"a CronJob with no observed run; {w.error if w and w.error else schedule}"
                    + (f"; next run {_when(w.next_run)}" if w and w.next_run else "")), \
                w.next_run if w else None
        w = in_window(controller.schedule, window[0], window[1], controller.time_zone)
        if w.error:
            return f"a CronJob with no observed run; {w.error}", None
        span = f"during the recording ({_when(window[0])} to {_when(window[1])})"
        text = (f"{schedule} did not fire {span}" if w.fired == 0 else
                f"{schedule} fired {w.fired} time(s) {span}, but no run was seen")
        if w.next_run is not None:
            text += f"; next run {_when(w.next_run)}"
        return text, w.next_run
    if controller is not None and controller.replicas == 0:
        return "scaled to zero (spec.replicas 0): no pod ran during the recording", None
    if ref.kind == "Job":
        finished = {p.phase for p in pods if p.phase in ("Succeeded", "Failed")}
        if pods and len(finished) == 1 and all(p.phase in finished for p in pods):
            return f"a Job that finished ({finished.pop()}) with no observed connection", None
    return "no connection observed" + ("" if pods else " (and no pod in the snapshot)"), None


def _idle(s: _Synth, ref: WorkloadRef, window: tuple[int, int] | None,
          existing: tuple[NetworkPolicy, ...]) -> m.IdleWorkload:
    """What the baseline does to a workload nothing was observed of.

    Held out by default with a policy of its own that selects exactly its pods and
    allows everything (``ingress: [{}]``, ``egress: [{}]``). Policies are additive, so
    that exempts exactly those pods from the namespace's default-deny, and nothing else:
    a default-deny whose podSelector leaves them out (``NotIn`` on a label) would also
    leave out every other pod sharing that label value. Only where no label selects the
    workload alone is that impossible, and it is isolated like the rest, with a warning.
    Directions existing policies isolate already stay as they are (an allow-everything
    policy would open what they restrict)."""
    reason, next_run = _idle_reason(s.index, ref, window)
    opts = s.opts
    if not opts.default_deny:
        return m.IdleWorkload(ref.namespace, ref, reason, m.NOT_ISOLATED,
                              "no default-deny is written: nothing isolates it",
                              next_run=next_run)
    if opts.isolate_idle:
        return m.IdleWorkload(ref.namespace, ref, reason, m.ISOLATED,
                              "--isolate-idle: default-deny isolates it (DNS and what the API "
                              "server is declared to call stay allowed)", next_run=next_run)
    labels = [dict(p.labels) for p in s.index.pods_of(ref) if not p.host_network] \
        or [dict(s.index.template_labels(ref))]
    already = _isolated_by(existing, ref.namespace, labels)
    if len(already) == 2:
        ids = sorted({i for v in already.values() for i in v})
        return m.IdleWorkload(ref.namespace, ref, reason, m.ALREADY_ISOLATED,
                              f"existing policies ({', '.join(ids)}) isolate it for ingress "
                              "and egress already: flowpol's default-deny changes nothing for "
                              "it", next_run=next_run)
    choice = s.index.selector_for(ref)
    if choice.is_empty() or choice.also_selects:
        why = ("no stable label selects its pods" if choice.is_empty() else
               "its podSelector also selects " + ", ".join(w.display() for w in choice.also_selects))
        return m.IdleWorkload(ref.namespace, ref, reason, m.NOT_HELD_OUT,
                              f"{why}, so it cannot be held out of default-deny without "
                              "exempting other pods: default-deny isolates it; give its pods "
                              "a label of their own", next_run=next_run)
    directions = tuple(d for d in ("ingress", "egress") if d not in already)
    note = ("a policy of its own allows all its " + " and ".join(directions)
            + " until its traffic is observed; --isolate-idle isolates it")
    if already:
        note += "; " + ", ".join(f"{d} stays as existing policies {', '.join(v)} have it"
                                 for d, v in sorted(already.items()))
    return m.IdleWorkload(ref.namespace, ref, reason, m.HELD_OUT, note,
                          m.PodSelector(tuple(choice.match_labels),
                                        tuple(choice.match_expressions)),
                          None, directions, next_run)


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
    observed: set[tuple[str, str, str]] = set()  # every workload any edge shows
    # DNS evidence per namespace (default deny: one baseline) or per workload
    dns_evidence: dict[object, _Evidence] = defaultdict(_Evidence)
    node_peers: set[str] = set()
    external_peers: set[str] = set()
    for e in edges:
        for p in (e.src, e.dst):
            if p.kind == WORKLOAD:
                observed.add((p.namespace, p.workload_kind, p.workload_name))  # type: ignore[arg-type]
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

    # Workloads in scope nothing was observed of, and what the baseline does to them.
    window = (min(e.first_seen for e in edges), max(e.last_seen for e in edges)) \
        if edges else None
    existing, _ = parse_each(index.inventory.network_policies)  # unreadable: verify reports
    idle: dict[WorkloadRef, m.IdleWorkload] = {}
    for ref in index.workloads():
        if ref.namespace not in scope or (ref.namespace, ref.kind, ref.name) in observed:
            continue
        pods = index.pods_of(ref)
        if pods and all(p.host_network for p in pods):
            continue  # hostNetwork pods are their node: no NetworkPolicy applies
        idle[ref] = _idle(s, ref, window, existing)

    # What the API server is declared to call, per backend workload in scope.
    declared = index.declared_calls() if opts.declared else None
    targets: dict[Peer, list[DeclaredTarget]] = defaultdict(list)
    declared_uses: list[DeclaredUse] = []
    if declared is not None:
        for t in declared.targets:
            wl = t.workload
            item = idle.get(wl)
            if wl.namespace not in scope:
                declared_uses.append(DeclaredUse(t, DECLARED_OUT_OF_SCOPE, 0))
            elif item is not None and item.status == m.HELD_OUT and "ingress" in item.directions:
                declared_uses.append(DeclaredUse(t, DECLARED_HELD_OUT, 0))
            elif item is not None and item.status == m.NOT_ISOLATED:
                declared_uses.append(DeclaredUse(t, DECLARED_NOT_ISOLATED, 0))
            else:  # observed, or idle and isolated (by the baseline or existing policies)
                targets[Peer(WORKLOAD, wl.namespace, wl.kind, wl.name)].append(t)
        if targets and not s.index.apiserver().sources:
            s.warnings.extend(w for w in s.index.apiserver().warnings if w not in s.warnings)

    baselines: list[m.NamespaceBaseline] = []
    policies: list[m.WorkloadPolicy] = []
    idle_out: list[m.IdleWorkload] = []
    workloads = sorted(set(ingress) | set(egress) | set(targets))
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
                for t in targets.get(wl, ()):
                    declared_uses.append(DeclaredUse(t, DECLARED_NO_SELECTOR, 0))
                continue
            name = _policy_name(wl.workload_kind, wl.workload_name, taken)
            taken.add(name)
            ins, outs = ingress.get(wl, []), egress.get(wl, [])
            declared_ports, used = _declared_ports(s, targets.get(wl, []), ins)
            for t, (calls, admits) in used.items():
                declared_uses.append(DeclaredUse(
                    t, DECLARED_RULE if admits else DECLARED_NO_SOURCE, calls, admits))
            all_edges = ins + outs
            policies.append(m.WorkloadPolicy(
                namespace=ns,
                workload=WorkloadRef(ns, wl.workload_kind, wl.workload_name),
                selector=own_selector, name=name,
                ingress=_rules(s, ins, "ingress", skipped, declared_ports),
                egress=_rules(s, outs, "egress", skipped),
                dns=None if opts.default_deny else _dns_access(s, dns_evidence.get(wl)),
                edges_in=len(ins), edges_out=len(outs),
                connections=sum(e.count for e in all_edges),
                first_seen=min((e.first_seen for e in all_edges), default=None),
                last_seen=max((e.last_seen for e in all_edges), default=None)))
        for ref in sorted(r for r in idle if r.namespace == ns):
            item = idle[ref]
            if item.status == m.HELD_OUT:
                name = _policy_name(ref.kind, ref.name, taken)
                taken.add(name)
                item = replace(item, name=name)
            idle_out.append(item)

    isolated = [i for i in idle_out if i.status in (m.ISOLATED, m.NOT_HELD_OUT)]
    if isolated:
        s.warnings.append(
            f"{len(isolated)} workload(s) in scope had no observed traffic and are isolated by "
            "default-deny (DNS and declared API server calls only): "
            + ", ".join(f"{i.workload.display()} ({i.status})" for i in isolated[:10])
            + (" ..." if len(isolated) > 10 else ""))
    problems = declared.problems if declared is not None else ()
    return ModelResult(
        model=m.PolicyModel(tuple(sorted(scope)), tuple(baselines), tuple(policies),
                            tuple(idle_out)),
        warnings=tuple(s.warnings), skipped_edges=tuple(skipped),
        node_peers=tuple(sorted(node_peers)), external_peers=tuple(sorted(external_peers)),
        idle_workloads=tuple(i.workload.display() for i in idle_out),
        dns={"workloads": [f"{w.namespace}/{w.kind}/{w.name}" for w in dns_info.workloads],
             "node_local_ips": list(dns_info.node_local_ips),
             "udp_ports": list(dns_info.udp_ports), "tcp_ports": list(dns_info.tcp_ports)},
        declared=tuple(sorted(declared_uses, key=lambda u: u.target)),
        declared_problems=tuple(problems), apiserver=s.index.apiserver(),
    )
