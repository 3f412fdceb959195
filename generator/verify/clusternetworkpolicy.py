"""ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2, sigs.k8s.io
network-policy-api): parsed and validated into frozen rules.

One kind with ``tier: Admin|Baseline``, ``priority`` 0-1000 (lower first), a ``subject``
(``namespaces`` or ``pods``) and ordered ``ingress``/``egress`` rules with an ``action``
(Accept, Deny, Pass), peers and ``protocols``. Standard-channel peers are judged
(``namespaces``, ``pods``, and for egress ``networks``); of the experimental ones
``domainNames`` is judged against DNS name bindings, ``nodes`` is not (a snapshot's
nodes carry no labels here) and makes the peer match nothing, reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generator.inventory.model import LabelSelector
from generator.verify.policy import IPBlock, _Context, _check_fields, _network, object_identity
from generator.verify.selectors import SelectorError, parse_label_selector

API_GROUP = "policy.networking.k8s.io"
KIND = "ClusterNetworkPolicy"
ADMIN = "Admin"
BASELINE = "Baseline"
ACCEPT, DENY, PASS = "Accept", "Deny", "Pass"


@dataclass(frozen=True, slots=True)
class CnpPeer:
    """Exactly one field set. ``pods``: (namespaceSelector, podSelector)."""

    namespaces: LabelSelector | None = None
    pods: tuple[LabelSelector, LabelSelector] | None = None
    networks: tuple[IPBlock, ...] = ()
    domain_names: tuple[str, ...] = ()
    unjudged: str | None = None


@dataclass(frozen=True, slots=True)
class CnpPort:
    protocol: str | None  # None with a named port: the port's own protocol
    low: int | None  # None: every port of the protocol
    high: int | None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class CnpRule:
    name: str
    action: str
    peers: tuple[CnpPeer, ...]
    ports: tuple[CnpPort, ...] | None  # None: every port


@dataclass(frozen=True, slots=True)
class ClusterNetworkPolicy:
    name: str
    tier: str
    priority: int
    subject_namespaces: LabelSelector  # the namespaces whose pods it selects
    subject_pods: LabelSelector | None  # None: every pod of those namespaces
    ingress: tuple[CnpRule, ...] = ()
    egress: tuple[CnpRule, ...] = ()
    path: str | None = None
    line: int | None = None

    @property
    def id(self) -> str:
        return f"{KIND} {self.name}"

    @property
    def not_judged(self) -> tuple[str, ...]:
        return tuple(f"{self.id} {d}[{i}] ({r.name}): {p.unjudged}"
                     for d, rules in (("ingress", self.ingress), ("egress", self.egress))
                     for i, r in enumerate(rules) for p in r.peers if p.unjudged)


def _selector(ctx: _Context, raw: Any, field: str) -> LabelSelector:
    try:
        return parse_label_selector(raw if raw is not None else {}, field)
    except SelectorError as e:
        raise ctx.error(str(e), raw if isinstance(raw, dict) else None) from None


def _pods(ctx: _Context, raw: Any, field: str) -> tuple[LabelSelector, LabelSelector]:
    if not isinstance(raw, dict):
        raise ctx.error(f"{field} must be a mapping with namespaceSelector and podSelector")
    _check_fields(ctx, raw, field, {"namespaceSelector", "podSelector"})
    if "podSelector" not in raw:
        raise ctx.error(f"{field}.podSelector is required (use {{}} for every pod)", raw)
    return (_selector(ctx, raw.get("namespaceSelector"), f"{field}.namespaceSelector"),
            _selector(ctx, raw.get("podSelector"), f"{field}.podSelector"))


def _peer(ctx: _Context, raw: Any, field: str, egress: bool) -> CnpPeer:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ctx.error(f"{field} must set exactly one of namespaces, pods"
                        + (", networks, nodes, domainNames" if egress else ""))
    allowed = {"namespaces", "pods"} | ({"networks", "nodes", "domainNames"} if egress else set())
    _check_fields(ctx, raw, field, allowed)
    (key, value), = raw.items()
    if key == "namespaces":
        return CnpPeer(namespaces=_selector(ctx, value, f"{field}.namespaces"))
    if key == "pods":
        return CnpPeer(pods=_pods(ctx, value, f"{field}.pods"))
    if key == "networks":
        if not isinstance(value, list) or not value:
            raise ctx.error(f"{field}.networks must be a non-empty list of CIDRs", raw)
        return CnpPeer(networks=tuple(IPBlock.make(str(_network(ctx, c, f"{field}.networks", raw)))
                                      for c in value))
    if key == "domainNames":
        if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
            raise ctx.error(f"{field}.domainNames must be a list of DNS names", raw)
        return CnpPeer(domain_names=tuple(n.rstrip(".").lower() for n in value))
    return CnpPeer(unjudged="nodes peers are not judged (node labels are not in the snapshot)")


def _protocols(ctx: _Context, raw: Any, field: str) -> tuple[CnpPort, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise ctx.error(f"{field} must be a non-empty list")
    out = []
    for i, item in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise ctx.error(f"{where} must set exactly one of tcp, udp, sctp, destinationNamedPort")
        _check_fields(ctx, item, where, {"tcp", "udp", "sctp", "destinationNamedPort"})
        (key, value), = item.items()
        if key == "destinationNamedPort":
            if not isinstance(value, str) or not value:
                raise ctx.error(f"{where}.destinationNamedPort must be a port name", item)
            out.append(CnpPort(None, None, None, value))
            continue
        if not isinstance(value, dict):
            raise ctx.error(f"{where}.{key} must be a mapping with destinationPort", item)
        _check_fields(ctx, value, f"{where}.{key}", {"destinationPort"})
        dp = value.get("destinationPort")
        if dp is None:
            out.append(CnpPort(key.upper(), None, None))
            continue
        if not isinstance(dp, dict) or len(dp) != 1:
            raise ctx.error(f"{where}.{key}.destinationPort must set number or range", value)
        _check_fields(ctx, dp, f"{where}.{key}.destinationPort", {"number", "range"})
        if "number" in dp:
            n = dp["number"]
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 65535:
                raise ctx.error(f"{where}.{key}.destinationPort.number must be 1-65535", dp)
            out.append(CnpPort(key.upper(), n, n))
        else:
            r = dp["range"]
            if not isinstance(r, dict) or not all(isinstance(r.get(k), int) and 1 <= r[k] <= 65535
                                                  for k in ("start", "end")) \
                    or r["start"] >= r["end"]:
                raise ctx.error(f"{where}.{key}.destinationPort.range needs start < end, 1-65535", dp)
            out.append(CnpPort(key.upper(), r["start"], r["end"]))
    return tuple(out)


def _rules(ctx: _Context, spec: dict, direction: str, tier: str) -> tuple[CnpRule, ...]:
    raw = spec.get(direction)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ctx.error(f"spec.{direction} must be a list", spec)
    peers_key = "from" if direction == "ingress" else "to"
    out = []
    for i, r in enumerate(raw):
        where = f"spec.{direction}[{i}]"
        if not isinstance(r, dict):
            raise ctx.error(f"{where} must be a mapping with action and {peers_key}")
        _check_fields(ctx, r, where, {"name", "action", peers_key, "protocols"})
        action = r.get("action")
        if action not in (ACCEPT, DENY, PASS):
            raise ctx.error(f"{where}.action {action!r} must be Accept, Deny or Pass", r)
        if action == PASS and tier == BASELINE:
            raise ctx.error(f"{where}.action Pass is not allowed in the Baseline tier", r)
        peers = r.get(peers_key)
        if not isinstance(peers, list) or not peers:
            raise ctx.error(f"{where}.{peers_key} must list at least one peer", r)
        out.append(CnpRule(str(r.get("name") or f"{direction}[{i}]"), action,
                           tuple(_peer(ctx, p, f"{where}.{peers_key}[{j}]", direction == "egress")
                                 for j, p in enumerate(peers)),
                           _protocols(ctx, r.get("protocols"), f"{where}.protocols")))
    return tuple(out)


def parse_cluster_network_policy(obj: dict, path: str | None = None,
                                 lines: dict[int, int] | None = None) -> ClusterNetworkPolicy:
    _, name = object_identity(KIND, obj, path, lines, None)
    ctx = _Context(path, lines, obj, f"{KIND} {name}")
    if obj.get("apiVersion") != f"{API_GROUP}/v1alpha2":
        raise ctx.error(f"apiVersion {obj.get('apiVersion')!r} is not supported; {KIND} is "
                        f"{API_GROUP}/v1alpha2 (AdminNetworkPolicy and BaselineAdminNetworkPolicy "
                        "of v1alpha1 were replaced by it)")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise ctx.error("spec is missing")
    _check_fields(ctx, spec, "spec", {"tier", "priority", "subject", "ingress", "egress"})
    tier = spec.get("tier")
    if tier not in (ADMIN, BASELINE):
        raise ctx.error(f"spec.tier {tier!r} must be Admin or Baseline", spec)
    priority = spec.get("priority")
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 1000:
        raise ctx.error("spec.priority must be a number 0-1000", spec)
    subject = spec.get("subject")
    if not isinstance(subject, dict) or len(subject) != 1:
        raise ctx.error("spec.subject must set exactly one of namespaces and pods", spec)
    _check_fields(ctx, subject, "spec.subject", {"namespaces", "pods"})
    if "namespaces" in subject:
        ns_sel, pod_sel = _selector(ctx, subject["namespaces"], "spec.subject.namespaces"), None
    else:
        ns_sel, pod_sel = _pods(ctx, subject["pods"], "spec.subject.pods")
    return ClusterNetworkPolicy(name, tier, priority, ns_sel, pod_sel,
                                _rules(ctx, spec, "ingress", tier), _rules(ctx, spec, "egress", tier),
                                path, ctx.line)
