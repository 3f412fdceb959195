"""The policy model as one Baseline-tier ClusterNetworkPolicy plus NetworkPolicies.

ClusterNetworkPolicy (sigs.k8s.io network-policy-api, policy.networking.k8s.io/v1alpha2,
standard channel, bundle v0.1.7) replaced AdminNetworkPolicy and
BaselineAdminNetworkPolicy. The per-namespace default-deny and allow-DNS become one
``flowpol-baseline`` in the Baseline tier whose subject is the namespaces in scope: DNS
to the cluster resolvers is accepted, everything else denied. Rules are evaluated in
order within a policy; the Baseline tier is consulted only where no NetworkPolicy
selects a pod for that direction (Admin tier, then NetworkPolicy, then Baseline).

So a workload policy must carry its own DNS rule: once a NetworkPolicy selects a pod,
the Baseline never applies to it. Per-workload rules stay NetworkPolicies (the
kubernetes renderer's). Ingress peers of the standard channel are namespaces and pods
only: the Baseline denies ingress from every pod, but traffic from outside the cluster
to a pod that no NetworkPolicy selects is not denied by it.
"""

from __future__ import annotations

from generator.output.yamlout import Commented
from generator.synthesize import model as m
from generator.synthesize.render import PolicyDoc, Rendered, RenderOptions
from generator.synthesize.render.comments import dns_comments
from generator.synthesize.render.kubernetes import (
    MANAGED_BY, NS_NAME_LABEL, _Renderer, held_out_doc, merged_evidence, selector_dict,
    workload_doc,
)

API_VERSION = "policy.networking.k8s.io/v1alpha2"
KIND = "ClusterNetworkPolicy"
BASELINE = "flowpol-baseline"
# Lower values are evaluated first within a tier: the catch-all goes last.
BASELINE_PRIORITY = 1000
EVERY_NETWORK = ["0.0.0.0/0", "::/0"]


def _dns_rule(dns: m.DnsAccess) -> Commented:
    to: list[dict] = [{"pods": {
        "namespaceSelector": {"matchLabels": {NS_NAME_LABEL: p.namespace}},
        "podSelector": selector_dict(p.selector)}}  # type: ignore[arg-type]
        for p in dns.resolvers]
    if dns.node_local_ips:
        to.append({"networks": [f"{ip}/{128 if ':' in ip else 32}"
                                for ip in dns.node_local_ips]})
    protocols = [{"udp": {"destinationPort": {"number": p}}} for p in dns.udp_ports]
    protocols += [{"tcp": {"destinationPort": {"number": p}}} for p in dns.tcp_ports]
    return Commented({"name": "allow-dns", "action": "Accept", "to": to,
                      "protocols": protocols}, dns_comments(dns))


def _baseline(model: m.PolicyModel) -> PolicyDoc | None:
    if not model.baselines:
        return None
    namespaces = sorted(b.namespace for b in model.baselines)
    egress: list = []
    dns = next((b.dns for b in model.baselines if b.dns is not None), None)
    if dns is not None:
        evidence = merged_evidence([b.dns.evidence for b in model.baselines
                                    if b.dns is not None and b.dns.evidence is not None])
        egress.append(_dns_rule(m.DnsAccess(dns.resolvers, dns.node_local_ips, dns.udp_ports,
                                            dns.tcp_ports, dns.cluster_ips,
                                            dns.node_local_source, evidence)))
    egress.append(Commented({"name": "default-deny", "action": "Deny",
                             "to": [{"namespaces": {}}, {"networks": list(EVERY_NETWORK)}]},
                            ("everything else, pods and outside addresses alike",)))
    spec = {
        "tier": "Baseline", "priority": BASELINE_PRIORITY,
        "subject": {"namespaces": {"matchExpressions": [
            {"key": NS_NAME_LABEL, "operator": "In", "values": namespaces}]}},
        "ingress": [Commented({"name": "default-deny", "action": "Deny",
                               "from": [{"namespaces": {}}]},
                              ("every pod of the cluster; ingress peers are namespaces and "
                               "pods only",))],
        "egress": egress,
    }
    return PolicyDoc("", BASELINE, {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": BASELINE, "labels": dict(MANAGED_BY), "annotations": {
            "flowpol.dev/purpose": "default deny with DNS for the pods of "
                                   f"{', '.join(namespaces)} that no NetworkPolicy selects"}},
        "spec": spec}, None)


def render(model: m.PolicyModel, options: RenderOptions = RenderOptions()) -> Rendered:
    r = _Renderer()
    dns_of = {b.namespace: b.dns for b in model.baselines}
    docs: list[PolicyDoc] = []
    base = _baseline(model)
    if base is not None:
        docs.append(base)
    for ns in model.namespaces:
        # the Baseline's DNS rule never reaches a pod a NetworkPolicy selects
        docs += [workload_doc(r, p, p.dns if p.dns is not None else dns_of.get(ns))
                 for p in model.workloads if p.namespace == ns]
        # an idle workload held out: a NetworkPolicy allowing everything selects its pods,
        # so the Baseline (which applies only where no NetworkPolicy does) passes it by
        docs += [held_out_doc(i) for i in model.idle
                 if i.namespace == ns and i.status == m.HELD_OUT and i.name]
    return Rendered(tuple(docs))
