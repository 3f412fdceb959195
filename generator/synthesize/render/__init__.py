"""Renderers: the policy model in the dialect a cluster enforces.

One module per dialect, registered in ``DIALECTS``; each turns a ``PolicyModel`` into
documents (``PolicyDoc``) whose manifests may carry evidence comments for the YAML
emitter (``generator.output.yamlout.Commented``). A dialect adds a renderer here and an
evaluator adapter in ``generator.verify``; synthesis is not copied per dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from generator.synthesize.model import PolicyModel


@dataclass(frozen=True, slots=True)
class PolicyDoc:
    namespace: str
    name: str
    manifest: dict  # may contain Commented list items (yamlout)
    workload: tuple[str, str] | None  # (kind, name) for workload policies


@dataclass(frozen=True, slots=True)
class Rendered:
    policies: tuple[PolicyDoc, ...]
    warnings: tuple[str, ...] = ()


def _kubernetes(model: PolicyModel) -> Rendered:
    from generator.synthesize.render import kubernetes

    return kubernetes.render(model)


DIALECTS: dict[str, Callable[[PolicyModel], Rendered]] = {
    "kubernetes": _kubernetes,
}


def render_policies(model: PolicyModel, dialect: str = "kubernetes") -> Rendered:
    try:
        renderer = DIALECTS[dialect]
    except KeyError:
        raise ValueError(f"unknown dialect {dialect!r}") from None
    return renderer(model)
