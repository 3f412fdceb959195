"""networking.k8s.io/v1 NetworkPolicy objects: parsed, validated, frozen.

``parse_policy`` turns one raw object (kubectl JSON/YAML shape, camelCase) into a
``NetworkPolicy``; ``load_policies`` reads files and directories of YAML/JSON
(multi-document, ``List``/``NetworkPolicyList``) and skips, counting them, documents that
are not NetworkPolicies (kustomization.yaml, AdminNetworkPolicy, Services, ...).

Validation mirrors the API server (pkg/apis/networking/validation and the v1 defaults),
so a file we accept is one ``kubectl apply`` accepts, with two deliberate extras that
protect the verdict: unknown fields are errors (a typo such as ``form:`` would otherwise
turn a rule into allow-all, exactly what ``kubectl apply --validate=strict`` rejects), and
a missing ``spec.podSelector`` is an error (the schema marks it required).

Defaults, as the API server applies them:
- ``policyTypes`` omitted or empty: ``Ingress``, plus ``Egress`` when ``spec.egress`` has
  at least one rule (``len(egress) != 0`` in SetDefaults_NetworkPolicy, so ``egress: []``
  does not make a policy an egress policy).
- ``ports[].protocol`` omitted: TCP.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import yaml

from generator.inventory.apivalidation import (
    cidr_problem, dns_label_problem, dns_subdomain_problem, port_name_problem,
)
from generator.inventory.model import LabelSelector
from generator.inventory.nesting import (
    MAX_DOCUMENT_DEPTH, object_problem, yaml_too_deep,
)
from generator.verify.selectors import (
    SelectorError, label_key_problem, label_value_problem, parse_label_selector,
)
from recorder.errors import InputError
from recorder.report import Skipped
from recorder.sources import expand_inputs, open_input

INGRESS = "Ingress"
EGRESS = "Egress"
PROTOCOLS = ("TCP", "UDP", "SCTP")
API_VERSION = "networking.k8s.io/v1"
POLICY_FILE_SUFFIXES = (".yaml", ".yml", ".json")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# CIDR text -> (network, its canonical text). Generated policies repeat the same node
# and resolver addresses in rule after rule, each parsed twice (validation, then
# IPBlock.make), and ipaddress parses in Python. Networks are immutable values.
_NETWORKS: dict[str, tuple[IPNetwork, str]] = {}
_MAX_NETWORKS = 10_000


def _parse_network(text: Any) -> tuple[IPNetwork, str]:
    """``ipaddress.ip_network(text, strict=False)`` and its ``str``."""
    if type(text) is not str:
        net = ipaddress.ip_network(text, strict=False)
        return net, str(net)
    hit = _NETWORKS.get(text)
    if hit is None:
        net = ipaddress.ip_network(text, strict=False)
        if len(_NETWORKS) >= _MAX_NETWORKS:
            _NETWORKS.clear()
        hit = _NETWORKS[text] = (net, str(net))
    return hit


@dataclass(frozen=True, slots=True)
class IPBlock:
    cidr: str  # canonical network form, e.g. "10.0.0.0/8"
    excepts: tuple[str, ...] = ()
    # Parsed forms of the two fields above (derived; set by make).
    network: IPNetwork | None = dataclass_field(default=None, repr=False, compare=False)
    except_networks: tuple[IPNetwork, ...] = dataclass_field(default=(), repr=False, compare=False)

    @staticmethod
    def make(cidr: str, excepts: Iterable[str] = ()) -> "IPBlock":
        net, text = _parse_network(cidr)
        parsed = [_parse_network(e) for e in excepts]
        return IPBlock(text, tuple(t for _, t in parsed), net, tuple(n for n, _ in parsed))

    def contains(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        net = self.network
        if net is None or ip.version != net.version or ip not in net:
            return False
        return not any(ip in e for e in self.except_networks)

    def describe(self) -> str:
        return self.cidr + (f" except {', '.join(self.excepts)}" if self.excepts else "")


@dataclass(frozen=True, slots=True)
class PolicyPeer:
    """One element of ``from``/``to``. Selectors set together are ANDed; None = not set."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True)
class PolicyPort:
    protocol: str = "TCP"
    port: int | str | None = None  # None: every port of the protocol
    end_port: int | None = None  # only with a numeric port


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """An ingress or egress rule. Empty ``peers``: every peer; empty ``ports``: every port."""

    peers: tuple[PolicyPeer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: tuple[str, ...]  # effective: subset of (Ingress, Egress), in that order
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()
    policy_types_explicit: bool = False  # False: inferred as the API server defaults them
    path: str | None = None  # file it came from
    line: int | None = None

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def affects_ingress(self) -> bool:
        return INGRESS in self.policy_types

    @property
    def affects_egress(self) -> bool:
        return EGRESS in self.policy_types


@dataclass(frozen=True, slots=True)
class LoadedPolicies:
    """What ``load_policies`` read: the policies, and every document it did not use."""

    policies: tuple[NetworkPolicy, ...]
    skipped: tuple[Skipped, ...] = ()  # non-NetworkPolicy documents, unreadable files
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    # files in a directory that hold no policy at all (reports, kustomization.yaml, ...)
    ignored: tuple[str, ...] = ()


class _Context:
    """Where a policy came from, to build ``path:line: NetworkPolicy ns/name: ...``."""

    def __init__(self, path: str | None, lines: dict[int, int] | None, obj: dict, what: str):
        self.path = path
        self.lines = lines or {}
        self.what = what
        self.line = self.lines.get(id(obj))

    def error(self, message: str, node: Any = None) -> InputError:
        line = self.lines.get(id(node), self.line) if node is not None else self.line
        return InputError(f"{self.what}: {message}", self.path, line)


def parse_policy(
    obj: dict,
    path: str | None = None,
    lines: dict[int, int] | None = None,
    default_namespace: str = "default",
) -> NetworkPolicy:
    """One raw NetworkPolicy object to a validated ``NetworkPolicy``.

    ``lines`` maps ``id()`` of the raw mappings to their 1-based line (from the YAML
    loader), so errors point at the offending rule or port.
    """
    namespace, name = object_identity("NetworkPolicy", obj, path, lines, default_namespace)
    ctx = _Context(path, lines, obj, f"NetworkPolicy {namespace}/{name}")
    if obj.get("apiVersion") != API_VERSION:
        raise ctx.error(
            f"apiVersion {obj.get('apiVersion')!r} is not supported; NetworkPolicy is "
            f"{API_VERSION} (extensions/v1beta1 was removed in Kubernetes 1.16)"
        )
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise ctx.error("spec is missing; a NetworkPolicy needs spec.podSelector (use {} for every pod)")
    _check_fields(ctx, spec, "spec", {"podSelector", "policyTypes", "ingress", "egress"})
    if "podSelector" not in spec:
        raise ctx.error("spec.podSelector is missing; use podSelector: {} to select every pod of the namespace", spec)
    pod_selector = _selector(ctx, spec["podSelector"], "spec.podSelector", spec)

    ingress_raw = _list(ctx, spec, "ingress", "spec")
    egress_raw = _list(ctx, spec, "egress", "spec")
    ingress = tuple(_rule(ctx, r, "from", f"spec.ingress[{i}]") for i, r in enumerate(ingress_raw))
    egress = tuple(_rule(ctx, r, "to", f"spec.egress[{i}]") for i, r in enumerate(egress_raw))

    types_raw = _list(ctx, spec, "policyTypes", "spec")
    if len(types_raw) > 2:
        raise ctx.error("spec.policyTypes may not list more than two types (Ingress, Egress)", spec)
    for t in types_raw:
        if t not in (INGRESS, EGRESS):
            raise ctx.error(
                f"spec.policyTypes has {t!r}; the only types are Ingress and Egress (case matters)", spec
            )
    if types_raw:
        types = tuple(t for t in (INGRESS, EGRESS) if t in types_raw)
    else:
        types = (INGRESS, EGRESS) if egress else (INGRESS,)
    return NetworkPolicy(
        namespace=namespace,
        name=name,
        pod_selector=pod_selector,
        policy_types=types,
        ingress=ingress,
        egress=egress,
        policy_types_explicit=bool(types_raw),
        path=path,
        line=ctx.line,
    )


def object_identity(kind: str, obj: dict, path: str | None, lines: dict[int, int] | None,
                    default_namespace: str | None) -> tuple[str | None, str]:
    """(namespace, name) of a policy object of any kind, refused unless the API server
    would accept them: the one check of the names a policy file gives (they become file
    names, YAML and comments when a set is tightened or migrated). ``default_namespace``
    None: a cluster-scoped kind. Also refuses objects nested deeper than any policy is,
    which later walks (dumping, copying) would recurse through."""
    line = (lines or {}).get(id(obj))
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise InputError(f"{kind} without metadata; add metadata.name"
                         + (" and metadata.namespace" if default_namespace else ""), path, line)
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{kind}: metadata.name is missing; give the policy a name", path, line)
    # k8s.io/apimachinery ValidateObjectMeta: NetworkPolicy names are DNS subdomains
    # (ValidateNetworkPolicyName), namespaces DNS labels (ValidateNamespaceName).
    problem = dns_subdomain_problem(name)
    if problem:
        raise InputError(f"{kind} {name!r}: metadata.name {problem}", path, line)
    if default_namespace is None:
        namespace = None
    else:
        namespace = meta.get("namespace") or default_namespace
        problem = dns_label_problem(namespace)
        if problem:
            raise InputError(f"{kind} {name}: metadata.namespace {problem}", path, line)
    # ValidateObjectMeta: labels map qualified names to label values, annotations map
    # qualified names to strings. Both are written back when a set is tightened.
    for field in ("labels", "annotations"):
        values = meta.get(field)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise InputError(f"{kind} {name}: metadata.{field} must be a mapping of names to "
                             f"strings, not {type(values).__name__}", path, line)
        for k, v in values.items():
            problem = label_key_problem(k) or (
                label_value_problem(k, v) if field == "labels" else None if isinstance(v, str)
                else f"annotation {k!r} is {type(v).__name__} {v!r}, not a string; quote it")
            if problem:
                raise InputError(f"{kind} {name}: metadata.{field}: {problem}", path, line)
    problem = object_problem(obj)
    if problem:
        raise InputError(f"{kind} {name}: {problem}", path, line)
    return namespace, name


def _check_fields(ctx: _Context, raw: dict, field: str, allowed: set[str]) -> None:
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if not unknown:
        return
    if any(re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k.lstrip("_")) in allowed for k in unknown):
        raise ctx.error(
            f"{field} has snake_case field(s) {', '.join(unknown)}, as the Python client's to_dict() "
            "writes them; give the API's camelCase form instead (kubectl get networkpolicies -o yaml)",
            raw,
        )
    raise ctx.error(
        f"{field} has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))} "
        "(the API server drops unknown fields, which can silently widen a rule)",
        raw,
    )


def _list(ctx: _Context, raw: dict, key: str, field: str) -> list:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.error(f"{field}.{key} must be a list, got {type(value).__name__}", raw)
    return value


def _selector(ctx: _Context, raw: Any, field: str, node: Any) -> LabelSelector:
    try:
        return parse_label_selector(raw, field)
    except SelectorError as e:
        raise ctx.error(str(e), raw if isinstance(raw, dict) else node) from None


def _rule(ctx: _Context, raw: Any, peers_key: str, field: str) -> PolicyRule:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ctx.error(f"{field} must be a mapping with {peers_key!r} and 'ports'")
    _check_fields(ctx, raw, field, {peers_key, "ports"})
    peers = tuple(
        _peer(ctx, p, f"{field}.{peers_key}[{i}]") for i, p in enumerate(_list(ctx, raw, peers_key, field))
    )
    ports = tuple(_port(ctx, p, f"{field}.ports[{i}]") for i, p in enumerate(_list(ctx, raw, "ports", field)))
    return PolicyRule(peers, ports)


def _peer(ctx: _Context, raw: Any, field: str) -> PolicyPeer:
    if not isinstance(raw, dict):
        raise ctx.error(f"{field} must be a mapping with podSelector, namespaceSelector or ipBlock")
    _check_fields(ctx, raw, field, {"podSelector", "namespaceSelector", "ipBlock"})
    present = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if raw.get(k) is not None]
    if not present:
        raise ctx.error(
            f"{field} is empty; a peer needs podSelector, namespaceSelector or ipBlock "
            "(to allow every peer, leave the whole from/to list out)",
            raw,
        )
    if "ipBlock" in present and len(present) > 1:
        raise ctx.error(
            f"{field} combines ipBlock with a selector; put the ipBlock in its own list element", raw
        )
    if "ipBlock" in present:
        return PolicyPeer(ip_block=_ip_block(ctx, raw["ipBlock"], f"{field}.ipBlock"))
    pod = _selector(ctx, raw["podSelector"], f"{field}.podSelector", raw) if "podSelector" in present else None
    ns = (
        _selector(ctx, raw["namespaceSelector"], f"{field}.namespaceSelector", raw)
        if "namespaceSelector" in present
        else None
    )
    return PolicyPeer(pod_selector=pod, namespace_selector=ns)


def _ip_block(ctx: _Context, raw: Any, field: str) -> IPBlock:
    if not isinstance(raw, dict):
        raise ctx.error(f"{field} must be a mapping with cidr and except")
    _check_fields(ctx, raw, field, {"cidr", "except"})
    cidr = raw.get("cidr")
    if not isinstance(cidr, str) or not cidr:
        raise ctx.error(f"{field}.cidr is missing; give a CIDR such as 10.0.0.0/8 or 2001:db8::/32", raw)
    net = _network(ctx, cidr, f"{field}.cidr", raw)
    excepts = _list(ctx, raw, "except", field)
    for i, e in enumerate(excepts):
        sub = _network(ctx, e, f"{field}.except[{i}]", raw)
        if sub.version != net.version or not sub.subnet_of(net) or sub.prefixlen <= net.prefixlen:  # type: ignore[arg-type]
            raise ctx.error(
                f"{field}.except[{i}] {e} must be a strict subset of cidr {cidr} "
                "(same address family, inside it, longer prefix)",
                raw,
            )
    return IPBlock.make(cidr, excepts)


def _network(ctx: _Context, text: Any, field: str, node: Any) -> IPNetwork:
    # Cached: the same CIDRs recur rule after rule, and the cache holds valid ones only.
    hit = _NETWORKS.get(text) if type(text) is str else None
    if hit is not None:
        return hit[0]
    problem = cidr_problem(text)
    if problem:
        raise ctx.error(f"{field} {problem}", node)
    return _parse_network(text)[0]


def _port(ctx: _Context, raw: Any, field: str) -> PolicyPort:
    if not isinstance(raw, dict):
        raise ctx.error(f"{field} must be a mapping with protocol, port and endPort")
    _check_fields(ctx, raw, field, {"protocol", "port", "endPort"})
    protocol = raw.get("protocol")
    if protocol is None:
        protocol = "TCP"
    if protocol not in PROTOCOLS:
        raise ctx.error(f"{field}.protocol {protocol!r} is not supported; use TCP, UDP or SCTP (upper case)", raw)
    port = raw.get("port")
    end_port = raw.get("endPort")
    if isinstance(port, bool) or not (port is None or isinstance(port, (int, str))):
        raise ctx.error(f"{field}.port must be a number or a port name, got {port!r}", raw)
    if isinstance(port, int):
        if not 1 <= port <= 65535:
            raise ctx.error(f"{field}.port {port} is out of range 1-65535", raw)
    elif isinstance(port, str):
        if port.isdigit():
            raise ctx.error(f"{field}.port {port!r} is a quoted number; write it without quotes: port: {port}", raw)
        problem = port_name_problem(port)
        if problem:
            raise ctx.error(f"{field}.port {problem}", raw)
    if end_port is not None:
        if isinstance(end_port, bool) or not isinstance(end_port, int):
            raise ctx.error(f"{field}.endPort must be a number, got {end_port!r}; write it without quotes", raw)
        if port is None:
            raise ctx.error(f"{field}.endPort needs a numeric port as the start of the range", raw)
        if isinstance(port, str):
            raise ctx.error(
                f"{field}.endPort cannot be used with the named port {port!r}; use a numeric port range", raw
            )
        if not 1 <= end_port <= 65535:
            raise ctx.error(f"{field}.endPort {end_port} is out of range 1-65535", raw)
        if end_port < port:
            raise ctx.error(f"{field}.endPort {end_port} must not be smaller than port {port}", raw)
    return PolicyPort(protocol, port, end_port)


# ---------------------------------------------------------------- loading files


def parse_policies(
    objects: Iterable[dict], path: str | None = None, default_namespace: str = "default"
) -> tuple[NetworkPolicy, ...]:
    """Raw NetworkPolicy objects (e.g. ``Inventory.network_policies``) to policies."""
    return tuple(parse_policy(o, path, None, default_namespace) for o in objects)


def parse_each(objects: Iterable[dict], path: str | None = None
               ) -> tuple[tuple[NetworkPolicy, ...], tuple[InputError, ...]]:
    """``parse_policies``, one object at a time: the policies that parse, and an error
    for each one that does not (a cluster's own policies, which the API server accepted
    under rules that may differ from ours, are reported rather than fatal)."""
    policies: list[NetworkPolicy] = []
    errors: list[InputError] = []
    for o in objects:
        try:
            policies.append(parse_policy(o, path))
        except InputError as e:
            errors.append(e)
    return tuple(policies), tuple(errors)


# libyaml's parser when PyYAML has it (the wheels do): it gives the same documents and
# marks, ~8x faster than the pure-Python one on a directory of policies.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """SafeLoader that remembers the line of every mapping it builds (by id)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # id() of every mapping built -> its 1-based line; valid while the documents live.
        self.lines: dict[int, int] = {}


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping with the same key twice: refused, never read as one of them."""


_DUPLICATE_HOW = ("the API server refuses it (kubectl: 'key already set in map'), and readers "
                  "disagree on which one counts (PyYAML keeps the last: `ingress: []` then "
                  "`ingress: [{}]` reads as allow-all); keep one")


def _construct_yaml_map(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[dict]:
    data: dict = {}
    loader.lines[id(data)] = node.start_mark.line + 1
    yield data
    first: dict[tuple[type, Any], int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<:` merges defaults that the mapping's own keys override
        key = loader.construct_object(key_node)
        # By type too: `1` and `true` are equal in Python, not as the API's JSON keys.
        try:
            line = first.get((type(key), key))
        except TypeError:
            continue  # an unhashable key: construct_mapping refuses it with its line
        if line is not None:
            raise _DuplicateKey(None, None, f"the key {key!r} appears twice in one mapping "
                                f"(first on line {line}); {_DUPLICATE_HOW}", key_node.start_mark)
        first[(type(key), key)] = key_node.start_mark.line + 1
    data.update(loader.construct_mapping(node))


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_yaml_map)


class _DuplicateJsonKey(ValueError):
    pass


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise _DuplicateJsonKey()
    return data


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _json_duplicate(text: str) -> tuple[str, int, int] | None:
    """(key, line, line of its first occurrence) of the first key repeated in one object
    of JSON ``text``. Only run once json found one: json.loads gives no positions."""
    stack: list[dict[str, int] | None] = []  # the keys of each open object; None: array
    i, end = 0, len(text)
    while i < end:
        c = text[i]
        if c == '"':
            m = _JSON_STRING.match(text, i)
            if m is None:
                return None
            j = m.end()
            while j < end and text[j] in " \t\r\n":
                j += 1
            if j < end and text[j] == ":" and stack and stack[-1] is not None:
                key, line = json.loads(m.group()), text.count("\n", 0, i) + 1
                if key in stack[-1]:
                    return key, line, stack[-1][key]
                stack[-1][key] = line
            i = m.end()
            continue
        if c == "{":
            stack.append({})
        elif c == "[":
            stack.append(None)
        elif c in "}]" and stack:
            stack.pop()
        i += 1
    return None


def _document_name(doc: Any, number: int) -> str:
    """``Kind name`` of a document when it has a plain kind and a valid name, else its
    number in the file (a name the API server refuses is not repeated to the terminal)."""
    if isinstance(doc, dict):
        kind, meta = doc.get("kind"), doc.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if (isinstance(kind, str) and kind.isalnum() and isinstance(name, str)
                and not dns_subdomain_problem(name)):
            return f"{kind} {name}"
    return f"document {number}"


def parse_text(text: str, display: str) -> tuple[list[Any], dict[int, int], bool]:
    """All documents of a policy file's text: (documents, line of each mapping by id,
    True when read as JSON). The one reader of policy files: duplicate keys and
    nesting no policy has are refused here, with the line."""
    deep = yaml_too_deep(text, _SafeLoader)
    if deep is not None:
        raise InputError(f"lists and mappings nest here more than {MAX_DOCUMENT_DEPTH} levels "
                         "deep, which no policy does; this is not a policy file", display, deep)
    loader = _LineLoader(text)
    try:
        docs = []
        while loader.check_data():
            doc = loader.get_data()
            # Every document, policy or not: diff writes the file's other documents back
            # and compares what it wrote, which a document containing itself never ends.
            problem = object_problem(doc) if isinstance(doc, (dict, list)) else None
            if problem is not None:
                raise InputError(f"{_document_name(doc, len(docs) + 1)}: {problem}", display,
                                 loader.lines.get(id(doc)))
            docs.append(doc)
        return docs, loader.lines, False
    except _DuplicateKey as e:
        raise InputError(str(e.problem), display, e.problem_mark.line + 1) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        try:
            return [json.loads(text, object_pairs_hook=_json_pairs)], {}, True
        except RecursionError:
            raise InputError(f"lists and mappings nest more than {MAX_DOCUMENT_DEPTH} levels "
                             "deep, which no policy does; this is not a policy file",
                             display) from None
        except _DuplicateJsonKey:
            found = _json_duplicate(text)
            key, line, first = found if found else ("?", None, "?")
            raise InputError(f"the key {key!r} appears twice in one object (first on line "
                             f"{first}); {_DUPLICATE_HOW}", display, line) from None
        except ValueError:  # json.JSONDecodeError
            pass
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        raise InputError(f"not valid YAML or JSON: {problem}; fix the syntax", display, line) from None
    finally:
        loader.dispose()


def _read_documents(path: Path) -> tuple[list[Any], dict[int, int]]:
    display = str(path)
    with open_input(path) as f:
        try:
            text = f.read().decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("not a text file; give YAML or JSON NetworkPolicies", display) from None
    docs, lines, _ = parse_text(text, display)
    return docs, lines


# A reader of policy documents of other kinds (generator.verify.policyset): takes the
# object, its file and the line table, returns True when it took the object.
OtherKinds = Callable[[dict, str, dict[int, int]], bool]


def _policy_objects(doc: Any, display: str, lines: dict[int, int], skipped: list[Skipped],
                    other: OtherKinds | None = None) -> Iterator[dict]:
    if doc is None:
        return  # an empty document (a trailing ---)
    if not isinstance(doc, dict):
        skipped.append(Skipped(display, None, "not-an-object", f"a YAML {type(doc).__name__}"))
        return
    kind = doc.get("kind")
    if kind in ("List", "NetworkPolicyList") and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            if kind == "NetworkPolicyList" and isinstance(item, dict):
                item.setdefault("kind", "NetworkPolicy")
                item.setdefault("apiVersion", API_VERSION)
            yield from _policy_objects(item, display, lines, skipped, other)
        return
    api = doc.get("apiVersion")
    group = api.split("/")[0] if isinstance(api, str) and "/" in api else ""
    if kind == "NetworkPolicy" and group in ("networking.k8s.io", "extensions"):
        yield doc
        return
    if other is not None and other(doc, display, lines):
        return
    # e.g. Calico's projectcalico.org NetworkPolicy: same kind, other API and semantics.
    reason = f"other-networkpolicy-api:{group}" if kind == "NetworkPolicy" else f"not-a-networkpolicy:{kind or '?'}"
    skipped.append(Skipped(display, lines.get(id(doc)), reason, f"apiVersion {api}"))


def load_policies(paths: Iterable[str] | str | Path, default_namespace: str = "default",
                  other: OtherKinds | None = None) -> LoadedPolicies:
    """Read NetworkPolicies from files and directories (walked recursively, sorted).

    Files named directly are always read; in directories only ``*.yaml``, ``*.yml`` and
    ``*.json`` (gzip allowed) are, and a file there that holds no Kubernetes object (a
    report, a kustomize configuration) is ignored as well: listed in ``ignored``, not
    counted as skipped. Other documents that are not ``networking.k8s.io`` NetworkPolicies
    are skipped and counted. A policy without
    ``metadata.namespace`` gets ``default_namespace`` (as ``kubectl apply`` would), with a
    warning. The same namespace/name twice is an error: only one could exist.
    """
    if isinstance(paths, (str, Path)):
        paths = [str(paths)]
    policies: list[NetworkPolicy] = []
    skipped: list[Skipped] = []
    files: list[str] = []
    warnings: list[str] = []
    ignored: list[str] = []
    seen: dict[str, NetworkPolicy] = {}
    for raw in paths:
        given = Path(raw)
        for path in expand_inputs([str(raw)]):
            display = str(path)
            if given.is_dir() and not path.name.lower().removesuffix(".gz").endswith(POLICY_FILE_SUFFIXES):
                ignored.append(display)
                continue
            docs, lines = _read_documents(path)
            if given.is_dir() and not any(map(_is_object, docs)):
                ignored.append(display)
                continue
            files.append(display)
            for doc in docs:
                for obj in _policy_objects(doc, display, lines, skipped, other):
                    policy = parse_policy(obj, display, lines, default_namespace)
                    meta = obj.get("metadata") or {}
                    if not meta.get("namespace"):
                        warnings.append(
                            f"{display}:{policy.line}: NetworkPolicy {policy.name} has no namespace; "
                            f"assumed {default_namespace!r}"
                        )
                    first = seen.get(policy.id)
                    if first is not None:
                        raise InputError(
                            f"NetworkPolicy {policy.id} is defined twice (also at {first.path}:{first.line}); "
                            "only one object of a name can exist in a namespace, remove or rename one",
                            display,
                            policy.line,
                        )
                    seen[policy.id] = policy
                    policies.append(policy)
    return LoadedPolicies(tuple(policies), tuple(skipped), tuple(files), tuple(warnings),
                          tuple(ignored))


def _is_object(doc: Any) -> bool:
    """A document that could be a cluster object: apiVersion and kind, and not a kustomize
    configuration (kustomization.yaml is a build file, never applied)."""
    if not isinstance(doc, dict):
        return False
    api, kind = doc.get("apiVersion"), doc.get("kind")
    return isinstance(api, str) and isinstance(kind, str) and bool(kind) \
        and not api.startswith("kustomize.config.k8s.io/")
