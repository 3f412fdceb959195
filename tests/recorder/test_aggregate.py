from __future__ import annotations

import dataclasses
import random

import pytest

from recorder.aggregate import SECOND, Aggregator, RecentTable
from recorder.schema import EndpointHints, FlowRecord, IpTimelineRecord, NameBinding, ServiceRef

T0 = 28_333_333 * 60 * SECOND  # on a window boundary (windows start at the epoch)
WEB = EndpointHints(namespace="shop", pod="web-1", labels=(("app", "web"),), peer_kind="pod")


def syn(t: float, sport: int = 40000, dst: str = "10.0.0.2", dport: int = 80, **kw: object) -> FlowRecord:
    ns = T0 + int(t * SECOND)
    fields = dict(first_seen=ns, last_seen=ns, protocol="TCP", src_ip="10.0.0.1", dst_ip=dst,
                  dst_port=dport, src_port=sport, src=WEB, source_format="hubble", input="a")
    fields.update(kw)
    return FlowRecord(**fields)  # type: ignore[arg-type]


def test_same_connection_twice_counts_once_and_extends_the_evidence() -> None:
    agg = Aggregator()
    agg.add(syn(0))
    agg.add(syn(0.001, node="other-node"))  # the destination node saw the same SYN
    agg.add(syn(3))  # retransmission
    (rec,) = agg.drain()
    assert rec.count == 1 and rec.first_seen == T0 and rec.last_seen == T0 + 3 * SECOND
    assert rec.src_port == 40000  # a single connection keeps its port
    assert agg.stats.seen == 3 and agg.stats.duplicates == 2


@pytest.mark.parametrize("order", ["client node first", "backend node first"])
def test_before_and_after_the_services_dnat_is_one_connection(order: str) -> None:
    # kube-proxy DNATs on the client's node: its recorder (or conntrack) sees the
    # ClusterIP and learns the backend; the backend's node sees the backend address.
    client_node = syn(0, dst="10.96.0.20", dport=80, xlated_ip="10.244.2.7", xlated_port=8080,
                      node="node-a", source_format="conntrack")
    backend_node = syn(0.002, dst="10.244.2.7", dport=8080, node="node-b",
                       source_format="pcap")
    another = syn(0.003, sport=40001, dst="10.244.2.7", dport=8080, node="node-b",
                  source_format="pcap")  # another connection to the same backend
    agg = Aggregator()
    first, second = ((client_node, backend_node) if order == "client node first"
                     else (backend_node, client_node))
    for rec in (first, second, another):
        agg.add(rec)
    assert sum(r.count for r in agg.drain()) == 2
    assert agg.stats.duplicates == 1


def test_before_the_dnat_with_and_without_the_backend_is_one_connection() -> None:
    # Hubble on the client's node does not know the backend, conntrack there does.
    with_backend = syn(0.001, dst="10.96.0.20", dport=80, xlated_ip="10.244.2.7",
                       xlated_port=8080, source_format="conntrack")
    without = syn(0, dst="10.96.0.20", dport=80)
    for records in ([without, with_backend], [with_backend, without]):
        agg = Aggregator()
        for rec in records:
            agg.add(rec)
        assert sum(r.count for r in agg.drain()) == 1


def test_a_backend_port_equal_to_the_address_seen_adds_no_second_key() -> None:
    agg = Aggregator()
    agg.add(syn(0, xlated_ip="10.0.0.2", xlated_port=80))  # nothing was translated
    agg.add(syn(0.001, dst="10.0.0.3"))  # another server, same client port: another one
    assert sum(r.count for r in agg.drain()) == 2


def test_connections_aggregate_per_key_and_window() -> None:
    agg = Aggregator(window_ns=60 * SECOND)
    for i in range(5):
        agg.add(syn(i, sport=40000 + i))
    agg.add(syn(61, sport=41000))  # next window
    agg.add(syn(2, sport=42000, dport=443))  # another port: another key
    out = agg.drain()
    assert [(r.dst_port, r.count, r.src_port) for r in out] == [
        (80, 5, None), (443, 1, 42000), (80, 1, 41000)
    ]
    assert out[0].first_seen == T0 and out[0].last_seen == T0 + 4 * SECOND


def test_a_gap_longer_than_dedup_is_a_new_connection() -> None:
    agg = Aggregator(dedup_ns=10 * SECOND)
    agg.add(syn(0))
    agg.add(syn(11))  # same 5-tuple, 11 s later
    (rec,) = agg.drain()
    assert rec.count == 2 and agg.stats.duplicates == 0


def test_dedup_is_sliding_for_a_steady_stream() -> None:
    agg = Aggregator(dedup_ns=10 * SECOND)
    for t in range(0, 100, 5):  # a UDP packet every 5 s
        agg.add(syn(t, protocol="UDP"))
    out = agg.drain()
    assert sum(r.count for r in out) == 1


def test_icmp_dedups_without_ports_and_aggregates_are_not_deduped() -> None:
    agg = Aggregator()
    ping = dict(protocol="ICMP", dst_port=None, src_port=None)
    agg.add(syn(0, **ping))
    agg.add(syn(1, **ping))
    agg.add(syn(2, count=7, src_port=None))  # already an aggregate: no dedup
    agg.add(syn(3, count=7, src_port=None))
    icmp, tcp = sorted(agg.drain(), key=lambda r: r.protocol)
    assert icmp.count == 1
    assert tcp.count == 14


def test_ip_records_pass_through() -> None:
    agg = Aggregator()
    ip = IpTimelineRecord("10.0.0.1", T0, None, "shop", "web-1")
    agg.add(syn(0))
    agg.add(ip)
    out = agg.drain()
    assert out[0] == ip and isinstance(out[1], FlowRecord)
    assert agg.stats.ip_records == 1 and agg.stats.seen == 1


def test_drain_is_deterministic_whatever_the_input_order() -> None:
    rng = random.Random(3)
    records = [
        syn(rng.uniform(0, 300), sport=rng.randrange(30000, 60000),
            dst=f"10.0.0.{rng.randrange(2, 6)}", dport=rng.choice((80, 443)),
            src=rng.choice((WEB, EndpointHints(), EndpointHints(namespace="x"))),
            verdict=rng.choice((None, "FORWARDED")))
        for _ in range(400)
    ]
    reference = None
    for _ in range(5):
        rng.shuffle(records)
        agg = Aggregator()
        agg.add_all(records)
        out = agg.drain()
        assert sum(r.count for r in out) + agg.stats.duplicates == 400
        if reference is None:
            reference = out
        assert out == reference
    assert reference == sorted(reference, key=lambda r: r.first_seen)


def test_max_keys_overflow_is_counted_and_existing_keys_still_aggregate() -> None:
    agg = Aggregator(max_keys=2)
    agg.add(syn(0, dport=1))
    agg.add(syn(0, dport=2))
    agg.add(syn(0, dport=3))  # a third key: overflow
    agg.add(syn(1, sport=40001, dport=1))  # existing key: still counted
    out = agg.drain()
    assert [(r.dst_port, r.count) for r in out] == [(1, 2), (2, 1)]
    assert agg.stats.overflow == 1


def test_flush_before_hands_out_closed_windows_only() -> None:
    agg = Aggregator(window_ns=60 * SECOND)
    agg.add(syn(10))
    agg.add(syn(70, sport=40001))
    agg.add(IpTimelineRecord("10.0.0.1", T0, None, "shop", "web-1"))
    first = agg.flush_before(T0 + 60 * SECOND)
    assert [type(r).__name__ for r in first] == ["IpTimelineRecord", "FlowRecord"]
    assert first[1].first_seen == T0 + 10 * SECOND
    assert agg.flush_before(T0 + 100 * SECOND) == []
    (rest,) = agg.drain()
    assert rest.first_seen == T0 + 70 * SECOND
    assert agg.stats.emitted == 2 and agg.stats.keys == 0


def test_flush_before_prunes_the_recent_connections() -> None:
    agg = Aggregator(window_ns=60 * SECOND, dedup_ns=10 * SECOND)
    agg.add(syn(10))
    agg.flush_before(T0 + 120 * SECOND)
    assert len(agg._recent) == 0  # noqa: SLF001 - the memory bound is the point


def test_recent_connections_table_is_bounded() -> None:
    agg = Aggregator(dedup_capacity=1000)
    for i in range(50_000):
        agg.add(syn(i / 1000, sport=10000 + i % 50000, dst=f"10.1.{i // 250}.{i % 250}"))
    assert len(agg._recent) <= 1000  # noqa: SLF001
    assert agg.stats.seen == 50_000


def test_recent_table() -> None:
    table = RecentTable(4)
    for k in "abcd":
        table.put(k, k.upper())
    assert table.get("a") == "A"  # moved to the young generation
    table.put("e", "E")
    table.put("f", "F")
    assert len(table) <= 4
    assert table.get("a") == "A" and table.get("f") == "F"
    table.prune(lambda v: v != "A")
    assert table.get("a") is None


def test_recent_table_with_a_horizon_forgets_by_time() -> None:
    table = RecentTable(1000, horizon_ns=10)
    table.put("a", "A", at=0)
    table.put("b", "B", at=5)
    table.put("c", "C", at=11)  # the young generation spans > 10: it turns old
    assert table.get("a") == "A" and table.get("b") == "B"  # one horizon back: kept
    table.put("d", "D", at=23)  # again: what was put before t=11 and not used since goes
    assert table.get("c") == "C" and table.get("d") == "D"
    assert len(table) == 4  # a and b moved to the young generation when they were used
    table.put("e", "E", at=40)
    table.put("f", "F", at=60)
    assert table.get("c") is None and table.get("e") == "E"


def test_recent_table_with_a_horizon_answers_like_an_unbounded_map() -> None:
    # Connections seen again within a window are repeats: a table that forgets by time
    # (with a horizon of twice the window) decides exactly like one that never forgets,
    # while holding a fraction of the keys.
    rng = random.Random(7)
    window, horizon = 100, 200
    bounded = RecentTable(1 << 20, horizon_ns=horizon)
    unbounded: dict[int, int] = {}
    t = 0
    biggest = 0
    for _ in range(50_000):
        t += rng.randrange(3)
        key = rng.randrange(4000)
        at = t - rng.randrange(20)  # a little out of order
        last = unbounded.get(key)
        expected = last is not None and abs(at - last) <= window
        seen = bounded.get(key)
        got = seen is not None and abs(at - seen[0]) <= window
        assert got == expected
        unbounded[key] = max(at, last) if expected else at
        if got:
            seen[0] = max(at, seen[0])
        else:
            bounded.put(key, [at], at)
        biggest = max(biggest, len(bounded))
    assert biggest < len(unbounded) / 2


def test_hints_are_compared_by_value() -> None:
    agg = Aggregator()
    agg.add(syn(0, sport=1, src=dataclasses.replace(WEB)))
    agg.add(syn(0, sport=2, src=dataclasses.replace(WEB)))  # equal, not identical
    (rec,) = agg.drain()
    assert rec.count == 2


def test_dropped_wins_whichever_observation_comes_first() -> None:
    for order in ([("FORWARDED", 0), ("DROPPED", 0.001)], [("DROPPED", 0), ("FORWARDED", 0.001)]):
        agg = Aggregator()
        agg.add(syn(0, sport=1, verdict="FORWARDED"))  # another, allowed connection
        for verdict, t in order:
            agg.add(syn(t, sport=2, verdict=verdict))
        agg.add(syn(1, sport=2, verdict="FORWARDED"))  # a retransmission forwarded again
        (rec,) = agg.drain()
        assert rec.count == 1 and rec.src_port == 1  # what is left is the other connection
        assert agg.stats.dropped == 1 and agg.stats.duplicates == 2


def test_moving_the_template_connection_forgets_its_port() -> None:
    agg = Aggregator()
    agg.add(syn(0, sport=2, verdict="FORWARDED"))  # the template of the aggregate
    agg.add(syn(0.5, sport=1, verdict="FORWARDED"))
    agg.add(syn(0.6, sport=2, verdict="DROPPED"))
    (rec,) = agg.drain()
    assert rec.count == 1 and rec.src_port is None


def test_dropped_connections_kept_when_asked() -> None:
    agg = Aggregator(include_dropped=True)
    agg.add(syn(0, verdict="FORWARDED"))
    agg.add(syn(0.001, verdict="DROPPED", node="b"))
    agg.add(syn(5, sport=2, verdict="ERROR"))
    out = agg.drain()
    assert sorted((r.verdict, r.count) for r in out) == [("DROPPED", 1), ("ERROR", 1)]
    assert agg.stats.dropped == 0


def answer(t: float, name: str = "api.example", address: str = "203.0.113.10", ttl: int = 30,
           **kw: object) -> NameBinding:
    ns = T0 + int(t * SECOND)
    fields = dict(first_seen=ns, last_seen=ns, client_ip="10.0.0.1", name=name,
                  address=address, ttl=ttl, source_format="pcap", input="a")
    fields.update(kw)
    return NameBinding(**fields)  # type: ignore[arg-type]


def test_dns_answers_aggregate_per_window_with_the_latest_ttl() -> None:
    agg = Aggregator()
    for rec in (answer(1, ttl=30), answer(20, ttl=11), answer(5, ttl=26),
                answer(2, address="203.0.113.11"), answer(61, ttl=30), syn(3)):
        agg.add(rec)
    out = agg.drain()
    names = [r for r in out if isinstance(r, NameBinding)]
    assert [(r.address, r.count, r.first_seen - T0, r.last_seen - T0, r.ttl) for r in names] == [
        ("203.0.113.10", 3, 1 * SECOND, 20 * SECOND, 11),  # the answer at 20 s said 11 s
        ("203.0.113.11", 1, 2 * SECOND, 2 * SECOND, 30),
        ("203.0.113.10", 1, 61 * SECOND, 61 * SECOND, 30),  # the next window
    ]
    assert [type(r) for r in out] == [NameBinding, NameBinding, NameBinding, FlowRecord]
    assert agg.stats.name_records == 5 and agg.stats.name_keys == 0
    assert agg.stats.seen == 1  # flows only


def test_dns_answers_are_bounded_and_the_overflow_counted() -> None:
    agg = Aggregator(max_keys=2)
    for i in range(5):
        agg.add(answer(i, address=f"203.0.113.{i}"))
    assert len(agg.drain()) == 2 and agg.stats.name_overflow == 3


def test_flush_before_hands_out_closed_windows_of_answers() -> None:
    agg = Aggregator()
    agg.add(answer(1))
    agg.add(answer(70))
    assert [r.first_seen - T0 for r in agg.flush_before(T0 + 60 * SECOND)] == [SECOND]
    assert [r.first_seen - T0 for r in agg.drain()] == [70 * SECOND]


def test_flows_to_the_world_keep_their_window_for_the_names_at_the_time() -> None:
    """Flows whose ends the source identified aggregate over the identified window,
    except those to an address outside the cluster: which DNS name it stood for depends
    on the time. A Service address Hubble calls world (kube-proxy mode) is not one."""
    agg = Aggregator(identified_window_ns=1 << 62)
    world = EndpointHints(peer_kind="world")
    for t in (0, 120):
        for sport, address, service, hints in ((40000, "203.0.113.10", None, world),
                                               (41000, "10.96.0.20", ServiceRef("a", "b"), world),
                                               (42000, "10.0.0.3", None, WEB)):
            rec = syn(t, sport=sport + t, dst=address, service=service)
            agg.add(dataclasses.replace(rec, dst=hints))
    counts = sorted((r.dst_ip, r.count) for r in agg.drain())
    assert counts == [("10.0.0.3", 2), ("10.96.0.20", 2), ("203.0.113.10", 1),
                      ("203.0.113.10", 1)]


def test_grouped_sort_orders_like_the_flat_sort() -> None:
    """_take_flows sorts aggregates that share few times in groups: the same order as
    the one sort over whole keys, ties (equal keys) in table order included."""
    import random

    from recorder.aggregate import _sorted_flat, _sorted_grouped

    rnd = random.Random(5)
    ranks = [0, 1, 1, 2]  # equal ranks: metas that sort alike
    flows = []
    for _ in range(3000):
        count = rnd.choice([1, 1, 2])
        key = (0, rnd.choice(["TCP", "UDP"]), rnd.choice(["10.0.0.1", "10.0.0.10", "10.0.0.2"]),
               rnd.choice(["10.1.0.1", "10.1.0.2"]), rnd.choice([None, 53, 80]),
               rnd.choice([None, "10.2.0.1"]), rnd.choice([None, 8080]), rnd.randrange(4))
        first = rnd.choice([5, 7])
        flows.append([first, first + rnd.choice([0, 1]), count,
                      rnd.choice([None, 1000, 1001]) if count == 1 else None, key])
    flat = _sorted_flat(flows, ranks)
    assert [id(a) for a in _sorted_grouped(flows, ranks)] == [id(a) for a in flat]
    assert len({(a[0], *a[4][1:7], ranks[a[4][7]], *a[1:4]) for a in flat}) < len(flat)  # ties


def test_drain_orders_records_with_varied_hints_as_sorted_records() -> None:
    """The metas (node, endpoints, service, verdict, ...) are ranked from ranked endpoint
    keys: records that tie on time and addresses come out as sorted_records orders them
    on the whole hints, equal hints from different records included."""
    import random

    from recorder.aggregate import sorted_records
    from recorder.schema import Workload

    rnd = random.Random(11)
    ends = [EndpointHints(namespace=rnd.choice([None, "a", "b"]),
                          pod=rnd.choice([None, "p1", "p2"]),
                          labels=rnd.choice([(), (("app", "x"),), (("app", "y"),)]),
                          workload=rnd.choice([None, Workload("Deployment", "w"),
                                               Workload("StatefulSet", "w")]),
                          peer_kind=rnd.choice([None, "pod", "world"]),
                          names=rnd.choice([(), ("api.example",)]))
            for _ in range(60)]
    agg = Aggregator(window_ns=60 * 10**9)
    records = []
    for k in range(2000):
        t = rnd.choice([1, 2]) * 10**9
        src = rnd.choice(ends)
        if rnd.random() < 0.5:  # equal hints that are not the same object
            src = dataclasses.replace(src)
        rec = FlowRecord(t, t, "TCP", rnd.choice(["10.0.0.1", "10.0.0.2"]), "10.0.1.1",
                         rnd.choice([80, 443]), src_port=30000 + k,
                         node=rnd.choice([None, "n1", "n2"]),
                         src=src, dst=rnd.choice(ends),
                         service=rnd.choice([None, ServiceRef("a", "web")]),
                         verdict=rnd.choice([None, "FORWARDED"]), source_format="hubble",
                         input=rnd.choice(["a.json", "b.json"]))
        records.append(rec)
    agg.add_all(records)
    out = agg.drain()
    assert len(out) > 1000
    assert out == sorted_records(out)
