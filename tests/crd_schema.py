"""Custom resources checked against their CustomResourceDefinition's own schema.

The CRDs are vendored unchanged in ``tests/schemas/`` (source, version and licence:
``tests/schemas/README.md``). For an object whose apiVersion and kind one of them
defines, ``crd_problems`` returns what the API server would refuse, as far as Python's
``jsonschema`` can tell:

- the version's ``openAPIV3Schema`` (Draft 4 keywords: types, enums, patterns, lengths,
  ranges, ``anyOf``/``oneOf``, ``min/maxProperties``, ``min/maxItems``, ``required``), made
  strict the way ``kubectl apply --validate=strict`` is: a field the schema does not
  define is an error (the API server would prune it silently, and a pruned peer field
  widens a rule) - every ``type: object`` with ``properties`` and neither
  ``additionalProperties`` nor ``x-kubernetes-preserve-unknown-fields`` gets
  ``additionalProperties: false``;
- ``metadata`` as the API server validates a custom resource's (apiextensions-apiserver,
  customResourceValidator: ``ValidateObjectMetaAccessor(..., NameIsDNSSubdomain, ...)``):
  the ObjectMeta schema kubernetes-validate ships (strict), the name a DNS subdomain, the
  namespace a DNS label when the CRD is namespaced and absent when it is cluster-scoped,
  label keys and values, annotation keys and their total size;
- the structural-schema extensions: ``x-kubernetes-list-type: set`` (items unique) and
  ``map`` (unique by ``x-kubernetes-list-map-keys``), ``x-kubernetes-int-or-string``;
  formats ``cidr``, ``int32``, ``int64``; the RE2 pattern ``^\\PC*$`` (no Unicode control
  or unassigned character), which Python's ``re`` cannot compile; and the CEL rules of
  ``x-kubernetes-validations`` listed in ``CEL_RULES``.

Not checked (``unchecked()`` lists what the vendored CRDs contain of these): CEL rules not
in ``CEL_RULES``, formats not in ``FORMATS`` (``date-time``, ``idn-hostname``: only in
status and L7 HTTP fields), ``x-kubernetes-map-type`` (a merge strategy, nothing to
validate) and ``default`` (applied by the API server, not validated).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import jsonschema
import yaml

SCHEMAS = Path(__file__).parent / "schemas"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_TOTAL_ANNOTATION_BYTES = 256 * 1024
_NO_CONTROL = r"^\PC*$"  # RE2: no character of Unicode category C
_NO_CONTROL_KEYWORD = "x-flowpol-no-unicode-control"


def _is_cidr(value: Any) -> bool:
    """Kubernetes' ``cidr`` format and CEL ``isCIDR``: an address and a prefix length
    (host bits may be set, as Go's net.ParseCIDR / netip.ParsePrefix allow)."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


# CEL rules of x-kubernetes-validations, by their exact text, as Python checks.
CEL_RULES: dict[str, Callable[[Any], bool]] = {
    "self.start < self.end": lambda v: v["start"] < v["end"],
    "isCIDR(self)": _is_cidr,
}

FORMATS: dict[str, Callable[[Any], bool]] = {
    "cidr": _is_cidr,
    "int32": lambda v: not isinstance(v, int) or -2**31 <= v < 2**31,
    "int64": lambda v: not isinstance(v, int) or -2**63 <= v < 2**63,
}


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    for name, check in FORMATS.items():
        checker.checks(name)(check)
    return checker


def _list_type(validator, value, instance, schema) -> Iterator[jsonschema.ValidationError]:
    if not isinstance(instance, list):
        return
    if value == "set":
        seen: list = []
        for item in instance:
            if item in seen:
                yield jsonschema.ValidationError(f"{item!r} is listed twice; the list is a set")
            seen.append(item)
    elif value == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: set = set()
        for item in instance:
            if not isinstance(item, dict):
                continue
            key = tuple(json.dumps(item.get(k), sort_keys=True) for k in keys)
            if key in seen_keys:
                yield jsonschema.ValidationError(
                    f"two items share the map keys {', '.join(keys)}: {item!r}")
            seen_keys.add(key)


def _int_or_string(validator, value, instance, schema) -> Iterator[jsonschema.ValidationError]:
    if value and (isinstance(instance, bool) or not isinstance(instance, (int, str))):
        yield jsonschema.ValidationError(f"{instance!r} is neither an integer nor a string")


def _cel(validator, rules, instance, schema) -> Iterator[jsonschema.ValidationError]:
    for rule in rules:
        check = CEL_RULES.get(rule.get("rule"))
        if check is None:
            continue  # listed by unchecked()
        try:
            ok = check(instance)
        except (KeyError, TypeError):
            ok = True  # the rule's fields are missing: the schema's own keywords say so
        if not ok:
            yield jsonschema.ValidationError(rule.get("message") or f"failed rule: {rule['rule']}")


def _no_control(validator, value, instance, schema) -> Iterator[jsonschema.ValidationError]:
    if value and isinstance(instance, str) and any(
            unicodedata.category(ch).startswith("C") for ch in instance):
        yield jsonschema.ValidationError(f"{instance!r} has a control or unassigned character")


_Validator = jsonschema.validators.extend(jsonschema.Draft4Validator, {
    "x-kubernetes-list-type": _list_type,
    "x-kubernetes-int-or-string": _int_or_string,
    "x-kubernetes-validations": _cel,
    _NO_CONTROL_KEYWORD: _no_control,
})


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if out.get("pattern") == _NO_CONTROL:
        del out["pattern"]
        out[_NO_CONTROL_KEYWORD] = True
    return out


@dataclass(frozen=True)
class CrdSchema:
    api_version: str  # group/version
    kind: str
    namespaced: bool
    source: str  # the vendored file
    raw: dict  # the version's openAPIV3Schema as written
    validator: Any


@lru_cache(maxsize=1)
def load_crds() -> dict[tuple[str, str], CrdSchema]:
    """(apiVersion, kind) -> the schema of every served version of every vendored CRD."""
    out: dict[tuple[str, str], CrdSchema] = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        for crd in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_LOADER):
            if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                raw = version["schema"]["openAPIV3Schema"]
                api = f"{spec['group']}/{version['name']}"
                out[(api, spec["names"]["kind"])] = CrdSchema(
                    api, spec["names"]["kind"], spec["scope"] == "Namespaced", path.name, raw,
                    _Validator(_strict(raw), format_checker=_format_checker()))
    return out


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def unchecked() -> dict[str, tuple[str, ...]]:
    """Per vendored file, what of its schemas these checks do not enforce."""
    out: dict[str, set[str]] = {}
    for crd in load_crds().values():
        found = out.setdefault(crd.source, set())
        for node in _walk(crd.raw):
            for rule in node.get("x-kubernetes-validations") or []:
                if rule.get("rule") not in CEL_RULES:
                    found.add(f"x-kubernetes-validations rule {rule.get('rule')!r}")
            fmt = node.get("format")
            if isinstance(fmt, str) and fmt not in FORMATS:
                found.add(f"format {fmt}")
            if "x-kubernetes-map-type" in node:
                found.add("x-kubernetes-map-type (a merge strategy)")
            if "default" in node:
                found.add("default (applied, not validated)")
    return {k: tuple(sorted(v)) for k, v in sorted(out.items())}


@lru_cache(maxsize=1)
def _object_meta_validator():
    """kubernetes-validate's strict ObjectMeta schema (Kubernetes 1.33), with its
    definitions, so ``metadata`` is held to the same fields as built-in kinds'."""
    import kubernetes_validate
    from referencing import Registry, Resource

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.33.0-local-strict"
    schema = json.loads((base / "objectmeta-meta-v1.json").read_text())
    defs = json.loads((base / "_definitions.json").read_text())
    registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _metadata_problems(meta: Any, namespaced: bool) -> Iterator[tuple[str, str]]:
    if not isinstance(meta, dict):
        yield "metadata", "must be a mapping"
        return
    for e in _object_meta_validator().iter_errors(meta):
        yield ".".join(["metadata", *map(str, e.path)]), e.message
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        yield "metadata.name", f"{name!r} is not a DNS subdomain (lower case, digits, '-', '.'; at most 253)"
    ns = meta.get("namespace")
    if namespaced:
        if not isinstance(ns, str) or len(ns) > 63 or not _DNS_LABEL.fullmatch(ns):
            yield "metadata.namespace", f"{ns!r} is not a namespace name (a DNS label)"
    elif ns:
        yield "metadata.namespace", "a cluster-scoped object has no namespace"
    for k, v in (meta.get("labels") or {}).items():
        if not _qualified_name(k):
            yield f"metadata.labels.{k}", "not a qualified name ([prefix/]name)"
        if not isinstance(v, str) or len(v) > 63 or (v and not _QUALIFIED_NAME.fullmatch(v)):
            yield f"metadata.labels.{k}", f"{v!r} is not a label value"
    annotations = meta.get("annotations") or {}
    for k in annotations:
        if not _qualified_name(k):
            yield f"metadata.annotations.{k}", "not a qualified name ([prefix/]name)"
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > _TOTAL_ANNOTATION_BYTES:
        yield "metadata.annotations", f"{size} bytes, more than the {_TOTAL_ANNOTATION_BYTES} allowed"


def _qualified_name(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME.fullmatch(name))


def crd_for(obj: dict) -> CrdSchema | None:
    return load_crds().get((obj.get("apiVersion"), obj.get("kind")))  # type: ignore[arg-type]


def crd_problems(obj: dict) -> list[tuple[str, str]] | None:
    """(dotted path, message) for every problem; None when no vendored CRD defines the
    object's apiVersion and kind."""
    crd = crd_for(obj)
    if crd is None:
        return None
    problems = [(".".join(map(str, e.path)), e.message)
                for e in sorted(crd.validator.iter_errors(copy.deepcopy(obj)),
                                key=lambda e: list(map(str, e.path)))]
    problems += list(_metadata_problems(obj.get("metadata"), crd.namespaced))
    return problems
