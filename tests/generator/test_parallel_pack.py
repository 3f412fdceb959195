"""The batches workers send (generator/parallel.py): every record comes back equal and
in order; endpoints and services cross once per input, not once per batch; the table
starts again past its limit."""

from __future__ import annotations

import pickle

import pytest

from generator import parallel
from generator.parallel import _Packer, _Unpacker
from recorder.listed import ListedRows
from recorder.schema import EndpointHints, FlowRecord, NameBinding, ServiceRef, Workload


def _records(n: int, endpoints: int) -> list:
    ends = [EndpointHints(namespace=f"ns-{k % 7}", pod=f"pod-{k}", labels=(("app", f"a{k}"),),
                          workload=Workload(kind="Deployment", name=f"w{k}"), peer_kind="pod")
            for k in range(endpoints)]
    svc = ServiceRef("ns-1", "web")
    out: list = []
    for k in range(n):
        out.append(FlowRecord(k, k + 5, "TCP", f"10.0.0.{k % 250}", "10.0.1.1", 80,
                              src_port=40000 + k, node="n1", src=ends[k % endpoints],
                              dst=ends[(k * 7) % endpoints], service=svc if k % 3 else None,
                              verdict="FORWARDED", source_format="hubble", input="in.json"))
        if k % 50 == 0:
            out.append(NameBinding(k, k, "10.0.0.1", "api.example", "203.0.113.7", 30,
                                   client=ends[k % endpoints]))
        if k % 70 == 0:
            out.append(ListedRows(k, "conntrack", "dump.txt", False,
                                  [("TCP", "10.0.0.1", "10.96.0.1", 443, 5000, None, None)]))
    return out


def _round_trip(records: list, size: int) -> tuple[list, list[int]]:
    packer, unpacker = _Packer(), _Unpacker()
    out: list = []
    sent: list[int] = []  # objects sent with each batch
    for start in range(0, len(records), size):
        data = packer.pack(records[start:start + size])
        sent.append(len(pickle.loads(data)[1]))
        out += unpacker.unpack(data)
    return out, sent


def test_every_record_comes_back_equal_and_in_order() -> None:
    records = _records(3000, endpoints=40)
    out, _ = _round_trip(records, 256)
    assert out == records
    assert [type(r) for r in out] == [type(r) for r in records]


def test_an_endpoint_crosses_once_per_input() -> None:
    records = [r for r in _records(3000, endpoints=40) if type(r) is FlowRecord]
    _, sent = _round_trip(records, 256)
    # 40 endpoints, a service and None, all in the first batch; none after
    assert sent[0] == 42 and not any(sent[1:])


def test_the_table_starts_again_past_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "_TABLE_LIMIT", 30)
    records = _records(2000, endpoints=500)
    out, sent = _round_trip(records, 100)
    assert out == records
    assert sum(sent) > 502  # sent again after each restart
