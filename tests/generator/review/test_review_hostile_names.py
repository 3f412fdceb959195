"""A file name is input: whatever it holds, report.md keeps its structure (no heading,
list item or line a name adds), the error line stays one line, and neither carries a
control or bidi character to the terminal or the reader (written as \\xNN / \\uNNNN)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"
NAME = "x\n# injected\n- item \x1b[31mred\u202eevil\r.jsonl"


def test_a_hostile_file_name_changes_nothing_in_the_reports(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    src = DEMO / "flows" / "hubble-node-a.jsonl"
    lines = src.read_bytes().splitlines(keepends=True)
    # a bad line too, so that the name also shows in the bad-input examples
    (flows / NAME).write_bytes(b"".join(lines[:20]) + b"{not json\n")
    shutil.copy(DEMO / "flows" / "hubble-node-b.jsonl", flows / "b.jsonl")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "generator.cli.main", "generate", str(flows),
                           "--snapshot", str(DEMO / "cluster.json"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr  # the bad line; the reports are written
    # the error is one line, the name in it escaped
    assert proc.stderr.startswith("flowpol: error:") and proc.stderr.count("\n") == 1
    assert "x\\n# injected\\n- item \\x1b[31mred\\u202eevil\\r.jsonl:21:" in proc.stderr
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert "injected" in md and "injected" in page  # the name is shown...
    for text in (md, page):  # ...without what is not text
        assert not any(c in text for c in "\x1b\u202e\r")
    assert "\\x1b[31mred\\u202eevil\\r" in md
    lines_of_md = md.splitlines()
    assert not any(line.startswith(("# injected", "- item")) for line in lines_of_md)
    assert sum(line.startswith("# ") for line in lines_of_md) == 1  # the title alone
