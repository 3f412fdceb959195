"""The existing policy set as written: each parsed policy with its raw object, the file
it lives in and where in that file, so a tightened version can be written as an edit
of the same file (see ``yamledit``).

From files, validation and skipping are ``generator.verify.run.policies_from_files``'
(one behaviour for `verify` and `diff`). From a live cluster, the objects are cleaned of
server-side fields and rendered one file per namespace, which is then "the existing
YAML" the diff is made against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from generator.verify.policy import API_VERSION, NetworkPolicy, parse_policies, parse_text
from generator.verify.run import PolicySet, policies_from_files
from generator.output.yamlout import dump_all
from recorder.errors import InputError
from recorder.report import Skipped
from recorder.sources import expand_inputs, open_input

DEFAULT_NAMESPACE = "default"  # what load_policies assumes for a policy without one
CLUSTER_HEADER = "NetworkPolicies of the cluster as read by flowpol diff (server-side fields removed)"
# libyaml when PyYAML has it: the same data, several times faster on large sets.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Locator of a policy object in its file: (document index, index in a List's items or None).
Locator = tuple[int, int | None]


@dataclass(frozen=True, slots=True)
class PolicyFile:
    path: str  # as read (or "cluster:<context>/<ns>.yaml")
    name: str  # relative name under the output directory
    text: str
    is_json: bool = False


@dataclass(frozen=True, slots=True)
class ExistingPolicy:
    policy: NetworkPolicy
    raw: dict
    file: str  # PolicyFile.name
    locator: Locator


@dataclass(frozen=True, slots=True)
class ExistingSet:
    policies: tuple[ExistingPolicy, ...]
    files: tuple[PolicyFile, ...]
    origin: str  # "files" or "cluster"
    context: str | None = None
    skipped: tuple[Skipped, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def parsed(self) -> tuple[NetworkPolicy, ...]:
        return tuple(p.policy for p in self.policies)

    def file(self, name: str) -> PolicyFile:
        return next(f for f in self.files if f.name == name)


def read_documents(text: str, path: str) -> tuple[list[Any], bool]:
    """All documents of a YAML (or JSON) text; ``True`` when it is JSON only. Read as
    ``verify`` reads policy files (``parse_text``): duplicate keys refused, with the line."""
    docs, _, is_json = parse_text(text, path)
    return docs, is_json


def policy_objects(docs: list[Any]) -> Iterator[tuple[Locator, dict]]:
    """Every networking.k8s.io NetworkPolicy object of the documents, with its locator
    (the same objects ``load_policies`` reads)."""
    for d, doc in enumerate(docs):
        if not isinstance(doc, dict):
            continue
        kind = doc.get("kind")
        if kind in ("List", "NetworkPolicyList") and isinstance(doc.get("items"), list):
            for i, item in enumerate(doc["items"]):
                if isinstance(item, dict) and (kind == "NetworkPolicyList" or _is_policy(item)):
                    yield (d, i), item
        elif _is_policy(doc):
            yield (d, None), doc


def _is_policy(obj: dict) -> bool:
    api = obj.get("apiVersion")
    return (obj.get("kind") == "NetworkPolicy" and isinstance(api, str)
            and api.split("/")[0] in ("networking.k8s.io", "extensions"))


def policy_key(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or DEFAULT_NAMESPACE}/{meta.get('name')}"


def _read_text(path: str) -> str:
    with open_input(Path(path)) as f:
        try:
            return f.read().decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("not a text file; give YAML or JSON NetworkPolicies", path) from None


def _output_names(args: list[str], files: tuple[str, ...]) -> dict[str, str]:
    """A relative output name per file read: the path inside a directory given, or the
    file's own name; a numbered prefix only when two would collide."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    wanted = set(files)
    for arg in args:
        root = Path(arg)
        for path in expand_inputs([arg]):
            if str(path) not in wanted or str(path) in names:
                continue
            rel = str(path.relative_to(root)) if root.is_dir() else path.name
            if rel.endswith(".gz"):
                rel = rel[:-3]
            name, n = rel, 1
            while name in taken:
                n += 1
                name = f"{n}/{rel}"
            taken.add(name)
            names[str(path)] = name
    return names


def existing_from_files(paths: list[str], strict: bool = False) -> ExistingSet:
    loaded: PolicySet = policies_from_files(paths, strict)
    names = _output_names(paths, loaded.files)
    by_id = {p.id: p for p in loaded.policies}
    policies: list[ExistingPolicy] = []
    files: list[PolicyFile] = []
    for path in loaded.files:
        text = _read_text(path)
        docs, is_json = read_documents(text, path)
        files.append(PolicyFile(path, names[path], text, is_json))
        for locator, raw in policy_objects(docs):
            parsed = by_id.get(policy_key(raw))
            if parsed is not None and parsed.path == path:
                policies.append(ExistingPolicy(parsed, raw, names[path], locator))
    order = {p.id: i for i, p in enumerate(loaded.policies)}
    policies.sort(key=lambda e: order[e.policy.id])
    return ExistingSet(tuple(policies), tuple(files), "files", None, loaded.skipped,
                       loaded.warnings)


_SERVER_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def clean_live_object(obj: dict) -> dict:
    """A NetworkPolicy as its author would write it: no uid, resourceVersion,
    managedFields, status or last-applied annotation."""
    meta = obj.get("metadata") or {}
    clean_meta: dict = {"name": meta.get("name"), "namespace": meta.get("namespace")}
    if meta.get("labels"):
        clean_meta["labels"] = dict(meta["labels"])
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in _SERVER_ANNOTATIONS}
    if annotations:
        clean_meta["annotations"] = annotations
    return {"apiVersion": obj.get("apiVersion") or API_VERSION, "kind": "NetworkPolicy",
            "metadata": clean_meta, "spec": obj.get("spec") or {}}


def existing_from_objects(objects: list[dict], origin: str, label: str,
                          context: str | None = None) -> ExistingSet:
    """Policies given as objects (a live cluster's): rendered one file per namespace."""
    items = [clean_live_object(o) for o in objects]
    parsed = parse_policies(items, label)
    by_ns: dict[str, list[int]] = {}
    for i, p in enumerate(parsed):
        by_ns.setdefault(p.namespace, []).append(i)
    policies: list[ExistingPolicy] = []
    files: list[PolicyFile] = []
    for ns in sorted(by_ns):
        name = f"{ns}.yaml"
        docs = [items[i] for i in by_ns[ns]]
        files.append(PolicyFile(f"{label}/{name}", name,
                                dump_all(docs, (CLUSTER_HEADER, f"namespace: {ns}"))))
        for d, i in enumerate(by_ns[ns]):
            policies.append(ExistingPolicy(parsed[i], items[i], name, (d, None)))
    return ExistingSet(tuple(policies), tuple(files), origin, context)


def existing_from_cluster(kubeconfig: str | None, context: str | None) -> ExistingSet:
    from generator.inventory.live import read_network_policies

    live = read_network_policies(kubeconfig=kubeconfig, context=context)
    found = existing_from_objects(live.items, "cluster", f"cluster:{live.context}", live.context)
    if not found.policies:
        return ExistingSet((), (), "cluster", live.context, (), (
            f"the cluster of context {live.context} has no NetworkPolicy: nothing to tighten",))
    return found
