"""The Hubble reader, on one small asset per shape and failure mode (assets/hubble/)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import orjson
import pytest

from recorder.errors import InputError
from recorder.report import ReadReport
from recorder.schema import EndpointHints, FlowRecord, NameBinding, ServiceRef, Workload
from recorder.sources import ReadOptions, detect_format, read_inputs
from recorder.sources import hubble
from recorder.timefmt import parse_time

ASSETS = Path(__file__).parent / "assets" / "hubble"


def read(path: Path | str, **options: bool) -> tuple[list[FlowRecord], ReadReport]:
    report = ReadReport()
    records = list(read_inputs([str(path)], report, ReadOptions(**options)))
    return records, report  # type: ignore[return-value]


def test_wrapped_lines_keep_one_record_per_connection() -> None:
    records, report = read(ASSETS / "wrapped.json")
    # wrapped.json, line by line: 1 SYN kept; 2 the same SYN at another observation
    # point; 3 SYN-ACK reply; 4 ACK; 5 DNS query kept; 6 DNS answer (is_reply);
    # 7 DNS answer without is_reply; 8 ICMP echo request kept; 9 echo reply (type 0
    # omitted); 10 SYN from world kept; 11 SYN to the API server kept; 12 L7 record;
    # 13 flow without IP; 14 SYN retransmitted 3 s later; 15 the same 5-tuple 40 s
    # later (a new connection) kept; 16 ICMPv6 echo request kept; 17 SCTP kept.
    assert [(r.protocol, r.src_ip, r.dst_ip, r.dst_port) for r in records] == [
        ("TCP", "10.244.1.5", "10.244.2.9", 8080),
        ("UDP", "10.244.1.5", "10.244.3.3", 53),
        ("ICMP", "10.244.1.1", "10.244.2.9", None),
        ("TCP", "93.184.216.34", "10.244.2.9", 8080),
        ("TCP", "10.244.2.9", "172.18.0.2", 6443),
        ("TCP", "10.244.1.5", "10.244.2.9", 8080),
        ("ICMPv6", "fd00::5", "fd00::9", None),
        ("SCTP", "10.244.1.5", "10.244.2.9", 3868),
    ]
    assert dict(report.ignored) == {
        "repeated-observation": 2,
        "reply": 2,
        "tcp-not-syn": 2,
        "reply-inferred": 1,
        "icmp-not-echo-request": 1,
        "no-ip": 1,
    }
    assert report.total_skipped == 0
    path = str(ASSETS / "wrapped.json")
    assert report.lines[path] == 17 and report.kept[path] == 8
    assert report.formats[path] == "hubble"


def test_record_fields_and_identity_hints() -> None:
    records, _ = read(ASSETS / "wrapped.json")
    syn, dns, icmp, world, apiserver = records[:5]
    assert all(r == FlowRecord(**_fields(r)) for r in records)  # fast-built == dataclass
    assert syn.first_seen == syn.last_seen == parse_time("2024-05-01T12:00:00.1Z")
    assert syn.src_port == 40000 and syn.count == 1
    assert syn.node == "worker-1" and syn.verdict == "FORWARDED"
    assert syn.source_format == "hubble" and syn.input == str(ASSETS / "wrapped.json")
    assert syn.service == ServiceRef("shop", "api")
    assert syn.xlated_ip is None and syn.xlated_port is None
    # Cilium-internal labels dropped, namespace label used for nothing but namespace.
    assert syn.src == EndpointHints(
        namespace="shop",
        pod="web-5c9d7-abcde",
        labels=(("app", "web"),),
        workload=Workload("Deployment", "web"),
        peer_kind="pod",
    )
    assert syn.dst.labels == (("app", "api"), ("tier", "backend"))
    assert dns.dst.names == ("kube-dns.kube-system.svc.cluster.local",)
    assert dns.dst.workload is None and dns.dst.peer_kind == "pod"
    assert icmp.src.peer_kind == "host" and icmp.src.namespace is None
    assert world.src.peer_kind == "world" and world.src.names == ("example.com",)
    # kube-apiserver wins over remote-node when an endpoint has both.
    assert apiserver.dst.peer_kind == "kube-apiserver"


def test_namespace_from_label_when_the_endpoint_has_no_namespace_field() -> None:
    line = {
        "flow": {
            "time": "2024-05-01T12:00:00Z",
            "IP": {"source": "10.0.0.1", "destination": "10.0.0.2"},
            "l4": {"TCP": {"source_port": 1, "destination_port": 2, "flags": {"SYN": True}}},
            "source": {"identity": 5, "labels": ["k8s:app=a", "k8s:io.kubernetes.pod.namespace=ns1"]},
        }
    }
    records = list(
        hubble.read(io.BytesIO(json.dumps(line).encode()), "x", ReadReport(), ReadOptions())
    )
    assert records[0].src.namespace == "ns1" and records[0].src.peer_kind == "pod"
    assert records[0].dst.is_empty()


def test_camel_case_reads_like_snake_case() -> None:
    camel, camel_report = read(ASSETS / "camelcase.json")
    snake, _ = read(ASSETS / "wrapped.json")
    assert camel_report.ignored == {"reply": 1}
    # camelcase.json holds lines 1, 3, 5 and 10 of wrapped.json in camelCase.
    expected = [snake[0], snake[1], snake[3]]
    assert [r.__class__(**{**_fields(r), "input": ""}) for r in camel] == [
        r.__class__(**{**_fields(r), "input": ""}) for r in expected
    ]


def _fields(r: FlowRecord) -> dict[str, object]:
    return {name: getattr(r, name) for name in r.__dataclass_fields__}


def test_legacy_bare_flow_objects() -> None:
    records, report = read(ASSETS / "legacy-bare.json")
    assert [(r.protocol, r.dst_port) for r in records] == [("TCP", 8080), ("UDP", 53)]
    assert report.ignored == {"reply": 1}
    assert report.lines[str(ASSETS / "legacy-bare.json")] == 3  # the blank line is no line


def test_json_array_is_streamed_with_line_numbers() -> None:
    records, report = read(ASSETS / "array.json")
    assert [r.src_port for r in records] == [40000, 40002]
    assert report.ignored == {"non-flow:node_status": 1, "reply": 1}
    assert report.total_skipped == 0


def test_json_array_in_small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Element and string boundaries fall across chunk ends.
    whole, _ = read(ASSETS / "array.json")
    monkeypatch.setattr(hubble, "_CHUNK", 7)
    chunked, _ = read(ASSETS / "array.json")
    assert chunked == whole


def test_truncated_json_array_keeps_the_complete_elements() -> None:
    records, report = read(ASSETS / "array-truncated.json")
    assert len(records) == 2
    assert report.skipped == {"invalid-json": 1}
    (example,) = report.examples
    text = (ASSETS / "array-truncated.json").read_text()
    third_element_line = text[: text.index('"node_status"')].count("\n")  # the "{" line
    assert example.line == third_element_line
    assert "cut off" in example.detail


def test_truncated_line_is_skipped_with_its_line_number() -> None:
    records, report = read(ASSETS / "truncated-line.json")
    assert [r.dst_port for r in records] == [8080, 8080]
    assert report.skipped == {"invalid-json": 1}
    assert str(report.examples[0]).startswith(f"{ASSETS / 'truncated-line.json'}:2: invalid-json")
    assert "cut off" in str(report.examples[0])


def test_strict_makes_a_truncated_line_fatal() -> None:
    report = ReadReport(strict=True)
    with pytest.raises(InputError) as e:
        list(read_inputs([str(ASSETS / "truncated-line.json")], report))
    assert str(e.value).startswith(f"{ASSETS / 'truncated-line.json'}:2: invalid-json")


def test_bad_fields_are_skipped_not_fatal() -> None:
    records, report = read(ASSETS / "bad-fields.json")
    assert len(records) == 1
    assert report.skipped == {"bad-flow": 2, "not-an-object": 1}
    lines = sorted(e.line for e in report.examples)
    assert lines == [1, 2, 3]
    details = " ".join(e.detail for e in report.examples)
    assert "yesterday" in details and "99999" in details


def test_non_flow_lines_are_counted_per_kind() -> None:
    records, report = read(ASSETS / "mixed-non-flow.json")
    assert len(records) == 2
    assert report.ignored == {
        "non-flow:node_status": 2,  # one snake_case, one camelCase
        "non-flow:lost_events": 2,
        "non-flow:agent_event": 1,
        "non-flow:debug_event": 1,
        "non-flow:something_new": 1,
    }


def test_dropped_verdicts_are_passed_on_for_the_aggregator() -> None:
    records, report = read(ASSETS / "dropped.json")
    assert [r.verdict for r in records] == [
        "DROPPED", "ERROR", "AUDIT", "REDIRECTED", "TRANSLATED", "TRACED", "DROPPED"
    ]
    assert not report.ignored


def test_a_drop_is_never_a_byte_level_repeat() -> None:
    forwarded = _line("2024-05-01T12:00:00Z", 5000, proto="TCP")
    dropped = forwarded.replace(b'"FORWARDED"', b'"DROPPED"').replace(b":00Z", b":01Z")
    records, report = _read_bytes(forwarded + dropped + forwarded.replace(b":00Z", b":02Z"))
    assert [r.verdict for r in records] == ["FORWARDED", "DROPPED"]
    assert report.ignored == {"repeated-observation": 1}


def test_gzip_input_reads_like_plain(tmp_path: Path) -> None:
    plain, plain_report = read(ASSETS / "wrapped.json")
    gz = tmp_path / "wrapped.json.gz"
    gz.write_bytes(gzip.compress((ASSETS / "wrapped.json").read_bytes()))
    records, report = read(gz)
    assert [r.__class__(**{**_fields(r), "input": ""}) for r in records] == [
        r.__class__(**{**_fields(r), "input": ""}) for r in plain
    ]
    assert report.ignored == plain_report.ignored


def test_cut_off_gzip_keeps_what_was_readable(tmp_path: Path) -> None:
    data = gzip.compress((ASSETS / "wrapped.json").read_bytes() * 20)
    gz = tmp_path / "cut.json.gz"
    gz.write_bytes(data[: len(data) * 2 // 3])
    records, report = read(gz)
    assert records  # everything before the cut
    # the file, and the line the cut runs through (unless it fell between two lines)
    assert report.skipped["truncated-compressed-file"] == 1
    assert set(report.skipped) <= {"truncated-compressed-file", "invalid-json"}
    assert report.skipped["invalid-json"] <= 1


def test_compact_and_spaced_json_give_the_same_connections(tmp_path: Path) -> None:
    # The byte tests only apply to compact lines; spaced JSON takes the parsed path.
    # Both must keep the same connections (the parsed path leaves repeats to the
    # aggregator, so count those together).
    spaced = tmp_path / "spaced.json"
    with open(ASSETS / "wrapped.json") as src, open(spaced, "w") as out:
        for line in src:
            out.write(json.dumps(json.loads(line)) + "\n")
    fast, fast_report = read(ASSETS / "wrapped.json")
    slow, slow_report = read(spaced)
    repeated = fast_report.ignored.pop("repeated-observation")
    assert len(slow) == len(fast) + repeated
    assert slow_report.ignored == fast_report.ignored
    slow_keys = {(r.protocol, r.src_ip, r.src_port, r.dst_ip, r.dst_port) for r in slow}
    assert slow_keys == {(r.protocol, r.src_ip, r.src_port, r.dst_ip, r.dst_port) for r in fast}


def test_detection() -> None:
    for name in ("wrapped.json", "legacy-bare.json", "array.json", "camelcase.json",
                 "mixed-non-flow.json", "truncated-line.json", "array-truncated.json"):
        assert detect_format(ASSETS / name) == "hubble", name
    assert detect_format(ASSETS / "not-json.txt") is None
    assert not hubble.sniff(b'{"kind":"flow","protocol":"TCP"}\n')
    assert not hubble.sniff(b'[1, 2, 3]')
    # A first line cut off by the sniff window is still recognised by its keys.
    assert hubble.sniff(b'{"flow":{"time":"2024-05-01T12:00:00Z","IP":{"sou')


@pytest.mark.parametrize("name, message", [
    ("empty.json", "the file is empty"),
    ("blank.json", "the file is empty"),
    ("not-json.txt", "not a flow input"),
])
def test_unusable_files_are_input_errors(name: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        read(ASSETS / name)
    assert str(e.value).startswith(str(ASSETS / name) + ": ")
    assert message in str(e.value)


def _line(t: str, sport: int, *, reply: bool = False, summary: str = "", bare: bool = False,
          proto: str = "UDP") -> bytes:
    l4 = {proto: {"source_port": sport, "destination_port": 53}}
    if proto == "TCP":
        l4[proto]["flags"] = {"SYN": True}
    flow = {"time": t, "verdict": "FORWARDED",
            "IP": {"source": "10.0.0.1", "destination": "10.0.0.53", "ipVersion": "IPv4"},
            "l4": l4, "is_reply": reply, "Summary": summary}
    obj = flow if bare else {"flow": flow, "node_name": "n1"}
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _read_bytes(data: bytes) -> tuple[list[FlowRecord], ReadReport]:
    report = ReadReport()
    records = list(hubble.read(io.BytesIO(data), "mem", report, ReadOptions()))
    return records, report


@pytest.mark.parametrize("bare", [False, True])
def test_repeats_within_the_window_are_one_connection(bare: bool) -> None:
    data = b"".join([
        _line("2024-05-01T12:00:00Z", 5000, bare=bare),
        _line("2024-05-01T12:00:30Z", 5000, bare=bare),  # UDP: 60 s window, sliding
        _line("2024-05-01T12:01:20Z", 5000, bare=bare),
        _line("2024-05-01T12:02:30Z", 5000, bare=bare),  # 70 s after the last: new
        _line("2024-05-01T12:05:00Z", 6000, bare=bare, proto="TCP"),
        _line("2024-05-01T12:05:09Z", 6000, bare=bare, proto="TCP"),  # TCP: 10 s window
        _line("2024-05-01T12:05:21Z", 6000, bare=bare, proto="TCP"),  # new
    ])
    records, report = _read_bytes(data)
    assert [(r.protocol, r.first_seen % 3600_000_000_000 // 10**9) for r in records] == [
        ("UDP", 0), ("UDP", 150), ("TCP", 300), ("TCP", 321)
    ]
    assert report.ignored == {"repeated-observation": 3}


def test_reply_text_inside_a_string_is_not_a_reply() -> None:
    # A quote inside a JSON string is escaped, so the byte test cannot match it.
    data = _line("2024-05-01T12:00:00Z", 5000, summary='"is_reply":true "SYN":true')
    records, report = _read_bytes(data)
    assert len(records) == 1 and not report.ignored
    assert b'\\"is_reply\\":true' in data


def test_line_numbers_count_blank_lines() -> None:
    data = b"\n" + _line("2024-05-01T12:00:00Z", 1) + b"\n{broken\n"
    _, report = _read_bytes(data)
    assert [e.line for e in report.examples] == [4]
    assert report.lines["mem"] == 2


def test_dns_proxy_responses_bind_names_for_the_client() -> None:
    """dns-l7.json: Cilium DNS proxy records (a request, responses with addresses, an
    empty AAAA answer, NXDOMAIN, camelCase, a legacy line with only ``reply``, a line
    without event_type (a field mask), a bad address, a bad name, a TTL with the top
    bit set), an ordinary reply and a SYN to the answered address."""
    records, report = read(ASSETS / "dns-l7.json")
    names = [(r.client_ip, r.name, r.address, r.ttl, r.client.namespace, r.client.pod)
             for r in records if isinstance(r, NameBinding)]
    ledger = ("10.244.1.5",)
    pod = ("payments", "ledger-6d5f-abcde")
    assert names == [
        (*ledger, "api.payment-gw.example", "203.0.113.10", 30, *pod),
        (*ledger, "api.payment-gw.example", "203.0.113.11", 30, *pod),
        (*ledger, "v6.payment-gw.example", "2001:db8::10", 60, *pod),
        (*ledger, "legacy.example", "203.0.113.20", 10, *pod),
        (*ledger, "masked.example", "203.0.113.21", 10, *pod),
        (*ledger, "top-bit.example", "203.0.113.23", 0, *pod),
    ]
    binding = next(r for r in records if isinstance(r, NameBinding))
    assert binding.node == "node-a" and binding.source_format == "hubble"
    flows = [r for r in records if isinstance(r, FlowRecord)]
    assert [(f.protocol, f.dst_ip, f.dst_port, f.dst.names) for f in flows] == [
        ("UDP", "10.244.2.3", 53, ()), ("TCP", "203.0.113.10", 443, ("api.payment-gw.example",))]
    assert report.ignored == {"dns-no-address": 1, "dns-nxdomain": 1, "dns-bad-name": 1,
                              "reply": 1}
    assert report.skipped == {"bad-flow": 1}
    assert "'not-an-ip'" in str(report.examples[0]) and ":8:" in str(report.examples[0])
    assert report.noted == {"dns-answers": 5, "dns-name-trailing-dot": 5,
                            "dns-name-lower-cased": 1}


def test_dns_responses_read_the_same_line_by_line_and_streamed() -> None:
    """The byte tests send every DNS response to the parsed path and nothing else."""
    streamed, _ = read(ASSETS / "dns-l7.json")
    reader = hubble._Reader(str(ASSETS / "dns-l7.json"), ReadReport(), ReadOptions())
    one_by_one: list = []
    for raw in (ASSETS / "dns-l7.json").read_bytes().splitlines():
        rec = reader.from_object(orjson.loads(raw), 1)
        if isinstance(rec, list):
            one_by_one += rec
        elif rec is not None:
            one_by_one.append(rec)
    assert streamed == one_by_one
