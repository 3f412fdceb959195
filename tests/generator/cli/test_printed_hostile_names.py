"""Every line a command prints stays one line of text whatever a name in it holds: a file
name with newlines, ESC, CR and a bidi override shows escaped in `import`'s summary
(the input line, the bad-input example, "wrote ... to") and in `generate`'s summary,
and adds no line of its own (a fake "warning:")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"
NAME = "x\nwarning: fake\n\x1b[2Jred\u202eevil\r"
SHOWN = "x\\nwarning: fake\\n\\x1b[2Jred\\u202eevil\\r"
NOT_TEXT = "\x1b\u202e\r\x00"


def _flows(tmp_path: Path) -> Path:
    flows = tmp_path / "in"
    flows.mkdir()
    lines = (DEMO / "flows" / "hubble-node-a.jsonl").read_bytes().splitlines(keepends=True)
    # a bad line, so that the name also shows in the bad-input examples
    (flows / (NAME + ".jsonl")).write_bytes(b"".join(lines[:40]) + b"{not json\n")
    return flows


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args], cwd=ROOT,
                          capture_output=True, text=True)


def _assert_text_lines(text: str) -> list[str]:
    assert not any(c in text for c in NOT_TEXT), text
    lines = text.splitlines()
    assert not any(line.startswith("warning: fake") for line in lines), text
    return lines


def test_import_summary_shows_names_escaped_on_their_own_lines(tmp_path: Path) -> None:
    flows = _flows(tmp_path)
    out = tmp_path / (NAME + ".log")
    proc = _run("import", str(flows), "--out", str(out))
    assert proc.returncode == 2, proc.stderr  # the bad line
    assert out.exists()
    lines = _assert_text_lines(proc.stderr)
    # the input's line, its bad-line example and the output all name it, escaped
    assert any(line.startswith("  ") and SHOWN + ".jsonl: hubble" in line for line in lines)
    assert any(SHOWN + ".jsonl:41:" in line for line in lines if "error" not in line)
    assert any(line.startswith("wrote ") and line.endswith(SHOWN + ".log") for line in lines)
    assert lines[-1].startswith("flowpol: error:")


def test_generate_summary_shows_names_escaped(tmp_path: Path) -> None:
    flows = _flows(tmp_path)
    out = tmp_path / (NAME + "-out")
    proc = _run("generate", str(flows), "--snapshot", str(DEMO / "cluster.json"),
                "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    lines = _assert_text_lines(proc.stdout)
    assert any(line.startswith("wrote ") and SHOWN + "-out" in line for line in lines)
    _assert_text_lines(proc.stderr)
