"""The policy model as CiliumNetworkPolicies (cilium.io/v2).

Written for Cilium 1.16 and later: ``enableDefaultDeny`` exists from 1.16 on, and an
explicitly empty peer list (``fromEntities: []``) selects no identity ("Explicitly check
for empty non-nil slices, it should not result in any identity being selected",
pkg/policy: mergeEndpointSelectors). A rule with no peer field at all is the opposite:
no L3 constraint, every peer (that is how a ``toPorts``-only rule admits any source), so
``ingress: [{}]`` would allow everything and is never written.

Per namespace (the baseline): ``flowpol-default-deny`` selects every pod of the
namespace (``endpointSelector: {}``), turns default deny on for both directions and
allows nothing; ``flowpol-allow-dns`` lets every pod reach the cluster resolvers with an
L7 DNS rule, so Cilium's DNS proxy sees each lookup - what ``toFQDNs`` needs to learn
the addresses of a name (Cilium docs, "DNS based": "an L7 policy allowing DNS
requests"). ``--cilium-cluster-wide`` writes the two as one
CiliumClusterwideNetworkPolicy selecting the pods of the namespaces in scope.

Per workload one policy (``endpointSelector`` from the same stable selector; Cilium
adds the policy's namespace itself). Peers:
- a workload: ``toEndpoints``/``fromEndpoints`` with its labels and
  ``k8s:io.kubernetes.pod.namespace`` (a selector without it would mean the policy's
  own namespace);
- the API server: the ``kube-apiserver`` entity; nodes: ``host`` (the pod's own node)
  and/or ``remote-node`` (any other), by where the workload's pods run - a CIDR never
  matches either (Cilium docs, "Selecting nodes with CIDR / ipBlock");
- an external peer with DNS names: ``toFQDNs`` ``matchName`` (a toFQDNs rule may carry
  no other L3 selector), or ``matchPattern`` for the names a ``--fqdn-pattern`` admits;
  without names, or as a source: ``toCIDR``/``fromCIDR``.
"""

from __future__ import annotations

import json

from generator.output.yamlout import Commented
from generator.synthesize import model as m
from generator.synthesize.render import PolicyDoc, Rendered, RenderOptions
from generator.synthesize.render.comments import (
    declared_line, dns_comments, evidence_line, idle_purpose, port_label,
)
from generator.synthesize.render.kubernetes import (
    ALLOW_DNS, DEFAULT_DENY, MANAGED_BY, evidence_annotation, merged_evidence, port_order,
)
from generator.verify.names import normal_name, pattern_matches

API_VERSION = "cilium.io/v2"
CNP = "CiliumNetworkPolicy"
CCNP = "CiliumClusterwideNetworkPolicy"
# The label Cilium gives every pod's identity: its namespace.
NS_LABEL = "k8s:io.kubernetes.pod.namespace"
BASELINE = "flowpol-baseline"
HOST = "host"
REMOTE_NODE = "remote-node"
KUBE_APISERVER = "kube-apiserver"
ANY_DNS_NAME = {"matchPattern": "*"}
# Both directions isolated, whatever the rules say (see the module docstring).
DEFAULT_DENY_BOTH = {"ingress": True, "egress": True}
NOTHING_IN = {"fromEntities": []}
NOTHING_OUT = {"toEntities": []}


def endpoint_selector(sel: m.PodSelector, namespace: str | None) -> dict:
    out: dict = {}
    labels = dict(sel.match_labels)
    if namespace is not None:
        labels = {NS_LABEL: namespace, **labels}
    if labels:
        out["matchLabels"] = labels
    if sel.match_expressions:
        out["matchExpressions"] = [
            {"key": k, "operator": op, **({"values": list(v)} if v else {})}
            for k, op, v in sel.match_expressions
        ]
    return out


def _ports(specs) -> list[dict]:
    out = []
    for p in specs:
        # "0" is every port of the protocol (Cilium's PortProtocol)
        item: dict = {"port": str(p.port) if p.port is not None else "0",
                      "protocol": p.protocol}
        if p.end_port is not None:
            item["endPort"] = p.end_port
        out.append(item)
    return out


def node_entities(peer: m.PolicyPeer, pod_nodes: frozenset[str]) -> list[str]:
    """``host`` when the peer's node runs a pod of the workload, ``remote-node`` when a
    pod of it runs elsewhere; both when the placement or the peer's node is unknown."""
    if not peer.names or not pod_nodes:
        return [HOST, REMOTE_NODE]
    names = set(peer.names)
    out = []
    if names & pod_nodes:
        out.append(HOST)
    if names - pod_nodes or pod_nodes - names:
        out.append(REMOTE_NODE)
    return out


class _Renderer:
    def __init__(self, options: RenderOptions) -> None:
        self.options = options
        self.patterns_used: set[str] = set()

    def fqdn_selectors(self, names: tuple[str, ...]) -> list[dict]:
        """``matchPattern`` for a name a --fqdn-pattern admits (the first that does),
        ``matchName`` for the others."""
        found = set()
        for name in map(normal_name, names):
            pattern = next((p for p in self.options.fqdn_patterns if pattern_matches(p, name)),
                           None)
            if pattern is None:
                found.add(("matchName", name))
            else:
                self.patterns_used.add(pattern)
                found.add(("matchPattern", normal_name(pattern)))
        return [{k: v} for k, v in sorted(found)]

    def element(self, peer: m.PolicyPeer, word: str, pod_nodes: frozenset[str]) -> dict:
        """The L3 part of a rule admitting ``peer`` (word: "to" or "from")."""
        if peer.kind == m.WORKLOAD:
            return {f"{word}Endpoints": [endpoint_selector(peer.selector, peer.namespace)]}  # type: ignore[arg-type]
        if peer.kind == m.NAMESPACE:
            return {f"{word}Endpoints": [{"matchLabels": {NS_LABEL: peer.namespace}}]}
        if peer.kind == m.APISERVER:
            return {f"{word}Entities": [KUBE_APISERVER]}
        if peer.kind == m.NODE:
            return {f"{word}Entities": node_entities(peer, pod_nodes)}
        if word == "to" and peer.names:
            return {"toFQDNs": self.fqdn_selectors(peer.names)}
        return {f"{word}CIDR": [peer.cidr]}

    def rules(self, rules: tuple[m.Rule, ...], word: str, pod_nodes: frozenset[str]) -> list:
        by_element: dict[str, tuple[dict, set, dict]] = {}
        for r in rules:
            el = self.element(r.peer, word, pod_nodes)
            key = json.dumps(el, sort_keys=True)
            _, members, ports = by_element.setdefault(key, (el, set(), {}))
            members.update(r.peer.members)
            if r.peer.kind == m.EXTERNAL and r.peer.names:
                members.add("named " + ", ".join(sorted(r.peer.names)))
            for rp in r.ports:
                evidence, declared = ports.setdefault(rp.port, ([], {}))
                evidence.append(rp.evidence)
                declared.update(dict.fromkeys(rp.declared))
        out = []
        for key in sorted(by_element):
            el, members, ports = by_element[key]
            comments = [f"{word} {', '.join(sorted(members))}"]
            specs = sorted(ports, key=port_order)
            for spec in specs:
                evidence, declared = ports[spec]
                ev = merged_evidence([e for e in evidence if e is not None])
                if ev is not None:
                    comments.append(evidence_line(port_label(spec), ev))
                if declared:
                    comments.append(declared_line(port_label(spec), list(declared),
                                                  ev is not None))
            out.append(Commented({**el, "toPorts": [{"ports": _ports(specs)}]}, tuple(comments)))
        return out

    def dns_rules(self, dns: m.DnsAccess) -> list:
        """Egress to the resolvers with the L7 DNS rule that makes Cilium's DNS proxy
        see every lookup (toFQDNs learns names only from what the proxy sees)."""
        ports = [{"port": str(p), "protocol": "UDP"} for p in dns.udp_ports]
        ports += [{"port": str(p), "protocol": "TCP"} for p in dns.tcp_ports]
        to_ports = [{"ports": ports, "rules": {"dns": [dict(ANY_DNS_NAME)]}}]
        out = []
        comments = dns_comments(dns)
        selectors = [endpoint_selector(p.selector, p.namespace)  # type: ignore[arg-type]
                     for p in dns.resolvers]
        if selectors:
            out.append(Commented({"toEndpoints": selectors, "toPorts": to_ports}, comments))
        if dns.node_local_ips:
            # node-local-dns answers on an address of the pod's own node: the host entity
            out.append(Commented({"toEntities": [HOST], "toPorts": to_ports}, (
                f"DNS: node-local-dns on {', '.join(dns.node_local_ips)}, an address of "
                "each node: Cilium's host entity",) if selectors else comments))
        return out


def _metadata(name: str, ns: str | None, annotations: dict) -> dict:
    meta: dict = {"name": name}
    if ns is not None:
        meta["namespace"] = ns
    meta["labels"] = dict(MANAGED_BY)
    meta["annotations"] = annotations
    return meta


def _doc(kind: str, ns: str | None, name: str, annotations: dict, spec: dict,
         workload: tuple[str, str] | None) -> PolicyDoc:
    return PolicyDoc(ns or "", name, {"apiVersion": API_VERSION, "kind": kind,
                                      "metadata": _metadata(name, ns, annotations),
                                      "spec": spec}, workload)


def _deny_all_spec(selector: dict) -> dict:
    return {"endpointSelector": selector, "enableDefaultDeny": dict(DEFAULT_DENY_BOTH),
            "ingress": [dict(NOTHING_IN)], "egress": [dict(NOTHING_OUT)]}


def _baseline_docs(r: _Renderer, model: m.PolicyModel) -> list[PolicyDoc]:
    if not model.baselines:
        return []
    if r.options.cilium_cluster_wide:
        namespaces = sorted(b.namespace for b in model.baselines)
        dns = next((b.dns for b in model.baselines if b.dns is not None), None)
        spec = _deny_all_spec({"matchExpressions": [
            {"key": NS_LABEL, "operator": "In", "values": namespaces}]})
        if dns is not None:
            evidence = merged_evidence([b.dns.evidence for b in model.baselines
                                        if b.dns is not None and b.dns.evidence is not None])
            spec["egress"] = r.dns_rules(m.DnsAccess(
                dns.resolvers, dns.node_local_ips, dns.udp_ports, dns.tcp_ports,
                dns.cluster_ips, dns.node_local_source, evidence))
        return [_doc(CCNP, None, BASELINE, {
            "flowpol.dev/purpose": "default deny for every pod of the namespaces "
                                   f"{', '.join(namespaces)}; DNS to the cluster resolvers"},
            spec, None)]
    docs = []
    for base in model.baselines:
        ns = base.namespace
        docs.append(_doc(CNP, ns, DEFAULT_DENY, {
            "flowpol.dev/purpose": "default deny: every pod in the namespace is isolated "
                                   "for ingress and egress"}, _deny_all_spec({}), None))
        if base.dns is not None:
            docs.append(_doc(CNP, ns, ALLOW_DNS, {
                "flowpol.dev/purpose": "every pod may resolve names through the cluster "
                                       "DNS, seen by Cilium's DNS proxy"},
                {"endpointSelector": {}, "egress": r.dns_rules(base.dns)}, None))
    return docs


def workload_doc(r: _Renderer, p: m.WorkloadPolicy) -> PolicyDoc:
    pod_nodes = r.options.workload_nodes.get(p.workload, frozenset())
    ingress = r.rules(p.ingress, "from", pod_nodes) or [dict(NOTHING_IN)]
    egress = r.rules(p.egress, "to", pod_nodes)
    if p.dns is not None:
        egress = r.dns_rules(p.dns) + egress
    spec = {"endpointSelector": endpoint_selector(p.selector, None),
            "enableDefaultDeny": dict(DEFAULT_DENY_BOTH),
            "ingress": ingress, "egress": egress or [dict(NOTHING_OUT)]}
    return _doc(CNP, p.namespace, p.name, {
        "flowpol.dev/workload": f"{p.workload.kind}/{p.workload.name}",
        "flowpol.dev/evidence": evidence_annotation(p)},
        spec, (p.workload.kind, p.workload.name))


def held_out_doc(idle: m.IdleWorkload) -> PolicyDoc:
    """An idle workload held out of the baseline: every peer (the ``all`` entity: every
    cluster identity and the world) in the directions held out. Allow rules add up
    across policies, so the baseline's default deny no longer isolates those pods."""
    spec: dict = {"endpointSelector": endpoint_selector(idle.selector, None)}  # type: ignore[arg-type]
    note = (f"everything: {idle.workload.display()} is held out of default-deny",)
    if "ingress" in idle.directions:
        spec["ingress"] = [Commented({"fromEntities": ["all"]}, note)]
    if "egress" in idle.directions:
        spec["egress"] = [Commented({"toEntities": ["all"]}, note)]
    return _doc(CNP, idle.namespace, idle.name or "", {
        "flowpol.dev/workload": f"{idle.workload.kind}/{idle.workload.name}",
        "flowpol.dev/purpose": idle_purpose(idle)},
        spec, (idle.workload.kind, idle.workload.name))


def render(model: m.PolicyModel, options: RenderOptions = RenderOptions()) -> Rendered:
    r = _Renderer(options)
    docs = _baseline_docs(r, model)
    for ns in model.namespaces:
        docs += [workload_doc(r, p) for p in model.workloads if p.namespace == ns]
        docs += [held_out_doc(i) for i in model.idle
                 if i.namespace == ns and i.status == m.HELD_OUT and i.name]
    unused = [p for p in options.fqdn_patterns if p not in r.patterns_used]
    warnings = tuple(f"--fqdn-pattern {p} admits no DNS name learned for an external peer; "
                     "no rule uses it" for p in unused)
    return Rendered(tuple(docs), warnings)
