"""A bug in flowpol (an exception nothing handles) is exit 2, never a traceback and
never exit 1 (findings): provoked in-process by a function made to fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from generator.cli import main as cli

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str]:
    from generator.output import files

    monkeypatch.setattr(sys, "argv", ["flowpol", *args])
    monkeypatch.setattr(files, "_changed", [])  # what earlier in-process runs wrote
    with pytest.raises(SystemExit) as stop:
        cli.main()
    return stop.value.code, capsys.readouterr().err


def broken(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom\nsecond line")


def generate_args(out: Path) -> tuple[str, ...]:
    return ("generate", str(DEMO / "flows" / "hubble-node-a.jsonl"), "--snapshot",
            str(DEMO / "cluster.json"), "--out", str(out), "--jobs", "1")


@pytest.mark.parametrize("debug", ["", "1"])
def test_crash_while_reading_a_flow_input_names_it(tmp_path, monkeypatch, capsys, debug) -> None:
    import dataclasses

    import recorder.sources as sources

    table = sources.sources()
    hubble = dataclasses.replace(table["hubble"], read=lambda *a: iter([broken()]))
    monkeypatch.setattr(sources, "sources", lambda: {**table, "hubble": hubble})
    monkeypatch.setenv("FLOWPOL_DEBUG", debug)
    code, err = run_main(monkeypatch, capsys, *generate_args(tmp_path / "out"))
    assert code == 2, err
    assert "internal error while reading input '" in err and "hubble-node-a.jsonl'" in err
    assert "RuntimeError: boom second line" in err  # one line
    assert "please report it" in err
    assert ("Traceback" in err) == (debug == "1")


def test_crash_while_loading_the_snapshot_names_it(tmp_path, monkeypatch, capsys) -> None:
    from generator.inventory import load

    monkeypatch.setattr(load, "_read_text", broken)
    monkeypatch.delenv("FLOWPOL_DEBUG", raising=False)
    code, err = run_main(monkeypatch, capsys, *generate_args(tmp_path / "out"))
    assert code == 2, err
    assert "internal error while reading snapshot '" in err and "cluster.json'" in err
    assert "Traceback" not in err


def test_crash_after_reading_is_exit_2_and_says_what_was_written(tmp_path, monkeypatch,
                                                                 capsys) -> None:
    from generator import generate

    monkeypatch.setattr(generate, "build_report", broken)
    monkeypatch.delenv("FLOWPOL_DEBUG", raising=False)
    code, err = run_main(monkeypatch, capsys, *generate_args(tmp_path / "out"))
    assert code == 2, err
    assert err.splitlines()[0] == "flowpol: error: internal error"
    assert "RuntimeError: boom second line" in err
    assert "nothing written" in err


def test_crash_in_a_reading_worker_names_its_input(tmp_path, monkeypatch, capsys) -> None:
    """--jobs 2: the reader fails in a worker process (forked, so it has the patch); the
    parent raises the worker's exception and names the input it came from."""
    import dataclasses

    import recorder.sources as sources

    table = sources.sources()
    hubble = dataclasses.replace(table["hubble"], read=lambda *a: iter([broken()]))
    monkeypatch.setattr(sources, "sources", lambda: {**table, "hubble": hubble})
    monkeypatch.setenv("FLOWPOL_DEBUG", "")
    flows = DEMO / "flows"
    code, err = run_main(monkeypatch, capsys, "generate", str(flows / "hubble-node-a.jsonl"),
                         str(flows / "hubble-node-b.jsonl"), "--snapshot",
                         str(DEMO / "cluster.json"), "--out", str(tmp_path / "out"),
                         "--jobs", "2")
    assert code == 2, err
    assert "internal error while reading input '" in err and "hubble-node-" in err, err
    assert "RuntimeError: boom second line" in err
