"""Regenerate the `--help` snapshots in help/ from the CLI of this tree.

    .venv/bin/python tests/generator/cli/make_help_snapshots.py

Run it after changing an option or a docstring (or upgrading typer), read the diff, and
commit the snapshots with the change: test_help.py compares the CLI against them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SNAPSHOTS = Path(__file__).resolve().parent / "help"
COMMANDS = ("", "generate", "import", "snapshot", "verify", "record", "collect", "diff", "propose-git",
            "migrate")
WIDTH = 100


def render(command: str, width: int = WIDTH) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(width), "TERM": "dumb", "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    args = [command] if command else []
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args, "--help"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def snapshot_path(command: str) -> Path:
    return SNAPSHOTS / f"{command or 'flowpol'}.txt"


def main() -> None:
    SNAPSHOTS.mkdir(exist_ok=True)
    for command in COMMANDS:
        run = render(command)
        if run.returncode != 0:
            sys.exit(f"flowpol {command} --help failed: {run.stderr}")
        snapshot_path(command).write_text(run.stdout)
        print(f"wrote {snapshot_path(command).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
