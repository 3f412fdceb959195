"""The policy model as ``networking.k8s.io/v1`` NetworkPolicies.

Per namespace a default-deny and an allow-DNS policy (the baseline), per workload one
policy isolated for both directions, per idle workload held out of the baseline one
policy that allows everything for the directions held out (``ingress: [{}]``, an empty
peer list and no ports: every source on every port). Peers: a workload by its
podSelector (with the namespace's ``kubernetes.io/metadata.name`` label when it lives
elsewhere); nodes, the API server and external networks by ipBlock. Rules that admit
the same peer element are one rule (a node and the API server may share an address).
"""

from __future__ import annotations

import ipaddress
import json

from generator.output.yamlout import Commented
from generator.synthesize import model as m
from generator.synthesize.render import PolicyDoc, Rendered, RenderOptions
from generator.synthesize.render.comments import (
    declared_line, dns_comments, evidence_line, idle_purpose, peer_members, port_label, span,
)

API_VERSION = "networking.k8s.io/v1"
MANAGED_BY = {"app.kubernetes.io/managed-by": "flowpol"}
# Set by the API server on every namespace since Kubernetes 1.21.
NS_NAME_LABEL = "kubernetes.io/metadata.name"
DEFAULT_DENY = "flowpol-default-deny"
ALLOW_DNS = "flowpol-allow-dns"


def selector_dict(sel: m.PodSelector) -> dict:
    out: dict = {}
    if sel.match_labels:
        out["matchLabels"] = dict(sel.match_labels)
    if sel.match_expressions:
        out["matchExpressions"] = [
            {"key": k, "operator": op, **({"values": list(v)} if v else {})}
            for k, op, v in sel.match_expressions
        ]
    return out


def peer_element(peer: m.PolicyPeer, policy_ns: str) -> dict:
    if peer.kind == m.WORKLOAD:
        el: dict = {}
        if peer.namespace != policy_ns:
            el["namespaceSelector"] = {"matchLabels": {NS_NAME_LABEL: peer.namespace}}
        el["podSelector"] = selector_dict(peer.selector)  # type: ignore[arg-type]
        return el
    if peer.kind == m.NAMESPACE:
        return {"namespaceSelector": {"matchLabels": {NS_NAME_LABEL: peer.namespace}}}
    return {"ipBlock": {"cidr": peer.cidr}}


def _port_dict(p: m.PortSpec) -> dict:
    out: dict = {"protocol": p.protocol}
    if p.port is not None:
        out["port"] = p.port
        if p.end_port is not None:
            out["endPort"] = p.end_port
    return out


class _Renderer:
    def __init__(self) -> None:
        # (peer, policy namespace) -> (element, its key): the element of a peer in a
        # namespace is always the same, and json.dumps per rule adds up.
        self._elements: dict[tuple[m.PolicyPeer, str], tuple[dict, str]] = {}

    def element(self, peer: m.PolicyPeer, policy_ns: str) -> tuple[dict, str]:
        hit = self._elements.get((peer, policy_ns))
        if hit is None:
            el = peer_element(peer, policy_ns)
            hit = self._elements[(peer, policy_ns)] = (el, json.dumps(el, sort_keys=True))
        return hit

    def rules(self, rules: tuple[m.Rule, ...], policy_ns: str, word: str) -> list:
        by_element: dict[str, tuple[dict, set, dict]] = {}
        for r in rules:
            el, key = self.element(r.peer, policy_ns)
            _, members, ports = by_element.setdefault(key, (el, set(), {}))
            members.update(peer_members(r.peer, word == "to"))
            for rp in r.ports:
                evidence, declared = ports.setdefault(rp.port, ([], {}))
                evidence.append(rp.evidence)
                declared.update(dict.fromkeys(rp.declared))
        out = []
        for key in sorted(by_element):
            el, members, ports = by_element[key]
            comments = [f"{word} {', '.join(sorted(members))}"]
            port_items = []
            for spec in sorted(ports, key=port_order):
                evidence, declared = ports[spec]
                ev = merged_evidence([e for e in evidence if e is not None])
                if ev is not None:
                    comments.append(evidence_line(port_label(spec), ev))
                if declared:
                    comments.append(declared_line(port_label(spec), list(declared),
                                                  ev is not None))
                port_items.append(_port_dict(spec))
            out.append(Commented({word: [el], "ports": port_items}, tuple(comments)))
        return out

    def dns_rule(self, dns: m.DnsAccess, policy_ns: str) -> Commented:
        elements = [self.element(p, policy_ns)[0] for p in dns.resolvers]
        elements += [{"ipBlock": {"cidr": _host_cidr(ip)}} for ip in dns.node_local_ips]
        ports = [{"protocol": "UDP", "port": p} for p in dns.udp_ports]
        ports += [{"protocol": "TCP", "port": p} for p in dns.tcp_ports]
        return Commented({"to": elements, "ports": ports}, dns_comments(dns))


def port_order(p: m.PortSpec) -> tuple:
    return (p.protocol, p.port is not None, str(type(p.port)), p.port or 0, p.end_port or 0)


def merged_evidence(evs: list[m.Evidence]) -> m.Evidence | None:
    if not evs:
        return None
    if len(evs) == 1:
        return evs[0]
    return m.Evidence(sum(e.connections for e in evs), min(e.first_seen for e in evs),
                      max(e.last_seen for e in evs),
                      tuple(sorted({s for e in evs for s in e.services})),
                      tuple(sorted({i for e in evs for i in e.inputs})))


def _host_cidr(ip: str) -> str:
    return str(ipaddress.ip_network(ip))


def _metadata(name: str, ns: str, annotations: dict) -> dict:
    return {"name": name, "namespace": ns, "labels": dict(MANAGED_BY),
            "annotations": annotations}


def _doc(ns: str, name: str, annotations: dict, spec: dict,
         workload: tuple[str, str] | None) -> PolicyDoc:
    return PolicyDoc(ns, name, {
        "apiVersion": API_VERSION, "kind": "NetworkPolicy",
        "metadata": _metadata(name, ns, annotations), "spec": spec}, workload)


def evidence_annotation(p: m.WorkloadPolicy) -> str:
    if p.first_seen is None or p.last_seen is None:
        return "no observed traffic"
    return (f"{p.edges_in} ingress and {p.edges_out} egress edge(s), {p.connections} "
            f"connection(s), {span(p.first_seen, p.last_seen)}")


def baseline_docs(r: _Renderer, base: m.NamespaceBaseline) -> list[PolicyDoc]:
    """The namespace's default-deny and allow-DNS policies."""
    ns = base.namespace
    docs = [_doc(ns, DEFAULT_DENY, {
        "flowpol.dev/purpose": "default deny: every pod in the namespace is "
                               "isolated for ingress and egress"},
        {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, None)]
    if base.dns is not None:
        docs.append(_doc(ns, ALLOW_DNS, {
            "flowpol.dev/purpose": "every pod may resolve names through the "
                                   "cluster DNS"},
            {"podSelector": {}, "policyTypes": ["Egress"],
             "egress": [r.dns_rule(base.dns, ns)]}, None))
    return docs


def workload_doc(r: _Renderer, p: m.WorkloadPolicy, dns: m.DnsAccess | None) -> PolicyDoc:
    """One workload's policy, isolated for both directions; ``dns``: the DNS rule it
    carries itself (when nothing else allows DNS for its pods)."""
    ns = p.namespace
    spec: dict = {"podSelector": selector_dict(p.selector),
                  "policyTypes": ["Ingress", "Egress"]}
    if p.ingress:
        spec["ingress"] = r.rules(p.ingress, ns, "from")
    egress = r.rules(p.egress, ns, "to")
    if dns is not None:
        egress.insert(0, r.dns_rule(dns, ns))
    if egress:
        spec["egress"] = egress
    return _doc(ns, p.name, {
        "flowpol.dev/workload": f"{p.workload.kind}/{p.workload.name}",
        "flowpol.dev/evidence": evidence_annotation(p)},
        spec, (p.workload.kind, p.workload.name))


def held_out_doc(idle: m.IdleWorkload) -> PolicyDoc:
    """Everything allowed for the directions an idle workload is held out of: one rule
    with no peers and no ports (every source or destination, every port)."""
    spec: dict = {"podSelector": selector_dict(idle.selector),  # type: ignore[arg-type]
                  "policyTypes": [d.capitalize() for d in idle.directions]}
    for direction in idle.directions:
        spec[direction] = [Commented({}, (f"everything: {idle.workload.display()} is held out "
                                          "of default-deny",))]
    return _doc(idle.namespace, idle.name or "", {
        "flowpol.dev/workload": f"{idle.workload.kind}/{idle.workload.name}",
        "flowpol.dev/purpose": idle_purpose(idle)},
        spec, (idle.workload.kind, idle.workload.name))


def render(model: m.PolicyModel, options: RenderOptions = RenderOptions()) -> Rendered:
    r = _Renderer()
    baselines = {b.namespace: b for b in model.baselines}
    docs: list[PolicyDoc] = []
    for ns in model.namespaces:
        base = baselines.get(ns)
        if base is not None:
            docs += baseline_docs(r, base)
        docs += [workload_doc(r, p, p.dns) for p in model.workloads if p.namespace == ns]
        docs += [held_out_doc(i) for i in model.idle
                 if i.namespace == ns and i.status == m.HELD_OUT and i.name]
    return Rendered(tuple(docs), cilium_warnings(model, options))


def cilium_warnings(model: m.PolicyModel, options: RenderOptions) -> tuple[str, ...]:
    """On Cilium, an ipBlock never matches a node or the API server: CIDR selectors do
    not select cluster identities (host, remote-node, kube-apiserver) unless the agent
    runs with ``policy-cidr-match-mode: nodes`` (Cilium docs, "Selecting nodes with
    CIDR / ipBlock"; cilium/cilium #14724, #28421). node-local-dns listens on the node
    itself, so its ipBlock does not match either. Name every such rule."""
    if not options.cilium_evidence:
        return ()
    hits: list[str] = []
    for p in model.workloads:
        for direction, rules in (("ingress from", p.ingress), ("egress to", p.egress)):
            for rule in rules:
                if rule.peer.kind in (m.NODE, m.APISERVER):
                    hits.append(f"{p.namespace}/{p.name} {direction} "
                                f"{', '.join(rule.peer.members) or rule.peer.cidr}")
    for dns in {b.dns for b in model.baselines if b.dns is not None} | \
            {p.dns for p in model.workloads if p.dns is not None}:
        if dns.node_local_ips:
            hits.append(f"DNS egress to node-local-dns {', '.join(dns.node_local_ips)}")
            break
    if not hits:
        return ()
    shown = "; ".join(sorted(set(hits))[:20]) + (" ..." if len(set(hits)) > 20 else "")
    return (f"the cluster's CNI looks like Cilium ({'; '.join(options.cilium_evidence)}): "
            f"Cilium never matches a NetworkPolicy ipBlock against node or API-server "
            f"addresses unless the agent runs with policy-cidr-match-mode: nodes "
            f"(cilium/cilium #14724, #28421), so {len(set(hits))} rule(s) will not match "
            f"there: {shown}. Generate with --dialect cilium (entities host, remote-node, "
            f"kube-apiserver), or set the Helm value policyCIDRMatchMode: nodes "
            f"(policy-cidr-match-mode: nodes in cilium-config); traffic from a pod's own "
            f"node stays allowed either way",)
