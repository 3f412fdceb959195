"""CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy (cilium.io/v2): parsed and
validated into frozen rules that ``generator.verify.cilium`` judges at L3/L4.

What is judged: ``endpointSelector``; ``ingress``/``egress`` (allow) and
``ingressDeny``/``egressDeny`` rules with ``fromEndpoints``/``toEndpoints``,
``fromEntities``/``toEntities``, ``fromCIDR``/``toCIDR``, ``fromCIDRSet``/``toCIDRSet``
(``except``), ``toFQDNs`` (``matchName``, ``matchPattern``) and ``toPorts``
(``port``/``endPort``/``protocol``); ``enableDefaultDeny``; ``specs`` (several rules in
one object). L7 rules (``toPorts[].rules``: http, dns, kafka, ...) are judged at L3/L4
only and reported as not judged. Fields whose peers cannot be known from a snapshot
(``toServices``, ``fromRequires``/``toRequires``, ``fromNodes``/``toNodes``,
``fromGroups``/``toGroups``, ``cidrGroupRef``, ``icmps``, ``nodeSelector`` host
policies) make their rule match nothing, reported as not judged too. Unknown fields are
an input error, as for NetworkPolicies (Cilium's CRD would prune them silently and
widen the rule).

Label keys may carry a source prefix (``k8s:app``, ``any:app``): Cilium matches a key
without one against any source, so the prefix is dropped; ``reserved:`` keys select
Cilium's reserved identities, not pods, and are judged as the matching entity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from generator.inventory.model import LabelSelector
from generator.verify.policy import IPBlock, _Context, _check_fields, _network, object_identity
from generator.verify.selectors import SelectorError, parse_label_selector

API_GROUP = "cilium.io"
CNP = "CiliumNetworkPolicy"
CCNP = "CiliumClusterwideNetworkPolicy"
KINDS = (CNP, CCNP)
# The label Cilium gives each pod's identity: its namespace.
NS_KEY = "io.kubernetes.pod.namespace"
# Cilium's entities (Cilium docs, "Entities based").
# "none" selects nothing (it is in the CRD's enum, cilium.io/v2 toEntities).
ENTITIES = frozenset({"host", "remote-node", "kube-apiserver", "ingress", "cluster", "init",
                      "health", "unmanaged", "world", "world-ipv4", "world-ipv6", "all", "none"})
PROTOCOLS = ("TCP", "UDP", "SCTP", "ANY")

_FQDN_NAME = re.compile(r"[-a-zA-Z0-9_.]+")
_FQDN_PATTERN = re.compile(r"[-a-zA-Z0-9_.*]+")
_UNJUDGED_L3 = {"toServices", "fromRequires", "toRequires", "fromNodes", "toNodes",
                "fromGroups", "toGroups", "icmps", "authentication"}
_INGRESS_FIELDS = {"fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet", "toPorts",
                   "fromRequires", "fromNodes", "fromGroups", "icmps", "authentication"}
_EGRESS_FIELDS = {"toEndpoints", "toEntities", "toCIDR", "toCIDRSet", "toFQDNs", "toPorts",
                  "toRequires", "toNodes", "toGroups", "toServices", "icmps",
                  "authentication"}
_SPEC_FIELDS = {"endpointSelector", "nodeSelector", "ingress", "egress", "ingressDeny",
                "egressDeny", "enableDefaultDeny", "labels", "description", "log"}


@dataclass(frozen=True, slots=True)
class CiliumPeer:
    """One L3 alternative of a rule: exactly one of the fields is set."""

    selector: LabelSelector | None = None  # endpoints (source prefixes dropped)
    namespaced: bool = False  # the selector names the namespace itself
    entity: str | None = None
    block: IPBlock | None = None
    fqdn_name: str | None = None  # lower case, no trailing dot
    fqdn_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class CiliumPort:
    protocol: str  # TCP, UDP, SCTP or ANY
    port: int | str | None  # None: every port ("0" or no port)
    end_port: int | None = None


@dataclass(frozen=True, slots=True)
class CiliumRule:
    """``peers`` None: no L3 field, every peer; () : an explicitly empty list, no peer.
    ``ports`` None: every port and protocol."""

    peers: tuple[CiliumPeer, ...] | None
    ports: tuple[CiliumPort, ...] | None
    not_judged: tuple[str, ...] = ()  # what of this rule was not judged, and why


@dataclass(frozen=True, slots=True)
class CiliumPolicy:
    kind: str  # CNP or CCNP
    namespace: str | None  # None for a CCNP
    name: str
    endpoint_selector: LabelSelector | None  # None: a host policy (nodeSelector)
    ingress: tuple[CiliumRule, ...] = ()
    egress: tuple[CiliumRule, ...] = ()
    ingress_deny: tuple[CiliumRule, ...] = ()
    egress_deny: tuple[CiliumRule, ...] = ()
    default_deny_ingress: bool = False
    default_deny_egress: bool = False
    path: str | None = None
    line: int | None = None
    spec_index: int | None = None  # the index in ``specs``, when the object has several

    @property
    def id(self) -> str:
        base = f"{self.namespace}/{self.name}" if self.namespace is not None else self.name
        suffix = f" specs[{self.spec_index}]" if self.spec_index is not None else ""
        return f"{self.kind} {base}{suffix}"

    @property
    def not_judged(self) -> tuple[str, ...]:
        out = []
        for direction, rules in (("ingress", self.ingress), ("egress", self.egress),
                                 ("ingressDeny", self.ingress_deny),
                                 ("egressDeny", self.egress_deny)):
            for i, r in enumerate(rules):
                out += [f"{self.id} {direction}[{i}]: {t}" for t in r.not_judged]
        if self.endpoint_selector is None:
            out.append(f"{self.id}: a host policy (nodeSelector) applies to nodes, not pods")
        return tuple(out)


def _cilium_selector(ctx: _Context, raw: Any, field: str) -> tuple[LabelSelector, bool, str | None]:
    """(selector without source prefixes, whether it names the namespace, the entity
    a ``reserved:`` key selects)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ctx.error(f"{field} must be a mapping with matchLabels/matchExpressions")
    reserved = None

    def plain(key: Any) -> Any:
        nonlocal reserved
        if isinstance(key, str) and ":" in key:
            source, _, rest = key.partition(":")
            if source == "reserved":
                reserved = rest
            if source in ("k8s", "any", "reserved"):
                return rest
        return key

    normal: dict = {}
    for k, v in raw.items():
        if k == "matchLabels" and isinstance(v, dict):
            normal[k] = {plain(key): value for key, value in v.items()}
        elif k == "matchExpressions" and isinstance(v, list):
            normal[k] = [{**e, "key": plain(e.get("key"))} if isinstance(e, dict) else e for e in v]
        else:
            normal[k] = v
    try:
        sel = parse_label_selector(normal, field)
    except SelectorError as e:
        raise ctx.error(str(e), raw) from None
    keys = {k for k, _ in sel.match_labels} | {k for k, _, _ in sel.match_expressions}
    return sel, NS_KEY in keys, reserved


def _list(ctx: _Context, raw: dict, key: str, field: str) -> list | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise ctx.error(f"{field}.{key} must be a list, got {type(value).__name__}", raw)
    return value


def _ports(ctx: _Context, raw: dict, field: str, deny: bool) -> tuple[tuple[CiliumPort, ...] | None, list[str]]:
    items = _list(ctx, raw, "toPorts", field)
    if items is None:
        return None, []
    ports: list[CiliumPort] = []
    notes: list[str] = []
    for i, pr in enumerate(items):
        where = f"{field}.toPorts[{i}]"
        if not isinstance(pr, dict):
            raise ctx.error(f"{where} must be a mapping with ports (and rules)")
        allowed = {"ports"} if deny else {"ports", "rules", "listener", "originatingTLS",
                                          "terminatingTLS", "serverNames"}
        _check_fields(ctx, pr, where, allowed)
        l7 = pr.get("rules")
        if isinstance(l7, dict) and l7:
            notes.append(f"L7 rules ({', '.join(sorted(map(str, l7)))}) judged at L3/L4 only")
        for extra in ("listener", "originatingTLS", "terminatingTLS", "serverNames"):
            if pr.get(extra) is not None:
                notes.append(f"{extra} not judged")
        plist = _list(ctx, pr, "ports", where) or []
        if not plist:
            ports.append(CiliumPort("ANY", None))  # rules only: every port
        for j, pp in enumerate(plist):
            ports.append(_port(ctx, pp, f"{where}.ports[{j}]"))
    return tuple(ports), notes


def _port(ctx: _Context, raw: Any, field: str) -> CiliumPort:
    if not isinstance(raw, dict):
        raise ctx.error(f"{field} must be a mapping with port, protocol and endPort")
    _check_fields(ctx, raw, field, {"port", "protocol", "endPort"})
    protocol = raw.get("protocol") or "ANY"
    if protocol not in PROTOCOLS:
        raise ctx.error(f"{field}.protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}", raw)
    port = raw.get("port")
    end = raw.get("endPort")
    if isinstance(port, bool) or not (port is None or isinstance(port, (str, int))):
        raise ctx.error(f"{field}.port must be a port number or name as a string", raw)
    text = str(port) if port is not None else "0"
    if text.isdigit():
        number = int(text)
        if number > 65535:
            raise ctx.error(f"{field}.port {text} is out of range 0-65535", raw)
        value: int | str | None = number or None
    elif re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", text) and len(text) <= 15:
        value = text
    else:
        raise ctx.error(f"{field}.port {text!r} is neither a port number nor a port name", raw)
    if end is not None:
        if isinstance(end, bool) or not isinstance(end, int) or not 0 <= end <= 65535:
            raise ctx.error(f"{field}.endPort must be a number 0-65535", raw)
        if not isinstance(value, int) or end < value:
            raise ctx.error(f"{field}.endPort needs a numeric port no larger than it", raw)
    return CiliumPort(protocol, value, end if end and end != value else None)


def _rule(ctx: _Context, raw: Any, field: str, egress: bool, deny: bool, namespaced: bool) -> CiliumRule:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ctx.error(f"{field} must be a mapping")
    fields = _EGRESS_FIELDS if egress else _INGRESS_FIELDS
    _check_fields(ctx, raw, field, fields)
    word = "to" if egress else "from"
    peers: list[CiliumPeer] | None = None
    notes: list[str] = []

    def add(items: list[CiliumPeer]) -> None:
        nonlocal peers
        peers = (peers or []) + items

    sels = _list(ctx, raw, f"{word}Endpoints", field)
    if sels is not None:
        found = []
        for i, s in enumerate(sels):
            sel, has_ns, reserved = _cilium_selector(ctx, s, f"{field}.{word}Endpoints[{i}]")
            if reserved is not None:
                found.append(CiliumPeer(entity=reserved))
            else:
                found.append(CiliumPeer(selector=sel, namespaced=has_ns or not namespaced))
        add(found)
    entities = _list(ctx, raw, f"{word}Entities", field)
    if entities is not None:
        for e in entities:
            if e not in ENTITIES:
                raise ctx.error(f"{field}.{word}Entities has {e!r}; entities are "
                                f"{', '.join(sorted(ENTITIES))}", raw)
        add([CiliumPeer(entity=e) for e in entities])
    cidrs = _list(ctx, raw, f"{word}CIDR", field)
    if cidrs is not None:
        add([CiliumPeer(block=IPBlock.make(str(_network(ctx, c, f"{field}.{word}CIDR", raw))))
             for c in cidrs])
    cidr_set = _list(ctx, raw, f"{word}CIDRSet", field)
    if cidr_set is not None:
        found = []
        for i, c in enumerate(cidr_set):
            where = f"{field}.{word}CIDRSet[{i}]"
            if not isinstance(c, dict):
                raise ctx.error(f"{where} must be a mapping with cidr and except")
            _check_fields(ctx, c, where, {"cidr", "except", "cidrGroupRef", "cidrGroupSelector"})
            if c.get("cidr") is None:
                notes.append(f"{where}: CIDR groups not judged; the entry matches nothing here")
                continue
            net = _network(ctx, c["cidr"], f"{where}.cidr", c)
            excepts = [str(_network(ctx, e, f"{where}.except", c)) for e in c.get("except") or []]
            found.append(CiliumPeer(block=IPBlock.make(str(net), excepts)))
        add(found)
    fqdns = _list(ctx, raw, "toFQDNs", field) if egress else None
    if fqdns is not None:
        if deny:
            raise ctx.error(f"{field}.toFQDNs is not allowed in a deny rule", raw)
        found = []
        for i, f in enumerate(fqdns):
            where = f"{field}.toFQDNs[{i}]"
            if not isinstance(f, dict):
                raise ctx.error(f"{where} must be a mapping with matchName or matchPattern")
            _check_fields(ctx, f, where, {"matchName", "matchPattern"})
            name, pattern = f.get("matchName"), f.get("matchPattern")
            if name is not None and (not isinstance(name, str) or not _FQDN_NAME.fullmatch(name)):
                raise ctx.error(f"{where}.matchName {name!r} is not a DNS name", f)
            if pattern is not None and (not isinstance(pattern, str) or not _FQDN_PATTERN.fullmatch(pattern)):
                raise ctx.error(f"{where}.matchPattern {pattern!r} is not a DNS name pattern", f)
            if name is None and pattern is None:
                raise ctx.error(f"{where} needs matchName or matchPattern", f)
            found.append(CiliumPeer(fqdn_name=name.rstrip(".").lower() if name else None,
                                    fqdn_pattern=pattern.rstrip(".").lower() if pattern else None))
        add(found)
    for key in sorted(_UNJUDGED_L3 & set(raw)):
        if raw.get(key) is not None:
            notes.append(f"{key} not judged; the rule matches nothing here")
            peers = []
    ports, port_notes = _ports(ctx, raw, field, deny)
    return CiliumRule(None if peers is None else tuple(peers), ports, tuple(notes + port_notes))


def _default_deny(ctx: _Context, spec: dict, field: str) -> tuple[bool | None, bool | None]:
    raw = spec.get("enableDefaultDeny")
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise ctx.error(f"{field}.enableDefaultDeny must be a mapping with ingress and egress")
    _check_fields(ctx, raw, f"{field}.enableDefaultDeny", {"ingress", "egress"})
    out = []
    for k in ("ingress", "egress"):
        v = raw.get(k)
        if v is not None and not isinstance(v, bool):
            raise ctx.error(f"{field}.enableDefaultDeny.{k} must be true or false", raw)
        out.append(v)
    return out[0], out[1]


def _spec(ctx: _Context, kind: str, ns: str | None, name: str, spec: Any, field: str,
          index: int | None) -> CiliumPolicy:
    if not isinstance(spec, dict):
        raise ctx.error(f"{field} must be a mapping with endpointSelector and rules")
    _check_fields(ctx, spec, field, _SPEC_FIELDS)
    if ("endpointSelector" in spec) == ("nodeSelector" in spec):
        raise ctx.error(f"{field} needs exactly one of endpointSelector and nodeSelector", spec)
    selector = None
    if "endpointSelector" in spec:
        selector, _, _ = _cilium_selector(ctx, spec["endpointSelector"], f"{field}.endpointSelector")
    namespaced = ns is not None
    sections = {}
    for key, egress, deny in (("ingress", False, False), ("egress", True, False),
                              ("ingressDeny", False, True), ("egressDeny", True, True)):
        items = _list(ctx, spec, key, field) or []
        sections[key] = tuple(_rule(ctx, r, f"{field}.{key}[{i}]", egress, deny, namespaced)
                              for i, r in enumerate(items))
    if not any(sections.values()):
        raise ctx.error(f"{field} has no ingress, egress, ingressDeny or egressDeny rule; "
                        "Cilium rejects such a rule (1.17 on) or ignores it", spec)
    dd_in, dd_out = _default_deny(ctx, spec, field)
    # enableDefaultDeny unset: on for each direction that has rules (allow or deny)
    return CiliumPolicy(
        kind, ns, name, selector, sections["ingress"], sections["egress"],
        sections["ingressDeny"], sections["egressDeny"],
        dd_in if dd_in is not None else bool(sections["ingress"] or sections["ingressDeny"]),
        dd_out if dd_out is not None else bool(sections["egress"] or sections["egressDeny"]),
        ctx.path, ctx.line, index)


def parse_cilium_policy(obj: dict, path: str | None = None, lines: dict[int, int] | None = None,
                        default_namespace: str = "default") -> tuple[CiliumPolicy, ...]:
    """One raw CNP/CCNP object: one CiliumPolicy per rule (``spec`` and each ``specs``)."""
    kind = obj.get("kind")
    ns, name = object_identity(str(kind), obj, path, lines,
                               default_namespace if kind == CNP else None)
    ctx = _Context(path, lines, obj, f"{kind} {ns + '/' if ns else ''}{name}")
    api = obj.get("apiVersion")
    if api != f"{API_GROUP}/v2":
        raise ctx.error(f"apiVersion {api!r} is not supported; {kind} is {API_GROUP}/v2")
    _check_fields(ctx, obj, "the object", {"apiVersion", "kind", "metadata", "spec", "specs",
                                           "status"})
    out: list[CiliumPolicy] = []
    if obj.get("spec") is not None:
        out.append(_spec(ctx, kind, ns, name, obj["spec"], "spec", None))
    specs = obj.get("specs")
    if specs is not None:
        if not isinstance(specs, list):
            raise ctx.error("specs must be a list of rules")
        out += [_spec(ctx, kind, ns, name, s, f"specs[{i}]", i) for i, s in enumerate(specs)]
    if not out:
        raise ctx.error("neither spec nor specs is given; a Cilium policy needs one")
    return tuple(out)
