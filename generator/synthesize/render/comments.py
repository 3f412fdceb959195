"""Evidence as reviewers read it above each rule, in every dialect."""

from __future__ import annotations

from generator.output.timetext import format_time_fast
from generator.resolve.edges import names_text
from generator.synthesize.model import (
    EXTERNAL, Declared, DnsAccess, Evidence, IdleWorkload, PolicyPeer, PortSpec,
)


def span(first: int, last: int) -> str:
    return f"{format_time_fast(first)[:19]}Z .. {format_time_fast(last)[:19]}Z"


def port_label(p: PortSpec) -> str:
    if p.port is None:
        return f"{p.protocol}/any"
    if p.end_port is not None:
        return f"{p.protocol}/{p.port}-{p.end_port}"
    return f"{p.protocol}/{p.port}"


def peer_members(peer: PolicyPeer, egress: bool) -> tuple[str, ...]:
    """The observed peers behind ``peer`` as a reviewer reads them; an external
    destination with the DNS names its connections had (or that they had none)."""
    if peer.kind == EXTERNAL and egress:
        return tuple(f"{m} ({names_text(peer.names)})" for m in peer.members)
    return peer.members


def evidence_line(label: str, ev: Evidence) -> str:
    via = ""
    if ev.services:
        via = "; via Service " + ", ".join(f"{ns}/{n}" for ns, n in ev.services)
    src = "; from " + ", ".join(ev.inputs) if ev.inputs else ""
    return f"  {label}: {ev.connections} connection(s), {span(ev.first_seen, ev.last_seen)}{via}{src}"


def dns_comments(dns: DnsAccess) -> tuple[str, ...]:
    comments = ["DNS: the cluster resolver(s) " + ", ".join(
        [p.workload.display() for p in dns.resolvers if p.workload] + list(dns.node_local_ips))
        + ", UDP and TCP on their targetPorts"]
    if dns.node_local_ips:
        service_ips = [ip for ip in dns.node_local_ips if ip in dns.cluster_ips]
        text = (f"  node-local-dns listens on {', '.join(dns.node_local_ips)}: "
                f"{dns.node_local_source}")
        if service_ips:
            text += (f"; {', '.join(service_ips)} is the DNS Service's ClusterIP, answered on "
                     "the node without DNAT while node-local-dns runs")
        comments.append(text)
    if dns.evidence is not None and dns.evidence.connections:
        comments.append(evidence_line("observed DNS", dns.evidence))
    else:
        comments.append("  not observed in this namespace; every pod needs DNS once egress is "
                        "restricted")
    return tuple(comments)


def declared_line(label: str, declared: tuple[Declared, ...] | list[Declared],
                  observed: bool) -> str:
    """Why a port is allowed without (or beyond) observation."""
    by = "; ".join(f"{d.display()} via Service {d.service[0]}/{d.service[1]}:{d.service[2]}"
                   for d in declared)
    seen = "calls observed (above)" if observed else "no call observed in the recording"
    return f"  {label}: declared: the API server calls it for {by}; {seen}"


def idle_purpose(idle: IdleWorkload) -> str:
    """The annotation of an idle workload's hold-out policy."""
    return (f"held out of default-deny: no traffic of it was observed ({idle.reason}); "
            f"this allows all its {' and '.join(idle.directions)} until a recording shows "
            "what it needs (generate again, or --isolate-idle to isolate it)")
