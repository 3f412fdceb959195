"""Replay every observed connection against a policy set: allowed, or denied and why.

Used by `flowpol generate` on its own output and by `flowpol verify`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from generator.edges import Connection, Peer, PeerIds
from generator.inventory.index import InventoryIndex
from generator.verify.evaluator import Evaluator, SideVerdict, Verdict
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


def _who(pod, ip: str) -> str:
    return f"{pod.namespace}/{pod.name}" if pod is not None else ip


def _rule_refs(v: Verdict) -> tuple[str, ...]:
    refs = [f"{pid} egress[{i}]" for pid, i in v.egress.allowed_by]
    refs += [f"{pid} ingress[{i}]" for pid, i in v.ingress.allowed_by]
    for side, name in ((v.egress, "source"), (v.ingress, "destination")):
        if side.exemption:
            refs.append(f"{name}: {side.exemption}")
    return tuple(refs)


_NO_HINT_YET = object()


def check_policies(connections: Iterable[Connection], policies: tuple[NetworkPolicy, ...],
                   index: InventoryIndex, evaluator: Evaluator | None = None) -> CheckResult:
    """``evaluator``: one already built for ``policies`` (to share its caches), or None."""
    if evaluator is None:
        evaluator = Evaluator.from_inventory(policies, index.inventory)
    groups: dict[tuple, list] = {}
    # Verdicts are cached objects of the evaluator (alive as long as it is), so their
    # reason text, costly to build, is built once per verdict.
    reasons: dict[int, str] = {}
    checked = allowed = denied = allowed_count = denied_count = 0
    counted: set[tuple] = set()
    peer_id = PeerIds()
    check = evaluator.check
    for c in connections:
        src = c.src_pod if c.src_pod is not None else c.src_ip
        dst = c.dst_pod if c.dst_pod is not None else c.dst_ip
        v = check(src, dst, c.protocol, c.port)
        reason = reasons.get(id(v))
        if reason is None:
            reason = reasons[id(v)] = v.reason
        checked += 1
        # A ClusterIP flow expanded to several backends is one set of connections:
        # count it once per verdict and per group, not once per backend.
        new_flow = c.flow_id < 0 or (v.allowed, c.flow_id) not in counted
        counted.add((v.allowed, c.flow_id))
        if v.allowed:
            allowed += 1
            allowed_count += c.count if new_flow else 0
        else:
            denied += 1
            denied_count += c.count if new_flow else 0
        key = (peer_id(c.src), peer_id(c.dst), c.protocol,
               c.port if c.port is not None else -1, v.allowed, reason)
        new_in_group = c.flow_id < 0 or (key, c.flow_id) not in counted
        counted.add((key, c.flow_id))
        g = groups.get(key)
        if g is None:
            g = groups[key] = [c.count, 1, c.first_seen, c.last_seen, v,
                               f"{_who(c.src_pod, c.src_ip)} -> {_who(c.dst_pod, c.dst_ip)}",
                               c.port, set(), _NO_HINT_YET, c.src, c.dst]
        else:
            g[0] += c.count if new_in_group else 0
            g[1] += 1
            if c.first_seen < g[2]:
                g[2] = c.first_seen
            if c.last_seen > g[3]:
                g[3] = c.last_seen
        if c.service is not None and c.service_port is not None:
            g[7].add(f"{c.service[0]}/{c.service[1]}:{c.service_port}")
        if g[8] is _NO_HINT_YET and not v.allowed:
            g[8] = _hint(evaluator, c, src, dst, v)
    out = []
    for key in groups:
        _, _, proto, _, ok, reason = key
        count, n, first, last, v, example, port, services, hint, src, dst = groups[key]
        if hint is _NO_HINT_YET:
            hint = None
        out.append(CheckedGroup(src, dst, proto, port, ok, count, n, first, last, reason,
                                v.denied_by, _rule_refs(v), example, v, tuple(sorted(services)),
                                hint))
    # denied first in the listing, then allowed
    out.sort(key=lambda g: (g.allowed, g.src, g.dst, g.protocol,
                            g.port if g.port is not None else -1, g.reason))
    return CheckResult(tuple(out), checked, allowed, denied, allowed_count, denied_count,
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
    return {
        "checked": r.checked, "allowed": r.allowed, "denied": r.denied,
        "allowed_connections": r.allowed_count, "denied_connections": r.denied_count,
        "policies": r.policies,
        "denied_list": [group_dict(g) for g in r.groups if not g.allowed],
    }


def denied_lines(r: CheckResult) -> tuple[str, ...]:
    return tuple(
        f"{g.src.display()} -> {g.dst.display()} {g.protocol}/{g.port}: {g.count} "
        f"connection(s), last seen {format_time(g.last_seen)[:19]}Z; {g.reason}"
        for g in r.groups if not g.allowed
    )
