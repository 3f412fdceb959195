"""Node-side reduction (recorder/reduce.py): fewer records, the same evidence, and never
a merged record across an address's change of owner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.flowlog import write_flow_log
from recorder.reduce import HOUR, reduce_records
from recorder.report import ReadReport
from recorder.schema import FlowRecord, IpTimelineRecord
from recorder.sources import ReadOptions, read_inputs

ROOT = Path(__file__).resolve().parents[2]
MINUTE = 60 * 1_000_000_000
T0 = 1_795_000_000 * 1_000_000_000


def _window(i: int, src: str = "10.244.1.5", count: int = 3) -> FlowRecord:
    return FlowRecord(first_seen=T0 + i * MINUTE + 5, last_seen=T0 + i * MINUTE + 50,
                      protocol="TCP", src_ip=src, dst_ip="10.244.2.7", dst_port=8080,
                      count=count, node="node-a", source_format="capture", input="n")


def test_windows_of_a_key_merge_into_buckets_with_the_same_evidence() -> None:
    records = [_window(i) for i in range(180)]  # three hours of one-minute windows
    out, stats = reduce_records(records, bucket_ns=HOUR)
    assert stats.flows_in == 180 and stats.flows_out == len(out) == 3
    assert sum(r.count for r in out) == 3 * 180
    assert min(r.first_seen for r in out) == records[0].first_seen
    assert max(r.last_seen for r in out) == records[-1].last_seen
    assert all(r.last_seen - r.first_seen < HOUR for r in out)


def test_no_merged_record_spans_an_owner_change() -> None:
    handover = T0 + 30 * MINUTE + 20  # inside window 30
    ips = [IpTimelineRecord("10.244.1.5", T0 - HOUR, handover, "a", "old"),
           IpTimelineRecord("10.244.1.5", handover + 3, None, "a", "new")]
    records = [_window(i) for i in range(60)]
    # in the order the recorder writes them: the old holder's record when it got the
    # address, the windows, the hand-over's records with the window that holds it
    opened = IpTimelineRecord("10.244.1.5", T0 - HOUR, None, "a", "old")
    out, stats = reduce_records([opened, *records[:30], *ips, *records[30:]])
    flows = [r for r in out if isinstance(r, FlowRecord)]
    assert [r for r in out if isinstance(r, IpTimelineRecord)] == sorted(
        [opened, *ips], key=lambda r: (r.valid_from, -1 if r.valid_to is None else r.valid_to))
    assert stats.split_at_owner_change >= 1
    for r in flows:  # the window that holds the hand-over stays as it was
        assert not (r.first_seen < handover <= r.last_seen) or r in records
    # what each holder was seen doing is unchanged: count per owner at first/last seen
    def owners(recs: list[FlowRecord]) -> dict:
        seen: dict = {}
        for r in recs:
            key = (r.first_seen < handover, r.last_seen < handover)
            seen[key] = seen.get(key, 0) + r.count
        return seen
    assert owners(flows) == owners(records)
    assert len(flows) == 3  # before, the window with the hand-over, after


def test_other_keys_and_addresses_are_kept_apart() -> None:
    records = [_window(i, src) for i in range(10) for src in ("10.244.1.5", "10.244.1.6")]
    out, _ = reduce_records(records)
    assert sorted((r.src_ip, r.count) for r in out) == [("10.244.1.5", 30),
                                                         ("10.244.1.6", 30)]


def _generate(flows: Path, snapshot: Path, out: Path) -> dict[str, bytes]:
    proc = subprocess.run([sys.executable, "-m", "generator.cli.main", "generate", str(flows),
                           "--snapshot", str(snapshot), "--out", str(out), "--jobs", "1"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    files = {p.name: p.read_bytes() for p in sorted(out.glob("*.yaml"))}
    report = json.loads((out / "report.json").read_text())
    files["edges"] = json.dumps(report["edges"], sort_keys=True).encode()
    return files


@pytest.mark.parametrize("attribute", [False, True], ids=["addresses", "workloads"])
def test_the_ip_reuse_scenario_gives_the_same_policies_reduced(tmp_path: Path,
                                                               attribute: bool) -> None:
    # The scenario's flows without identities, attributed by address and time: as the
    # recorder writes them (one-minute windows) with an IP timeline of every pod, and
    # reduced - by address, or with the ends the timeline names merged by workload.
    # The policies, with their evidence comments, and the edges must not change.
    from generator.inventory.index import InventoryIndex
    from generator.inventory.load import load_snapshot
    from recorder.schema import Workload

    scenario = ROOT / "fixtures" / "scenarios" / "ip-reuse"
    snapshot = scenario / "cluster.json"
    imported = tmp_path / "windows.jsonl"
    subprocess.run([sys.executable, "-m", "generator.cli.main", "import",
                    str(scenario / "flows-masked.jsonl"), "-o", str(imported)], cwd=ROOT,
                   check=True, capture_output=True)
    flows = list(read_inputs([str(imported)], ReadReport(), ReadOptions()))
    inventory = load_snapshot([str(snapshot)]).inventory
    index = InventoryIndex(inventory)
    timeline = []
    for p in inventory.pods:
        if p.host_network or p.created is None:
            continue
        owner = index.workload_of(p)
        for ip in p.ips:
            timeline.append(IpTimelineRecord(
                ip, p.created, p.deleted, p.namespace, p.name, labels=p.labels,
                owner=Workload(owner.kind, owner.name) if owner else None, node=p.node))
    full = tmp_path / "full.jsonl"
    write_flow_log([*timeline, *flows], full)
    reduced_records, stats = reduce_records([*timeline, *flows], bucket_ns=24 * HOUR,
                                            attribute=attribute)
    reduced = tmp_path / "reduced.jsonl"
    write_flow_log(reduced_records, reduced)
    assert stats.flows_out < stats.flows_in
    if attribute:  # the ends the timeline names are merged by workload, not pod
        named = [r for r in reduced_records if isinstance(r, FlowRecord)
                 and r.src.workload is not None and r.dst.workload is not None]
        assert named and all(r.src.pod is None for r in named)
    else:
        assert stats.split_at_owner_change >= 1  # the scenario hands addresses over
    before = _generate(full, snapshot, tmp_path / "full")
    after = _generate(reduced, snapshot, tmp_path / "reduced")
    assert before
    assert {k: v.replace(b"full.jsonl", b"X") for k, v in before.items()} == {
        k: v.replace(b"reduced.jsonl", b"X") for k, v in after.items()}
