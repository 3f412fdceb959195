"""Lookups over an Inventory: what the resolver and the synthesizer are injected with.

Identity follows the root owner (Pod -> ReplicaSet -> Deployment, StatefulSet,
DaemonSet, Job -> CronJob; bare pods alone). Controllers missing from the snapshot are
inferred from the names the real controllers give (``<deploy>-<pod-template-hash>``,
``<cronjob>-<scheduled minute>``), and only when the inferred parent exists.

Every lookup works on a partial inventory (an empty one included): a missing kind gives
less detail, never a crash. The small Protocols below name what a consumer needs, so a
test or another source can supply just that part.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from itertools import combinations
from typing import Iterable, Mapping, Protocol

from generator.inventory.model import (
    Controller,
    EndpointSlice,
    Inventory,
    LabelSelector,
    Labels,
    Node,
    Pod,
    Service,
    ServicePort,
    label_dict,
)
from generator.inventory.declared import (
    ApiServerAddresses, DeclaredCalls, find_apiserver, find_declared,
)
from generator.inventory.dns import DnsResolvers, find_dns
from generator.inventory.refs import Backend, BackendsResult, SelectorChoice, WorkloadRef
from generator.verify.selectors import matches as selector_matches
from generator.inventory.load import NAMESPACE_NAME_LABEL

# Labels that differ between pods of one workload or change with every rollout/run: a
# podSelector on them breaks when the workload scales or rolls.
VOLATILE_LABELS = frozenset({
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/job-name",
    "job-name",
    "batch.kubernetes.io/controller-uid",
    "controller-uid",
    "batch.kubernetes.io/job-completion-index",
})
# Stable for one workload but changed by upgrades; used only when nothing else separates.
_VERSION_KEYS = frozenset({"version", "app.kubernetes.io/version", "helm.sh/chart", "chart"})
_VERSION_SUFFIXES = ("-hash", "/hash", ".hash", "-version", "/version", ".version")
# Keys that name an application: tried first when several single labels would do.
_IDENTITY_KEYS = (
    "app.kubernetes.io/name", "app", "k8s-app", "name", "app.kubernetes.io/instance",
    "app.kubernetes.io/component", "component", "tier", "role",
)
_MAX_SUBSET = 4  # label subsets searched exhaustively up to this size

# node-local-dns (k8s.io/dns node-cache) listens on the addresses of its `-localip` flag
# (comma-separated), e.g. `-localip 169.254.20.10,10.96.0.10` in the upstream manifest
# (cluster/addons/dns/nodelocaldns), `-localip 169.254.25.10` in kubespray's. The
# upstream default below is used only when the snapshot does not say, with a warning.
_RS_SUFFIX = re.compile(r"[a-z0-9]{1,10}")
_POD_SUFFIX = re.compile(r"[a-z0-9]{5}")


def is_volatile(key: str) -> bool:
    return key in VOLATILE_LABELS


def is_version_like(key: str) -> bool:
    return key in _VERSION_KEYS or key.endswith(_VERSION_SUFFIXES)


def _labels_match(selector: Labels, labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector)


def _norm_ip(ip: str) -> str:
    if ":" not in ip:
        return ip
    try:
        return ipaddress.ip_address(ip).compressed
    except ValueError:
        return ip


def _backend_order(b: Backend) -> tuple:
    """Backends in a fixed order. Not the dataclass order: a slice may list pod and
    non-pod endpoints (pod_name None) together, and ``ready`` may be unknown (None)."""
    return (b.namespace, b.pod_name is not None, b.pod_name or "", b.ip, b.target_port,
            b.ready is not None, bool(b.ready))


def container_port_number(pod: Pod, name: str, protocol: str) -> int | None:
    """The number a pod gives a named container port, for one protocol."""
    for p in pod.ports:
        if p.name == name and p.protocol == protocol:
            return p.port
    return None


# -- the interfaces consumers depend on ----------------------------------------------------


class PodLookup(Protocol):
    def pod(self, namespace: str, name: str) -> Pod | None: ...
    def pods_by_ip(self, ip: str) -> list[Pod]: ...


class WorkloadLookup(Protocol):
    def workload_of(self, pod: Pod) -> WorkloadRef: ...
    def workload_for_hints(self, namespace: str, labels: Labels | Mapping[str, str] | None,
                           workload: tuple[str, str] | None,
                           pod_name: str | None) -> WorkloadRef | None: ...
    def pods_of(self, workload: WorkloadRef) -> list[Pod]: ...
    def workloads(self) -> list[WorkloadRef]: ...
    def selector_for(self, workload: WorkloadRef) -> SelectorChoice: ...
    def namespace_labels(self, namespace: str) -> Labels: ...


class ServiceLookup(Protocol):
    def service(self, namespace: str, name: str) -> Service | None: ...
    def service_by_ip(self, ip: str) -> Service | None: ...
    def services_selecting(self, pod: Pod) -> list[Service]: ...
    def backends(self, service: Service, port: int, protocol: str) -> BackendsResult: ...


class NodeLookup(Protocol):
    def node_by_ip(self, ip: str) -> Node | None: ...
    def node_ips(self) -> frozenset[str]: ...
    def pod_cidrs(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]: ...
    def is_host_network_ip(self, ip: str) -> bool: ...


class DnsLookup(Protocol):
    def dns_resolvers(self) -> DnsResolvers: ...


# -- the index ---------------------------------------------------------------------------


class InventoryIndex:
    """All lookups over one Inventory. Built once; every method is read-only."""

    def __init__(self, inventory: Inventory, apiserver_cidrs: Iterable[str] = ()):
        """``apiserver_cidrs``: where the API server's calls come from, when not from the
        ``default/kubernetes`` EndpointSlice's addresses (``--apiserver-cidr``)."""
        self.inventory = inventory
        self._apiserver_cidrs = tuple(apiserver_cidrs)
        self._apiserver: ApiServerAddresses | None = None
        self._declared: DeclaredCalls | None = None
        self._pods: dict[tuple[str, str], Pod] = {p.key: p for p in inventory.pods}
        self._pods_by_ip: dict[str, list[Pod]] = defaultdict(list)
        for p in inventory.pods:
            for ip in p.ips:
                self._pods_by_ip[_norm_ip(ip)].append(p)
        self._pods_by_ns: dict[str, list[Pod]] = defaultdict(list)
        for p in inventory.pods:
            self._pods_by_ns[p.namespace].append(p)
        self._controllers: dict[tuple[str, str, str], Controller] = {
            (c.namespace, c.kind, c.name): c for c in inventory.controllers
        }
        self._controllers_by_ns: dict[str, list[Controller]] = defaultdict(list)
        for c in inventory.controllers:
            self._controllers_by_ns[c.namespace].append(c)
        self._services: dict[tuple[str, str], Service] = {
            (s.namespace, s.name): s for s in inventory.services
        }
        self._services_by_ip: dict[str, Service] = {}
        # ClusterIPs first: they are unique; external and LB addresses may be shared.
        for attr in ("cluster_ips", "external_ips", "load_balancer_ips"):
            for s in inventory.services:
                for ip in getattr(s, attr):
                    self._services_by_ip.setdefault(_norm_ip(ip), s)
        # (nodePort, protocol) -> (Service, its port): a nodePort is unique in a cluster
        self._node_ports: dict[tuple[int, str], tuple[Service, int]] = {}
        for s in inventory.services:
            if s.type in ("NodePort", "LoadBalancer"):
                for sp in s.ports:
                    if sp.node_port:
                        self._node_ports.setdefault((sp.node_port, sp.protocol), (s, sp.port))
        self._slices: dict[tuple[str, str], list[EndpointSlice]] = defaultdict(list)
        for sl in inventory.endpoint_slices:
            if sl.service:
                self._slices[(sl.namespace, sl.service)].append(sl)
        self._nodes_by_ip: dict[str, Node] = {}
        for n in inventory.nodes:
            for ip in n.addresses:
                self._nodes_by_ip.setdefault(_norm_ip(ip), n)
        self._namespaces = {n.name: n for n in inventory.namespaces}
        self._host_network_ips = frozenset(
            _norm_ip(ip) for p in inventory.pods if p.host_network for ip in p.ips
        )
        self._roots: dict[tuple[str, str], WorkloadRef] = {
            p.key: self._root(p.namespace, p.owner.kind, p.owner.name,
                              label_dict(p.labels).get("pod-template-hash"))
            if p.owner is not None and p.owner.kind != "Node"
            else WorkloadRef(p.namespace, "Pod", p.name)
            for p in inventory.pods
        }
        self._pods_of: dict[WorkloadRef, list[Pod]] = defaultdict(list)
        for p in inventory.pods:
            self._pods_of[self._roots[p.key]].append(p)
        self._selector_cache: dict[WorkloadRef, SelectorChoice] = {}
        self._label_sets_by_ns: dict[str, list[tuple[tuple[str, str, str], WorkloadRef,
                                                     dict[str, str]]]] = {}
        self._dns: DnsResolvers | None = None
        self._dnat: dict[tuple[str, int, str], tuple[tuple[str, int], ...]] | None = None
        self._backends: dict[tuple, tuple[Service, BackendsResult]] = {}

    # -- pods ------------------------------------------------------------------------------

    def pod(self, namespace: str, name: str) -> Pod | None:
        return self._pods.get((namespace, name))

    def pods_by_ip(self, ip: str) -> list[Pod]:
        """Every pod of the snapshot that lists ``ip``, hostNetwork pods included."""
        return list(self._pods_by_ip.get(_norm_ip(ip), ()))

    # -- workloads -------------------------------------------------------------------------

    def _root(self, ns: str, kind: str, name: str, template_hash: str | None) -> WorkloadRef:
        seen: set[tuple[str, str]] = set()
        while (kind, name) not in seen:
            seen.add((kind, name))
            c = self._controllers.get((ns, kind, name))
            if c is not None:
                if c.owner is None or c.owner.kind == "Node":
                    break
                kind, name = c.owner.kind, c.owner.name
                continue
            parent = None
            if kind == "ReplicaSet":
                parent = self._deployment_for_rs(ns, name, template_hash)
            elif kind == "Job":
                parent = self._cronjob_for_job(ns, name)
            if parent is None:
                break
            kind, name = parent
        return WorkloadRef(ns, kind, name)

    def _deployment_for_rs(self, ns: str, rs_name: str,
                           template_hash: str | None) -> tuple[str, str] | None:
        """A ReplicaSet missing from the snapshot: ``<deployment>-<pod-template-hash>``."""
        if template_hash:
            if not rs_name.endswith("-" + template_hash):
                return None
            base = rs_name[: -len(template_hash) - 1]
        else:
            base, sep, suffix = rs_name.rpartition("-")
            if not sep or not _RS_SUFFIX.fullmatch(suffix):
                return None
        return ("Deployment", base) if (ns, "Deployment", base) in self._controllers else None

    def _cronjob_for_job(self, ns: str, job_name: str) -> tuple[str, str] | None:
        """A Job missing from the snapshot: ``<cronjob>-<scheduled time in minutes>``."""
        base, sep, suffix = job_name.rpartition("-")
        if sep and suffix.isdigit() and (ns, "CronJob", base) in self._controllers:
            return ("CronJob", base)
        return None

    def workload_of(self, pod: Pod) -> WorkloadRef:
        root = self._roots.get(pod.key)
        if root is None:  # a Pod object that is not part of this inventory
            if pod.owner is None or pod.owner.kind == "Node":
                return WorkloadRef(pod.namespace, "Pod", pod.name)
            return self._root(pod.namespace, pod.owner.kind, pod.owner.name,
                              label_dict(pod.labels).get("pod-template-hash"))
        return root

    def controller(self, workload: WorkloadRef) -> Controller | None:
        """The controller object of a workload (a Deployment, a CronJob, ...), if any."""
        return self._controllers.get((workload.namespace, workload.kind, workload.name))

    def template_labels(self, workload: WorkloadRef) -> Labels:
        """The labels its controller gives new pods (a CronJob: its jobTemplate's)."""
        c = self.controller(workload)
        return c.template_labels if c is not None else ()

    def controller_root(self, c: Controller) -> WorkloadRef:
        """The workload a controller belongs to (a ReplicaSet: its Deployment)."""
        return self._root(c.namespace, c.kind, c.name, None)

    def _pod_selector_of(self, c: Controller) -> LabelSelector | None:
        """What selects the controller's pods: spec.selector, or for a CronJob without
        a jobTemplate selector its pod-template labels."""
        if c.selector is not None and not c.selector.is_empty():
            return c.selector
        if c.kind == "CronJob" and c.template_labels:
            return LabelSelector(c.template_labels)
        return None

    def workload_for_hints(self, namespace: str, labels: Labels | Mapping[str, str] | None,
                           workload: tuple[str, str] | None,
                           pod_name: str | None) -> WorkloadRef | None:
        """The workload of a pod that is not in the snapshot (a dead pod known from a
        flow source or the IP timeline). None when the hints do not decide it."""
        lab = label_dict(labels)
        if workload is not None and workload[0] and workload[1]:
            return self._root(namespace, workload[0], workload[1], lab.get("pod-template-hash"))
        matched: set[WorkloadRef] = set()
        if lab:
            for c in self._controllers_by_ns.get(namespace, ()):
                sel = self._pod_selector_of(c)
                if sel is not None and selector_matches(sel, lab):
                    matched.add(self.controller_root(c))
            if len(matched) == 1:
                return next(iter(matched))
        by_name = self._name_candidates(namespace, pod_name, lab) if pod_name else set()
        if matched:
            by_name &= matched
        return next(iter(by_name)) if len(by_name) == 1 else None

    def _name_candidates(self, ns: str, pod_name: str, labels: dict[str, str]) -> set[WorkloadRef]:
        out: set[WorkloadRef] = set()
        base, sep, suffix = pod_name.rpartition("-")
        if not sep:
            return out
        if suffix.isdigit() and (ns, "StatefulSet", base) in self._controllers:
            out.add(self._root(ns, "StatefulSet", base, None))
        if _POD_SUFFIX.fullmatch(suffix):
            for kind in ("ReplicaSet", "Job", "DaemonSet"):
                if (ns, kind, base) in self._controllers:
                    out.add(self._root(ns, kind, base, None))
            for parent in (self._deployment_for_rs(ns, base, labels.get("pod-template-hash")),
                           self._cronjob_for_job(ns, base)):
                if parent is not None:
                    out.add(self._root(ns, parent[0], parent[1], None))
        return out

    def pods_of(self, workload: WorkloadRef) -> list[Pod]:
        return list(self._pods_of.get(workload, ()))

    def workloads(self) -> list[WorkloadRef]:
        """Every root owner: of the snapshot's pods, and of controllers without pods
        (a CronJob between runs)."""
        roots = set(self._pods_of)
        roots.update(self.controller_root(c) for c in self.inventory.controllers)
        return sorted(roots)

    # -- selectors -------------------------------------------------------------------------

    def selector_for(self, workload: WorkloadRef) -> SelectorChoice:
        choice = self._selector_cache.get(workload)
        if choice is None:
            choice = self._choose_selector(workload)
            self._selector_cache[workload] = choice
        return choice

    def _others(self, workload: WorkloadRef) -> list[tuple[WorkloadRef, dict[str, str]]]:
        """Label sets of everything else in the namespace a selector must not match:
        other workloads' pods, and their pod templates (pods that may come later)."""
        key = (workload.namespace, workload.kind, workload.name)
        return [(root, labels) for root_key, root, labels in self._label_sets(workload.namespace)
                if root_key != key]

    def _label_sets(self, namespace: str) -> list[tuple[tuple[str, str, str], WorkloadRef,
                                                          dict[str, str]]]:
        """Each distinct (workload, label set) of a namespace's pods and pod templates,
        in that order, built once per namespace: ``_others`` is asked for every workload,
        and its callers only ask which workloads a selector matches, which duplicate
        label sets (the replicas of one template) cannot change. The workload comes
        with its fields as a plain tuple, which compares in C."""
        sets = self._label_sets_by_ns.get(namespace)
        if sets is None:
            seen: dict[tuple[WorkloadRef, Labels], None] = {}
            for p in self._pods_by_ns.get(namespace, ()):
                seen.setdefault((self._roots[p.key], p.labels), None)
            for c in self._controllers_by_ns.get(namespace, ()):
                if c.template_labels:
                    seen.setdefault((self.controller_root(c), c.template_labels), None)
            sets = self._label_sets_by_ns[namespace] = [
                ((root.namespace, root.kind, root.name), root, label_dict(labels))
                for root, labels in seen]
        return sets

    def _choose_selector(self, wl: WorkloadRef) -> SelectorChoice:
        controller = self._controllers.get((wl.namespace, wl.kind, wl.name))
        others = self._others(wl)
        spec_sel = controller.selector if controller is not None else None
        if spec_sel is not None and not spec_sel.is_empty():
            keys = {k for k, _ in spec_sel.match_labels} | {e[0] for e in spec_sel.match_expressions}
            if not any(is_volatile(k) for k in keys):
                return self._spec_selector_choice(wl, spec_sel, others)
        pods = self._pods_of.get(wl, [])
        attempts: list[tuple[str, Labels]] = []
        if controller is not None and controller.template_labels:
            attempts.append(("derived", controller.template_labels))
        if pods:
            shared = set(pods[0].labels).intersection(*(set(p.labels) for p in pods[1:]))
            attempts.append(("pod-labels", tuple(sorted(shared))))
        for origin, labels in attempts:
            candidates = [(k, v) for k, v in labels if not is_volatile(k)]
            if candidates:
                chosen, also = _smallest_selector(candidates, others)
                sel = LabelSelector(chosen)
                return SelectorChoice(chosen, (), origin,
                                      self._overlap_warnings(wl, sel, also), also)
        origin = attempts[-1][0] if attempts else "pod-labels"
        what = "its pods have" if pods else "the snapshot has no pods or pod template for it, so"
        return SelectorChoice((), (), origin, (
            f"{wl.display()}: {what} no stable label (only volatile ones such as "
            f"pod-template-hash or job-name, or none), so no podSelector can select it "
            f"alone; give its pods a label such as app.kubernetes.io/name",), ())

    def _spec_selector_choice(self, wl: WorkloadRef, sel: LabelSelector,
                              others: list[tuple[WorkloadRef, dict[str, str]]]) -> SelectorChoice:
        """The controller's own selector; without its version-like labels (a chart that
        puts app.kubernetes.io/version in the selector) when they separate nothing."""
        also = {w for w, labels in others if selector_matches(sel, labels)}
        origin = "spec.selector"
        stable = tuple((k, v) for k, v in sel.match_labels if not is_version_like(k))
        if len(stable) < len(sel.match_labels) and (stable or sel.match_expressions):
            trimmed = LabelSelector(stable, sel.match_expressions)
            if {w for w, labels in others if selector_matches(trimmed, labels)} == also:
                sel, origin = trimmed, "derived"
        ordered = tuple(sorted(also))
        return SelectorChoice(sel.match_labels, sel.match_expressions, origin,
                              self._overlap_warnings(wl, sel, ordered), ordered)

    @staticmethod
    def _overlap_warnings(wl: WorkloadRef, sel: LabelSelector,
                          also: list[WorkloadRef] | tuple[WorkloadRef, ...]) -> tuple[str, ...]:
        if not also:
            return ()
        rendered = ",".join(f"{k}={v}" for k, v in sel.match_labels)
        rendered += "".join(f",{k} {op} ({'|'.join(v)})" for k, op, v in sel.match_expressions)
        return (f"the podSelector for {wl.display()} ({rendered.lstrip(',')}) also selects "
                f"pods of {', '.join(w.display() for w in also)}: its policy applies to them "
                f"too; give {wl.display()}'s pods a label the others do not have",)

    def namespace_labels(self, namespace: str) -> Labels:
        ns = self._namespaces.get(namespace)
        if ns is not None:
            return ns.labels
        # Not in the snapshot: the API server sets at least this label on every namespace.
        return ((NAMESPACE_NAME_LABEL, namespace),)

    # -- services --------------------------------------------------------------------------

    def service(self, namespace: str, name: str) -> Service | None:
        return self._services.get((namespace, name))

    def service_by_ip(self, ip: str) -> Service | None:
        """By ClusterIP, then externalIPs and load-balancer addresses."""
        return self._services_by_ip.get(_norm_ip(ip))

    def service_by_node_port(self, ip: str, port: int, protocol: str
                             ) -> tuple[Service, int] | None:
        """A connection to a node's address on a nodePort: the Service and the port of it
        that kube-proxy translates the nodePort to (a capture on the node's uplink sees
        the connection before that)."""
        if not self._node_ports or _norm_ip(ip) not in self._nodes_by_ip:
            return None
        return self._node_ports.get((port, protocol.upper()))

    def services_selecting(self, pod: Pod) -> list[Service]:
        """Services whose selector matches the pod, or whose EndpointSlices name it."""
        labels = label_dict(pod.labels)
        out = {s.name: s for s in self.inventory.services
               if s.namespace == pod.namespace and s.selector and _labels_match(s.selector, labels)}
        for (ns, svc_name), slices in self._slices.items():
            svc = self._services.get((ns, svc_name))
            if ns != pod.namespace or svc is None or svc_name in out:
                continue
            if any(e.pod == pod.name and (e.pod_namespace or ns) == pod.namespace
                   for sl in slices for e in sl.endpoints):
                out[svc_name] = svc
        return [out[k] for k in sorted(out)]

    def dnat_peers(self, ip: str, port: int, protocol: str) -> tuple[tuple[str, int], ...]:
        """The other side of a Service's DNAT for ``ip:port`` (``protocol``): for a
        backend, the ClusterIP:port frontends kube-proxy rewrites to it; for a frontend,
        its backends on their targetPorts. A client's node sees one, the backend's node
        the other, of the same connection. Built once, from ``backends`` of every Service
        port (ClusterIPs and pod IPs never overlap, so one table holds both ways)."""
        if self._dnat is None:
            table: dict[tuple[str, int, str], dict[tuple[str, int], None]] = {}
            for svc in self.inventory.services:
                if not svc.cluster_ips or svc.type == "ExternalName":
                    continue
                for sp in svc.ports:
                    for b in self.backends(svc, sp.port, sp.protocol).backends:
                        backend = (_norm_ip(b.ip), b.target_port)
                        for vip in svc.cluster_ips:
                            frontend = (_norm_ip(vip), sp.port)
                            table.setdefault((*backend, sp.protocol), {})[frontend] = None
                            table.setdefault((*frontend, sp.protocol), {})[backend] = None
            self._dnat = {k: tuple(v) for k, v in table.items()}
        return self._dnat.get((_norm_ip(ip), port, protocol), ())

    def backends(self, service: Service, port: int, protocol: str) -> BackendsResult:
        """The backends of ``service``'s ``port``/``protocol`` and the numeric targetPort
        each one receives the traffic on (after kube-proxy's DNAT). Remembered per
        Service port: resolution asks once per flow, DNS discovery, the DNAT join and
        the SNAT warnings once per Service."""
        # keyed by id(): the entry holds the Service, so the id stays its own
        key = (id(service), port, protocol)
        hit = self._backends.get(key)
        if hit is None or hit[0] is not service:
            hit = self._backends[key] = (service, self._find_backends(service, port, protocol))
        return hit[1]

    def _find_backends(self, service: Service, port: int, protocol: str) -> BackendsResult:
        protocol = protocol.upper()
        where = f"Service {service.namespace}/{service.name}"
        if service.type == "ExternalName":
            return BackendsResult((), (f"{where} is an ExternalName Service (DNS only); "
                                       "it has no backends",))
        sp = next((p for p in service.ports if p.port == port and p.protocol == protocol), None)
        if sp is None and not (service.headless and not service.ports):
            return BackendsResult((), (f"{where} has no port {port}/{protocol}",))
        warnings: list[str] = []
        slices = self._slices.get((service.namespace, service.name), [])
        if slices:
            found = self._backends_from_slices(service, sp, port, protocol, slices)
            if found:
                return BackendsResult(tuple(sorted(found, key=_backend_order)), (),
                                      "endpointslices")
            warnings.append(f"{where}: its EndpointSlices have no port "
                            f"{_port_label(sp, port, protocol)}; used its selector instead")
        if not service.selector:
            warnings.append(f"{where} has no selector and no EndpointSlice for port "
                            f"{port}/{protocol} in the snapshot: its backends are unknown")
            return BackendsResult((), tuple(warnings))
        found = []
        selector = label_dict(service.selector)
        target = sp.target_port if sp is not None else port
        for p in self._pods_by_ns.get(service.namespace, ()):
            if not p.ips or p.phase in ("Succeeded", "Failed") or not _labels_match(
                    service.selector, label_dict(p.labels)):
                continue
            number = target if isinstance(target, int) else container_port_number(p, target, protocol)
            if number is None:
                warnings.append(f"{where}: pod {p.namespace}/{p.name} has no container port "
                                f"named {target!r} ({protocol}); skipped as a backend")
                continue
            found.extend(Backend(p.namespace, p.name, ip, number, p.phase == "Running")
                         for ip in p.ips)
        if not found:
            warnings.append(f"{where}: no pod in the snapshot matches its selector "
                            + ",".join(f"{k}={v}" for k, v in sorted(selector.items())))
        return BackendsResult(tuple(sorted(set(found), key=_backend_order)), tuple(warnings),
                              "selector" if found else "")

    @staticmethod
    def _backends_from_slices(service: Service, sp: ServicePort | None, port: int,
                              protocol: str, slices: list[EndpointSlice]) -> list[Backend]:
        found: set[Backend] = set()
        want_name = (sp.name or "") if sp is not None else None
        for sl in slices:
            if not sl.ports or all(p.port is None for p in sl.ports):
                number: int | None = port  # no ports = every port (headless without ports)
            else:
                number = next((p.port for p in sl.ports if p.protocol == protocol
                               and (want_name is None or (p.name or "") == want_name)
                               and p.port is not None), None)
                if number is None and want_name is None:
                    number = port
            if number is None:
                continue
            for e in sl.endpoints:
                for ip in e.addresses:
                    found.add(Backend(e.pod_namespace or service.namespace, e.pod, ip, number,
                                      e.ready))
        return list(found)

    # -- nodes -----------------------------------------------------------------------------

    def node_by_ip(self, ip: str) -> Node | None:
        return self._nodes_by_ip.get(_norm_ip(ip))

    def node_ips(self) -> frozenset[str]:
        return frozenset(self._nodes_by_ip)

    def pod_cidrs(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        nets = set()
        for n in self.inventory.nodes:
            for c in n.pod_cidrs:
                try:
                    nets.add(ipaddress.ip_network(c, strict=False))
                except ValueError:
                    continue
        return tuple(sorted(nets, key=lambda n: (n.version, n)))

    def is_host_network_ip(self, ip: str) -> bool:
        """A node address, or an address a hostNetwork pod lists (its node's)."""
        ip = _norm_ip(ip)
        return ip in self._nodes_by_ip or ip in self._host_network_ips

    # -- DNS -------------------------------------------------------------------------------

    def dns_resolvers(self) -> DnsResolvers:
        if self._dns is None:
            self._dns = find_dns(self)
        return self._dns

    # -- what the API server calls ---------------------------------------------------------

    def endpoint_slices_of(self, namespace: str, service: str) -> list[EndpointSlice]:
        return list(self._slices.get((namespace, service), ()))

    def apiserver(self) -> ApiServerAddresses:
        """Where the API server's calls come from (``generator.inventory.declared``)."""
        if self._apiserver is None:
            self._apiserver = find_apiserver(self, self._apiserver_cidrs)
        return self._apiserver

    def declared_calls(self) -> DeclaredCalls:
        """The pods and ports the API server calls, as the cluster declares them."""
        if self._declared is None:
            self._declared = find_declared(self)
        return self._declared

def _port_label(sp: ServicePort | None, port: int, protocol: str) -> str:
    if sp is not None and sp.name:
        return f"{sp.name!r} ({port}/{protocol})"
    return f"{port}/{protocol}"


def _rank(label: tuple[str, str]) -> tuple[int, int, str, str]:
    key = label[0]
    identity = _IDENTITY_KEYS.index(key) if key in _IDENTITY_KEYS else len(_IDENTITY_KEYS)
    return (1 if is_version_like(key) else 0, identity, key, label[1])


def _selects_any(labels: Iterable[tuple[str, str]],
                 others: list[tuple[WorkloadRef, dict[str, str]]]) -> bool:
    labels = tuple(labels)
    return any(all(o.get(k) == v for k, v in labels) for _, o in others)


def _smallest_selector(candidates: list[tuple[str, str]],
                       others: list[tuple[WorkloadRef, dict[str, str]]],
                       ) -> tuple[Labels, tuple[WorkloadRef, ...]]:
    """The smallest subset of ``candidates`` matching none of ``others``, preferring
    identity keys and avoiding version-like ones; when none separates, all candidates
    and the workloads they still match."""
    ordered = sorted(set(candidates), key=_rank)
    stable = [c for c in ordered if not is_version_like(c[0])]
    versioned = [c for c in ordered if is_version_like(c[0])]
    for size in range(1, min(len(stable), _MAX_SUBSET) + 1):
        for combo in combinations(stable, size):
            if not _selects_any(combo, others):
                return tuple(sorted(combo)), ()
    # Stable labels alone do not separate: add the fewest version-like labels to all
    # stable ones, then drop stable ones that are not needed.
    for size in range(1, min(len(versioned), _MAX_SUBSET) + 1):
        for combo in combinations(versioned, size):
            chosen = list(stable) + list(combo)
            if not _selects_any(chosen, others):
                for label in reversed(stable):
                    trial = [c for c in chosen if c != label]
                    if any(not is_version_like(k) for k, _ in trial) and not _selects_any(trial, others):
                        chosen = trial
                return tuple(sorted(chosen)), ()
    also = tuple(sorted({w for w, o in others if all(o.get(k) == v for k, v in ordered)}))
    return tuple(sorted(ordered)), also
