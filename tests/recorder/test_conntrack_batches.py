"""The batch path of a conntrack import against the general one, byte for byte.

Batch path: the reader asked for ListedRows (``listed_batches``), the aggregator's
``_add_listed``, and ``drain_lines`` writing lines from the aggregates. General path: the
reader's records one by one, ``_add_batch``, ``drain()`` re-sorted with
``sorted_records`` and each record encoded from ``_flow_to_dict`` by orjson (what the
flow log was written with before the batch path). Both must give the same flow log,
the same report, the same aggregation figures and the same tables before the drain,
on varied and hostile inputs; the tiny dedup and tracking sizes make every generation
flip and forgetting happen in small inputs.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import orjson
import pytest

from recorder.aggregate import Aggregator, sorted_records
from recorder.flowlog import _flow_to_dict, record_to_json, write_flow_log
from recorder.listed import ListedRows
from recorder.report import ReadReport
from recorder.schema import FlowLogHeader, FlowRecord
from recorder.sources import ReadOptions, conntrack, read_inputs
from recorder.sources.base import MAX_LINE

ASSETS = Path(__file__).parent / "assets" / "conntrack"
SAMPLES = Path("/work/shared/samples/conntrack")
DUMP_TIME = 1_795_743_601_000_000_000


def _tcp(client: str, vip: str, sport: int, port: int, backend: str, target: int,
         state: str = "ESTABLISHED", extra: str = "[ASSURED] mark=0 use=1") -> str:
    return (f"tcp      6 431999 {state} src={client} dst={vip} sport={sport} dport={port} "
            f"packets=12 bytes=1570 src={backend} dst={client} sport={target} "
            f"dport={sport} packets=10 bytes=9120 {extra}\n")


def _udp(client: str, sport: int) -> str:
    return (f"udp      17 29 src={client} dst=10.96.0.10 sport={sport} dport=53 packets=1 "
            f"bytes=70 src=10.244.200.2 dst={client} sport=5353 dport={sport} packets=1 "
            "bytes=160 mark=0 use=1\n")


def _dump(rnd: random.Random, lines: int, odd: float = 0.0, sequential: bool = False,
          n_clients: int = 87) -> str:
    """A -L dump like the benchmark's (DNAT to backends, DNS over UDP, reused client
    ports so keys repeat; ``sequential``: client ports counting up, as the benchmark's,
    so connections do not), with ``odd`` of its lines something else."""
    clients = [f"10.244.{i}.{j}" for i in range(3) for j in range(1, 30)][:n_clients]
    services = [(f"10.96.0.{i}", 80, [f"10.244.9.{i * 3 + k}" for k in range(3)], 8080)
                for i in range(1, 12)]
    out = []
    for i in range(lines):
        client = rnd.choice(clients)
        sport = 32768 + i if sequential else rnd.randrange(32768, 32768 + 400)
        if rnd.random() < odd:
            out.append(rnd.choice(_ODD)(rnd, client, sport))
        elif rnd.random() < 0.25:
            out.append(_udp(client, sport))
        else:
            vip, port, backends, target = rnd.choice(services)
            if rnd.random() < 0.2:  # not DNAT'd: the reply comes from the address dialled
                out.append(_tcp(client, vip, sport, port, vip, port))
            else:
                out.append(_tcp(client, vip, sport, port, rnd.choice(backends), target))
    return "".join(out)


_ODD = [
    lambda r, c, s: _tcp(c, "10.96.0.1", s, 99999, "10.244.9.1", 80),  # port out of range
    lambda r, c, s: _tcp(c, "10.96.0.300", s, 80, "10.244.9.1", 80),  # not an address
    lambda r, c, s: _tcp(c, "10.96.0.1", s, 80, "10.244.9.1", 80).replace("dport=80", "dport=080"),
    lambda r, c, s: _tcp(c, "10.96.0.2", s, 443, "10.244.9.7", 8443),  # a new port
    lambda r, c, s: _tcp(c, "10.96.0.3", s, 80, "10.244.77.7", 8080),  # a new address
    lambda r, c, s: "ipv4     2 " + _tcp(c, "10.96.0.1", s, 80, "10.244.9.1", 8080),
    lambda r, c, s: _tcp("fd00:0:0:0:0:0:0:1", "fd00::a", s, 80, "fd00:0000::b", 8080),
    lambda r, c, s: "    [NEW] " + _tcp(c, "10.96.0.1", s, 80, "10.244.9.1", 8080),
    lambda r, c, s: " [DESTROY] " + _tcp(c, "10.96.0.1", s, 80, "10.244.9.1", 8080),
    lambda r, c, s: "[1795743601.579947]\t    [NEW] " + _tcp(c, "10.96.0.1", s, 80,
                                                             "10.244.9.1", 8080),
    lambda r, c, s: _tcp(c, "10.96.0.1", s, 80, "10.244.9.1", 8080,
                         extra="[ASSURED] [start=Fri Nov 27 01:41:40 2026] use=1"),
    lambda r, c, s: _tcp(c, "10.96.0.1", s, 80, "10.244.9.1", 8080, extra="[weird] use=1"),
    lambda r, c, s: _tcp(c, "10.96.0.1", s, 80, "10.244.9.1", 8080).replace("\n", "\r\n"),
    lambda r, c, s: _tcp(c, "10.96.0.1", s, 80, "10.244.9.1", 8080).replace("\n", "\r"),
    lambda r, c, s: f"icmp     1 29 src={c} dst=10.96.0.1 type=8 code=0 id={s} "
                    f"src=10.96.0.1 dst={c} type=0 code=0 id={s} mark=0 use=1\n",
    lambda r, c, s: "\n",
    lambda r, c, s: "   \t \n",
    lambda r, c, s: "garbage \x00\x85\xa0 line src= dst=\n",
    lambda r, c, s: "conntrack v1.4.6 (conntrack-tools): 3 flow entries have been shown.\n",
    lambda r, c, s: _tcp(c, "10.96.0.1", s, 80, "10.244.9.1", 8080)[:-40] + "\n",  # cut
    lambda r, c, s: _tcp(c, "10.96.0.1", s, 80, "10.244.9.1", 8080).replace(" src=", "\tsrc=", 1),
    lambda r, c, s: _udp(c, s).replace("udp      17", "tcp      6"),  # protocol changed
    lambda r, c, s: _udp(c, s).replace("udp      17", "udp      6"),  # wrong number
    # the same connection seen after the DNAT: one connection (the recent table's twin)
    lambda r, c, s: (_tcp(c, "10.96.0.4", s, 80, "10.244.9.12", 8080)
                     + _tcp(c, "10.244.9.12", s, 8080, "10.244.9.12", 8080)),
    lambda r, c, s: (_tcp(c, "10.244.9.13", s, 8080, "10.244.9.13", 8080)
                     + _tcp(c, "10.96.0.4", s, 80, "10.244.9.13", 8080)),
]


def _general(path: Path, options: ReadOptions, **agg: int) -> tuple[bytes, dict, tuple]:
    report = ReadReport()
    aggregator = Aggregator(**agg)  # type: ignore[arg-type]
    records = list(read_inputs([str(path)], report, options))
    assert not any(type(r) is ListedRows for r in records)
    aggregator.add_all(records)
    state = _state(aggregator)
    out = aggregator.drain()
    flows = [r for r in out if type(r) is FlowRecord]
    others = [r for r in out if type(r) is not FlowRecord]
    assert flows == sorted_records(flows)  # the order sorted_records gives
    lines = [record_to_json(r) for r in others]
    for r in flows:
        line = record_to_json(r)
        assert line == orjson.dumps(_flow_to_dict(r), option=orjson.OPT_SORT_KEYS)
        lines.append(line)
    header = orjson.dumps({"kind": "header"})
    return b"\n".join([header, *lines, b""]), report.to_dict(), (_figures(aggregator), state)


def _batched(path: Path, options: ReadOptions, **agg: int) -> tuple[bytes, dict, tuple]:
    report = ReadReport()
    aggregator = Aggregator(**agg)  # type: ignore[arg-type]
    aggregator.add_all(read_inputs([str(path)], report, options))
    state = _state(aggregator)
    lines = [line.encode() for line in aggregator.drain_lines().lines]  # once
    header = orjson.dumps({"kind": "header"})
    return b"\n".join([header, *lines, b""]), report.to_dict(), (_figures(aggregator), state)


def _figures(aggregator: Aggregator) -> tuple:
    s = aggregator.stats
    return (s.seen, s.duplicates, s.keys, s.overflow, s.dropped, s.emitted,
            len(aggregator.left_out))


def _state(aggregator: Aggregator) -> tuple:
    """What the aggregator holds before it is drained: aggregates in table order and the
    recent connections, generation by generation, in order."""
    recent = aggregator._recent
    return tuple([(key, tuple(value)) for key, value in table.items()]  # as they are now
                 for table in (aggregator._aggs, recent._young, recent._old))


def _same(path: Path, **agg: int) -> bytes:
    options = ReadOptions(dump_time=DUMP_TIME)
    general = _general(path, options, **agg)
    batched = _batched(path, ReadOptions(dump_time=DUMP_TIME, listed_batches=True), **agg)
    assert batched[1] == general[1]  # the report: counts, skips and their examples
    assert batched[2] == general[2]
    assert batched[0] == general[0]
    return general[0]


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """40 tracked tuples: the reader forgets some in a small input."""
    monkeypatch.setattr(conntrack, "MAX_TRACKED_TUPLES", 40)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("odd", [0.0, 0.01, 0.2])
def test_dumps_like_the_benchmark(tmp_path: Path, small: None, seed: int, odd: float) -> None:
    path = tmp_path / "dump.txt"
    path.write_text(_dump(random.Random(seed), 600, odd), encoding="latin-1")
    out = _same(path, dedup_capacity=64)
    assert out.count(b"\n") > 100  # not an input that yields nothing
    _same(path)  # the default table sizes


def test_large_tables_and_few_keys(tmp_path: Path) -> None:
    path = tmp_path / "dump.txt"
    path.write_text(_dump(random.Random(7), 3000, 0.005), encoding="latin-1")
    _same(path)
    _same(path, max_keys=300)  # the table fills up: overflow


def test_gzip_and_no_final_newline(tmp_path: Path, small: None) -> None:
    text = _dump(random.Random(3), 300, 0.05).rstrip("\n")
    path = tmp_path / "dump.txt.gz"
    path.write_bytes(gzip.compress(text.encode("latin-1"), mtime=0))
    _same(path)
    plain = tmp_path / "dump.txt"
    plain.write_text(text, encoding="latin-1")
    _same(plain)


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_over_long_lines(tmp_path: Path, where: str) -> None:
    lines = _dump(random.Random(5), 400).splitlines(keepends=True)
    long = "tcp      6 " + "x" * MAX_LINE + "\n"
    almost = "tcp      6 " + "y" * (MAX_LINE - 20) + "\n"
    at = {"first": 0, "middle": 200, "last": len(lines)}[where]
    lines[at:at] = [long, lines[0], almost, "z" * (MAX_LINE + 5)]
    path = tmp_path / "dump.txt"
    path.write_text("".join(lines), encoding="latin-1")
    _same(path)


def test_repeats_far_apart_and_forgotten_tuples(tmp_path: Path, small: None) -> None:
    rnd = random.Random(11)
    base = _dump(rnd, 200).splitlines(keepends=True)
    lines = base + base[:50] + _dump(rnd, 100).splitlines(keepends=True) + base[::3]
    path = tmp_path / "dump.txt"
    path.write_text("".join(lines), encoding="latin-1")
    _same(path, dedup_capacity=32)
    _same(path, dedup_capacity=4096)


@pytest.mark.parametrize("asset", sorted(p.name for p in ASSETS.iterdir()))
def test_assets(asset: str, small: None) -> None:
    _same(ASSETS / asset)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="no real samples here")
def test_real_samples() -> None:
    for path in sorted(SAMPLES.iterdir()):
        _same(path)


def test_batches_are_the_records_they_stand_for(tmp_path: Path) -> None:
    path = tmp_path / "dump.txt"
    path.write_text(_dump(random.Random(1), 500, 0.05), encoding="latin-1")
    plain = list(read_inputs([str(path)], ReadReport(), ReadOptions(dump_time=DUMP_TIME)))
    batched = list(read_inputs([str(path)], ReadReport(),
                               ReadOptions(dump_time=DUMP_TIME, listed_batches=True)))
    assert any(type(r) is ListedRows for r in batched)
    expanded = [x for r in batched
                for x in (r.records() if type(r) is ListedRows else (r,))]
    assert expanded == plain


def test_a_failing_input_keeps_what_came_before(tmp_path: Path) -> None:
    """A corrupt gzip member: the records before it are added on both paths."""
    text = _dump(random.Random(2), 2000)
    blob = gzip.compress(text.encode(), mtime=0)
    path = tmp_path / "dump.txt.gz"
    path.write_bytes(blob[: len(blob) * 2 // 3] + b"\x00" * 64)
    _same(path)


def test_write_flow_log_of_lines(tmp_path: Path) -> None:
    path = tmp_path / "dump.txt"
    path.write_text(_dump(random.Random(4), 400, 0.05), encoding="latin-1")
    outs = []
    for batches in (False, True):
        aggregator = Aggregator()
        aggregator.add_all(read_inputs([str(path)], ReadReport(),
                                       ReadOptions(dump_time=DUMP_TIME, listed_batches=batches)))
        log = tmp_path / f"out-{batches}.log"
        write_flow_log(aggregator.drain_lines() if batches else aggregator.drain(), log,
                       FlowLogHeader())
        outs.append(log.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0].count(b"\n") > 100


def test_meta_ranks_order_like_sorted_records() -> None:
    """Flows that differ only in their meta (hints, node, verdict, input) come out in
    sorted_records order."""
    from recorder.schema import EndpointHints, ServiceRef, Workload
    rnd = random.Random(9)
    hints = [EndpointHints(), EndpointHints(namespace="a", pod="p"),
             EndpointHints(namespace="", pod=None), EndpointHints(peer_kind="world"),
             EndpointHints(namespace="b", labels=(("app", "x"),),
                           workload=Workload("Deployment", "x"))]
    records = [FlowRecord(first_seen=rnd.choice([1, 2]) * 10**9, last_seen=3 * 10**9,
                          protocol="TCP", src_ip="10.0.0.1", dst_ip="10.0.0.2", dst_port=80,
                          src_port=rnd.choice([None, 1000, 1001]), node=rnd.choice([None, "n1"]),
                          src=rnd.choice(hints), dst=rnd.choice(hints),
                          service=rnd.choice([None, ServiceRef("ns", "svc")]),
                          verdict=rnd.choice([None, "FORWARDED"]), source_format="hubble",
                          input=rnd.choice(["a", "b", "", 'q"{x}\\']),
                          inferred=rnd.choice([False, True]),
                          time_known=rnd.choice([False, True]),
                          xlated_ip=rnd.choice([None, "10.0.0.9"]),
                          xlated_port=rnd.choice([None, 8080]))
               for _ in range(400)]
    aggregator = Aggregator()
    aggregator.add_all(records)
    out = aggregator.drain()
    assert len(out) > 50
    assert out == sorted_records(out)
    for r in records + out:  # every layout of a line, each shape's own fixed values
        assert record_to_json(r) == orjson.dumps(_flow_to_dict(r), option=orjson.OPT_SORT_KEYS)



@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dedup_capacity", [64, 131_072])
def test_connections_once_keys_many_times(tmp_path: Path, seed: int,
                                          dedup_capacity: int) -> None:
    """Client ports counting up (no connection repeats), few clients (aggregate keys
    repeat within a batch and across): the count and the first client port kept."""
    rnd = random.Random(seed)
    text = _dump(rnd, 700, sequential=True, n_clients=1 + seed)
    if seed % 2:  # some connections again, far apart: the recent table must find them
        text += "".join(text.splitlines(keepends=True)[:: 5 + seed])
        text += _dump(rnd, 300, 0.02, sequential=True)
    path = tmp_path / "dump.txt"
    path.write_text(text, encoding="latin-1")
    out = _same(path, dedup_capacity=dedup_capacity)
    assert out.count(b"\n") > 10


def test_batches_are_added_as_they_come() -> None:
    """A ListedRows is added before the next is read: held back with other records, a
    dump's batches would all be in memory at once."""
    aggregator = Aggregator()
    seen_before: list[int] = []

    def stream():  # type: ignore[no-untyped-def]
        for i in range(5):
            seen_before.append(aggregator.stats.seen)
            yield ListedRows(DUMP_TIME, "conntrack", "x", False,
                             [("TCP", "10.0.0.1", "10.0.0.2", 80, 40000 + i * 10 + k, None, None)
                              for k in range(3)])

    aggregator.add_all(stream())
    assert seen_before == [0, 3, 6, 9, 12]
    assert aggregator.stats.seen == 15


@pytest.mark.parametrize("asset", sorted(p.name for p in (ASSETS.parent / "hostile").iterdir()
                                         if p.name.startswith("conntrack")))
def test_hostile_assets(asset: str) -> None:
    _same(ASSETS.parent / "hostile" / asset)
