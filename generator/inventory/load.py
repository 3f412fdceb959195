"""Load a cluster snapshot: what ``kubectl get <kinds> -A -o json|yaml`` prints.

Accepted: one ``kind: List`` (JSON or YAML), typed lists (``PodList``, items without
``kind``), single objects, several JSON values or YAML documents in one file, several
files, directories (walked recursively, sorted), gzip (by magic). Refused with a message
that says so: the Python client's ``to_dict()`` output, whose snake_case field names
(``cluster_ip``, ``target_port``, ``owner_references``) would otherwise be mis-read as
absent fields.

Every object becomes a frozen model object (generator.inventory.model); all tuples are
sorted so that the same cluster gives the same Inventory whatever the input order.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from generator.inventory.apivalidation import (
    cidr_problem,
    dns_label_problem,
    dns_subdomain_problem,
    ip_problem,
    label_key_problem,
    label_value_problem,
    port_name_problem,
    port_number_problem,
)
from generator.inventory.kinds import (
    CAPTURED_AT_ANNOTATION,
    CONTROLLER_KINDS,
    DECLARED_KINDS,
    KINDS,
    KUBECTL_COMMAND,
    NAMESPACED,
    REQUIRED_KINDS,
)
from generator.inventory.nesting import MAX_DOCUMENT_DEPTH, object_problem, yaml_too_deep
from generator.inventory.model import (
    ApiServerCall,
    ContainerArgs,
    ContainerPort,
    Controller,
    EndpointSlice,
    Inventory,
    LabelSelector,
    Labels,
    Namespace,
    Node,
    OwnerRef,
    Pod,
    Service,
    ServicePort,
    ServiceRef,
    SliceEndpoint,
    SlicePort,
)
from recorder.errors import InputError, SnapshotError
from recorder.sources import expand_inputs, open_input
from recorder.sources.fastrecord import slots_maker
from recorder.timefmt import parse_time

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

_HOW_TO_CAPTURE = f"capture it with `flowpol snapshot --out cluster.json` or `{KUBECTL_COMMAND}`"

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    inventory: Inventory
    warnings: tuple[str, ...] = ()


class _Malformed(Exception):
    """A field of one object has the wrong shape; the caller adds file, line and object."""


# -- reading files into documents --------------------------------------------------------


@dataclass(slots=True)
class _Doc:
    """One top-level JSON value or YAML document, and how to find its lines lazily."""

    path: str
    data: Any
    # item index (None = the document itself) -> 1-based line, or None when unknown
    line_of: Callable[[int | None], int | None]


def _read_text(path: Path) -> str:
    display = str(path)
    try:
        with open_input(path) as f:
            raw = _read_all(f)
    except (EOFError, gzip.BadGzipFile) as e:
        raise SnapshotError(
            f"the compressed file is truncated or corrupt ({e}); {_HOW_TO_CAPTURE}", display
        ) from None
    except OSError as e:
        raise SnapshotError(f"cannot read: {e}", display) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SnapshotError(
            f"not a text file (byte {e.start} is not UTF-8); a snapshot is the JSON or YAML "
            f"that kubectl prints: {_HOW_TO_CAPTURE}",
            display,
        ) from None


def _read_all(f: Any) -> bytes:
    """``f.read()``. A buffered file's read() without a size reads a large file in
    pieces and joins them: twice the time (16 ms for a 17 MB snapshot) of one read of
    the size fstat gives."""
    if isinstance(f, io.BufferedReader):
        try:
            size = os.fstat(f.fileno()).st_size - f.tell()
        except OSError:
            size = 0
        if size > 0:
            head = f.read(size)
            rest = f.read()  # the file grew meanwhile
            return head + rest if rest else head
    return f.read()


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _json_docs(text: str, path: str) -> list[_Doc]:
    decoder = json.JSONDecoder()
    docs: list[_Doc] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            return docs
        try:
            value, next_pos = decoder.raw_decode(text, pos)
        except RecursionError:
            raise _too_deep_error(path, _line_at(text, pos)) from None
        except json.JSONDecodeError as e:
            truncated = e.lineno >= _line_at(text, len(text.rstrip()))
            raise SnapshotError(
                f"not valid JSON: {e.msg} (column {e.colno})"
                + ("; the file ends in the middle of a value, it is truncated" if truncated else "")
                + f"; {_HOW_TO_CAPTURE}",
                path,
                e.lineno,
            ) from None
        docs.append(_Doc(path, value, _json_locator(text, pos)))
        pos = next_pos


def _too_deep_error(path: str, line: int | None) -> SnapshotError:
    return SnapshotError(
        f"lists and mappings nest here more than {MAX_DOCUMENT_DEPTH} levels deep, which no "
        f"Kubernetes object does; it is not a snapshot, {_HOW_TO_CAPTURE}", path, line)


def _json_locator(text: str, start: int) -> Callable[[int | None], int | None]:
    offsets: list[int] | None = None

    def line_of(index: int | None) -> int | None:
        nonlocal offsets
        if index is None:
            return _line_at(text, start)
        if offsets is None:
            offsets = _json_item_offsets(text, start)
        return _line_at(text, offsets[index]) if index < len(offsets) else None

    return line_of


def _json_item_offsets(text: str, start: int) -> list[int]:
    """Offsets of the elements of a top-level array, or of the top-level object's
    ``items`` array. Only called when an error needs a line number."""
    decoder = json.JSONDecoder()

    def skip_ws(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def array_offsets(i: int) -> list[int]:
        out: list[int] = []
        i = skip_ws(i + 1)
        while i < len(text) and text[i] != "]":
            out.append(i)
            _, i = decoder.raw_decode(text, i)
            i = skip_ws(i)
            if i < len(text) and text[i] == ",":
                i = skip_ws(i + 1)
        return out

    i = skip_ws(start)
    if text[i] == "[":
        return array_offsets(i)
    i = skip_ws(i + 1)
    while i < len(text) and text[i] != "}":
        key, i = decoder.raw_decode(text, i)
        i = skip_ws(skip_ws(i) + 1)  # the colon
        if key == "items" and text[i] == "[":
            return array_offsets(i)
        _, i = decoder.raw_decode(text, i)
        i = skip_ws(i)
        if i < len(text) and text[i] == ",":
            i = skip_ws(i + 1)
    return []


def _yaml_docs(text: str, path: str) -> list[_Doc]:
    deep = yaml_too_deep(text, _YamlLoader)
    if deep is not None:
        raise _too_deep_error(path, deep)
    try:
        values = list(yaml.load_all(text, Loader=_YamlLoader))
    except RecursionError:
        raise _too_deep_error(path, None) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SnapshotError(
            f"not valid YAML: {problem}; {_HOW_TO_CAPTURE}",
            path,
            mark.line + 1 if mark is not None else None,
        ) from None
    nodes: list[yaml.Node] | None = None

    def locator(doc_index: int) -> Callable[[int | None], int | None]:
        def line_of(index: int | None) -> int | None:
            nonlocal nodes
            if nodes is None:
                nodes = list(yaml.compose_all(text, Loader=_YamlLoader))
            node = nodes[doc_index] if doc_index < len(nodes) else None
            if node is None:
                return None
            if index is not None:
                seq = node
                if isinstance(node, yaml.MappingNode):
                    seq = next(
                        (v for k, v in node.value if getattr(k, "value", None) == "items"), None
                    )
                if not isinstance(seq, yaml.SequenceNode) or index >= len(seq.value):
                    return None
                node = seq.value[index]
            return node.start_mark.line + 1

        return line_of

    # Empty documents (a trailing `---`) are not objects.
    return [_Doc(path, v, locator(i)) for i, v in enumerate(values) if v is not None]


def _documents(path: Path) -> list[_Doc]:
    text = _read_text(path)
    display = str(path)
    head = text.lstrip()
    if not head:
        raise SnapshotError(f"the file is empty; {_HOW_TO_CAPTURE}", display)
    if head[0] in "{[":
        return _json_docs(text, display)
    return _yaml_docs(text, display)


# -- the Python client's to_dict() output --------------------------------------------------

# Field names that exist only in snake_case (to_dict()) form. The API's JSON never has
# them: its field names are camelCase, and labels/annotations are not inspected here.
_SNAKE_TOP = frozenset({"api_version", "address_type"})
_SNAKE_META = frozenset({
    "creation_timestamp", "owner_references", "resource_version", "deletion_timestamp",
    "generate_name", "managed_fields", "self_link", "deletion_grace_period_seconds",
    "_continue", "remaining_item_count",
})
_SNAKE_SPEC = frozenset({
    "cluster_ip", "cluster_i_ps", "node_name", "host_network", "external_traffic_policy",
    "internal_traffic_policy", "session_affinity", "ip_families", "ip_family_policy",
    "pod_cidr", "pod_cid_rs", "restart_policy", "dns_policy", "service_account_name",
    "termination_grace_period_seconds", "job_template", "pod_selector", "policy_types",
    "min_ready_seconds", "revision_history_limit", "service_name", "external_i_ps",
})
_SNAKE_STATUS = frozenset({
    "pod_ip", "pod_i_ps", "host_ip", "host_i_ps", "start_time", "container_statuses",
    "load_balancer", "node_info", "ready_replicas", "available_replicas",
})


def _snake_case_key(obj: Any, *, fields: bool) -> str | None:
    """A snake_case-only key found in ``obj``, else None. Top level and metadata are the
    same for every kind; spec/status (``fields``) are checked only for the kinds flowpol
    reads, because a custom resource may use snake_case field names legitimately."""
    if not isinstance(obj, dict):
        return None
    for keys, where in ((_SNAKE_TOP, obj), (_SNAKE_META, obj.get("metadata")),
                        (_SNAKE_SPEC, obj.get("spec") if fields else None),
                        (_SNAKE_STATUS, obj.get("status") if fields else None)):
        # isdisjoint first: no set is built for the objects (all of them, as a rule)
        # that have none of the keys.
        if isinstance(where, dict) and not keys.isdisjoint(where):
            return min(keys.intersection(where))
    return None


def _refuse_snake_case(key: str, path: str, line: int | None) -> SnapshotError:
    return SnapshotError(
        f"this is snake_case output of the Python kubernetes client's to_dict() (it has "
        f"{key!r}), not what the API and kubectl print; flowpol reads only the camelCase "
        f"API format, because snake_case field names would be read as missing. "
        f"{_HOW_TO_CAPTURE[0].upper()}{_HOW_TO_CAPTURE[1:]}, or serialise client objects "
        f"with ApiClient().sanitize_for_serialization(obj) instead of obj.to_dict()",
        path,
        line,
    )


# -- documents into (kind, object) --------------------------------------------------------


@dataclass(slots=True)
class _Item:
    kind: str
    obj: dict
    path: str
    line_of: Callable[[], int | None]


def _items(doc: _Doc) -> Iterator[_Item | tuple[str, str]]:
    """Objects of one document; yields ("empty-list", kind) for typed lists without items
    so that an empty ``DeploymentList`` still counts as that kind being present."""
    data = doc.data
    key = _snake_case_key(data, fields=False)
    if key is not None:
        raise _refuse_snake_case(key, doc.path, doc.line_of(None))
    if isinstance(data, dict) and str(data.get("kind", "")).endswith("List") \
            and data.get("items") is None:
        return  # `items: null`: an empty list
    single = False
    if isinstance(data, list):
        elements, implied = data, None
    elif isinstance(data, dict) and isinstance(data.get("items"), list) and (
        str(data.get("kind", "")).endswith("List") or "kind" not in data
    ):
        elements = data["items"]
        list_kind = str(data.get("kind", "List"))
        implied = list_kind[: -len("List")] if list_kind != "List" else None
        if not elements and implied:
            yield ("empty-list", implied)
    elif isinstance(data, dict):
        elements, implied, single = [data], None, True
    else:
        raise SnapshotError(
            f"expected a Kubernetes object or List, found a {type(data).__name__}; "
            f"{_HOW_TO_CAPTURE}",
            doc.path,
            doc.line_of(None),
        )
    for i, obj in enumerate(elements):
        line_of = (lambda: doc.line_of(None)) if single else (lambda i=i: doc.line_of(i))
        if not isinstance(obj, dict):
            raise SnapshotError(
                f"item {i + 1} of the list is a {type(obj).__name__}, not an object; "
                f"{_HOW_TO_CAPTURE}",
                doc.path,
                line_of(),
            )
        kind = obj.get("kind") or implied or ""
        if not isinstance(kind, str):
            raise SnapshotError(
                f"item {i + 1}: kind must be a string, not {kind!r}; {_HOW_TO_CAPTURE}",
                doc.path, line_of())
        # to_dict() leaves `kind` None on list items: check their fields too.
        key = _snake_case_key(obj, fields=not kind or kind in KINDS)
        if key is not None:
            raise _refuse_snake_case(key, doc.path, line_of())
        yield _Item(kind, obj, doc.path, line_of)


# -- field access ------------------------------------------------------------------------


def _map(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(f"{what} must be a mapping, not {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Malformed(f"{what} must be a list, not {type(value).__name__}")
    return value


def _opt_str(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Malformed(f"{what} must be a string, not {value!r}")
    return value


def _valid(problem_of: Callable[[Any], str | None], value: Any, what: str) -> Any:
    """``value`` when ``problem_of`` finds nothing wrong with it, else _Malformed."""
    problem = problem_of(value)
    if problem:
        raise _Malformed(f"{what} {problem}")
    return value


def _namespace(value: Any, what: str) -> str:
    return _valid(dns_label_problem, value, what)


def _name(value: Any, what: str) -> str:
    return _valid(dns_subdomain_problem, value, what)


def _opt_name(value: Any, what: str) -> str | None:
    """A reference to an object by name (nodeName, targetRef.name): null or empty is
    no reference, anything else must be a name the API server would accept."""
    return None if value is None or value == "" else _name(value, what)


def _ip(value: Any, what: str) -> str:
    return _valid(ip_problem, value, what)


def _cidr(value: Any, what: str) -> str:
    return _valid(cidr_problem, value, what)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise _Malformed(f"{what} must be an integer, not {value!r}")
    return value


def _opt_int(value: Any, what: str) -> int | None:
    return None if value is None else _int(value, what)


def _port(value: Any, what: str) -> int:
    """A port number; they become the ports of the policies we write."""
    port = _int(value, what)
    problem = port_number_problem(port)
    if problem:
        raise _Malformed(f"{what} {problem}")
    return port


def _opt_port(value: Any, what: str) -> int | None:
    return None if value is None else _port(value, what)


def _port_name(value: Any, what: str) -> str | None:
    """A named port (container port, targetPort): named ports of the policies we write."""
    name = _opt_str(value, what)
    if name:
        problem = port_name_problem(name)
        if problem:
            raise _Malformed(f"{what} {problem}")
    return name or None


# Label pairs already found valid: a snapshot repeats the same few labels on pod
# after pod, and the checks are regular expressions.
_VALID_LABELS: set[tuple[str, str]] = set()


def _labels(value: Any, what: str) -> Labels:
    m = _map(value, what)
    out = []
    for k, v in m.items():
        if not isinstance(k, str) or isinstance(v, (dict, list)):
            raise _Malformed(f"{what} must map strings to strings, found {k!r}: {v!r}")
        # YAML turns unquoted `true`/`1` into bool/int; the API always has strings.
        v = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
        if (k, v) not in _VALID_LABELS:
            # They become selectors of the policies we write (ValidateLabels).
            problem = label_key_problem(k) or label_value_problem(k, v)
            if problem:
                raise _Malformed(f"{what}: {problem}")
            if len(_VALID_LABELS) < 100_000:
                _VALID_LABELS.add((k, v))
        out.append((k, v))
    return tuple(sorted(out))


def _time_ns(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, _dt.datetime):  # unquoted timestamps in hand-written YAML
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if not isinstance(value, str):
        raise _Malformed(f"{what} must be an RFC 3339 timestamp, not {value!r}")
    try:
        return parse_time(value)
    except ValueError as e:
        raise _Malformed(f"{what}: {e}") from None


def _protocol(value: Any, what: str) -> str:
    return (_opt_str(value, what) or "TCP").upper()


def _owner(meta: dict) -> OwnerRef | None:
    """The controller ownerReference (controller: true); else the first one."""
    refs = _list(meta.get("ownerReferences"), "metadata.ownerReferences")
    chosen = None
    for i, ref in enumerate(refs):
        ref = _map(ref, f"metadata.ownerReferences[{i}]")
        if ref.get("controller") is True:
            chosen = ref
            break
        if chosen is None:
            chosen = ref
    if chosen is None:
        return None
    kind = _opt_str(chosen.get("kind"), "metadata.ownerReferences[].kind")
    name = _opt_str(chosen.get("name"), "metadata.ownerReferences[].name")
    if not kind or not name:
        raise _Malformed("an ownerReference has no kind or name")
    _name(name, "metadata.ownerReferences[].name")
    return OwnerRef(kind, name)


def _selector(value: Any, what: str) -> LabelSelector | None:
    if value is None:
        return None
    sel = _map(value, what)
    exprs = []
    for i, e in enumerate(_list(sel.get("matchExpressions"), f"{what}.matchExpressions")):
        e = _map(e, f"{what}.matchExpressions[{i}]")
        key = _opt_str(e.get("key"), f"{what}.matchExpressions[{i}].key")
        op = _opt_str(e.get("operator"), f"{what}.matchExpressions[{i}].operator")
        if not key or op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise _Malformed(f"{what}.matchExpressions[{i}] needs a key and an operator "
                             f"In, NotIn, Exists or DoesNotExist")
        values = []
        for v in _list(e.get("values"), f"{what}.matchExpressions[{i}].values"):
            if isinstance(v, (dict, list)):
                raise _Malformed(f"{what}.matchExpressions[{i}].values must be strings, "
                                 f"not {v!r}")
            values.append(str(v).lower() if isinstance(v, bool) else str(v))
        values = tuple(sorted(values))
        exprs.append((key, op, values))
    return LabelSelector(
        _labels(sel.get("matchLabels"), f"{what}.matchLabels"), tuple(sorted(exprs))
    )


# -- one parser per kind -----------------------------------------------------------------


def _parse_namespace(obj: dict, meta: dict, name: str, ns: str | None) -> Namespace:
    labels = dict(_labels(meta.get("labels"), "metadata.labels"))
    labels.setdefault(NAMESPACE_NAME_LABEL, name)  # the API server sets it since 1.21
    return Namespace(name, tuple(sorted(labels.items())))


def _parse_node(obj: dict, meta: dict, name: str, ns: str | None) -> Node:
    spec = _map(obj.get("spec"), "spec")
    status = _map(obj.get("status"), "status")
    addresses = set()
    for i, a in enumerate(_list(status.get("addresses"), "status.addresses")):
        a = _map(a, f"status.addresses[{i}]")
        # Hostname and InternalDNS addresses are names, not IPs.
        if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address"):
            addresses.add(_ip(a["address"], f"status.addresses[{i}].address"))
    cidrs = {_cidr(c, f"spec.podCIDRs[{i}]")
             for i, c in enumerate(_list(spec.get("podCIDRs"), "spec.podCIDRs"))}
    if spec.get("podCIDR"):
        cidrs.add(_cidr(spec["podCIDR"], "spec.podCIDR"))
    return Node(name, tuple(sorted(addresses)), tuple(sorted(cidrs)))


def _container_ports(spec: dict) -> tuple[ContainerPort, ...]:
    ports: set[ContainerPort] = set()
    for field in ("containers", "initContainers"):
        for i, c in enumerate(_list(spec.get(field), f"spec.{field}")):
            c = _map(c, f"spec.{field}[{i}]")
            # Init containers listen only when they are sidecars (restartPolicy Always).
            if field == "initContainers" and c.get("restartPolicy") != "Always":
                continue
            for j, p in enumerate(_list(c.get("ports"), f"spec.{field}[{i}].ports")):
                try:
                    ports.add(_container_port(p))
                except _Malformed as e:
                    # Named only when wrong: a snapshot has thousands of ports, and
                    # formatting where each field is cost more than reading it.
                    raise _Malformed(f"spec.{field}[{i}].ports[{j}]{e}") from None
    return tuple(sorted(ports, key=lambda p: (p.port, p.protocol, p.name or "")))


def _container_port(p: Any) -> ContainerPort:
    """One entry of a container's ports. Messages name the field relative to the
    entry (``.name must be ...``); the caller puts the entry's path in front."""
    p = _map(p, "")
    return ContainerPort(
        _port_name(p.get("name"), ".name"),
        _port(p.get("containerPort"), ".containerPort"),
        _protocol(p.get("protocol"), ".protocol"),
    )


def _container_args(spec: dict, what: str) -> ContainerArgs:
    """Each container's ``command`` + ``args``: the flags the process is started with
    (init containers do not stay running and are left out)."""
    out = []
    for i, c in enumerate(_list(spec.get("containers"), f"{what}.containers")):
        c = _map(c, f"{what}.containers[{i}]")
        argv: list[str] = []
        for field in ("command", "args"):
            for j, a in enumerate(_list(c.get(field), f"{what}.containers[{i}].{field}")):
                if isinstance(a, (dict, list)):
                    raise _Malformed(f"{what}.containers[{i}].{field}[{j}] must be a string, "
                                     f"not {a!r}")
                # YAML reads an unquoted `- 53` as a number; the API always has strings.
                argv.append(a if isinstance(a, str) else str(a))
        out.append(tuple(argv))
    return tuple(out) if any(out) else ()


# A frozen dataclass's keyword __init__ is a good part of parsing a pod, and a
# snapshot has thousands of them: the fields are filled as resolve fills Connections.
_new_pod = slots_maker(Pod, "namespace", "name", "uid", "labels", "ips", "node",
                       "host_network", "phase", "created", "deleted", "owner", "ports",
                       "container_args")


def _parse_pod(obj: dict, meta: dict, name: str, ns: str | None) -> Pod:
    spec = _map(obj.get("spec"), "spec")
    status = _map(obj.get("status"), "status")
    ips = set()
    for i, entry in enumerate(_list(status.get("podIPs"), "status.podIPs")):
        ip = _map(entry, f"status.podIPs[{i}]").get("ip")
        if ip:
            ips.add(_ip(ip, f"status.podIPs[{i}].ip"))
    if status.get("podIP"):
        ips.add(_ip(status["podIP"], "status.podIP"))
    host_network = spec.get("hostNetwork") is True
    owner = _owner(meta)
    return _new_pod(
        ns or "",  # namespace
        name,
        _opt_str(meta.get("uid"), "metadata.uid") or "",  # uid
        _labels(meta.get("labels"), "metadata.labels"),
        tuple(sorted(ips)),  # ips
        _opt_name(spec.get("nodeName"), "spec.nodeName"),  # node
        host_network,
        _opt_str(status.get("phase"), "status.phase"),  # phase
        _time_ns(meta.get("creationTimestamp"), "metadata.creationTimestamp"),  # created
        _time_ns(meta.get("deletionTimestamp"), "metadata.deletionTimestamp"),  # deleted
        owner,
        _container_ports(spec),  # ports
        _container_args(spec, "spec")
        if host_network or (owner is not None and owner.kind == "DaemonSet") else (),
    )


def _target_port(value: Any, default: int, what: str) -> int | str:
    if value is None or value == "" or value == 0:
        return default
    if isinstance(value, str) and not value.isdigit():
        return _port_name(value, what) or default
    return _port(value, what)


def _parse_service(obj: dict, meta: dict, name: str, ns: str | None) -> Service:
    spec = _map(obj.get("spec"), "spec")
    status = _map(obj.get("status"), "status")
    svc_type = _opt_str(spec.get("type"), "spec.type") or "ClusterIP"
    ips = [(ip, f"spec.clusterIPs[{i}]")
           for i, ip in enumerate(_list(spec.get("clusterIPs"), "spec.clusterIPs"))]
    if not ips and spec.get("clusterIP"):
        ips = [(spec["clusterIP"], "spec.clusterIP")]
    # "None" marks a headless Service; ExternalName has no ClusterIP at all.
    cluster_ips = tuple(_ip(ip, what) for ip, what in ips if ip not in ("None", "")) \
        if svc_type != "ExternalName" else ()
    ports = []
    for i, p in enumerate(_list(spec.get("ports"), "spec.ports")):
        p = _map(p, f"spec.ports[{i}]")
        port = _port(p.get("port"), f"spec.ports[{i}].port")
        ports.append(ServicePort(
            name=_opt_str(p.get("name"), f"spec.ports[{i}].name") or None,
            port=port,
            target_port=_target_port(p.get("targetPort"), port, f"spec.ports[{i}].targetPort"),
            protocol=_protocol(p.get("protocol"), f"spec.ports[{i}].protocol"),
            # 0: not allocated (a ClusterIP Service)
            node_port=_opt_port(p.get("nodePort") or None, f"spec.ports[{i}].nodePort"),
        ))
    lb_ips = set()
    for i, ing in enumerate(_list(_map(status.get("loadBalancer"), "status.loadBalancer")
                                  .get("ingress"), "status.loadBalancer.ingress")):
        ing = _map(ing, f"status.loadBalancer.ingress[{i}]")
        if ing.get("ip"):
            lb_ips.add(_ip(ing["ip"], f"status.loadBalancer.ingress[{i}].ip"))
    if spec.get("loadBalancerIP"):
        lb_ips.add(_ip(spec["loadBalancerIP"], "spec.loadBalancerIP"))
    return Service(
        namespace=ns or "",
        name=name,
        type=svc_type,
        cluster_ips=cluster_ips,
        selector=None if spec.get("selector") is None
        else _labels(spec.get("selector"), "spec.selector"),
        ports=tuple(sorted(ports, key=lambda p: (p.port, p.protocol, p.name or ""))),
        external_traffic_policy=_opt_str(spec.get("externalTrafficPolicy"),
                                         "spec.externalTrafficPolicy"),
        external_ips=tuple(sorted(
            _ip(ip, f"spec.externalIPs[{i}]")
            for i, ip in enumerate(_list(spec.get("externalIPs"), "spec.externalIPs")))),
        load_balancer_ips=tuple(sorted(lb_ips)),
    )


def _parse_endpointslice(obj: dict, meta: dict, name: str, ns: str | None) -> EndpointSlice:
    labels = dict(_labels(meta.get("labels"), "metadata.labels"))
    endpoints = []
    address_type = _opt_str(obj.get("addressType"), "addressType") or "IPv4"
    # FQDN slices (deprecated) list host names, not addresses.
    check_ips = address_type in ("IPv4", "IPv6")
    for i, e in enumerate(_list(obj.get("endpoints"), "endpoints")):
        try:
            endpoints.append(_slice_endpoint(e, ns, check_ips))
        except _Malformed as err:
            # Named only when wrong, as container ports are: one slice per Service
            # lists every backend.
            raise _Malformed(f"endpoints[{i}]{err}") from None
    ports = []
    for i, p in enumerate(_list(obj.get("ports"), "ports")):
        p = _map(p, f"ports[{i}]")
        ports.append(SlicePort(
            name=_opt_str(p.get("name"), f"ports[{i}].name") or None,
            port=_opt_port(p.get("port"), f"ports[{i}].port"),
            protocol=_protocol(p.get("protocol"), f"ports[{i}].protocol"),
        ))
    return EndpointSlice(
        namespace=ns or "",
        name=name,
        service=labels.get(SERVICE_NAME_LABEL),
        address_type=address_type,
        endpoints=tuple(sorted(endpoints, key=lambda e: (e.addresses, e.pod or ""))),
        ports=tuple(sorted(ports, key=lambda p: (p.name or "", p.port or 0, p.protocol))),
    )


_new_slice_endpoint = slots_maker(SliceEndpoint, "addresses", "pod", "pod_namespace", "ready",
                                  "node")


def _slice_endpoint(e: Any, ns: str | None, check_ips: bool) -> SliceEndpoint:
    """One entry of a slice's endpoints. Messages name the field relative to the
    entry (``.targetRef must be ...``); the caller puts the entry's path in front."""
    e = _map(e, "")
    ref = _map(e.get("targetRef"), ".targetRef")
    conditions = _map(e.get("conditions"), ".conditions")
    ready = conditions.get("ready")
    topology = _map(e.get("topology"), ".topology")  # v1beta1
    node = _opt_name(e.get("nodeName"), ".nodeName") or _opt_name(
        topology.get("kubernetes.io/hostname"), ".topology[kubernetes.io/hostname]")
    is_pod = _opt_str(ref.get("kind"), ".targetRef.kind") == "Pod"
    pod = _opt_name(ref.get("name"), ".targetRef.name") if is_pod else None
    if is_pod and pod is None:
        # Read as no reference, the address would lose its pod (and its labels).
        raise _Malformed(".targetRef.name is missing or null in a Pod reference; the "
                         "EndpointSlice controller always names the pod")
    ref_ns = ref.get("namespace")
    addresses = _list(e.get("addresses"), ".addresses")
    return _new_slice_endpoint(
        tuple(sorted(_ip(a, f".addresses[{i}]") if check_ips else str(a)
                     for i, a in enumerate(addresses))),  # addresses
        pod,  # pod
        (_namespace(ref_ns, ".targetRef.namespace") if ref_ns else ns) if is_pod else None,
        ready if isinstance(ready, bool) else None,  # ready
        node,  # node
    )


def _controller_parser(kind: str) -> Callable[[dict, dict, str, str | None], Controller]:
    def parse(obj: dict, meta: dict, name: str, ns: str | None) -> Controller:
        spec = _map(obj.get("spec"), "spec")
        prefix = "spec"
        schedule = time_zone = None
        suspended = False
        if kind == "CronJob":
            schedule = _opt_str(spec.get("schedule"), "spec.schedule")
            time_zone = _opt_str(spec.get("timeZone"), "spec.timeZone")
            suspend = spec.get("suspend")
            if suspend is not None and not isinstance(suspend, bool):
                raise _Malformed(f"spec.suspend must be true or false, not {suspend!r}")
            suspended = bool(suspend)
            spec = _map(_map(spec.get("jobTemplate"), "spec.jobTemplate").get("spec"),
                        "spec.jobTemplate.spec")
            prefix = "spec.jobTemplate.spec"
        template = _map(spec.get("template"), f"{prefix}.template")
        template_meta = _map(template.get("metadata"), f"{prefix}.template.metadata")
        return Controller(
            kind=kind,
            namespace=ns or "",
            name=name,
            selector=_selector(spec.get("selector"), f"{prefix}.selector"),
            template_labels=_labels(template_meta.get("labels"),
                                    f"{prefix}.template.metadata.labels"),
            owner=_owner(meta),
            labels=_labels(meta.get("labels"), "metadata.labels"),
            schedule=schedule,
            time_zone=time_zone,
            suspended=suspended,
            replicas=None if kind == "CronJob"
            else _opt_int(spec.get("replicas"), "spec.replicas"),
            container_args=_container_args(
                _map(template.get("spec"), f"{prefix}.template.spec"),
                f"{prefix}.template.spec") if kind == "DaemonSet" else (),
        )

    return parse


def _parse_network_policy(obj: dict, meta: dict, name: str, ns: str | None) -> dict:
    _map(obj.get("spec"), "spec")
    # The raw object is kept, compared and written out again: bound what those walk.
    problem = object_problem(obj)
    if problem:
        raise _Malformed(problem)
    if "managedFields" in meta:  # noise kubectl hides too
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


# -- what the API server calls (webhooks, aggregated APIs, CRD conversion) ------------------
# Fields as in admissionregistration.k8s.io/v1 (WebhookClientConfig, ServiceReference;
# failurePolicy defaults to Fail), apiregistration.k8s.io/v1 (APIServiceSpec.service: nil
# means the group version is served locally by the API server) and apiextensions.k8s.io/v1
# (CustomResourceConversion: strategy None or Webhook, webhook.clientConfig). Every
# ServiceReference's port defaults to 443.


def _service_ref(value: Any, what: str) -> ServiceRef | None:
    if value is None:
        return None
    ref = _map(value, what)
    ns = _opt_str(ref.get("namespace"), f"{what}.namespace")
    name = _opt_str(ref.get("name"), f"{what}.name")
    if not ns or not name:
        raise _Malformed(f"{what} needs a namespace and a name")
    _namespace(ns, f"{what}.namespace")
    _name(name, f"{what}.name")
    port = _opt_int(ref.get("port"), f"{what}.port")
    if port is not None and not 1 <= port <= 65535:
        raise _Malformed(f"{what}.port must be 1-65535, not {port}")
    return ServiceRef(ns, name, 443 if port is None else port)


def _client_config(value: Any, what: str) -> tuple[ServiceRef | None, str | None]:
    config = _map(value, what)
    return (_service_ref(config.get("service"), f"{what}.service"),
            _opt_str(config.get("url"), f"{what}.url") or None)


def _webhook_parser(kind: str) -> Callable[[dict, dict, str, str | None], tuple]:
    def parse(obj: dict, meta: dict, name: str, ns: str | None) -> tuple[ApiServerCall, ...]:
        calls = []
        for i, hook in enumerate(_list(obj.get("webhooks"), "webhooks")):
            hook = _map(hook, f"webhooks[{i}]")
            service, url = _client_config(hook.get("clientConfig"), f"webhooks[{i}].clientConfig")
            policy = _opt_str(hook.get("failurePolicy"), f"webhooks[{i}].failurePolicy") or "Fail"
            calls.append(ApiServerCall(
                kind, name, _opt_str(hook.get("name"), f"webhooks[{i}].name") or f"webhooks[{i}]",
                service, url, policy))
        return tuple(calls)

    return parse


def _parse_api_service(obj: dict, meta: dict, name: str, ns: str | None
                       ) -> tuple[ApiServerCall, ...]:
    spec = _map(obj.get("spec"), "spec")
    return (ApiServerCall("APIService", name, None,
                          _service_ref(spec.get("service"), "spec.service")),)


def _parse_crd(obj: dict, meta: dict, name: str, ns: str | None) -> tuple[ApiServerCall, ...]:
    # Only the conversion webhook is read: the rest of a CRD (its schemas) can be large.
    conversion = _map(_map(obj.get("spec"), "spec").get("conversion"), "spec.conversion")
    if _opt_str(conversion.get("strategy"), "spec.conversion.strategy") != "Webhook":
        return ()
    webhook = _map(conversion.get("webhook"), "spec.conversion.webhook")
    service, url = _client_config(webhook.get("clientConfig"),
                                  "spec.conversion.webhook.clientConfig")
    return (ApiServerCall("CustomResourceDefinition", name, None, service, url),)


_PARSERS: dict[str, Callable[[dict, dict, str, str | None], Any]] = {
    "Namespace": _parse_namespace,
    "Node": _parse_node,
    "Pod": _parse_pod,
    "Service": _parse_service,
    "EndpointSlice": _parse_endpointslice,
    "NetworkPolicy": _parse_network_policy,
    **{k: _controller_parser(k) for k in CONTROLLER_KINDS},
    "ValidatingWebhookConfiguration": _webhook_parser("ValidatingWebhookConfiguration"),
    "MutatingWebhookConfiguration": _webhook_parser("MutatingWebhookConfiguration"),
    "APIService": _parse_api_service,
    "CustomResourceDefinition": _parse_crd,
}


# -- putting it together -----------------------------------------------------------------


def load_snapshot(paths: list[str]) -> SnapshotResult:
    """Read a snapshot from files and directories. Raises SnapshotError (exit 2) with
    ``path:line`` for anything it cannot read faithfully."""
    if not paths:
        raise SnapshotError(f"no snapshot given; {_HOW_TO_CAPTURE}")
    try:
        files = expand_inputs(paths, regular_only=False)  # read once: a pipe works
    except InputError as e:  # a missing path: keep it a snapshot error
        raise SnapshotError(str(e)) from None
    if not files:
        raise SnapshotError(f"{', '.join(paths)}: no files found; {_HOW_TO_CAPTURE}")

    objects: dict[str, dict[tuple[str, str], tuple[Any, str]]] = {k: {} for k in KINDS}
    present: set[str] = set()
    ignored: dict[str, int] = {}
    duplicates: list[str] = []
    captured_at: int | None = None
    for path in files:
        for doc in _documents(path):
            captured_at = _captured_at(doc, captured_at)
            for item in _items(doc):
                if isinstance(item, tuple):
                    if item[1] in objects:
                        present.add(item[1])
                    continue
                if not item.kind:
                    raise SnapshotError(
                        f"an object without `kind`; kubectl prints it for every item, "
                        f"{_HOW_TO_CAPTURE}", item.path, item.line_of())
                if item.kind not in objects:
                    ignored[item.kind] = ignored.get(item.kind, 0) + 1
                    continue
                parsed, key = _parse_item(item)
                present.add(item.kind)
                previous = objects[item.kind].get(key)
                if previous is not None and previous[0] != parsed:
                    duplicates.append(
                        f"{item.kind} {'/'.join(k for k in key if k)} is in {previous[1]} and "
                        f"{item.path} with different content; kept the one from {item.path}"
                    )
                objects[item.kind][key] = (parsed, item.path)

    sources = tuple(str(p) for p in files)
    missing = [k for k in REQUIRED_KINDS if not objects[k]]
    if missing:
        shown = ", ".join(sources[:5]) + (f" and {len(sources) - 5} more" if len(sources) > 5 else "")
        raise SnapshotError(
            f"{shown}: the snapshot has no {', '.join(missing)} objects, but "
            f"every cluster has them (nodes, the default namespace, the `kubernetes` Service "
            f"and its EndpointSlice, kube-system pods), so it was captured incompletely; "
            f"{_HOW_TO_CAPTURE}"
        )

    def values(kind: str) -> tuple:
        return tuple(v for _, (v, _) in sorted(objects[kind].items()))

    controllers = sorted(
        (v for k in CONTROLLER_KINDS for v, _ in objects[k].values()),
        key=lambda c: (c.namespace, c.kind, c.name),
    )
    warnings = list(duplicates)
    missing_declared = [k for k in DECLARED_KINDS if k not in present]
    if "APIService" in missing_declared:
        warnings.append(
            f"the snapshot has no {', '.join(missing_declared)} objects; every cluster has "
            "APIServices (one per built-in API group version), so these kinds were not "
            "captured: the API server's calls to admission webhooks, aggregated APIs and "
            "CRD conversion webhooks could not be checked, and default-deny may isolate "
            f"their backends; {_HOW_TO_CAPTURE}")
    if ignored:
        warnings.append(
            f"ignored {sum(ignored.values())} object(s) of kinds flowpol does not use: "
            + ", ".join(f"{k} ({n})" for k, n in sorted(ignored.items()))
        )
    inventory = Inventory(
        namespaces=values("Namespace"),
        nodes=values("Node"),
        pods=values("Pod"),
        services=values("Service"),
        endpoint_slices=values("EndpointSlice"),
        controllers=tuple(controllers),
        network_policies=values("NetworkPolicy"),
        api_server_calls=tuple(call for k in DECLARED_KINDS for calls in values(k)
                               for call in calls),
        kinds_present=frozenset(present),
        captured_at=captured_at,
        sources=sources,
    )
    return SnapshotResult(inventory, tuple(warnings))


def _parse_item(item: _Item) -> tuple[Any, tuple[str, str]]:
    obj = item.obj
    name = ns = None
    try:
        meta = _map(obj.get("metadata"), "metadata")
        name = _opt_str(meta.get("name"), "metadata.name")
        ns = _opt_str(meta.get("namespace"), "metadata.namespace")
        if not name:
            raise _Malformed("it has no metadata.name")
        if item.kind in NAMESPACED and not ns:
            raise _Malformed("it has no metadata.namespace (kubectl -A always prints it)")
        # The one place names from a snapshot are checked: they become file names
        # (<out>/<namespace>.yaml), YAML and comments downstream.
        problem = (dns_label_problem(name) if item.kind == "Namespace"
                   # `<version>.<group>`; the core group's is "v1." (empty group).
                   else dns_subdomain_problem(name.removesuffix("."))
                   if item.kind == "APIService" else dns_subdomain_problem(name))
        if problem:
            raise _Malformed(f"metadata.name {problem}")
        if item.kind in NAMESPACED:
            _namespace(ns, "metadata.namespace")
        parsed = _PARSERS[item.kind](obj, meta, name, ns if item.kind in NAMESPACED else None)
    except _Malformed as e:
        # repr() of a name that failed validation: a newline or NUL in it must not
        # reach the terminal as is.
        label = f"{item.kind} {_shown_name(ns, name)}"
        raise SnapshotError(f"{label}: {e}; {_HOW_TO_CAPTURE}", item.path, item.line_of()) from None
    return parsed, ((ns or "") if item.kind in NAMESPACED else "", name)


def _shown_name(ns: str | None, name: str | None) -> str:
    if ns and dns_label_problem(ns):
        ns = repr(ns)
    if name and dns_subdomain_problem(name.removesuffix(".")):
        name = repr(name)
    return f"{ns + '/' if ns else ''}{name or '(unnamed)'}"


def _captured_at(doc: _Doc, current: int | None) -> int | None:
    """``flowpol snapshot`` stamps the List's metadata with the capture time."""
    meta = doc.data.get("metadata") if isinstance(doc.data, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    value = annotations.get(CAPTURED_AT_ANNOTATION) if isinstance(annotations, dict) else None
    if not value:
        return current
    try:
        t = _time_ns(value, f"metadata.annotations[{CAPTURED_AT_ANNOTATION}]")
    except _Malformed as e:
        raise SnapshotError(str(e), doc.path, doc.line_of(None)) from None
    # Several captures: the latest one is when the snapshot as a whole was complete.
    return t if current is None or (t is not None and t > current) else current
