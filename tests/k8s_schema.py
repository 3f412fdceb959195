"""Check manifests flowpol writes against the Kubernetes OpenAPI schema.

``validate_manifests(docs)`` validates every document (``List`` items one by one) with
kubernetes-validate in strict mode - unknown fields fail, as with
``kubectl apply --validate=strict`` - for each requested Kubernetes version (default:
1.29 and 1.33, both shipped by kubernetes-validate 1.37; a version it does not ship is an
error, never a silent fallback to an older schema). NetworkPolicies are also parsed with
flowpol's own validator, which applies the API server's rules the schema cannot express
(CIDRs and ``except`` subsets, port names, ``endPort >= port``, policyTypes values).

Custom resources flowpol writes (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy,
ClusterNetworkPolicy) are validated against their CRDs' own schemas, vendored in
``tests/schemas/`` (``crd_schema``); the problem's ``version`` then names the CRD file.
Other kinds without a schema (AdminNetworkPolicy, ...) are failures unless the caller
names them in ``kinds_without_schema``, so nothing goes unchecked by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import kubernetes_validate
from kubernetes_validate.utils import all_versions, major_minor

from crd_schema import crd_for, crd_problems

DEFAULT_VERSIONS = ("1.29", "1.33")


@dataclass(frozen=True)
class SchemaProblem:
    version: str
    document: int  # 0-based index in the docs given (List items share their List's index)
    what: str  # kind/name
    path: str  # dotted path inside the document
    message: str

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"document {self.document} ({self.what}), Kubernetes {self.version}{where}: {self.message}"


class ManifestSchemaError(AssertionError):
    def __init__(self, problems: list[SchemaProblem]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} schema problem(s):\n" + "\n".join(str(p) for p in problems))


def shipped_versions() -> list[str]:
    """Kubernetes minor versions whose schemas kubernetes-validate ships, e.g. '1.33'."""
    return sorted({major_minor(v) for v in all_versions()}, key=lambda v: tuple(int(x) for x in v.split(".")))


def _objects(docs: Iterable[object]) -> Iterator[tuple[int, object]]:
    for i, doc in enumerate(docs):
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            for item in doc["items"]:
                yield i, item
        elif doc is not None:
            yield i, doc


def schema_problems(
    docs: Iterable[object],
    versions: Iterable[str] = DEFAULT_VERSIONS,
    kinds_without_schema: Iterable[str] = (),
) -> list[SchemaProblem]:
    """Every problem of every document for every version (empty list: all valid)."""
    from generator.verify.policy import parse_policy
    from recorder.errors import InputError

    versions = tuple(versions)
    shipped = shipped_versions()
    for v in versions:
        if v not in shipped:
            raise ValueError(f"kubernetes-validate ships no schema for Kubernetes {v}; pick from {shipped}")
    unchecked = set(kinds_without_schema)
    problems: list[SchemaProblem] = []
    for index, obj in _objects(docs):
        if not isinstance(obj, dict) or not obj.get("kind") or not obj.get("apiVersion"):
            problems.append(SchemaProblem("-", index, "?", "", "not a Kubernetes object (needs apiVersion and kind)"))
            continue
        kind = obj["kind"]
        what = f"{kind}/{(obj.get('metadata') or {}).get('name', '?')}"
        crd = crd_for(obj)
        if crd is not None:
            problems += [SchemaProblem(f"CRD {crd.source}", index, what, path, message)
                         for path, message in crd_problems(obj) or ()]
            continue
        for version in versions:
            try:
                used = kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                problems.append(SchemaProblem(version, index, what, path, e.message))
                continue
            except kubernetes_validate.SchemaNotFoundError:
                if kind not in unchecked:
                    problems.append(SchemaProblem(
                        version, index, what, "",
                        f"no schema for {obj['apiVersion']} {kind}; if it is a CRD, pass "
                        f"kinds_without_schema={{{kind!r}}} to accept it unchecked",
                    ))
                continue
            if used != version:  # pragma: no cover - guarded by shipped_versions above
                problems.append(SchemaProblem(version, index, what, "", f"validated against {used} instead"))
        if kind == "NetworkPolicy":
            try:
                parse_policy(obj)
            except InputError as e:
                problems.append(SchemaProblem("api-server rules", index, what, "", str(e)))
    return problems


def validate_manifests(
    docs: list[dict],
    versions: Iterable[str] = DEFAULT_VERSIONS,
    kinds_without_schema: Iterable[str] = (),
) -> int:
    """Raise ManifestSchemaError listing every problem; return how many objects passed."""
    docs = list(docs)
    problems = schema_problems(docs, versions, kinds_without_schema)
    if problems:
        raise ManifestSchemaError(problems)
    return sum(1 for _ in _objects(docs))
