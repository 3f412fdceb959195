"""Resolved peers and edges: what resolution produces and synthesis/verification consume.

A ``Peer`` is one side of a connection after identity resolution. An ``Edge`` is all
observed connections between two peers on one protocol and (post-DNAT) port, with the
evidence a reviewer needs.
"""

from __future__ import annotations

from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]

# Peer kinds
WORKLOAD = "workload"  # pods of one root owner (Deployment, StatefulSet, ..., bare Pod)
NODE = "node"  # a node IP: kubelet, hostNetwork pods, SNATed traffic
EXTERNAL = "external"  # outside the cluster
APISERVER = "kube-apiserver"
UNRESOLVED = "unresolved"  # looks like a pod IP, but no pod held it with confidence


@dataclass(frozen=True, slots=True, order=True)
class Peer:
    kind: str
    namespace: str | None = None
    workload_kind: str | None = None
    workload_name: str | None = None
    ip: str | None = None  # node / external / unresolved peers: the address
    node_name: str | None = None  # node peers, when known

    def display(self) -> str:
        if self.kind == WORKLOAD:
            return f"{self.namespace}/{self.workload_kind}/{self.workload_name}"
        if self.kind == NODE:
            return f"node {self.node_name or '?'} ({self.ip})"
        if self.kind == APISERVER and self.node_name:
            return f"{self.kind} {self.ip} (node {self.node_name})"
        return f"{self.kind} {self.ip}"


def names_text(names: tuple[str, ...]) -> str:
    """How a reviewer reads the names of an external address."""
    if not names:
        return "no DNS name"
    if len(names) == 1:
        return names[0]
    return "one of " + ", ".join(names) + " (several names for the address)"


class PeerIds:
    """Equal peers -> one small int, found by identity first.

    A frozen dataclass's hash runs Python code over every field on each call; grouping
    tens of thousands of connections by peer would pay it several times a connection,
    while the connections share a few thousand Peer objects. Each object is held beside
    its number, so its id cannot be reused by another object meanwhile.
    """

    __slots__ = ("_by_id", "_by_value")

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Peer, int]] = {}
        self._by_value: dict[Peer, int] = {}

    def __call__(self, peer: Peer) -> int:
        hit = self._by_id.get(id(peer))
        if hit is not None:
            return hit[1]
        n = self._by_value.setdefault(peer, len(self._by_value))
        self._by_id[id(peer)] = (peer, n)
        return n


@dataclass(frozen=True, slots=True)
class PodView:
    """What the evaluator needs of a pod at the time of a connection."""

    namespace: str
    name: str
    labels: Labels
    named_ports: tuple[tuple[str, str, int], ...] = ()  # (name, protocol, number)
    ip: str | None = None
    host_network: bool = False
    node: str | None = None


@dataclass(frozen=True, slots=True)
class Connection:
    """One aggregated, resolved observation: a source endpoint to a destination endpoint.

    ``src_pod``/``dst_pod`` are set when the side is a pod (the pod that held the IP at
    the time); ``None`` for node, external and unresolved peers, which are known by IP.
    ``port`` is the post-DNAT destination port (targetPort).
    """

    src: Peer
    dst: Peer
    protocol: str
    port: int | None
    src_ip: str
    dst_ip: str
    src_pod: PodView | None
    dst_pod: PodView | None
    count: int
    first_seen: int
    last_seen: int
    inputs: tuple[str, ...] = ()
    service: tuple[str, str] | None = None  # (namespace, name) when reached via a Service
    service_port: int | None = None  # the port the client used, when it was a Service's
    # The flow aggregate this came from: a ClusterIP flow expands to one connection per
    # backend, and counting must not multiply it by the number of backends.
    flow_id: int = -1
    # An EXTERNAL destination: the DNS names its address stood for at the time, for
    # this client (generator.resolve.names); () when no answer named it.
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Edge:
    """All connections from one peer to another on one protocol/port."""

    src: Peer
    dst: Peer
    protocol: str
    port: int | None
    count: int
    first_seen: int
    last_seen: int
    inputs: tuple[str, ...] = ()
    services: tuple[tuple[str, str], ...] = ()
    names: tuple[str, ...] = ()  # EXTERNAL destination: the DNS names of its connections
