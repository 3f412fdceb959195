"""After writing, generate, diff and migrate read their files back: a file that is not
what was checked is exit 2 naming it, never "verified" and exit 0. The disk is made to
disagree in-process (the writer is wrapped to change one file)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from generator.cli import main as cli
from generator.output import owned

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"
INPUTS = (str(DEMO / "flows"), "--snapshot", str(DEMO / "cluster.json"))


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["flowpol", *args])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    return stop.value.code, capsys.readouterr().err


def tamper(monkeypatch, suffix: str, old: str, new: str, skip_bytes_check: bool) -> None:
    """The file whose name ends with ``suffix`` gets ``old`` replaced by ``new`` on its
    way to disk; ``skip_bytes_check``: leave the byte comparison out, so that the parsed
    comparison is what must notice."""
    real = owned.atomic_write

    def write(path: Path, text: str) -> None:
        if str(path).endswith(suffix) and old in text:
            text = text.replace(old, new)
        real(path, text)

    monkeypatch.setattr(owned, "atomic_write", write)
    if skip_bytes_check:
        monkeypatch.setattr(owned, "read_back", lambda out, files: None)


@pytest.mark.parametrize("skip_bytes_check", [False, True])
def test_generate_reads_its_policies_back(tmp_path, monkeypatch, capsys, skip_bytes_check):
    tamper(monkeypatch, "storefront.yaml", "port: 8080", "port: 8081", skip_bytes_check)
    code, err = run_main(monkeypatch, capsys, "generate", *INPUTS, "--out", str(tmp_path / "o"),
                         "--jobs", "1")
    assert code == 2, err
    assert "internal error" in err and "storefront.yaml" in err
    assert "do not apply" in err


def test_migrate_reads_its_step_manifests_back(tmp_path, monkeypatch, capsys) -> None:
    tamper(monkeypatch, "step-1-allow.yaml", "port: 8080", "port: 8081", True)
    code, err = run_main(monkeypatch, capsys, "migrate", *INPUTS, "--out", str(tmp_path / "o"),
                         "--min-observation", "1m")
    assert code == 2, err
    assert "internal error" in err and "step-1-allow.yaml" in err
    assert "differs from the policies flowpol checked" in err


def test_diff_reads_its_proposal_back(tmp_path, monkeypatch, capsys) -> None:
    code, _ = run_main(monkeypatch, capsys, "generate", *INPUTS, "--out", str(tmp_path / "gen"),
                       "--jobs", "1")
    assert code == 0
    tamper(monkeypatch, "proposed/storefront.yaml", "port: 8080", "port: 8081", True)
    code, err = run_main(monkeypatch, capsys, "diff", *INPUTS, "--existing",
                         str(tmp_path / "gen"), "--out", str(tmp_path / "diff"))
    assert code == 2, err
    assert "internal error" in err and "storefront/" in err
    assert "differs from the proposal flowpol verified" in err
