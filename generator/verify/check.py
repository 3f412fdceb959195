"""Replay every observed connection against a policy set: allowed, or denied and why.

Used by `flowpol generate` on its own output and by `flowpol verify`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Iterable

from generator.resolve.edges import Connection, Peer, PeerIds
from generator.inventory.index import InventoryIndex
from generator.verify.cohorts import cohorts, summed_services
from generator.verify.evaluator import Evaluator, SideVerdict, Verdict, rule_text
from generator.verify.policy import NetworkPolicy, parse_policies
from recorder.timefmt import format_time


@dataclass(frozen=True, slots=True)
class CheckedGroup:
    """Connections with the same peers, protocol, port and verdict."""

    src: Peer
    dst: Peer
    protocol: str
    port: int | None
    allowed: bool
    count: int
    connections: int
    first_seen: int
    last_seen: int
    reason: str
    denied_by: str | None
    allowed_by: tuple[str, ...]  # "ns/name egress[0]" ...
    example: str  # src pod/ip -> dst pod/ip of one connection
    verdict: Verdict | None = None  # the evaluator's answer (same for the whole group)
    services: tuple[str, ...] = ()  # "ns/name:port" the clients dialled, when via Services
    hint: str | None = None  # for denied groups: a likely cause and its fix, when known


@dataclass(frozen=True, slots=True)
class CheckResult:
    groups: tuple[CheckedGroup, ...]
    checked: int  # aggregated connections checked
    allowed: int
    denied: int
    allowed_count: int  # observed connections (sum of counts)
    denied_count: int
    policies: int


_peer_order = attrgetter(*(f.name for f in fields(Peer) if f.compare))


def _who(pod, ip: str) -> str:
    return f"{pod.namespace}/{pod.name}" if pod is not None else ip


def _rule_refs(v: Verdict) -> tuple[str, ...]:
    refs = [f"{pid} {rule_text('egress', i)}" for pid, i in v.egress.allowed_by
            + v.egress.accepted_by]
    refs += [f"{pid} {rule_text('ingress', i)}" for pid, i in v.ingress.allowed_by
             + v.ingress.accepted_by]
    for side, name in ((v.egress, "source"), (v.ingress, "destination")):
        if side.exemption:
            refs.append(f"{name}: {side.exemption}")
    return tuple(refs)


def check_policies(connections: Iterable[Connection], policies: tuple[NetworkPolicy, ...],
                   index: InventoryIndex, evaluator: Evaluator | None = None) -> CheckResult:
    """``evaluator``: one already built for ``policies`` (to share its caches), or None."""
    if evaluator is None:
        evaluator = Evaluator.from_inventory(policies, index.inventory)
    found = cohorts(connections, evaluator)
    groups: dict[tuple, list] = {}
    # per cohort: its verdict's answer, its group's key and accumulator
    placed: list[tuple[bool, tuple, list]] = []
    # Verdicts are cached objects of the evaluator (alive as long as it is), so their
    # reason text, costly to build, is built once per verdict.
    reasons: dict[int, str] = {}
    allowed = denied = allowed_count = denied_count = 0
    peer_id = PeerIds()
    check = evaluator.check
    # Cohorts come in the order of their first connections, so a group's first cohort
    # holds its first connection: the example, and the connection the hint is about.
    for co in found.cohorts:
        c = co.first
        v = check(co.src, co.dst, c.protocol, c.port)
        reason = reasons.get(id(v))
        if reason is None:
            reason = reasons[id(v)] = v.reason
        if v.allowed:
            allowed += co.connections
            allowed_count += co.counted
        else:
            denied += co.connections
            denied_count += co.counted
        key = (peer_id(c.src), peer_id(c.dst), c.protocol,
               c.port if c.port is not None else -1, v.allowed, reason)
        g = groups.get(key)
        if g is None:
            g = groups[key] = [co.counted, co.connections, co.first_seen, co.last_seen, v,
                               f"{_who(c.src_pod, c.src_ip)} -> {_who(c.dst_pod, c.dst_ip)}",
                               c.port, set(co.services),
                               None if v.allowed else _hint(evaluator, c, co.src, co.dst, v),
                               c.src, c.dst]
        else:
            g[0] += co.counted
            g[1] += co.connections
            if co.first_seen < g[2]:
                g[2] = co.first_seen
            if co.last_seen > g[3]:
                g[3] = co.last_seen
            g[7] |= co.services
        placed.append((v.allowed, key, g))
    # A ClusterIP flow expanded to several backends is one set of connections: count it
    # once per verdict and per group, not once per backend. Its first connection was
    # counted in its cohort; the others only where no earlier one went.
    for flow in found.repeated_flows:
        ok, key, _ = placed[flow.first]
        verdicts, keys = {ok}, {key}
        for c, i in flow.repeats:
            ok, key, g = placed[i]
            if ok not in verdicts:
                verdicts.add(ok)
                if ok:
                    allowed_count += c.count
                else:
                    denied_count += c.count
            if key not in keys:
                keys.add(key)
                g[0] += c.count
    out = []
    for key in groups:
        _, _, proto, _, ok, reason = key
        count, n, first, last, v, example, port, services, hint, src, dst = groups[key]
        out.append(CheckedGroup(src, dst, proto, port, ok, count, n, first, last, reason,
                                v.denied_by, _rule_refs(v), example, v, summed_services(services),
                                hint))
    # denied first in the listing, then allowed; peers in their dataclass order, by the
    # tuples of their fields that it compares (without a Python-level __lt__ per step)
    out.sort(key=lambda g: (g.allowed, _peer_order(g.src), _peer_order(g.dst), g.protocol,
                            g.port if g.port is not None else -1, g.reason))
    return CheckResult(tuple(out), allowed + denied, allowed, denied, allowed_count, denied_count,
                       len(policies))


DNS_PORT = 53


def _hint(evaluator: Evaluator, c: Connection, src, dst, v: Verdict) -> str | None:
    """The two classic mistakes, recognised: the Service port in a rule instead of the
    targetPort, and egress isolation without a DNS rule."""
    if c.service_port is not None and c.port is not None and c.service_port != c.port:
        at_service_port = evaluator.check(src, dst, c.protocol, c.service_port)
        fixed = [name for name, now, then in (
            ("source egress", v.egress, at_service_port.egress),
            ("destination ingress", v.ingress, at_service_port.ingress),
        ) if not now.allowed and then.allowed]
        if fixed:
            return (f"the {' and '.join(fixed)} rules allow the Service port "
                    f"{c.protocol}/{c.service_port}, but NetworkPolicy matches the pod's "
                    f"targetPort {c.protocol}/{c.port} (after the Service's DNAT): use port "
                    f"{c.port} in the rule")
    is_dns = DNS_PORT in (c.port, c.service_port) and c.protocol in ("UDP", "TCP")
    if not v.egress.allowed and is_dns:
        return ("this is DNS: once egress is isolated every pod needs a rule allowing UDP and "
                f"TCP {DNS_PORT} to the cluster resolver pods (e.g. kube-system "
                "k8s-app=kube-dns), on their targetPort")
    return None


def check_connections(connections: Iterable[Connection], manifests: list[dict],
                      index: InventoryIndex) -> CheckResult:
    """``manifests``: raw NetworkPolicy objects (e.g. the ones just generated)."""
    return check_policies(connections, parse_policies(manifests), index)


def group_dict(g: CheckedGroup) -> dict:
    return {
        "client": g.src.display(), "server": g.dst.display(), "protocol": g.protocol,
        "port": g.port, "allowed": g.allowed, "connections": g.count,
        "first_seen": format_time(g.first_seen), "last_seen": format_time(g.last_seen),
        "reason": g.reason, "denied_by": g.denied_by, "allowed_by": list(g.allowed_by),
        "example": g.example,
    }


def side_dict(side: SideVerdict) -> dict:
    return {
        "allowed": side.allowed, "isolated": side.isolated, "endpoint": side.endpoint,
        "selecting": list(side.selecting),
        "allowed_by": [{"policy": pid, "rule": i} for pid, i in side.allowed_by],
        "denied_by": [{"policy": pid, "rule": i} for pid, i in side.denied_by],
        "accepted_by": [{"policy": pid, "rule": i} for pid, i in side.accepted_by],
        "exemption": side.exemption,
    }


def group_detail_dict(g: CheckedGroup) -> dict:
    """``group_dict`` plus each side's verdict, the Services dialled and the hint."""
    d = group_dict(g)
    d["services"] = list(g.services)
    d["hint"] = g.hint
    if g.verdict is not None:
        d["source_egress"] = side_dict(g.verdict.egress)
        d["destination_ingress"] = side_dict(g.verdict.ingress)
    return d


def verification_dict(r: CheckResult) -> dict:
    """The replay's counts, named as every output names them: connections (each counted
    once) and the groups (client, server, protocol, port, verdict) they fall into."""
    return {
        "connections": r.allowed_count + r.denied_count,
        "allowed_connections": r.allowed_count, "denied_connections": r.denied_count,
        "groups": len(r.groups), "denied_groups": sum(1 for g in r.groups if not g.allowed),
        "policies": r.policies,
        "denied_list": [group_dict(g) for g in r.groups if not g.allowed],
    }


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def verification_text(d: dict) -> str:
    """``verification_dict`` in the words of every summary: "476 observed connections in
    43 groups (client, server, port): 476 allowed, 0 denied"."""
    return (f"{_count(d['connections'], 'observed connection')} in "
            f"{_count(d['groups'], 'group')} (client, server, port): "
            f"{d['allowed_connections']:,} allowed, {d['denied_connections']:,} denied")


def denied_lines(r: CheckResult) -> tuple[str, ...]:
    return tuple(
        f"{g.src.display()} -> {g.dst.display()} {g.protocol}/{g.port}: {g.count} "
        f"connection(s), last seen {format_time(g.last_seen)[:19]}Z; {g.reason}"
        for g in r.groups if not g.allowed
    )
