"""Connections from the API server, labelled as such instead of as a node or an outside
address.

By address alone, a connection from the API server resolves to a node (on a
self-hosted control plane its address is a node's) or to an outside address (a
provider's range). When the source address is one the API server calls from
(``InventoryIndex.apiserver``: the ``default/kubernetes`` EndpointSlice, or
``--apiserver-cidr``), the source is the API server:
- always, when the address is no node's;
- on a node's address, only for a connection to a backend the cluster declares the API
  server calls (a webhook, an aggregated API, a conversion webhook) on its targetPort
  (``InventoryIndex.declared_calls``): the same address carries the node's kubelet
  probes and hostNetwork pods too, which stay node peers.
"""

from __future__ import annotations

import dataclasses

from generator.inventory.index import InventoryIndex
from generator.resolve.edges import APISERVER, EXTERNAL, NODE, WORKLOAD, Connection, Peer
from generator.resolve.identity import ResolveResult

_ADDRESS_KINDS = frozenset({NODE, EXTERNAL})


def label_apiserver(resolved: ResolveResult, index: InventoryIndex) -> ResolveResult:
    api = index.apiserver()
    if not api.sources:
        return resolved
    declared = {(t.workload.namespace, t.workload.kind, t.workload.name, t.protocol, t.port)
                for t in index.declared_calls().targets}
    is_api: dict[str, bool] = {}  # per source address
    peers: dict[Peer, Peer] = {}
    connections = resolved.connections
    # one comprehension over every connection (tens of thousands); the loop below only
    # sees those from an address (a few)
    from_addresses = [i for i, c in enumerate(connections) if c.src.kind in _ADDRESS_KINDS]
    changed: dict[int, Connection] = {}
    for i in from_addresses:
        c = connections[i]
        src = c.src
        ip = src.ip or ""
        hit = is_api.get(ip)
        if hit is None:
            hit = is_api[ip] = api.source_of(ip) is not None
        if not hit:
            continue
        dst = c.dst
        if index.node_by_ip(ip) is not None and not (
                dst.kind == WORKLOAD and (dst.namespace, dst.workload_kind, dst.workload_name,
                                          c.protocol, c.port) in declared):
            continue
        peer = peers.get(src)
        if peer is None:
            peer = peers[src] = Peer(APISERVER, ip=src.ip, node_name=src.node_name)
        changed[i] = dataclasses.replace(c, src=peer)
    if not changed:
        return resolved
    stats = dict(resolved.stats)
    stats["connections-from-the-api-server"] = len(changed)
    return dataclasses.replace(
        resolved, connections=tuple(changed.get(i, c) for i, c in enumerate(connections)),
        stats=dict(sorted(stats.items())))
