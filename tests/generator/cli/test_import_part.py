"""`flowpol import --part K/N`: N runs over the same inputs import every file exactly
once between them, and `generate` over their N flow logs writes the policies that
`generate` over the raw files writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from generator.cli.parts import Part, parse_part, part_of, select_part
from recorder.errors import UsageError
from recorder.report import ReadReport

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = ROOT / "fixtures" / "scenarios" / "ip-reuse"
EVIDENCE = "flowpol.dev/evidence"


def flowpol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def split_by_node_and_time(lines: list[str], into: Path) -> list[Path]:
    """One file per node and ten minutes of the recording, as an archive of captures holds."""
    into.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}
    for line in lines:
        flow = json.loads(line)["flow"]
        name = f"{flow.get('node_name', 'none')}-{flow['time'][:15].replace(':', '')}.jsonl"
        files.setdefault(name, []).append(line)
    for name, group in files.items():
        (into / name).write_text("".join(group))
    return sorted(into.iterdir())


def inputs_of(stderr: str) -> list[str]:
    """The input files an import run names in its summary."""
    return re.findall(r"^  (\S+): \w+, ", stderr, re.M)


def policies(directory: Path) -> dict[str, list[dict]]:
    """The policies of each file, without their evidence (comments and the evidence
    annotation, which count connections)."""
    out = {}
    for p in sorted(directory.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
        for d in docs:
            d.get("metadata", {}).get("annotations", {}).pop(EVIDENCE, None)
        out[p.name] = docs
    return out


def connections(directory: Path) -> list[int]:
    """The connection count of each policy's evidence annotation, in file order."""
    return [int(m) for p in sorted(directory.glob("*.yaml"))
            for m in re.findall(EVIDENCE + r": .*?, ([0-9,]+) connection", p.read_text())]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("archive") / "raw"
    lines = (SCENARIO / "flows.jsonl").read_text().splitlines(keepends=True)
    files = split_by_node_and_time(lines, raw)
    assert len(files) >= 10
    return raw


@pytest.mark.parametrize("count", [1, 3])
def test_every_file_is_in_exactly_one_part(archive: Path, tmp_path: Path, count: int) -> None:
    seen: list[str] = []
    for k in range(count):
        run = flowpol("import", str(archive), "--part", f"{k}/{count}", "--out",
                      str(tmp_path / f"part-{k}.jsonl"))
        assert run.returncode == 0, run.stderr
        mine = inputs_of(run.stderr)
        assert f"part {k}/{count}: {len(mine)} of {len(list(archive.iterdir()))} input" in run.stderr
        assert mine == [str(p) for p in sorted(archive.iterdir())
                        if part_of(p, count) == k]
        seen += mine
    assert sorted(seen) == sorted(str(p) for p in archive.iterdir())


def test_more_parts_than_files(archive: Path, tmp_path: Path) -> None:
    files = sorted(str(p) for p in archive.iterdir())
    count = 4 * len(files)
    shares = [select_part([str(archive)], Part(k, count), ReadReport()) for k in range(count)]
    assert sorted(f for s in shares for f in s.files) == files
    assert all(s.total == len(files) for s in shares)
    empty = next(k for k, s in enumerate(shares) if not s.files)
    # a part without files writes a flow log without records, which generate reads
    (tmp_path / "parts").mkdir()
    run = flowpol("import", str(archive), "--part", f"{empty}/{count}", "--out",
                  str(tmp_path / "parts" / "empty.jsonl"))
    assert run.returncode == 0 and f"part {empty}/{count}: 0 of {len(files)}" in run.stderr
    assert "wrote 0 records" in run.stderr
    full = next(k for k, s in enumerate(shares) if s.files)
    assert flowpol("import", str(archive), "--part", f"{full}/{count}", "--out",
                   str(tmp_path / "parts" / "full.jsonl")).returncode == 0
    run = flowpol("generate", str(tmp_path / "parts"), "-s", str(SCENARIO / "cluster.json"),
                  "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr


def test_generate_over_the_parts_writes_the_policies_of_generate_over_the_archive(
        archive: Path, tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    for k in range(3):
        run = flowpol("import", str(archive), "--part", f"{k}/3", "--out",
                      str(parts / f"part-{k}.jsonl.gz"))
        assert run.returncode == 0, run.stderr
    direct = flowpol("generate", str(archive), "-s", str(SCENARIO / "cluster.json"),
                     "--out", str(tmp_path / "direct"))
    from_parts = flowpol("generate", str(parts), "-s", str(SCENARIO / "cluster.json"),
                         "--out", str(tmp_path / "from-parts"))
    assert direct.returncode == from_parts.returncode == 0, from_parts.stderr
    # the IP-reuse scenario: attribution at the time survives the split and the window
    # aggregation of each part: the same rules
    assert policies(tmp_path / "direct") == policies(tmp_path / "from-parts")
    assert len(policies(tmp_path / "direct")) >= 2
    # Counts are upper bounds: a connection both nodes recorded is counted once per part
    # that holds one of the two files, at most once per node (2 here).
    exact, bounded = connections(tmp_path / "direct"), connections(tmp_path / "from-parts")
    assert len(exact) == len(bounded) > 0
    assert all(e <= b <= 2 * e for e, b in zip(exact, bounded))


def test_a_missing_input_is_reported_by_every_part(archive: Path, tmp_path: Path) -> None:
    for k in range(2):
        run = flowpol("import", str(archive), str(tmp_path / "gone.jsonl"), "--part",
                      f"{k}/2", "--out", str(tmp_path / f"p{k}.jsonl"))
        assert run.returncode == 2
        assert "gone.jsonl" in run.stderr and "no such file or directory" in run.stderr
        assert "Traceback" not in run.stderr


@pytest.mark.parametrize("value, message", [
    ("3/3", "parts are numbered 0 to 2"),
    ("0/0", "the number of parts must be 1 to 100,000"),
    ("1", "is not K/N"),
    ("-1/4", "is not K/N"),
    ("a/b", "is not K/N"),
    ("0/100001", "the number of parts must be 1 to 100,000"),
])
def test_a_bad_part_is_a_usage_error(archive: Path, tmp_path: Path, value: str,
                                     message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_part(value)
    run = flowpol("import", str(archive), "--part", value, "--out", str(tmp_path / "x.jsonl"))
    assert run.returncode == 2 and message in run.stderr
    assert not (tmp_path / "x.jsonl").exists()


def test_parse_part() -> None:
    assert parse_part(" 2/8 ") == Part(2, 8) and str(Part(2, 8)) == "2/8"


def test_a_file_s_part_depends_on_its_path_alone() -> None:
    # what else is in the archive, or the order of the listing, cannot move a file
    paths = [Path(f"/archive/raw/node-{i:03}.pcap") for i in range(1000)]
    before = {p: part_of(p, 16) for p in paths}
    assert {p: part_of(p, 16) for p in reversed(paths)} == before
    sizes = [list(before.values()).count(k) for k in range(16)]
    assert min(sizes) > 30 and max(sizes) < 100  # 62.5 expected per part
    # not valid UTF-8: still a part, no error
    assert 0 <= part_of(Path(b"/archive/\xff.pcap".decode("utf-8", "surrogateescape")), 4) < 4
