"""The Hubble fast path (recorder/sources/hubblefast.py) must give exactly the records
of the parsed path, or step aside: on every Hubble file we have, line by line, and on
mutated and hand-broken lines."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from recorder.report import ReadReport
from recorder.sources import ReadOptions, hubble, hubblefast, read_inputs

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT.parent / "shared" / "samples" / "hubble"
FILES = (
    sorted((ROOT / "tests" / "recorder" / "assets" / "hubble").iterdir())
    + sorted((ROOT / "fixtures" / "demo" / "flows").iterdir())
    + sorted((ROOT / "fixtures" / "scenarios").glob("*/flows.jsonl"))
    + (sorted(SAMPLES.iterdir()) if SAMPLES.is_dir() else [])
)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 lines of the benchmark's synthetic capture (20 namespaces, 200 workloads)."""
    out = tmp_path_factory.mktemp("synthetic")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_synthetic.py"), str(out),
                    "--lines", "20000"], check=True, capture_output=True)
    return out / "flows.jsonl"


def _read(path: Path) -> tuple[list, dict]:
    report = ReadReport()
    records = list(read_inputs([str(path)], report, ReadOptions(), fmt="hubble"))
    return records, report.to_dict()


def _without_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hubblefast.FastLines, "record", lambda self, raw: None)


def _reader() -> hubble._Reader:
    return hubble._Reader("input.json", ReadReport(), ReadOptions())


def _parsed(reader: hubble._Reader, line: bytes):
    """What the parsed path makes of one line: a record, or None."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return reader.from_object(obj, 1)


def _lines(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().splitlines(keepends=True) if ln.strip()]


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_file_reads_the_same_with_and_without_the_fast_path(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _read(path)
    _without_fast_path(monkeypatch)
    assert fast == _read(path)


def test_the_synthetic_capture_reads_the_same(synthetic: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _read(synthetic)
    assert fast[1]["kept"] > 1000
    _without_fast_path(monkeypatch)
    assert fast == _read(synthetic)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_line_the_fast_path_takes_gives_the_parsed_record(path: Path) -> None:
    reader = _reader()
    for line in _lines(path):
        rec = reader.fast.record(line)
        if rec is not None:
            assert rec == _parsed(reader, line), line


def test_the_fast_path_takes_hubbles_usual_lines(synthetic: Path) -> None:
    # Not a dead branch: on Hubble's compact output it handles nearly every new
    # connection, and each of them as the parsed path would.
    reader = _reader()
    taken = kept = 0
    for line in _lines(synthetic):
        parsed = _parsed(reader, line)
        if parsed is None:
            continue
        kept += 1
        rec = reader.fast.record(line)
        if rec is not None:
            taken += 1
            assert rec == parsed
    assert kept > 1000 and taken >= 0.9 * kept, (taken, kept)


def _kept_lines(path: Path, limit: int) -> list[bytes]:
    reader = _reader()
    out = [ln for ln in _lines(path) if reader.fast.record(ln) is not None]
    return out[:limit]


_SNIPPETS = [b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"0", b"9", b" ", b"\x01",
             b"\xff", "\u00e9".encode(), b'"x":1,', b"null", b"true", b"-"]


def _mutate(line: bytes, rng: random.Random) -> bytes:
    body = line[:-1]
    at = rng.randrange(len(body))
    op = rng.randrange(3)
    if op == 0:
        body = body[:at] + body[at + 1:]
    elif op == 1:
        body = body[:at] + rng.choice(_SNIPPETS) + body[at:]
    else:
        body = body[:at] + rng.choice(_SNIPPETS) + body[at + 1:]
    return body + b"\n"


def test_mutated_lines_give_the_parsed_answer_or_step_aside(synthetic: Path) -> None:
    rng = random.Random(20261127)
    lines = _kept_lines(synthetic, 300) + _kept_lines(FILES[0].parent / "wrapped.json", 50)
    reader = _reader()
    taken = 0
    for i in range(20_000):
        mutated = _mutate(rng.choice(lines), rng)
        rec = reader.fast.record(mutated)
        parsed = _parsed(reader, mutated)
        if rec is not None:
            taken += 1
            assert rec == parsed, mutated
    # the mutations that keep the line valid and hit a varying field (a digit of the
    # time or a port, a label) still take the fast path
    assert taken > 1000


_LINE = (b'{"flow":{"time":"2026-11-20T09:00:00.5Z","uuid":"ab-12","verdict":"FORWARDED",'
         b'"IP":{"source":"10.244.1.5","destination":"10.244.2.7","ipVersion":"IPv4"},'
         b'"l4":{"TCP":{"source_port":40000,"destination_port":8080,"flags":{"SYN":true}}},'
         b'"source":{"namespace":"a","labels":["k8s:app=x"],"pod_name":"x-1"},'
         b'"destination":{"namespace":"b","labels":["k8s:app=y"],"pod_name":"y-1"},'
         b'"Type":"L3_L4","node_name":"n1","is_reply":false,"Summary":"TCP Flags: SYN"},'
         b'"node_name":"n1","time":"2026-11-20T09:00:00.5Z"}\n')


def test_the_hand_written_line_takes_the_fast_path() -> None:
    reader = _reader()
    rec = reader.fast.record(_LINE)
    assert rec is not None and rec == _parsed(reader, _LINE)
    assert (rec.src.pod, rec.dst.pod, rec.dst_port, rec.node) == ("x-1", "y-1", 8080, "n1")


@pytest.mark.parametrize("old, new", [
    # REST sets a key HEAD or an endpoint set: the last one wins in JSON
    (b'"Type":"L3_L4"', b'"Type":"L3_L4","source":{"pod_name":"z-9","namespace":"c"}'),
    (b'"Type":"L3_L4"', b'"Type":"L3_L4","time":"2026-11-20T10:00:00Z"'),
    (b'"Type":"L3_L4"', b'"Type":"L3_L4","verdict":"DROPPED"'),
    (b'"Type":"L3_L4"', b'"Type":"L3_L4","IP":{"source":"1.1.1.1","destination":"2.2.2.2"}'),
    # the wrapper sets "flow" again
    (b'"node_name":"n1","time"', b'"flow":{"x":0},"node_name":"n1","time"'),
    # the parsed path's business: replies, unknown direction, socket traces
    (b'"is_reply":false', b'"is_reply":true'),
    (b'"is_reply":false', b'"is_reply":"false"'),
    (b'"is_reply":false', b'"is_reply":false,"reply":true'),
    (b'"Type":"L3_L4"', b'"Type":"SOCK"'),
    # not exact JSON, or not a port
    (b'"source_port":40000', b'"source_port":040000'),
    (b'"destination_port":8080', b'"destination_port":65536'),
    (b'"source":"10.244.1.5"', b'"source":"10.244.1.5\x01"'),
    (b'"time":"2026-11-20T09:00:00.5Z"}', b'"time":"2026-11-20T09:00:00.5Z\xff"}'),
    (b'"labels":["k8s:app=x"]', b'"labels":["k8s:app=\xff"]'),
    (b'"pod_name":"y-1"}', b'"pod_name":"y-1"'),  # the destination left open
    (b'"time":"2026-11-20T09:00:00.5Z","uuid"', b'"time":"2026-13-45T09:00:00.5Z","uuid"'),
    # a destination_service without a name is a bad flow for the parsed path
    (b'"Type":"L3_L4"', b'"Type":"L3_L4","destination_service":{"namespace":"b"}'),
])
def test_lines_it_must_leave_to_the_parsed_path(old: bytes, new: bytes) -> None:
    assert _LINE.count(old) >= 1
    line = _LINE.replace(old, new, 1)
    assert hubblefast.FastLines(*_maker_args()).record(line) is None


def _maker_args():
    reader = _reader()
    return reader.hints.get, reader.strings, reader.new_record


def test_without_is_reply_only_a_udp_answer_from_port_53_is_left_to_the_parsed_path() -> None:
    # Hubble before 1.10 has no is_reply: the direction is unknown, and the parsed path
    # takes a UDP packet from port 53 to another port for a DNS answer.
    tcp = _LINE.replace(b'"is_reply":false,', b"")
    udp = tcp.replace(b'"TCP":{"source_port":40000,"destination_port":8080,'
                      b'"flags":{"SYN":true}}', b'"UDP":{"source_port":53,"destination_port":40000}')
    query = udp.replace(b'"source_port":53,"destination_port":40000',
                        b'"source_port":40000,"destination_port":53')
    assert len({tcp, udp, query, _LINE}) == 4
    reader = _reader()
    for line in (tcp, query):
        rec = reader.fast.record(line)
        assert rec is not None and rec == _parsed(reader, line)
    assert reader.fast.record(udp) is None and _parsed(reader, udp) is None
    assert reader.ignored["reply-inferred"] == 1


def test_encrypted_and_snat_fields_of_newer_cilium_take_the_fast_path() -> None:
    # flow.proto declares source_xlated between source and destination
    line = _LINE.replace(b'"destination":"10.244.2.7","ipVersion":"IPv4"}',
                         b'"source_xlated":"192.168.1.9","destination":"10.244.2.7",'
                         b'"ipVersion":"IPv4","encrypted":true}')
    assert line != _LINE
    reader = _reader()
    rec = reader.fast.record(line)
    assert rec is not None and rec == _parsed(reader, line) and rec.src_ip == "10.244.1.5"


def test_a_service_and_names_are_read_from_the_rest() -> None:
    line = _LINE.replace(
        b'"Type":"L3_L4"',
        b'"Type":"L3_L4","destination_names":["y.b.svc"],'
        b'"destination_service":{"name":"y","namespace":"b"}')
    reader = _reader()
    rec = reader.fast.record(line)
    assert rec is not None and rec == _parsed(reader, line)
    assert rec.service.name == "y" and rec.dst.names == ("y.b.svc",)
