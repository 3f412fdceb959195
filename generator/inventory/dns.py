"""The cluster DNS as pods need it once egress is isolated: the resolver pods behind the
DNS Service (CoreDNS/kube-dns) on their real targetPorts, and node-local-dns, a
hostNetwork listener on the addresses its ``-localip`` flag lists.

One question, asked through ``InventoryIndex.dns_resolvers``; this module knows the
index only by the lookups it asks (``DnsIndex``), so the two do not import each other.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Protocol

from generator.inventory.model import Controller, Inventory, Pod, Service, label_dict
from generator.inventory.refs import BackendsResult, SelectorChoice, WorkloadRef

NODE_LOCAL_DNS_IP = "169.254.20.10"
NODE_LOCAL_DNS_NAMES = frozenset({"node-local-dns", "nodelocaldns"})  # upstream, kubespray
LOCALIP_FLAG = "localip"
DNS_PORT = 53


@dataclass(frozen=True, slots=True)
class DnsResolvers:
    """The cluster DNS as pods need it under egress isolation.

    ``workloads``: resolver workloads reached through the DNS Service (CoreDNS/kube-dns);
    ``udp_ports``/``tcp_ports``: the numeric targetPorts they listen on (e.g. 53, 5353),
    plus 53 when node-local-dns is present. ``node_local_ips``: the addresses
    node-local-dns listens on (its ``-localip`` flag; a hostNetwork listener, so an
    ipBlock), which may include the DNS Service's ClusterIP (see ``find_dns``).
    ``node_local_source`` says where they were read, or that they were assumed;
    ``node_local_warnings`` (also in ``warnings``) what a reviewer must check.
    ``selectors`` pairs each resolver workload with its podSelector.
    """

    service: tuple[str, str] | None = None
    cluster_ips: tuple[str, ...] = ()
    workloads: tuple[WorkloadRef, ...] = ()
    pods: tuple[tuple[str, str], ...] = ()
    udp_ports: tuple[int, ...] = ()
    tcp_ports: tuple[int, ...] = ()
    node_local_ips: tuple[str, ...] = ()
    node_local_workloads: tuple[WorkloadRef, ...] = ()
    node_local_source: str = ""
    node_local_warnings: tuple[str, ...] = ()
    selectors: tuple[tuple[WorkloadRef, SelectorChoice], ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(sorted({w.namespace for w in self.workloads}))


class DnsIndex(Protocol):
    """The lookups DNS discovery asks of an ``InventoryIndex``."""

    inventory: Inventory

    def service(self, namespace: str, name: str) -> Service | None: ...
    def backends(self, service: Service, port: int, protocol: str) -> BackendsResult: ...
    def pod(self, namespace: str, name: str) -> Pod | None: ...
    def pods_by_ip(self, ip: str) -> list[Pod]: ...
    def workload_of(self, pod: Pod) -> WorkloadRef: ...
    def controller_root(self, controller: Controller) -> WorkloadRef: ...
    def selector_for(self, workload: WorkloadRef) -> SelectorChoice: ...


def _dns_service(index: DnsIndex) -> Service | None:
    """kube-system/kube-dns (kubeadm, kind, k3s, EKS, GKE); else a Service selecting
    ``k8s-app=kube-dns`` pods; else OpenShift's openshift-dns/dns-default."""
    svc = index.service("kube-system", "kube-dns")
    if svc is not None:
        return svc
    for s in index.inventory.services:
        if s.selector and ("k8s-app", "kube-dns") in s.selector and s.cluster_ips:
            return s
    return index.service("openshift-dns", "dns-default")


def find_dns(index: DnsIndex) -> DnsResolvers:
    """The cluster DNS resolvers of an inventory (``InventoryIndex.dns_resolvers``)."""
    warnings: list[str] = []
    workloads: set[WorkloadRef] = set()
    pods: set[tuple[str, str]] = set()
    ports: dict[str, set[int]] = {"UDP": set(), "TCP": set()}
    svc = _dns_service(index)
    if svc is not None:
        for proto in ("UDP", "TCP"):
            if not any(p.port == DNS_PORT and p.protocol == proto for p in svc.ports):
                warnings.append(f"DNS Service {svc.namespace}/{svc.name} has no "
                                f"{DNS_PORT}/{proto} port")
                continue
            result = index.backends(svc, DNS_PORT, proto)
            warnings.extend(result.warnings)
            for b in result.backends:
                pod = index.pod(b.namespace, b.pod_name) if b.pod_name else None
                if pod is None:
                    holders = [p for p in index.pods_by_ip(b.ip) if not p.host_network]
                    pod = holders[0] if len(holders) == 1 else None
                if pod is None:
                    warnings.append(f"DNS backend {b.ip} of {svc.namespace}/{svc.name} "
                                    "is not a pod of the snapshot")
                    continue
                ports[proto].add(b.target_port)
                pods.add(pod.key)
                workloads.add(index.workload_of(pod))
    else:
        warnings.append("no kube-dns Service in kube-system: cluster DNS resolver unknown")
    local_daemonsets, local_workloads, local_pods = _node_local_dns(index)
    node_local_ips: tuple[str, ...] = ()
    local_source = ""
    local_warnings: list[str] = []
    if local_workloads or local_pods:
        # Every -localip address becomes an ipBlock, the DNS Service's ClusterIP
        # included when it is listed (kube-proxy iptables mode): node-cache binds it
        # on the node and NOTRACKs packets to it, so kube-proxy's DNAT never applies
        # and a pod's policy sees DNS to the ClusterIP itself, which no podSelector
        # matches (upstream cluster/addons/dns/nodelocaldns/README.md allows it by
        # ipBlock for this reason). When node-local-dns is down, the same packets are
        # DNATed to the resolver pods, which the workload elements allow.
        node_local_ips, local_source, local_warnings = _node_local_addresses(
            index, local_daemonsets, local_pods)
        ports["UDP"].add(DNS_PORT)
        ports["TCP"].add(DNS_PORT)
        warnings.extend(local_warnings)
    return DnsResolvers(
        service=(svc.namespace, svc.name) if svc is not None else None,
        cluster_ips=svc.cluster_ips if svc is not None else (),
        workloads=tuple(sorted(workloads)),
        pods=tuple(sorted(pods | local_pods)),
        udp_ports=tuple(sorted(ports["UDP"])),
        tcp_ports=tuple(sorted(ports["TCP"])),
        node_local_ips=node_local_ips,
        node_local_workloads=tuple(sorted(local_workloads)),
        node_local_source=local_source,
        node_local_warnings=tuple(dict.fromkeys(local_warnings)),
        selectors=tuple((w, index.selector_for(w)) for w in sorted(workloads)),
        warnings=tuple(dict.fromkeys(warnings)),
    )


def _node_local_dns(index: DnsIndex
                ) -> tuple[list[Controller], set[WorkloadRef], set[tuple[str, str]]]:
    """node-local-dns DaemonSets, the workloads and the pods, by the names and the
    ``k8s-app`` label the upstream and kubespray manifests give them."""
    daemonsets = [c for c in index.inventory.controllers if c.kind == "DaemonSet" and (
        c.name in NODE_LOCAL_DNS_NAMES
        or label_dict(c.template_labels).get("k8s-app") in NODE_LOCAL_DNS_NAMES)]
    workloads = {index.controller_root(c) for c in daemonsets}
    pods: set[tuple[str, str]] = set()
    for p in index.inventory.pods:
        labels = label_dict(p.labels)
        if labels.get("k8s-app") in NODE_LOCAL_DNS_NAMES or (
                p.namespace == "kube-system" and p.name.startswith(("node-local-dns",
                                                                    "nodelocaldns"))):
            pods.add(p.key)
            workloads.add(index.workload_of(p))
    return daemonsets, workloads, pods


def _node_local_addresses(index: DnsIndex, daemonsets: list[Controller],
                          pod_keys: set[tuple[str, str]]) -> tuple[tuple[str, ...], str, list[str]]:
    """The -localip addresses of the node-local-dns DaemonSets' pod templates, plus
    any that their pods list and the templates do not (a rollout changing the
    address: old pods still listen on the old one). Without any: the upstream
    default, with a warning. Returns (addresses, where they were read, warnings)."""
    warnings: list[str] = []
    found: dict[str, None] = {}
    sources: list[str] = []
    parsed: set = set()  # pods usually repeat their template's args: parse (and warn) once
    for c in daemonsets:
        parsed.add(c.container_args)
        where = f"DaemonSet {c.namespace}/{c.name}"
        ips = _localip_addresses(c.container_args, where, warnings)
        if ips:
            sources.append(where)
            found.update(dict.fromkeys(ips))
    from_template = bool(found)
    for key in sorted(pod_keys):
        pod = index.pod(*key)
        if pod is None or pod.container_args in parsed:
            continue
        parsed.add(pod.container_args)
        where = f"pod {pod.namespace}/{pod.name}"
        ips = _localip_addresses(pod.container_args, where, warnings)
        extra = [ip for ip in ips if ip not in found]
        if not extra:
            continue
        if from_template:
            warnings.append(
                f"node-local-dns {where} listens on {', '.join(extra)}, which no "
                "node-local-dns DaemonSet's pod template lists (a rollout in progress?): "
                "allowed as well; drop it from the DNS rule once the rollout is done")
        sources.append(where)
        found.update(dict.fromkeys(extra))
    if found:
        shown = sources[0] + (f" and {len(sources) - 1} more" if len(sources) > 1 else "")
        return tuple(found), f"-localip of {shown}", warnings
    warnings.append(
        f"node-local-dns is present but the snapshot does not say where it listens (no "
        f"valid -localip in its DaemonSet's or pods' container args): assumed "
        f"{NODE_LOCAL_DNS_IP}, the upstream default (kubespray uses 169.254.25.10). A "
        f"wrong address breaks DNS for every pod once egress is restricted: check it "
        f"with `kubectl -n kube-system get daemonset -l k8s-app=node-local-dns -o "
        f"jsonpath='{{..args}}'` (or the `bind` line of the node-local-dns ConfigMap) "
        f"and fix the ipBlock in the generated DNS rule, or add the DaemonSet to the snapshot")
    return (NODE_LOCAL_DNS_IP,), "assumed (upstream default)", warnings


def _localip_addresses(container_args: Iterable[tuple[str, ...]], where: str,
                       warnings: list[str]) -> list[str]:
    """The addresses of node-cache's ``-localip`` flag in each container's command +
    args. Go's flag syntax: ``-localip V``, ``-localip=V``, and the same with ``--``;
    the last one given wins. An argument with spaces (``sh -c "... -localip V"``) is
    split into words. Entries that are not IP addresses are left out with a warning:
    node-cache refuses to start with them, so nothing listens there."""
    out: list[str] = []
    for argv in container_args:
        words = [w for a in argv for w in a.split()]
        value: str | None = None
        for i, word in enumerate(words):
            name, eq, inline = word.lstrip("-").partition("=")
            if not word.startswith("-") or word.startswith("---") or name != LOCALIP_FLAG:
                continue
            if eq:
                value = inline
            elif i + 1 < len(words):
                value = words[i + 1]
            else:
                warnings.append(f"node-local-dns {where}: -{LOCALIP_FLAG} has no value; ignored")
        if value is None:
            continue
        for entry in value.strip("'\"").split(","):
            entry = entry.strip()
            try:
                ip = ipaddress.ip_address(entry).compressed
            except ValueError:
                warnings.append(
                    f"node-local-dns {where}: -{LOCALIP_FLAG} entry {entry!r} is not an IP "
                    "address; ignored (node-cache does not start with it: fix the "
                    "DaemonSet's args)")
                continue
            if ip not in out:
                out.append(ip)
    return out
