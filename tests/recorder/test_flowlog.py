"""The flow log: writing, reading back, compatibility, bad lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from recorder.errors import InputError, UsageError
from recorder.flowlog import record_from_dict, record_to_json, write_flow_log
from recorder.report import ReadReport
from recorder.schema import (
    SCHEMA_REVISION,
    SCHEMA_VERSION,
    EndpointHints,
    FlowLogHeader,
    FlowRecord,
    IpTimelineRecord,
    LogRecord,
    NameBinding,
    ServiceRef,
    Workload,
    dns_name,
)
from recorder.sources import ReadOptions, detect_format, read_inputs
from recorder.sources import flowlog as flowlog_source
from recorder.timefmt import parse_time

REPO = Path(__file__).resolve().parents[2]
T0 = parse_time("2024-05-01T12:00:00.123456789Z")

FULL_FLOW = FlowRecord(
    first_seen=T0,
    last_seen=T0 + 41_000_000_000,
    protocol="TCP",
    src_ip="10.244.1.5",
    dst_ip="10.96.12.7",
    dst_port=80,
    src_port=40000,
    xlated_ip="10.244.2.9",
    xlated_port=8080,
    count=3,
    node="worker-1",
    src=EndpointHints(namespace="shop", pod="web-1", labels=(("app", "web"),), peer_kind="pod"),
    dst=EndpointHints(
        namespace="shop",
        pod="api-1",
        labels=(("app", "api"), ("tier", "be")),
        workload=Workload("Deployment", "api"),
        peer_kind="pod",
        names=("api.shop.svc.cluster.local",),
    ),
    service=ServiceRef("shop", "api"),
    verdict="FORWARDED",
    source_format="hubble",
    input="hubble.json",
    inferred=True,
    time_known=False,
)
BARE_FLOW = FlowRecord(first_seen=T0, last_seen=T0, protocol="ICMP", src_ip="fd00::1",
                       dst_ip="fd00::2", dst_port=None)
FULL_IP = IpTimelineRecord(
    ip="10.244.2.9",
    valid_from=T0,
    valid_to=T0 + 10,
    namespace="shop",
    pod="api-1",
    labels=(("app", "api"),),
    owner=Workload("Deployment", "api"),
    node="worker-2",
    host_network=True,
)
BARE_IP = IpTimelineRecord(ip="10.0.0.1", valid_from=T0, valid_to=None, namespace="n", pod="p")
FULL_NAME = NameBinding(
    first_seen=T0, last_seen=T0 + 5_000_000_000, client_ip="10.244.1.5",
    name="api.payment-gw.example", address="203.0.113.10", ttl=30, count=2, node="worker-1",
    client=EndpointHints(namespace="shop", pod="web-1"), source_format="hubble",
    input="hubble.json")
BARE_NAME = NameBinding(T0, T0, "fd00::1", "a.example", "2001:db8::1", 0)
RECORDS: list[LogRecord] = [FULL_FLOW, BARE_FLOW, FULL_IP, BARE_IP, FULL_NAME, BARE_NAME]


def read_log(path: Path, **options: bool) -> tuple[list[LogRecord], ReadReport]:
    report = ReadReport()
    return list(read_inputs([str(path)], report, ReadOptions(**options))), report


@pytest.mark.parametrize("name", ["flows.jsonl", "flows.jsonl.gz"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert write_flow_log(RECORDS, path, FlowLogHeader(node="worker-1")) == 6
    assert detect_format(path) == "flowlog"
    records, report = read_log(path)
    assert records == RECORDS
    assert report.lines[str(path)] == 7 and report.kept[str(path)] == 6  # header + 6
    assert not report.skipped and not report.ignored
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_lines_are_sorted_and_omit_empty_fields() -> None:
    line = record_to_json(BARE_FLOW)
    assert line == (
        b'{"count":1,"dst_ip":"fd00::2","first_seen":"2024-05-01T12:00:00.123456789Z",'
        b'"kind":"flow","last_seen":"2024-05-01T12:00:00.123456789Z","protocol":"ICMP",'
        b'"src_ip":"fd00::1"}'
    )
    full = json.loads(record_to_json(FULL_FLOW))
    assert list(full) == sorted(full)
    assert full["inferred"] is True and full["time_known"] is False
    assert full["dst"]["labels"] == {"app": "api", "tier": "be"}
    assert json.loads(record_to_json(BARE_IP)) == {
        "ip": "10.0.0.1", "kind": "ip", "namespace": "n", "pod": "p",
        "valid_from": "2024-05-01T12:00:00.123456789Z",
    }


def test_a_line_is_the_sorted_json_of_the_record_s_fields() -> None:
    # record_to_json joins cached pieces instead of dumping a dict: held to the dict's
    # sorted dump on random records, text that needs escaping and non-ASCII included.
    import random

    import orjson

    from recorder.flowlog import _flow_to_dict
    from recorder.schema import NO_HINTS

    rnd = random.Random(7)
    texts = ["a", "10.0.0.1", "fe80::1", "", 'q"uote\\back\nline\t\x01', "ü\u2028ß"]

    def text() -> str:
        return rnd.choice(texts)

    def hints() -> EndpointHints:
        return rnd.choice([NO_HINTS, EndpointHints(), EndpointHints(
            namespace=text(), pod=rnd.choice([None, text()]),
            labels=tuple(sorted({(text(), text()), (text(), text())})),
            workload=rnd.choice([None, Workload(text(), text())]),
            peer_kind=rnd.choice([None, "pod", "world"]), names=(text(),))])

    for _ in range(5000):
        r = FlowRecord(
            first_seen=rnd.randrange(-10**18, 10**19), last_seen=rnd.randrange(0, 10**19),
            protocol=rnd.choice(["TCP", "UDP", "ICMPv6"]), src_ip=text(), dst_ip=text(),
            dst_port=rnd.choice([None, 0, 80, 65535]), src_port=rnd.choice([None, 40000]),
            xlated_ip=rnd.choice([None, text()]), xlated_port=rnd.choice([None, 8080]),
            count=rnd.randrange(1, 10**12), node=rnd.choice([None, text()]), src=hints(),
            dst=hints(), service=rnd.choice([None, ServiceRef(text(), text())]),
            verdict=rnd.choice([None, "DROPPED", text()]), source_format=text(),
            input=text(), inferred=rnd.random() < 0.5, time_known=rnd.random() < 0.5)
        assert record_to_json(r) == orjson.dumps(_flow_to_dict(r),
                                                 option=orjson.OPT_SORT_KEYS)


def test_output_is_byte_identical_across_runs(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    write_flow_log(RECORDS, a)
    os.utime(tmp_path, (1, 1))
    write_flow_log(RECORDS, b)
    assert a.read_bytes() == b.read_bytes()


def test_header_is_first(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    write_flow_log([], path)
    assert json.loads(path.read_text()) == {
        "created_by": "flowpol", "kind": "header", "schema": "flowpol.flowlog",
        "version": SCHEMA_VERSION, "revision": SCHEMA_REVISION,
    }


def test_logs_of_revision_1_still_read(tmp_path: Path) -> None:
    """A log written before name lines existed: header without a revision."""
    path = tmp_path / "old.jsonl"
    path.write_text('{"created_by":"flowpol","kind":"header","schema":"flowpol.flowlog",'
                    '"version":1}\n' + record_to_json(BARE_FLOW).decode() + "\n")
    records, report = read_log(path)
    assert records == [BARE_FLOW] and not report.skipped and not report.ignored


def test_a_reader_without_name_lines_skips_and_counts_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a revision-1 reader does with this revision's logs (the compatibility
    rule): unknown line kinds are counted and skipped, the flows still read."""
    path = tmp_path / "new.jsonl"
    write_flow_log([BARE_FLOW, FULL_NAME], path)
    monkeypatch.setattr(flowlog_source, "RECORD_KINDS", ("flow", "ip"))
    records, report = read_log(path)
    assert records == [BARE_FLOW]
    assert report.ignored == {"unknown-kind:name": 1} and not report.skipped


@pytest.mark.parametrize("raw, canonical", [
    ("api.Example.COM.", "api.example.com"), ("a.example", "a.example"),
    ("_grpc._tcp.svc.example.", "_grpc._tcp.svc.example"), ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("", None), (".", None), ("a..b", None), ("a b.example", None), ("*.example", None),
    ("bücher.example", None), ("-a.example", None), ("a" * 64 + ".example", None),
    (".".join(["a" * 63] * 4) + ".", None), ("line\nbreak.example", None), (42, None),
])
def test_dns_names_are_canonical_or_refused(raw: object, canonical: str | None) -> None:
    assert dns_name(raw) == canonical


def test_write_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    path.write_text("previous content\n")

    def failing() -> Iterator[LogRecord]:
        yield FULL_FLOW
        raise RuntimeError("the reader broke")

    with pytest.raises(RuntimeError):
        write_flow_log(failing(), path)
    assert path.read_text() == "previous content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.jsonl"]  # no temp left


def test_write_into_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="directory exists"):
        write_flow_log(RECORDS, tmp_path / "nope" / "flows.jsonl")


def test_write_to_stdout() -> None:
    code = (
        "from recorder.flowlog import write_flow_log\n"
        "from recorder.schema import IpTimelineRecord\n"
        "write_flow_log([IpTimelineRecord('10.0.0.1', 0, None, 'n', 'p')], '-')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         check=True).stdout
    lines = out.decode().splitlines()
    assert json.loads(lines[0])["kind"] == "header"
    assert json.loads(lines[1])["pod"] == "p"


def test_file_mode_follows_umask(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    old = os.umask(0o022)
    try:
        write_flow_log([], path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_newer_major_version_asks_to_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "new.jsonl"
    path.write_text(
        json.dumps({"kind": "header", "schema": "flowpol.flowlog", "version": SCHEMA_VERSION + 1})
        + "\n" + record_to_json(BARE_FLOW).decode() + "\n"
    )
    with pytest.raises(InputError) as e:
        read_log(path)
    assert str(e.value).startswith(f"{path}:1: ")
    assert "upgrade flowpol" in str(e.value)


def test_foreign_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text('{"kind":"header","schema":"someone.else","version":1}\n')
    with pytest.raises(InputError, match="not a flowpol flow log"):
        read_log(path)


def test_unknown_fields_and_kinds_are_ignored_and_headerless_logs_read(tmp_path: Path) -> None:
    path = tmp_path / "future.jsonl"
    flow = json.loads(record_to_json(BARE_FLOW))
    flow["new_field"] = {"anything": [1, 2]}
    path.write_text(
        json.dumps(flow) + "\n" + json.dumps({"kind": "policy-hint", "x": 1}) + "\n"
    )
    records, report = read_log(path)
    assert records == [BARE_FLOW]
    assert report.ignored == {"unknown-kind:policy-hint": 1}


_GOOD_HEAD = '{"kind":"flow","first_seen":"2024-05-01T12:00:00Z","protocol":"TCP","src_ip":"1.1.1.1"'
BAD_RECORDS = [
    ('{"kind":"flow","protocol":"TCP","src_ip":"10.0.0.1","dst_ip":"10.0.0.2"}', "'first_seen' is missing"),
    ('{"kind":"flow","first_seen":"noon","protocol":"TCP","src_ip":"1.1.1.1","dst_ip":"1.1.1.2"}', "'noon'"),
    ('{"kind":"flow","first_seen":"2024-05-01T12:00:00Z","protocol":"GRE","src_ip":"1.1.1.1","dst_ip":"1.1.1.2"}', "'GRE'"),
    (_GOOD_HEAD + "}", "'dst_ip' is missing"),
    (_GOOD_HEAD + ',"dst_ip":"10.0.0.999"}', "'10.0.0.999'"),
    (_GOOD_HEAD + ',"dst_ip":"1.1.1.2","dst_port":70000}', "70000"),
    (_GOOD_HEAD + ',"dst_ip":"1.1.1.2","dst_port":true}', "port number"),
    (_GOOD_HEAD + ',"dst_ip":"1.1.1.2","count":0}', "'count'"),
    (_GOOD_HEAD + ',"dst_ip":"1.1.1.2","last_seen":"2024-05-01T11:00:00Z"}', "before 'first_seen'"),
    (_GOOD_HEAD + ',"dst_ip":"1.1.1.2","src":{"labels":["a"]}}', "'src.labels'"),
    (_GOOD_HEAD + ',"dst_ip":"1.1.1.2","dst":{"workload":"api"}}', "'dst.workload'"),
    (_GOOD_HEAD + ',"dst_ip":"1.1.1.2","service":{"name":"x"}}', "'service'"),
    (_GOOD_HEAD + ',"dst_ip":"1.1.1.2","inferred":"yes"}', "'inferred'"),
    ('{"kind":"ip","ip":"10.0.0.1","valid_from":"2024-05-01T12:00:00Z","namespace":"n"}', "'pod' is missing"),
    ('{"kind":"ip","ip":"10.0.0.1","valid_from":"2024-05-01T12:00:00Z","valid_to":"2024-05-01T11:00:00Z","namespace":"n","pod":"p"}', "before 'valid_from'"),
    ('{"kind":"name","first_seen":"2024-05-01T12:00:00Z","client_ip":"10.0.0.1","name":"a.example","address":"1.2.3.4"}', "'ttl'"),
    ('{"kind":"name","first_seen":"2024-05-01T12:00:00Z","client_ip":"10.0.0.1","name":"a b","address":"1.2.3.4","ttl":5}', "'name' must be a DNS name"),
    ('{"kind":"name","first_seen":"2024-05-01T12:00:00Z","client_ip":"10.0.0.1","name":"a.example","address":"a.example","ttl":5}', "'address' is not an IP"),
    ('{"kind":"name","first_seen":"2024-05-01T12:00:00Z","name":"a.example","address":"1.2.3.4","ttl":5}', "'client_ip' is missing"),
]


@pytest.mark.parametrize("line, message", BAD_RECORDS)
def test_bad_records_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        record_from_dict(json.loads(line), "f.jsonl", 3)
    assert str(e.value).startswith("f.jsonl:3: ")
    assert message in str(e.value)


def test_bad_lines_are_skipped_with_line_numbers(tmp_path: Path) -> None:
    good = record_to_json(BARE_FLOW).decode()
    bad_lines = [
        '{"kind":"flow","first_seen":"2024-05-01T12:00:00Z"',  # cut off
        *(line for line, _ in BAD_RECORDS),
        '["kind","flow"]',
        '{"no_kind":1}',
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([good, *bad_lines, good]) + "\n")
    records, report = read_log(path)
    assert records == [BARE_FLOW, BARE_FLOW]
    assert report.skipped == {
        "invalid-json": 1, "bad-record": len(BAD_RECORDS) + 1, "not-an-object": 1
    }
    shown = [str(e) for e in report.examples]
    assert shown[0].startswith(f"{path}:2: invalid-json") and "cut off" in shown[0]
    assert shown[1].startswith(f"{path}:3: bad-record") and "first_seen" in shown[1]
    # examples are capped per reason, counts are not
    assert len([e for e in report.examples if e.reason == "bad-record"]) == 5


def test_record_from_dict_names_path_and_line() -> None:
    with pytest.raises(InputError) as e:
        record_from_dict({"kind": "flow", "protocol": "TCP"}, "f.jsonl", 7)
    assert str(e.value).startswith("f.jsonl:7: field 'first_seen' is missing")
    assert "docs/flow-schema.md" in str(e.value)
    rec = record_from_dict(json.loads(record_to_json(FULL_IP)), "f.jsonl", 1)
    assert rec == FULL_IP


def test_dropped_flows_are_read_for_the_aggregator_to_decide(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    dropped = FlowRecord(T0, T0, "TCP", "1.1.1.1", "1.1.1.2", 80, verdict="DROPPED")
    write_flow_log([dropped], path)
    assert read_log(path)[0] == [dropped]


def test_sniff() -> None:
    assert flowlog_source.sniff(b'{"created_by":"flowpol","kind":"header","schema":"flowpol.flowlog","version":1}\n')
    assert flowlog_source.sniff(b'\n\n' + record_to_json(BARE_FLOW) + b"\n")
    assert flowlog_source.sniff(b'{"kind":"flow","first_seen":"2024-05-01T1')  # cut by the window
    assert not flowlog_source.sniff(b'{"flow":{"time":"2024-05-01T12:00:00Z"}}\n')
    assert not flowlog_source.sniff(b"tcp 6 431999 ESTABLISHED src=1.1.1.1\n")


def test_documented_examples_are_valid_lines() -> None:
    doc = (REPO / "docs" / "flow-schema.md").read_text()
    blocks = re.findall(r"```json\n(.*?)\n```", doc, re.S)
    kinds = set()
    for block in blocks:
        obj = json.loads(block)
        kinds.add(obj["kind"])
        if obj["kind"] == "header":
            continue
        rec = record_from_dict(obj, "docs/flow-schema.md", 1)
        assert json.loads(record_to_json(rec)) == obj  # the examples are canonical lines
    assert kinds == {"header", "flow", "ip", "name"}


def test_names_in_other_forms_are_brought_to_the_canonical_one_and_counted(
        tmp_path: Path) -> None:
    path = tmp_path / "names.jsonl"
    line = json.loads(record_to_json(BARE_NAME))
    path.write_text("\n".join(json.dumps({**line, "name": n})
                              for n in ("A.Example.", "a.example.", "a.example")) + "\n")
    records, report = read_log(path)
    assert [r.name for r in records] == ["a.example"] * 3
    assert report.noted == {"dns-name-canonical-form": 2} and not report.skipped
