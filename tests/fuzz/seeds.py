"""The clean inputs the fuzz tier mutates: small (a few KB each, so thousands of runs fit
in the CI budget), taken from fixtures/ and tests/recorder/assets/ at session start so
they follow the formats as those assets change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "fixtures" / "scenarios" / "dns"
ASSETS = ROOT / "tests" / "recorder" / "assets"
HUBBLE_LINES = 40  # of the dns scenario: DNS answers, a few flows, replies, sock traces

# A fixed time for time-less inputs (conntrack -L): the file's mtime would make the
# output differ between the clean and the mutated run for no reason of ours.
TIME = "2026-11-20T09:00:00Z"

# Input roles: what the run gives the file as.
FLOWS, SNAPSHOT, POLICIES = "flows", "snapshot", "policies"


@dataclass(frozen=True, slots=True)
class Seed:
    kind: str        # what the mutators know the bytes as (json-lines, conntrack, pcap, ...)
    name: str        # the file name in the run directory
    role: str        # FLOWS, SNAPSHOT or POLICIES
    data: bytes


def _asset(path: Path) -> bytes:
    return path.read_bytes()


def flow_seeds() -> list[Seed]:
    hubble = b"".join(_asset(SCENARIO / "flows.jsonl").splitlines(keepends=True)[:HUBBLE_LINES])
    return [
        Seed("hubble", "hubble.jsonl", FLOWS, hubble),
        Seed("conntrack-L", "conntrack-L.txt", FLOWS, _asset(ASSETS / "conntrack" / "L-plain.txt")),
        Seed("conntrack-E", "conntrack-E.txt", FLOWS,
             _asset(ASSETS / "conntrack" / "E-timestamp.txt")),
        Seed("pcap", "capture.pcap", FLOWS, _asset(ASSETS / "pcap" / "ethernet-le-usec.pcap")),
        Seed("pcap", "dns.pcap", FLOWS, _asset(ASSETS / "pcap" / "dns-answers.pcap")),
        Seed("pcapng", "capture.pcapng", FLOWS, _asset(ASSETS / "pcap" / "multi-interface.pcapng")),
    ]


def snapshot_seed() -> Seed:
    # compact JSON: the same objects in 27 KB instead of 61, so byte mutations more
    # often land in a value than in indentation
    doc = json.loads(_asset(SCENARIO / "cluster.json"))
    return Seed("snapshot", "cluster.json", SNAPSHOT,
                json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())


def flowlog_seed(data: bytes) -> Seed:
    return Seed("flowlog", "flowlog.jsonl", FLOWS, data)


def policy_seed(name: str, data: bytes) -> Seed:
    return Seed("policy", name, POLICIES, data)
