"""Bad input for CLI tests: a flow file whose last write was cut off, and what a refusal
looks like."""

from __future__ import annotations

import subprocess
from pathlib import Path


def append_cut_line(path: Path) -> int:
    """Append the first half of ``path``'s last line, as a writer killed mid-line leaves
    it, and return that line's number (what the error must name)."""
    lines = path.read_text().splitlines()
    with path.open("a") as f:
        f.write(lines[-1][: len(lines[-1]) // 2] + "\n")
    return len(lines) + 1


def error_lines(stderr: str) -> list[str]:
    """The `flowpol: error:` lines of a run's stderr."""
    return [line for line in stderr.splitlines() if line.startswith("flowpol: error:")]


def refused(run: subprocess.CompletedProcess[str]) -> str:
    """The one `flowpol: error:` line of a run that refused its input: exit 2, no
    traceback."""
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    errors = error_lines(run.stderr)
    assert len(errors) == 1, run.stderr
    return errors[0]
