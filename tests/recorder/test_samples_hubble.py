"""The real Hubble captures in ../shared/samples/hubble/ (third-party, not copied here).

The expected counts were taken from the files with jq, independently of flowpol:

    # replies, TCP flags, ICMP types and verdicts per file
    jq -c '.flow | {r: (.is_reply // .reply // null), l4: (.l4|keys[0]),
                    syn: .l4.TCP.flags.SYN, ack: .l4.TCP.flags.ACK,
                    icmp: .l4.ICMPv4.type, v: .verdict}' FILE | sort | uniq -c
    # distinct connections: SYN-without-ACK (or non-reply UDP) 5-tuples, with the
    # first and last time each was seen (every 5-tuple's repeats lie within 5 ms)
    jq -r 'select(.flow.l4.TCP.flags.SYN == true and (.flow.l4.TCP.flags.ACK|not)
                  and ((.flow.is_reply // .flow.reply // false)|not)) | .flow
           | [.IP.source, .l4.TCP.source_port, .IP.destination,
              .l4.TCP.destination_port, .time] | @tsv' FILE | sort -u -k1,4 | wc -l

That gave, per file:

* basic-sample-10-flows: 10 lines; 5 replies (old `reply` field), 4 TCP without a
  bare SYN (ACK, ACK+PSH, ACK+FIN), 1 SYN without ACK -> 1 connection.
* basic-sample-400-icmpv4-flows: 18 lines; 4 replies, 3 echo replies without
  is_reply (type 0, omitted as a zero value), 11 echo requests -> 11 (the repeats of
  a pair are a minute apart: separate pings).
* basic-sample-400-tcp-flows: 400 lines; 132 replies; 198 not a bare SYN (33 L7
  records without flags, 164 ACK..., 1 SYN+ACK marked is_reply false); 70 SYN
  without ACK on 43 distinct 5-tuples -> 43 connections, 27 repeated observations.
* basic-sample-400-udp-flows: 400 lines; 148 replies; 252 non-reply packets on 111
  distinct 5-tuples -> 111 connections, 141 repeated observations.
* basic-sample-5-dns-flows: 5 L7 DNS lines over TCP; 2 replies, 3 without flags.

DNS proxy responses (replies that bind names: one name record per address) per file:

    jq -c 'select(.flow.l7.type == "RESPONSE" and .flow.l7.dns != null) | .flow.l7.dns
           | {ips: ((.ips // []) | length), rcode: (.rcode // 0)}' FILE | sort | uniq -c

* basic-sample-400-udp-flows: 74 responses: 37 with one address (37 name records),
  37 without (AAAA questions answered with none); so 74 of the 148 replies remain
  plain replies.
* basic-sample-5-dns-flows: the 2 replies are NXDOMAIN responses.

No file has a non-flow line or an invalid line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from recorder.aggregate import Aggregator
from recorder.report import ReadReport
from recorder.schema import FlowRecord, NameBinding
from recorder.sources import read_inputs

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / ".." / "shared" / "samples"
HUBBLE = SAMPLES / "hubble"

pytestmark = [
    pytest.mark.samples,
    pytest.mark.skipif(not HUBBLE.is_dir(), reason=f"no samples at {SAMPLES.resolve()}"),
]

EXPECTED = {
    "basic-sample-10-flows.json": (10, 1, {"reply": 5, "tcp-not-syn": 4}),
    "basic-sample-400-icmpv4-flows.json": (18, 11, {"reply": 4, "icmp-not-echo-request": 3}),
    "basic-sample-400-tcp-flows.json": (
        400, 43, {"reply": 132, "tcp-not-syn": 198, "repeated-observation": 27}
    ),
    "basic-sample-400-udp-flows.json": (
        400, 111 + 37, {"reply": 74, "dns-no-address": 37, "repeated-observation": 141}
    ),
    "basic-sample-5-dns-flows.json": (5, 0, {"dns-nxdomain": 2, "tcp-not-syn": 3}),
}


def test_every_sample_file_is_covered() -> None:
    assert sorted(p.name for p in HUBBLE.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_counts(name: str) -> None:
    lines, kept, ignored = EXPECTED[name]
    report = ReadReport(strict=True)  # any invalid line would raise
    records = list(read_inputs([str(HUBBLE / name)], report))
    path = str(HUBBLE / name)
    assert report.formats[path] == "hubble"
    assert report.lines[path] == lines
    assert report.kept[path] == len(records) == kept
    assert dict(report.ignored) == ignored
    assert report.total_skipped == 0
    assert not any(reason.startswith("non-flow:") for reason in report.ignored)


def test_samples_aggregate_to_the_distinct_connections() -> None:
    agg = Aggregator()
    agg.add_all(read_inputs([str(HUBBLE)], ReadReport(strict=True)))
    out = agg.drain()
    flows = [r for r in out if isinstance(r, FlowRecord)]
    assert sum(r.count for r in flows) == 166  # the distinct connections
    assert sum(r.count for r in out if isinstance(r, NameBinding)) == 37
    assert sum(kept for _, kept, _ in EXPECTED.values()) == 166 + 37
    assert agg.stats.overflow == 0


def test_import_command_on_the_samples(tmp_path: Path) -> None:
    out = tmp_path / "samples.jsonl.gz"
    run = subprocess.run(
        [sys.executable, "-m", "generator.cli.main", "import", str(HUBBLE), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "basic-sample-400-tcp-flows.json: hubble, 400 lines read, 43 records kept" in run.stderr
    assert "skipped" not in run.stderr
    assert out.exists()
