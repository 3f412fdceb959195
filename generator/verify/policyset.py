"""Policies of every kind flowpol judges, read together: NetworkPolicies
(``generator.verify.policy``), CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies
(``cilium_policy``), ClusterNetworkPolicies (``clusternetworkpolicy``), in any mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from generator.verify.cilium_policy import API_GROUP as CILIUM_GROUP
from generator.verify.cilium_policy import KINDS as CILIUM_KINDS
from generator.verify.cilium_policy import CiliumPolicy, parse_cilium_policy
from generator.verify.clusternetworkpolicy import API_GROUP as CNP_GROUP
from generator.verify.clusternetworkpolicy import KIND as CNP_KIND
from generator.verify.clusternetworkpolicy import (
    ClusterNetworkPolicy, parse_cluster_network_policy,
)
from generator.verify.policy import LoadedPolicies, NetworkPolicy, load_policies, parse_policy
from recorder.errors import InputError


@dataclass(frozen=True, slots=True)
class PolicyKinds:
    network: tuple[NetworkPolicy, ...] = ()
    cilium: tuple[CiliumPolicy, ...] = ()
    cluster: tuple[ClusterNetworkPolicy, ...] = ()

    @property
    def count(self) -> int:
        return len(self.network) + len(self.cilium) + len(self.cluster)

    @property
    def not_judged(self) -> tuple[str, ...]:
        """What of the Cilium and ClusterNetworkPolicy rules was not judged, and why
        (L7 rules: judged at L3/L4 only)."""
        return tuple(t for p in self.cilium for t in p.not_judged) + \
            tuple(t for p in self.cluster for t in p.not_judged)


def kind_of(obj: dict) -> str | None:
    """"cilium", "cluster" or None for an object of another kind."""
    kind, api = obj.get("kind"), obj.get("apiVersion")
    group = api.split("/")[0] if isinstance(api, str) else ""
    if kind in CILIUM_KINDS and group == CILIUM_GROUP:
        return "cilium"
    if kind == CNP_KIND and group == CNP_GROUP:
        return "cluster"
    return None


class _Others:
    """Collects the Cilium and ClusterNetworkPolicy objects of files being read."""

    def __init__(self, default_namespace: str) -> None:
        self.cilium: list[CiliumPolicy] = []
        self.cluster: list[ClusterNetworkPolicy] = []
        self.seen: dict[str, tuple[str, int | None]] = {}
        self.default_namespace = default_namespace

    def __call__(self, obj: dict, path: str, lines: dict[int, int]) -> bool:
        kind = obj.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list) \
                and kind[:-4] in CILIUM_KINDS + (CNP_KIND,):
            for item in obj["items"]:
                if isinstance(item, dict):
                    item.setdefault("kind", kind[:-4])
                    item.setdefault("apiVersion", obj.get("apiVersion"))
                    self(item, path, lines)
            return True
        which = kind_of(obj)
        if which is None:
            return False
        if which == "cilium":
            found = parse_cilium_policy(obj, path, lines, self.default_namespace)
            key, line = found[0].id.split(" specs[")[0], found[0].line
            self.cilium.extend(found)
        else:
            cnp = parse_cluster_network_policy(obj, path, lines)
            key, line = cnp.id, cnp.line
            self.cluster.append(cnp)
        other = self.seen.get(key)
        if other is not None:
            raise InputError(f"{key} is defined twice (also at {other[0]}:{other[1]}); only one "
                             "object of a name can exist, remove or rename one", path, line)
        self.seen[key] = (path, line)
        return True


def load_policy_kinds(paths: Iterable[str] | str, default_namespace: str = "default"
                      ) -> tuple[LoadedPolicies, PolicyKinds]:
    """``load_policies`` plus the Cilium and ClusterNetworkPolicy objects of the files."""
    others = _Others(default_namespace)
    loaded = load_policies(paths, default_namespace, others)
    return loaded, PolicyKinds(loaded.policies, tuple(others.cilium), tuple(others.cluster))


def parse_manifests(objects: Iterable[dict], path: str | None = None) -> PolicyKinds:
    """Raw policy objects of any kind (e.g. the ones just generated)."""
    network: list[NetworkPolicy] = []
    cilium: list[CiliumPolicy] = []
    cluster: list[ClusterNetworkPolicy] = []
    for obj in objects:
        which = kind_of(obj)
        if which == "cilium":
            cilium.extend(parse_cilium_policy(obj, path))
        elif which == "cluster":
            cluster.append(parse_cluster_network_policy(obj, path))
        else:
            network.append(parse_policy(obj, path))
    return PolicyKinds(tuple(network), tuple(cilium), tuple(cluster))
