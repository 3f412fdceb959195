"""aggregate_edges: grouping and counting, checked against the plain algorithm."""

from __future__ import annotations

import random

from generator.resolve.edges import EXTERNAL, NODE, WORKLOAD, Connection, Edge, Peer
from generator.resolve.identity import aggregate_edges


def _reference(connections: list[Connection]) -> tuple[Edge, ...]:
    """The straightforward version: a flow counts once per edge it reaches."""
    acc: dict[tuple, list] = {}
    counted: set[tuple] = set()
    for c in connections:
        key = (c.src, c.dst, c.protocol, c.port)
        first_for_flow = c.flow_id < 0 or (key, c.flow_id) not in counted
        counted.add((key, c.flow_id))
        a = acc.get(key)
        if a is None:
            acc[key] = [c.count, c.first_seen, c.last_seen, set(c.inputs),
                        {c.service} if c.service else set()]
            continue
        if first_for_flow:
            a[0] += c.count
        a[1] = min(a[1], c.first_seen)
        a[2] = max(a[2], c.last_seen)
        a[3].update(c.inputs)
        if c.service:
            a[4].add(c.service)
    edges = [Edge(src, dst, proto, port, a[0], a[1], a[2], tuple(sorted(a[3])),
                  tuple(sorted(a[4]))) for (src, dst, proto, port), a in acc.items()]
    edges.sort(key=lambda e: (e.src, e.dst, e.protocol, e.port if e.port is not None else -1))
    return tuple(edges)


def _peer(rng: random.Random) -> Peer:
    # A fresh object each time: equal peers are not the same object.
    kind = rng.choice([WORKLOAD, WORKLOAD, NODE, EXTERNAL])
    if kind == WORKLOAD:
        return Peer(WORKLOAD, rng.choice(["a", "b"]), "Deployment", rng.choice(["x", "y", "z"]))
    if kind == NODE:
        return Peer(NODE, ip=rng.choice(["192.168.0.1", "192.168.0.2"]), node_name="n")
    return Peer(EXTERNAL, ip=rng.choice(["1.1.1.1", "8.8.8.8"]))


def _connections(seed: int, n: int) -> list[Connection]:
    rng = random.Random(seed)
    shared = [_peer(rng) for _ in range(6)]
    out = []
    flow = 0
    while len(out) < n:
        # One flow: one connection, or several (a Service flow expanded to backends),
        # each sometimes reusing a peer object, sometimes an equal new one.
        src = rng.choice(shared) if rng.random() < 0.7 else _peer(rng)
        proto = rng.choice(["TCP", "UDP"])
        count = rng.randint(1, 5)
        flow_id = -1 if rng.random() < 0.1 else flow
        flow += 1
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            dst = rng.choice(shared) if rng.random() < 0.7 else _peer(rng)
            t = rng.randint(0, 1000)
            out.append(Connection(
                src, dst, proto, rng.choice([80, 443, None]), "10.0.0.1", "10.0.0.2", None, None,
                count, t, t + rng.randint(0, 50), (rng.choice(["in-a", "in-b"]),),
                rng.choice([None, ("a", "svc")]), None, flow_id))
    return out


def test_same_edges_as_the_plain_algorithm() -> None:
    for seed in range(20):
        conns = _connections(seed, 300)
        assert aggregate_edges(conns) == _reference(conns)
        # Flows out of order (their connections no longer next to each other).
        random.Random(seed).shuffle(conns)
        assert aggregate_edges(conns) == _reference(conns)
        assert aggregate_edges(iter(conns)) == _reference(conns)


def test_a_flow_expanded_to_two_backends_of_one_workload_counts_once() -> None:
    a, web = Peer(WORKLOAD, "shop", "Deployment", "a"), Peer(WORKLOAD, "shop", "Deployment", "web")
    web_again = Peer(WORKLOAD, "shop", "Deployment", "web")
    conns = [Connection(a, web, "TCP", 8080, "10.0.0.1", ip, None, None, 3, 1, 2, ("x",),
                        ("shop", "web"), 80, 7) for ip in ("10.0.0.2", "10.0.0.3")]
    conns[1] = Connection(a, web_again, "TCP", 8080, "10.0.0.1", "10.0.0.3", None, None, 3, 1, 2,
                          ("x",), ("shop", "web"), 80, 7)
    (edge,) = aggregate_edges(conns)
    assert edge.count == 3 and edge.services == (("shop", "web"),)
