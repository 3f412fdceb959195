"""Would these policies let the API server make the calls the cluster declares?

A recording rarely shows an admission webhook, an aggregated API or a CRD conversion
webhook being called, yet a policy set that isolates their backends from the API server
breaks the cluster (with ``failurePolicy: Fail`` every API request the webhook matches is
rejected). ``check_declared`` asks the evaluator, for every call the snapshot declares
(``generator.inventory.declared``: the backends' pods and targetPorts), whether each of
the API server's source addresses (the ``default/kubernetes`` EndpointSlice, or
``--apiserver-cidr``) reaches each backend pod on that port, whether or not a call was
observed. A pod stands for the pods of its workload that share its labels and named
ports; a workload without a running pod is judged by its template's labels.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from generator.inventory.declared import DeclaredProblem, DeclaredTarget, consequence
from generator.inventory.index import InventoryIndex
from generator.resolve.edges import PodView
from generator.resolve.identity import pod_view
from generator.verify.evaluator import Endpoint


@dataclass(frozen=True, slots=True)
class DeclaredVerdict:
    """One declared call, from one API server source to one backend pod, judged."""

    target: DeclaredTarget
    source: str  # the API server source, as displayed
    pod: str  # "namespace/name" of the pod judged (or a template's stand-in)
    allowed: bool
    reason: str

    @property
    def call(self) -> str:
        return self.target.call.display()

    def consequence(self) -> str:
        return consequence(self.target.call)


@dataclass(frozen=True, slots=True)
class DeclaredCheck:
    """The declared calls' verdicts. ``checked`` False: the snapshot holds none of the
    kinds that declare calls, so nothing could be judged (the snapshot's warning says so)."""

    verdicts: tuple[DeclaredVerdict, ...] = ()
    problems: tuple[DeclaredProblem, ...] = ()  # calls no backend pod could be found for
    sources: tuple[str, ...] = ()
    origin: str = ""
    checked: bool = True
    warnings: tuple[str, ...] = ()

    @property
    def denied(self) -> tuple[DeclaredVerdict, ...]:
        return tuple(v for v in self.verdicts if not v.allowed)


def _first_address(cidr: str) -> str | None:
    """An address standing for a ``--apiserver-cidr`` range: its first usable one."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.num_addresses <= 2:
        return str(net.network_address)
    return str(net.network_address + 1)


def _backend_views(index: InventoryIndex, target: DeclaredTarget) -> list[tuple[str, PodView]]:
    views: dict[tuple, tuple[str, PodView]] = {}
    for pod in index.pods_of(target.workload):
        if pod.host_network or not pod.ips or pod.phase in ("Succeeded", "Failed"):
            continue
        view = pod_view(pod)
        views.setdefault((view.labels, view.named_ports), (f"{pod.namespace}/{pod.name}", view))
    if not views:
        labels = index.template_labels(target.workload)
        if labels:
            stand_in = f"(a pod of {target.workload.display()})"
            return [(stand_in, PodView(target.workload.namespace, stand_in, labels))]
    return [views[k] for k in sorted(views)]


def check_declared(index: InventoryIndex, evaluator) -> DeclaredCheck:  # noqa: ANN001 - any dialect's evaluator (check(src, dst, protocol, port))
    calls = index.declared_calls()
    apiserver = index.apiserver()
    warnings = list(apiserver.warnings)
    if not calls.checked:  # the snapshot's own warning says what was not captured
        return DeclaredCheck(checked=False)
    sources: list[tuple[str, Endpoint]] = []
    for source in apiserver.sources:
        ip = source.addresses[0] if source.addresses else _first_address(source.cidr)
        if ip is not None:
            sources.append((source.display(), ip))
    if calls.targets and not sources:
        warnings.append("where the API server calls from is unknown (no default/kubernetes "
                        "EndpointSlice addresses): give it with --apiserver-cidr to check "
                        f"the {len(calls.targets)} declared backend port(s)")
    verdicts: list[DeclaredVerdict] = []
    for target in calls.targets:
        for pod, view in _backend_views(index, target):
            for shown, ip in sources:
                v = evaluator.check(ip, view, target.protocol, target.port)
                verdicts.append(DeclaredVerdict(target, shown, pod, v.allowed, v.reason))
    return DeclaredCheck(tuple(verdicts), calls.problems, tuple(s for s, _ in sources),
                         apiserver.origin, True, tuple(warnings))
