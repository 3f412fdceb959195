"""The cluster inventory as the generator sees it: frozen, typed, no raw dicts.

Loaded from a ``kubectl get ... -o json|yaml`` snapshot (inventory.load) or a live
cluster (inventory.live). Times are ns since the epoch; None when unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]  # sorted (key, value) pairs


def label_dict(labels: Labels | Mapping[str, str] | None) -> dict[str, str]:
    """Labels (pairs, a mapping, or None) as a dict."""
    if not labels:
        return {}
    if type(labels) is tuple:  # the usual case; isinstance(_, Mapping) is an ABC check
        return dict(labels)
    return dict(labels.items()) if isinstance(labels, Mapping) else dict(labels)
# Each container's ``command`` followed by its ``args``, in spec order. Kept only for node
# agents (DaemonSets, their pods, hostNetwork pods): their listen addresses live in their
# flags (node-local-dns: ``-localip``), and other pods' arguments are not needed.
ContainerArgs = tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class OwnerRef:
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class ContainerPort:
    name: str | None
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A metav1.LabelSelector. ``match_expressions``: (key, operator, values)."""

    match_labels: Labels = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Labels = ()


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    addresses: tuple[str, ...] = ()  # InternalIP / ExternalIP, IPv4 and IPv6
    pod_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    uid: str = ""
    labels: Labels = ()
    ips: tuple[str, ...] = ()
    node: str | None = None
    host_network: bool = False
    phase: str | None = None
    created: int | None = None
    deleted: int | None = None  # deletionTimestamp, when terminating
    owner: OwnerRef | None = None  # direct controller owner (ReplicaSet, Job, ...)
    ports: tuple[ContainerPort, ...] = ()
    container_args: ContainerArgs = ()  # DaemonSet and hostNetwork pods only

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str | None
    port: int
    target_port: int | str  # number, or a container port name
    protocol: str = "TCP"
    node_port: int | None = None


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str = "ClusterIP"  # ClusterIP, NodePort, LoadBalancer, ExternalName
    cluster_ips: tuple[str, ...] = ()  # empty for headless ("None") and ExternalName
    selector: Labels | None = None  # None = no selector (manual EndpointSlices)
    ports: tuple[ServicePort, ...] = ()
    external_traffic_policy: str | None = None
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()

    @property
    def headless(self) -> bool:
        return not self.cluster_ips and self.type != "ExternalName"


@dataclass(frozen=True, slots=True)
class SliceEndpoint:
    addresses: tuple[str, ...]
    pod: str | None = None  # targetRef name when kind == Pod
    pod_namespace: str | None = None
    ready: bool | None = None
    node: str | None = None


@dataclass(frozen=True, slots=True)
class SlicePort:
    name: str | None  # "" and None both mean unnamed
    port: int | None
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service: str | None  # kubernetes.io/service-name label
    address_type: str = "IPv4"
    endpoints: tuple[SliceEndpoint, ...] = ()
    ports: tuple[SlicePort, ...] = ()


@dataclass(frozen=True, slots=True)
class Controller:
    """A workload controller object: Deployment, ReplicaSet, StatefulSet, DaemonSet,
    Job, CronJob. ``selector`` is spec.selector (CronJob: the jobTemplate's, usually
    empty). ``template_labels`` are the pod template's labels. ``container_args``: the pod
    template's, for DaemonSets only."""

    kind: str
    namespace: str
    name: str
    selector: LabelSelector | None = None
    template_labels: Labels = ()
    owner: OwnerRef | None = None  # e.g. ReplicaSet -> Deployment, Job -> CronJob
    labels: Labels = ()
    schedule: str | None = None  # CronJob
    time_zone: str | None = None  # CronJob spec.timeZone (IANA name); None = the controller's (UTC)
    suspended: bool = False  # CronJob spec.suspend
    replicas: int | None = None
    container_args: ContainerArgs = ()  # DaemonSet only


@dataclass(frozen=True, slots=True)
class ServiceRef:
    """A Service the API server dials, on the Service's ``port`` (not the targetPort).
    The three APIs that name one default the port to 443."""

    namespace: str
    name: str
    port: int = 443


@dataclass(frozen=True, slots=True)
class ApiServerCall:
    """Where the cluster declares that the API server calls out, whether or not a
    recording shows it: one webhook of a Validating/MutatingWebhookConfiguration, an
    APIService, or a CustomResourceDefinition's conversion webhook.

    ``service`` None: the call goes to ``url`` (outside the cluster, as far as a
    NetworkPolicy can tell), or, for an APIService, nowhere (served by the API server
    itself). ``failure_policy``: webhooks only, ``Fail`` (the v1 default) or ``Ignore``.
    """

    kind: str
    name: str  # the object's name
    webhook: str | None = None  # webhooks[].name of a webhook configuration
    service: ServiceRef | None = None
    url: str | None = None
    failure_policy: str | None = None

    def display(self) -> str:
        return f"{self.kind}/{self.name}" + (f" webhook {self.webhook}" if self.webhook else "")


@dataclass(frozen=True, slots=True)
class Inventory:
    namespaces: tuple[Namespace, ...] = ()
    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()
    services: tuple[Service, ...] = ()
    endpoint_slices: tuple[EndpointSlice, ...] = ()
    controllers: tuple[Controller, ...] = ()
    network_policies: tuple[dict, ...] = ()  # raw networking.k8s.io/v1 objects
    api_server_calls: tuple[ApiServerCall, ...] = ()  # webhooks, APIServices, conversion
    kinds_present: frozenset[str] = frozenset()  # kinds the snapshot had (even empty)
    captured_at: int | None = None  # when the snapshot was taken, if known
    sources: tuple[str, ...] = ()  # files it was read from
