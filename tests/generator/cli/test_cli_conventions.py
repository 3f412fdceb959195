"""What every flowpol command does at its edges, through the real entry point: the old
`-o PATH` spellings, output piped into `head`, Ctrl-C, file modes, progress on a
terminal."""

from __future__ import annotations

import os
import pty
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"
FLOWS = DEMO / "flows"
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "generator.cli.main", *args]


def flowpol(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, cwd=ROOT,
                          timeout=300, **kwargs)


# ---------------------------------------------------------------- -o / --out


def test_old_o_spelling_still_works_for_one_release_with_one_note(tmp_path: Path) -> None:
    out = tmp_path / "policies"
    run = flowpol("generate", str(FLOWS), "-s", str(DEMO / "cluster.json"), "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert (out / "kustomization.yaml").exists()
    notes = run.stderr.splitlines()
    assert len(notes) == 1 and notes[0].startswith("flowpol: warning: generate -o PATH is "
                                                    "deprecated"), run.stderr
    assert "use --out PATH" in notes[0]

    log = tmp_path / "flows.jsonl"
    run = flowpol("import", str(FLOWS / "hubble-node-a.jsonl"), f"--output={log}")
    assert run.returncode == 0, run.stderr
    assert log.exists()
    assert sum("deprecated" in line for line in run.stderr.splitlines()) == 1


def test_out_is_the_spelling_that_prints_nothing_extra(tmp_path: Path) -> None:
    run = flowpol("generate", str(FLOWS), "-s", str(DEMO / "cluster.json"), "--out",
                  str(tmp_path / "p"))
    assert run.returncode == 0 and run.stderr == ""


def test_a_value_that_looks_like_the_old_option_stays_a_value(tmp_path: Path) -> None:
    # `-n -o`: "-o" is the namespace asked for (none has that name), not --out
    run = flowpol("generate", str(FLOWS), "-s", str(DEMO / "cluster.json"), "--out",
                  str(tmp_path / "p"), "-n", "-o")
    assert "deprecated" not in run.stderr
    assert "Traceback" not in run.stderr


@pytest.fixture(scope="module")
def demo_policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "policies"
    run = flowpol("generate", str(FLOWS), "-s", str(DEMO / "cluster.json"), "--out", str(out))
    assert run.returncode == 0, run.stderr
    return out


def test_verify_o_is_the_output_format(demo_policies: Path) -> None:
    run = flowpol("verify", str(FLOWS), "-s", str(DEMO / "cluster.json"), "-p",
                  str(demo_policies), "-o", "json")
    assert "deprecated" not in run.stderr
    assert run.stdout.lstrip().startswith("{"), run.stdout[:200] + run.stderr


# ---------------------------------------------------------------- pipes and Ctrl-C


def test_output_piped_into_head_closes_quietly_with_exit_0(tmp_path: Path) -> None:
    # The flow log on stdout is larger than a pipe's buffer: flowpol is still writing
    # when head exits.
    script = ("set -o pipefail; " + " ".join(f"'{a}'" for a in command(
        "import", str(FLOWS), "--out", "-")) + " | head -n 1")
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("\n") == 1 and '"flowpol' in run.stdout
    assert "Traceback" not in run.stderr and "Broken pipe" not in run.stderr
    assert "Exception ignored" not in run.stderr


def test_reader_gone_before_the_first_byte_is_no_error(demo_policies: Path) -> None:
    proc = subprocess.Popen(command("verify", str(FLOWS), "-s", str(DEMO / "cluster.json"),
                                    "-p", str(demo_policies), "--show-allowed"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err
    assert "Broken pipe" not in err and "Exception ignored" not in err


def _open_fds_to(pid: int, target: Path) -> bool:
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            if os.readlink(fd) == str(target):
                return True
        except OSError:
            continue
    return False


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path: Path) -> None:
    """A snapshot that never ends (a FIFO whose writer stays open; a snapshot may be a
    pipe, a flow input may not): flowpol waits in the read, and SIGINT stops it there."""
    fifo = tmp_path / "cluster.fifo"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)  # a writer end that never closes, without blocking
    try:
        os.write(writer, (DEMO / "cluster.json").read_bytes()[:4096])
        out = tmp_path / "policies"
        proc = subprocess.Popen(command("generate", str(FLOWS / "hubble-node-a.jsonl"),
                                        "-s", str(fifo), "--out", str(out)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        deadline = time.monotonic() + 120
        while not _open_fds_to(proc.pid, fifo):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        os.close(writer)
    assert proc.returncode == 130, stderr
    assert stderr.decode() == "flowpol: interrupted; nothing written\n"
    assert not out.exists()


def test_an_interrupted_run_says_what_it_left_behind(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from generator.cli.main import written_text
    from generator.output import files
    from generator.output.files import atomic_write

    # a process of its own: what earlier in-process tests wrote is not this run's
    monkeypatch.setattr(files, "_changed", [])
    assert written_text() == "nothing written"
    atomic_write(tmp_path / "a.yaml", "x: 1\n")
    text = written_text()
    assert f"1 file(s) in {tmp_path}" in text and "incomplete" in text


# ---------------------------------------------------------------- file modes


def test_files_are_written_with_the_users_umask(tmp_path: Path) -> None:
    umask = 0o027  # neither the 0600 of a private file nor the usual default's 0644

    def set_umask() -> None:
        os.umask(umask)

    out = tmp_path / "policies"
    run = flowpol("generate", str(FLOWS), "-s", str(DEMO / "cluster.json"), "--out", str(out),
                  preexec_fn=set_umask)
    assert run.returncode == 0, run.stderr
    plan = tmp_path / "plan"
    run = flowpol("migrate", str(FLOWS), "-s", str(DEMO / "cluster.json"), "--out", str(plan),
                  "--min-observation", "1h", preexec_fn=set_umask)
    assert run.returncode == 0, run.stderr
    log = tmp_path / "flows.jsonl.gz"
    run = flowpol("import", str(FLOWS), "--out", str(log), preexec_fn=set_umask)
    assert run.returncode == 0, run.stderr
    files = [p for p in [*out.rglob("*"), *plan.rglob("*"), log] if p.is_file()]
    assert len(files) > 10
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f


# ---------------------------------------------------------------- progress


def _on_a_terminal(args: list[str], timeout: float = 300) -> tuple[int, bytes]:
    """Run with stderr on a pseudo-terminal; return the exit code and what it showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=slave,
                            stdin=subprocess.DEVNULL, cwd=ROOT,
                            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the process closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return proc.wait(timeout=timeout), ANSI.sub(b"", shown)


def test_progress_counts_bytes_against_the_total_on_a_terminal(tmp_path: Path) -> None:
    from rich.filesize import decimal

    big = tmp_path / "flows.jsonl"
    data = (FLOWS / "hubble-node-a.jsonl").read_bytes()
    with big.open("wb") as f:
        for _ in range(12):  # the same connections again: as many records, more bytes
            f.write(data)
    total = big.stat().st_size
    code, shown = _on_a_terminal(command("import", str(big), "--out", str(tmp_path / "o.jsonl")))
    assert code == 0, shown[-2000:]
    text = shown.decode(errors="replace")
    assert "reading flows" in text
    unit = decimal(total).split()[1]
    frames = re.findall(r"([\d.]+)/([\d.]+) " + unit, text)
    assert frames and {t for _, t in frames} == {decimal(total).split()[0]}, frames
    assert "0/1 inputs" in text
    progress = [f for f in re.split(r"[\r\n]+", text) if "reading flows" in f]
    assert progress and not any("records" in f for f in progress)  # not the old counter


def test_progress_counts_what_reading_workers_read(tmp_path: Path) -> None:
    """--jobs 2: the readers run in worker processes; the bytes they read and the inputs
    they finished are shown all the same."""
    data = (FLOWS / "hubble-node-a.jsonl").read_bytes()
    inputs = []
    for name in ("a.jsonl", "b.jsonl"):
        path = tmp_path / name
        path.write_bytes(data * 12)
        inputs.append(str(path))
    code, shown = _on_a_terminal(command("import", *inputs, "--out", str(tmp_path / "o.jsonl"),
                                         "--jobs", "2"))
    assert code == 0, shown[-2000:]
    text = shown.decode(errors="replace")
    frames = [f for f in re.split(r"[\r\n]+", text) if "reading flows" in f]
    read = [float(m.group(1)) for f in frames
            for m in [re.search(r"([\d.]+)/[\d.]+ [kM]?B", f)] if m]
    assert read and max(read) > 0, frames[-3:]
    assert any(re.search(r"\b[12]/2 inputs", f) for f in frames), frames[-3:]


def test_progress_stays_quiet_when_piped(tmp_path: Path) -> None:
    run = flowpol("import", str(FLOWS), "--out", str(tmp_path / "o.jsonl"))
    assert run.returncode == 0
    assert "reading flows" not in run.stderr and "\x1b[" not in run.stderr
