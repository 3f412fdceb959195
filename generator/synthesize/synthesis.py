"""Edges -> NetworkPolicy manifests, each rule with its evidence.

Per workload in scope one policy: ingress from each observed client, egress to each
observed server, ports merged per peer. Per namespace a default-deny and an allow-DNS
policy (unless --no-default-deny, in which case each workload policy carries the DNS
rule itself, since its Egress policyType restricts egress).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field

from generator.resolve.edges import APISERVER, EXTERNAL, NODE, WORKLOAD, Edge, Peer
from generator.resolve.external_snat import external_snat_warnings
from generator.inventory.dns import DnsResolvers
from generator.inventory.index import InventoryIndex, WorkloadRef
from generator.output.timetext import format_time_fast
from generator.output.yamlout import Commented

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
MANAGED_BY = {"app.kubernetes.io/managed-by": "flowpol"}
NS_NAME_LABEL = "kubernetes.io/metadata.name"
_MISSING = object()


@dataclass(frozen=True, slots=True)
class SynthesisOptions:
    default_deny: bool = True
    cidr_prefix_v4: int = 32
    cidr_prefix_v6: int = 128
    namespaces: tuple[str, ...] = ()  # explicit scope; empty = namespaces seen in flows
    exclude_namespaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyDoc:
    namespace: str
    name: str
    manifest: dict  # may contain Commented list items (yamlout)
    workload: tuple[str, str] | None  # (kind, name) for workload policies


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    policies: tuple[PolicyDoc, ...]
    namespaces: tuple[str, ...]
    warnings: tuple[str, ...]
    skipped_edges: tuple[tuple[str, str], ...]  # (edge display, reason)
    node_peers: tuple[str, ...]
    external_peers: tuple[str, ...]
    idle_workloads: tuple[str, ...]  # in scope, no observed traffic: isolated by deny
    dns: dict = field(default_factory=dict)


def _span(first: int, last: int) -> str:
    return f"{format_time_fast(first)[:19]}Z .. {format_time_fast(last)[:19]}Z"


def _evidence_line(port_label: str, count: int, first: int, last: int,
                   services: tuple, inputs: tuple) -> str:
    via = ""
    if services:
        via = "; via Service " + ", ".join(f"{ns}/{n}" for ns, n in services)
    src = "; from " + ", ".join(inputs) if inputs else ""
    return f"  {port_label}: {count} connection(s), {_span(first, last)}{via}{src}"


class _Synth:
    def __init__(self, index: InventoryIndex, opts: SynthesisOptions):
        self.index = index
        self.opts = opts
        self.warnings: list[str] = []
        self._selector_cache: dict[Peer, dict | None] = {}
        # Node and external peers repeat on many edges; ipaddress parsing is slow.
        self._cidr_cache: dict[tuple[str, bool], str] = {}
        # (peer, policy namespace) -> _peer_key of its element: a json.dumps each time
        # otherwise, and the element of a peer in a namespace is always the same.
        self._key_cache: dict[tuple[Peer, str], str] = {}

    def selector(self, peer: Peer) -> dict | None:
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
        sel: dict | None = None
        if not choice.is_empty():
            sel = {}
            if choice.match_labels:
                sel["matchLabels"] = dict(choice.match_labels)
            if choice.match_expressions:
                sel["matchExpressions"] = [
                    {"key": k, "operator": op, **({"values": list(v)} if v else {})}
                    for k, op, v in choice.match_expressions
                ]
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

    def peer_key(self, peer: Peer, policy_ns: str, el: dict) -> str:
        """``_peer_key(el)`` for ``el = peer_element(peer, policy_ns)``."""
        key = self._key_cache.get((peer, policy_ns))
        if key is None:
            key = self._key_cache[(peer, policy_ns)] = _peer_key(el)
        return key

    def peer_element(self, peer: Peer, policy_ns: str) -> dict | None:
        if peer.kind == WORKLOAD:
            sel = self.selector(peer)
            if sel is None:
                return None
            el: dict = {}
            if peer.namespace != policy_ns:
                el["namespaceSelector"] = {"matchLabels": {NS_NAME_LABEL: peer.namespace}}
            el["podSelector"] = sel
            return el
        if peer.kind in (NODE, APISERVER):
            return {"ipBlock": {"cidr": self.cidr(peer.ip, exact=True)}}
        return {"ipBlock": {"cidr": self.cidr(peer.ip, exact=False)}}


def _peer_key(el: dict) -> str:
    import json

    return json.dumps(el, sort_keys=True)


def _rules(s: _Synth, edges: list[Edge], policy_ns: str, direction: str,
           skipped: list[tuple[str, str]]) -> list:
    """Merge edges per peer element (several external IPs may share one CIDR)."""
    by_peer: dict[str, dict] = {}
    for e in edges:
        other = e.src if direction == "ingress" else e.dst
        el = s.peer_element(other, policy_ns)
        if el is None:
            skipped.append((f"{e.src.display()} -> {e.dst.display()} {e.protocol}/{e.port}",
                            f"no label selects {other.display()} alone; no rule written"))
            continue
        key = s.peer_key(other, policy_ns, el)
        slot = by_peer.setdefault(key, {"el": el, "peers": set(), "ports": {}})
        slot["peers"].add(other.display())
        pk = (e.protocol, e.port)
        p = slot["ports"].get(pk)
        if p is None:
            slot["ports"][pk] = [e.count, e.first_seen, e.last_seen, set(e.services),
                                 set(e.inputs)]
        else:
            p[0] += e.count
            p[1] = min(p[1], e.first_seen)
            p[2] = max(p[2], e.last_seen)
            p[3].update(e.services)
            p[4].update(e.inputs)
    rules = []
    for key in sorted(by_peer):
        slot = by_peer[key]
        word = "from" if direction == "ingress" else "to"
        comments = [f"{word} {', '.join(sorted(slot['peers']))}"]
        ports = []
        for (proto, port) in sorted(slot["ports"], key=lambda k: (k[0], k[1])):
            count, first, last, services, inputs = slot["ports"][(proto, port)]
            comments.append(_evidence_line(f"{proto}/{port}", count, first, last,
                                           tuple(sorted(services)), tuple(sorted(inputs))))
            ports.append({"protocol": proto, "port": port})
        rules.append(Commented({word: [slot["el"]], "ports": ports}, tuple(comments)))
    return rules


def _dns_rule(s: _Synth, policy_ns: str, evidence: dict) -> Commented | None:
    dns = s.index.dns_resolvers()
    elements: list[dict] = []
    for wl in dns.workloads:
        el = s.peer_element(Peer(WORKLOAD, wl.namespace, wl.kind, wl.name), policy_ns)
        if el is not None:
            elements.append(el)
    # node-local-dns is a hostNetwork listener: an ipBlock of each address it listens
    # on, the DNS Service's ClusterIP included when it is one of them (see
    # generator.inventory.dns.find_dns for why that one is not left to the workload elements).
    for ip in dns.node_local_ips:
        elements.append({"ipBlock": {"cidr": s.cidr(ip, exact=True)}})
    if not elements:
        return None
    ports = [{"protocol": "UDP", "port": p} for p in dns.udp_ports]
    ports += [{"protocol": "TCP", "port": p} for p in dns.tcp_ports]
    comments = ["DNS: the cluster resolver(s) " + ", ".join(
        [f"{w.namespace}/{w.kind}/{w.name}" for w in dns.workloads] + list(dns.node_local_ips))
        + ", UDP and TCP on their targetPorts"]
    if dns.node_local_ips:
        comments.append(_node_local_comment(dns))
    if evidence.get("count"):
        comments.append(_evidence_line("observed DNS", evidence["count"], evidence["first"],
                                       evidence["last"], (), tuple(sorted(evidence["inputs"]))))
    else:
        comments.append("  not observed in this namespace; every pod needs DNS once egress is "
                        "restricted")
    return Commented({"to": elements, "ports": ports}, tuple(comments))


def _node_local_comment(dns: DnsResolvers) -> str:
    service_ips = [ip for ip in dns.node_local_ips if ip in dns.cluster_ips]
    text = f"  node-local-dns listens on {', '.join(dns.node_local_ips)}: {dns.node_local_source}"
    if service_ips:
        text += (f"; {', '.join(service_ips)} is the DNS Service's ClusterIP, answered on the "
                 "node without DNAT while node-local-dns runs")
    return text


def _is_dns_edge(s: _Synth, e: Edge) -> bool:
    return is_dns_edge(s.index, e)


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


def _metadata(name: str, ns: str, annotations: dict) -> dict:
    return {"name": name, "namespace": ns, "labels": dict(MANAGED_BY),
            "annotations": annotations}


def _policy_name(kind: str, name: str, taken: set[str]) -> str:
    base = f"flowpol-{name}"
    if base in taken or base in ("flowpol-default-deny", "flowpol-allow-dns"):
        base = f"flowpol-{kind.lower()}-{name}"
    return base[:253]


def synthesize(edges: tuple[Edge, ...], index: InventoryIndex,
               opts: SynthesisOptions = SynthesisOptions()) -> SynthesisResult:
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
    dns_evidence: dict[str, dict] = defaultdict(lambda: {"count": 0, "first": None,
                                                          "last": None, "inputs": set()})
    node_peers: set[str] = set()
    external_peers: set[str] = set()
    for e in edges:
        label = f"{e.src.display()} -> {e.dst.display()} {e.protocol}/{e.port}"
        if e.port is None:
            skipped.append((label, "no port (ICMP): NetworkPolicy cannot allow ICMP alone; "
                                   "it is allowed only by rules without ports"))
            continue
        dns_edge = e.src.kind == WORKLOAD and _is_dns_edge(s, e)
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
                ev = dns_evidence[e.src.namespace if opts.default_deny else e.src]
                ev["count"] += e.count
                ev["first"] = e.first_seen if ev["first"] is None else min(ev["first"], e.first_seen)
                ev["last"] = e.last_seen if ev["last"] is None else max(ev["last"], e.last_seen)
                ev["inputs"].update(e.inputs)
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

    policies: list[PolicyDoc] = []
    workloads = sorted(set(ingress) | set(egress))
    for ns in sorted(scope):
        taken: set[str] = set()
        ns_policies: list[PolicyDoc] = []
        if opts.default_deny:
            ns_policies.append(PolicyDoc(ns, "flowpol-default-deny", {
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": _metadata("flowpol-default-deny", ns, {
                    "flowpol.dev/purpose": "default deny: every pod in the namespace is "
                                           "isolated for ingress and egress"}),
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            }, None))
            rule = _dns_rule(s, ns, dns_evidence.get(ns, {}))
            if rule is not None:
                ns_policies.append(PolicyDoc(ns, "flowpol-allow-dns", {
                    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": _metadata("flowpol-allow-dns", ns, {
                        "flowpol.dev/purpose": "every pod may resolve names through the "
                                               "cluster DNS"}),
                    "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [rule]},
                }, None))
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
            spec: dict = {"podSelector": own_selector, "policyTypes": ["Ingress", "Egress"]}
            if ins:
                spec["ingress"] = _rules(s, ins, ns, "ingress", skipped)
            egress_rules = _rules(s, outs, ns, "egress", skipped) if outs else []
            if not opts.default_deny:
                dns_rule = _dns_rule(s, ns, dns_evidence.get(wl, {}))
                if dns_rule is not None:
                    egress_rules.insert(0, dns_rule)
            if egress_rules:
                spec["egress"] = egress_rules
            all_edges = ins + outs
            total = sum(e.count for e in all_edges)
            annotations = {
                "flowpol.dev/workload": f"{wl.workload_kind}/{wl.workload_name}",
                "flowpol.dev/evidence": (
                    f"{len(ins)} ingress and {len(outs)} egress edge(s), {total} "
                    f"connection(s), {_span(min(e.first_seen for e in all_edges), max(e.last_seen for e in all_edges))}"
                    if all_edges else "no observed traffic"),
            }
            ns_policies.append(PolicyDoc(ns, name, {
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": _metadata(name, ns, annotations),
                "spec": spec,
            }, (wl.workload_kind, wl.workload_name)))
        policies.extend(ns_policies)

    covered = {(p.namespace, p.workload) for p in policies if p.workload}
    idle = []
    for ref in index.workloads():
        if ref.namespace in scope and (ref.namespace, (ref.kind, ref.name)) not in covered:
            pods = index.pods_of(ref)
            if pods and all(p.host_network for p in pods):
                continue  # hostNetwork pods are their node: no NetworkPolicy applies
            idle.append(f"{ref.namespace}/{ref.kind}/{ref.name}")
    if idle and opts.default_deny:
        s.warnings.append(
            f"{len(idle)} workload(s) in scope had no observed traffic and will be fully "
            "isolated by default-deny (DNS only): " + ", ".join(idle[:10])
            + (" ..." if len(idle) > 10 else ""))
    return SynthesisResult(
        policies=tuple(policies), namespaces=tuple(sorted(scope)),
        warnings=tuple(s.warnings), skipped_edges=tuple(skipped),
        node_peers=tuple(sorted(node_peers)), external_peers=tuple(sorted(external_peers)),
        idle_workloads=tuple(idle),
        dns={"workloads": [f"{w.namespace}/{w.kind}/{w.name}" for w in dns_info.workloads],
             "node_local_ips": list(dns_info.node_local_ips),
             "udp_ports": list(dns_info.udp_ports), "tcp_ports": list(dns_info.tcp_ports)},
    )
