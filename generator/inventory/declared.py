"""What the cluster declares that the API server calls, whether or not a recording shows
it, resolved to the pods and ports that must accept those calls; and where the API
server's calls come from.

The API server calls admission webhooks (Validating/MutatingWebhookConfiguration),
aggregated APIs (APIService) and CRD conversion webhooks through a Service reference:
the Service's ``port`` (443 unless set), which kube-proxy (or the API server itself,
with ``--enable-aggregator-routing``) translates to the backends' targetPort. As for any
Service, the rule is for the backend pods on the targetPort, a named one resolved per
pod (``InventoryIndex.backends``). A webhook whose pods deny the API server fails every
call; with ``failurePolicy: Fail`` every matching API request in the cluster fails.

The API server's source addresses are those of the ``default/kubernetes`` EndpointSlice
on self-hosted control planes. Managed ones call from a provider range or through a
tunnel agent pod (konnectivity), so ``--apiserver-cidr`` replaces them.

One question each, asked through ``InventoryIndex.declared_calls`` and
``InventoryIndex.apiserver``; this module knows the index only by the lookups it asks.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Protocol

from generator.inventory.model import ApiServerCall, EndpointSlice, Inventory, Node, Pod, Service
from generator.inventory.refs import BackendsResult, WorkloadRef

APISERVER_SERVICE = ("default", "kubernetes")
SLICE_ORIGIN = "the default/kubernetes EndpointSlice"
OVERRIDE_ORIGIN = "--apiserver-cidr"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ApiServerSource:
    """One network the API server's calls come from: a single address of the
    EndpointSlice (``/32``, ``/128``) or a range given with ``--apiserver-cidr``."""

    cidr: str
    addresses: tuple[str, ...] = ()  # the EndpointSlice's addresses behind it
    node_names: tuple[str, ...] = ()  # nodes that have the address (a control-plane node)

    def display(self) -> str:
        what = ", ".join(self.addresses) or self.cidr
        return f"kube-apiserver {what}" + (
            f" (node {', '.join(self.node_names)})" if self.node_names else "")


@dataclass(frozen=True, slots=True)
class ApiServerAddresses:
    sources: tuple[ApiServerSource, ...] = ()
    origin: str = ""  # SLICE_ORIGIN or OVERRIDE_ORIGIN; "" when none is known
    warnings: tuple[str, ...] = ()
    _networks: tuple[tuple[IPNetwork, ApiServerSource], ...] = field(
        default=(), repr=False, compare=False)

    def source_of(self, ip: str) -> ApiServerSource | None:
        """The source an address belongs to, or None."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for net, source in self._networks:
            if addr.version == net.version and addr in net:
                return source
        return None

    @property
    def overridden(self) -> bool:
        return self.origin == OVERRIDE_ORIGIN


@dataclass(frozen=True, slots=True, order=True)
class DeclaredTarget:
    """Pods of ``workload`` must accept the API server on ``protocol``/``port`` (the
    targetPort number on those pods) for ``call``."""

    workload: WorkloadRef
    port: int
    protocol: str
    call_key: tuple[str, str, str]  # (kind, name, webhook) of ``call``, for ordering
    call: ApiServerCall = field(compare=False)
    service: tuple[str, str, int] = field(default=("", "", 0), compare=False)  # ns, name, port


@dataclass(frozen=True, slots=True)
class DeclaredProblem:
    """A declared call no rule could be written for, and why."""

    call: ApiServerCall
    reason: str


@dataclass(frozen=True, slots=True)
class DeclaredCalls:
    targets: tuple[DeclaredTarget, ...] = ()
    problems: tuple[DeclaredProblem, ...] = ()
    local: tuple[ApiServerCall, ...] = ()  # APIServices the API server serves itself
    checked: bool = True  # False: the snapshot has none of the declared kinds


class DeclaredIndex(Protocol):
    """The lookups declared-call resolution asks of an ``InventoryIndex``."""

    inventory: Inventory

    def service(self, namespace: str, name: str) -> Service | None: ...
    def backends(self, service: Service, port: int, protocol: str) -> BackendsResult: ...
    def pod(self, namespace: str, name: str) -> Pod | None: ...
    def workload_of(self, pod: Pod) -> WorkloadRef: ...
    def node_by_ip(self, ip: str) -> Node | None: ...
    def endpoint_slices_of(self, namespace: str, service: str) -> list[EndpointSlice]: ...


def consequence(call: ApiServerCall) -> str:
    if call.failure_policy == "Fail":
        return "with failurePolicy Fail every API request it matches is rejected"
    if call.failure_policy == "Ignore":
        return "with failurePolicy Ignore the API server goes on without it"
    if call.kind == "APIService":
        return "its API group is unavailable"
    return "conversion of the custom resource fails"


def find_declared(index: DeclaredIndex) -> DeclaredCalls:
    inventory = index.inventory
    checked = "APIService" in inventory.kinds_present
    targets: dict[DeclaredTarget, None] = {}
    problems: list[DeclaredProblem] = []
    local: list[ApiServerCall] = []
    for call in inventory.api_server_calls:
        ref = call.service
        if ref is None:
            if call.url is not None:
                problems.append(DeclaredProblem(call, (
                    f"calls the URL {call.url}, outside the cluster's Services: no rule is "
                    "written (a NetworkPolicy cannot say which pods it may reach)")))
            elif call.kind == "APIService":
                local.append(call)
            else:
                problems.append(DeclaredProblem(call, "names neither a Service nor a URL"))
            continue
        where = f"Service {ref.namespace}/{ref.name}"
        svc = index.service(ref.namespace, ref.name)
        if svc is None:
            problems.append(DeclaredProblem(call, (
                f"{where} is not in the snapshot: the API server's calls fail today "
                f"({consequence(call)}); no rule written")))
            continue
        if not any(p.port == ref.port and p.protocol == "TCP" for p in svc.ports) \
                and not (svc.headless and not svc.ports):
            problems.append(DeclaredProblem(call, (
                f"{where} has no port {ref.port}/TCP (it has "
                f"{', '.join(f'{p.port}/{p.protocol}' for p in svc.ports) or 'none'}): the "
                f"API server's calls fail today ({consequence(call)}); no rule written")))
            continue
        found = index.backends(svc, ref.port, "TCP")
        for b in found.backends:
            pod = index.pod(b.namespace, b.pod_name) if b.pod_name else None
            if pod is None:
                problems.append(DeclaredProblem(call, (
                    f"{where} port {ref.port} reaches {b.ip}:{b.target_port}, which is no pod "
                    "of the snapshot: no rule written for it")))
                continue
            if pod.host_network:
                continue  # its node's address: no NetworkPolicy applies to it
            target = DeclaredTarget(index.workload_of(pod), b.target_port, "TCP",
                                    (call.kind, call.name, call.webhook or ""), call,
                                    (ref.namespace, ref.name, ref.port))
            targets.setdefault(target, None)
        if not found.backends:
            why = "; ".join(found.warnings) or "no backends"
            problems.append(DeclaredProblem(call, (
                f"{where} port {ref.port} has no backend pod in the snapshot ({why}): the API "
                f"server's calls fail today ({consequence(call)}); no rule written")))
    return DeclaredCalls(tuple(sorted(targets)), tuple(problems), tuple(local), checked)


def find_apiserver(index: DeclaredIndex, cidrs: Iterable[str] = ()) -> ApiServerAddresses:
    """The networks the API server's calls come from: ``cidrs`` (``--apiserver-cidr``)
    when given, else the addresses of the ``default/kubernetes`` EndpointSlices."""
    networks: list[tuple[IPNetwork, ApiServerSource]] = []
    cidrs = list(cidrs)
    if cidrs:
        for text in cidrs:
            net = ipaddress.ip_network(text, strict=False)
            networks.append((net, ApiServerSource(str(net))))
        origin = OVERRIDE_ORIGIN
        warnings: tuple[str, ...] = ()
    else:
        addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        for sl in index.endpoint_slices_of(*APISERVER_SERVICE):
            for e in sl.endpoints:
                for a in e.addresses:
                    try:
                        addresses.add(ipaddress.ip_address(a))
                    except ValueError:
                        continue
        for addr in sorted(addresses, key=lambda a: (a.version, a)):
            net = ipaddress.ip_network(addr)
            node = index.node_by_ip(str(addr))
            networks.append((net, ApiServerSource(str(net), (str(addr),),
                                                  (node.name,) if node else ())))
        origin = SLICE_ORIGIN if networks else ""
        warnings = () if networks else (
            "the snapshot has no default/kubernetes EndpointSlice addresses, so where the API "
            "server calls from is unknown: no rule admits it to webhooks, aggregated APIs or "
            "conversion webhooks; give its source with --apiserver-cidr",)
    networks.sort(key=lambda n: (n[0].version, n[0]))
    return ApiServerAddresses(tuple(s for _, s in networks), origin, warnings, tuple(networks))
