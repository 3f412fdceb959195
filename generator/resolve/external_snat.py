"""Traffic from outside through a NodePort or LoadBalancer Service, as the backend pod's
NetworkPolicy sees it.

With ``externalTrafficPolicy: Cluster`` (the default) the node that takes a connection
may forward it to a pod on another node and SNATs it to its own address (kube-proxy;
Cilium in SNAT mode): the pod's ingress policy sees a node address, and which node
depends on where the client's traffic landed. Observed traffic names only the nodes
that took it during the recording, and a capture taken before the SNAT names the client
instead of a node. Either way the rules written from it can drop this Service's traffic
once applied; flowpol says so instead of guessing (``Local`` keeps the client's address
and sends traffic only to pods on the node that took it).
"""

from __future__ import annotations

from generator.resolve.edges import EXTERNAL, NODE, Edge, Peer
from generator.inventory.index import InventoryIndex, WorkloadRef

_EXPOSED = ("NodePort", "LoadBalancer")


def external_snat_warnings(index: InventoryIndex, ingress: dict[Peer, list[Edge]]) -> list[str]:
    """Warnings for workloads whose observed ingress comes from outside (nodes or external
    addresses) on a port that a NodePort/LoadBalancer Service with
    ``externalTrafficPolicy: Cluster`` sends to them."""
    exposed = [svc for svc in index.inventory.services if svc.type in _EXPOSED
               and (svc.external_traffic_policy or "Cluster") != "Local"]
    if not exposed:
        return []
    # (namespace, pod) -> [(Service, protocol, targetPort)] it receives from outside
    reached: dict[tuple[str, str], list] = {}
    for svc in sorted(exposed, key=lambda x: (x.namespace, x.name)):
        for sp in svc.ports:
            for b in index.backends(svc, sp.port, sp.protocol).backends:
                if b.pod_name:
                    reached.setdefault((b.namespace, b.pod_name), []).append(
                        (svc, sp.protocol, b.target_port))
    all_nodes = sorted(index.node_ips())
    out: list[str] = []
    for peer in sorted(ingress, key=Peer.display):
        outside = [e for e in ingress[peer] if e.src.kind in (NODE, EXTERNAL)]
        if not outside:
            continue
        ref = WorkloadRef(peer.namespace, peer.workload_kind, peer.workload_name)  # type: ignore[arg-type]
        pods = index.pods_of(ref)
        # per Service and protocol, the targetPorts it sends to this workload's pods
        ports: dict[tuple[str, str, str], tuple[object, set[int]]] = {}
        for p in pods:
            for svc, protocol, port in reached.get((p.namespace, p.name), ()):
                ports.setdefault((svc.namespace, svc.name, protocol), (svc, set()))[1].add(port)
        if not ports:
            continue
        # A pod's own node always reaches it: when every pod runs on one node, that
        # node's SNAT cannot be dropped.
        pod_nodes = {p.node for p in pods}
        safe = {ip for n in index.inventory.nodes if len(pod_nodes) == 1 and n.name in pod_nodes
                for ip in n.addresses}
        droppable = [ip for ip in all_nodes if ip not in safe]
        for key in sorted(ports):
            svc, targets = ports[key]
            edges = [e for e in outside if e.protocol == key[2] and e.port in targets]
            warning = _warning(svc, key[2], sorted(targets), peer, edges, droppable) \
                if edges else ""
            if warning and warning not in out:
                out.append(warning)
    return out


def _warning(svc, protocol: str, ports: list[int], peer: Peer, edges: list[Edge],
             all_nodes: list[str]) -> str:
    """``all_nodes``: the node addresses whose SNAT the pods' policy can drop."""
    where = (f"{svc.namespace}/{svc.name} is a {svc.type} Service with externalTrafficPolicy: "
             f"Cluster: traffic from outside reaches {peer.display()} on "
             f"{protocol}/{','.join(map(str, ports))} SNATed to the address of whichever node "
             "took it")
    clients = sorted({e.src.ip for e in edges if e.src.kind == EXTERNAL and e.src.ip})
    nodes = sorted({e.src.ip for e in edges if e.src.kind == NODE and e.src.ip})
    parts = [where]
    if clients:
        parts.append(f"the rule allows the client address(es) seen ({', '.join(clients[:5])}"
                     + (f" and {len(clients) - 5} more" if len(clients) > 5 else "")
                     + "), which the pod does not see after the SNAT (a capture from before "
                       "it?)")
    missing = [ip for ip in all_nodes if ip not in nodes]
    if nodes and missing:
        parts.append(f"it was seen from {len(nodes)} node address(es), so only those are "
                     f"allowed: traffic through {', '.join(missing[:5])}"
                     + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                     + " will be dropped")
    if len(parts) == 1:
        return ""
    return ("; ".join(parts) + ". Allow every node's address on that port, or set "
            "externalTrafficPolicy: Local (clients keep their address)")
