"""Resolution asks the IP timeline once, however many flows need it: also for the
backends of a selector-less Service that are no pod of the snapshot (one pandas join per
flow and backend would make a large capture take minutes)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from generator.resolve import timeline
from generator.inventory.index import InventoryIndex
from generator.inventory.load import load_snapshot
from generator.pipeline import read_records
from generator.resolve.identity import resolve
from recorder.report import ReadReport
from recorder.sources import ReadOptions

MINUTE = 60 * 1_000_000_000
SCENARIO = Path(__file__).resolve().parents[3] / "fixtures" / "scenarios" / "selectorless"


def test_one_timeline_join_for_every_flow_and_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    index = InventoryIndex(load_snapshot([str(SCENARIO / "cluster.json")]).inventory)
    records, _, _, _ = read_records([str(SCENARIO / "flows.jsonl")], ReadReport(), ReadOptions(),
                                 None)
    [flow] = [r for r in records if r.service is not None and r.service.name == "vault-proxy"]
    # the same connection in ten one-minute windows: ten aggregates to expand
    records = [dataclasses.replace(flow, first_seen=flow.first_seen + k * MINUTE,
                                   last_seen=flow.first_seen + k * MINUTE)
               for k in range(10)]
    calls: list[int] = []
    lookup = timeline.IpTimeline.lookup

    def counted(self, ips, times):
        calls.append(len(ips))
        return lookup(self, ips, times)

    monkeypatch.setattr(timeline.IpTimeline, "lookup", counted)
    result = resolve(records, index)
    assert len(result.connections) == 10 and not result.unresolved
    assert {(c.service, c.dst_ip, c.port, c.dst.workload_name) for c in result.connections} == {
        (("legacy", "vault-proxy"), "10.244.2.11", 8200, "vault")}
    assert calls == [10]  # one join, one row per flow for the one non-pod backend
