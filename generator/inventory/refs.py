"""What the inventory's lookups answer with: workloads, selectors, Service backends.

Plain data, shared by ``index`` (which computes them) and its consumers, ``dns``
among them, without importing the index itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.inventory.model import Labels


@dataclass(frozen=True, slots=True, order=True)
class WorkloadRef:
    """A root owner: Deployment, StatefulSet, DaemonSet, CronJob, Job, ReplicaSet (no
    Deployment), Pod (bare), or another owner kind a CRD controller uses."""

    namespace: str
    kind: str
    name: str

    def display(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class SelectorChoice:
    """The podSelector for one workload.

    ``origin``: ``spec.selector`` (the controller's own), ``derived`` (smallest stable
    subset of the controller's pod-template labels), ``pod-labels`` (smallest stable
    subset of the labels all its pods share). ``also_selects``: other workloads of the
    namespace whose pods the selector matches too (each named in ``warnings``). An empty
    selector (no labels, no expressions) means no label can single the workload out;
    ``warnings`` says so, and it must not be written as ``podSelector: {}``.
    """

    match_labels: Labels
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...]
    origin: str
    warnings: tuple[str, ...] = ()
    also_selects: tuple[WorkloadRef, ...] = ()

    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True, slots=True, order=True)
class Backend:
    """One backend of a Service port: the address traffic was DNATed to and the numeric
    targetPort it arrived on. ``pod_name`` None for non-pod endpoints."""

    namespace: str
    pod_name: str | None
    ip: str
    target_port: int
    ready: bool | None = None


@dataclass(frozen=True, slots=True)
class BackendsResult:
    backends: tuple[Backend, ...] = ()
    warnings: tuple[str, ...] = ()
    via: str = ""  # "endpointslices", "selector", or "" when nothing was found

    @property
    def target_ports(self) -> tuple[int, ...]:
        return tuple(sorted({b.target_port for b in self.backends}))
