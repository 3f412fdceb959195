"""The `-L` fast path (one regex per line) must read exactly what the general parser
reads: same records, same skips and counts, on every asset and on the real samples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recorder.report import ReadReport
from recorder.sources import ReadOptions, conntrack, read_inputs

ROOT = Path(__file__).resolve().parents[2]
ASSETS = sorted((ROOT / "tests" / "recorder" / "assets" / "conntrack").iterdir())
SAMPLES = ROOT.parent / "shared" / "samples" / "conntrack"
FILES = ASSETS + (sorted(SAMPLES.iterdir()) if SAMPLES.is_dir() else [])
DUMP_TIME = 1_763_629_200 * 1_000_000_000


def _read(path: Path) -> tuple[list, dict]:
    report = ReadReport()
    records = list(read_inputs([str(path)], report, ReadOptions(dump_time=DUMP_TIME),
                               fmt="conntrack"))
    return records, report.to_dict()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_fast_path_reads_what_the_general_parser_reads(path: Path, monkeypatch) -> None:
    fast = _read(path)
    monkeypatch.setattr(conntrack, "_LIST_LINE", re.compile("(?!)"))  # never matches
    general = _read(path)
    assert fast == general


def test_the_fast_path_is_taken() -> None:
    line = ("tcp      6 431999 ESTABLISHED src=10.244.1.5 dst=10.96.0.10 sport=40000 dport=80 "
            "src=10.244.2.7 dst=10.244.1.5 sport=8080 dport=40000 [ASSURED] mark=0 use=1")
    assert conntrack._LIST_LINE.match(line) is not None
