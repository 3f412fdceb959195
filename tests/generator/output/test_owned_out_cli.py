"""--out directories: each command owns what it wrote and nothing else, checks --out
before reading, and two runs into one directory never mix their files."""

from __future__ import annotations

import json
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"
MANIFEST = ".flowpol-output.json"


def flowpol(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def generate_args(out: Path, *extra: str) -> list[str]:
    return ["generate", str(DEMO / "flows"), "-s", str(DEMO / "cluster.json"),
            "--out", str(out), *extra]


def generate(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return flowpol(*generate_args(out, *extra))


def diff(out: Path, existing: Path) -> subprocess.CompletedProcess:
    return flowpol("diff", str(DEMO / "flows"), "-s", str(DEMO / "cluster.json"),
                   "--existing", str(existing), "--out", str(out))


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_generate_refuses_a_directory_of_the_users_and_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "kustomization.yaml").write_text("resources: [mine.yaml]\n")
    (out / "report.json").write_text("{}\n")
    (out / "report.md").write_text("my notes\n")
    before = snapshot(out)
    run = generate(out)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "is not empty and was not written by flowpol generate" in run.stderr
    assert "read " not in run.stdout  # refused before the inputs were read
    assert snapshot(out) == before


def test_rerun_replaces_its_own_files_and_leaves_the_users_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert generate(out, "-n", "payments", "-n", "storefront").returncode == 0
    (out / "NOTES.txt").write_text("mine\n")
    run = generate(out, "-n", "storefront")
    assert run.returncode == 0, run.stderr
    # payments.yaml was flowpol's and unchanged: gone with its namespace
    assert sorted(p.name for p in out.glob("*.yaml")) == ["kustomization.yaml", "storefront.yaml"]
    assert (out / "NOTES.txt").read_text() == "mine\n"
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == "generate"
    assert "NOTES.txt" not in manifest["files"]
    for name, hashes in manifest["files"].items():
        assert hashes == [hashlib.sha256((out / name).read_bytes()).hexdigest()], name


def test_a_hand_edited_file_is_refused_not_deleted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert generate(out, "-n", "payments", "-n", "storefront").returncode == 0
    edited = (out / "payments.yaml").read_text() + "# my change\n"
    (out / "payments.yaml").write_text(edited)  # still carries the flowpol header
    run = generate(out, "-n", "storefront")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "payments.yaml changed since flowpol generate wrote it" in run.stderr
    assert (out / "payments.yaml").read_text() == edited


def test_diff_and_generate_refuse_each_others_directory(tmp_path: Path) -> None:
    gen, dif = tmp_path / "gen", tmp_path / "dif"
    assert generate(gen).returncode == 0
    before = snapshot(gen)
    run = diff(gen, gen)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "holds the output of flowpol generate; flowpol diff does not write into it" in run.stderr
    assert snapshot(gen) == before and not (gen / "proposed").exists()
    verify = flowpol("verify", str(DEMO / "flows"), "-s", str(DEMO / "cluster.json"),
                     "--policies", str(gen))
    assert verify.returncode == 0, verify.stderr

    assert diff(dif, gen).returncode in (0, 1)
    assert diff(dif, gen).returncode in (0, 1)  # its own directory: replaced
    run = generate(dif)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "holds the output of flowpol diff; flowpol generate does not write into it" in run.stderr


def test_two_runs_into_one_directory_at_once_leave_one_runs_output(tmp_path: Path) -> None:
    one, two, both = tmp_path / "one", tmp_path / "two", tmp_path / "both"
    assert generate(one, "-n", "payments").returncode == 0
    assert generate(two, "-n", "storefront", "-n", "platform").returncode == 0
    cmd = [sys.executable, "-m", "generator.cli.main"]
    runs = [subprocess.Popen(cmd + generate_args(both, *ns), cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
            for ns in (("-n", "payments"), ("-n", "storefront", "-n", "platform"))]
    for r in runs:
        assert r.wait(timeout=300) == 0, r.stderr.read() if r.stderr else ""
    got = snapshot(both)
    assert got in (snapshot(one), snapshot(two))


def test_out_that_is_a_dangling_symlink_is_refused_before_reading(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "gone")
    run = generate(out)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "is a symlink to" in run.stderr and "which does not exist" in run.stderr
    assert run.stdout == ""  # nothing read, nothing summarised
    assert not (tmp_path / "gone").exists()


def test_out_under_a_regular_file_is_refused_before_reading(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x\n")
    for cmd in ("generate", "migrate"):
        run = flowpol(cmd, str(DEMO / "flows"), "-s", str(DEMO / "cluster.json"),
                      "--out", str(tmp_path / "file" / "out"))
        assert run.returncode == 2, run.stdout + run.stderr
        assert "is not a directory" in run.stderr and run.stdout == ""
        assert "Traceback" not in run.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a read-only tmpfs")
def test_out_on_a_read_only_filesystem_is_refused_before_reading(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        run = generate(ro / "out")
        assert run.returncode == 2, run.stdout + run.stderr
        assert "cannot be written: the filesystem is read-only" in run.stderr
        assert run.stdout == ""
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_migrate_owns_its_directory_as_generate_does(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    args = ["migrate", str(DEMO / "flows"), "-s", str(DEMO / "cluster.json"),
            "--out", str(out), "--min-observation", "1m"]
    assert flowpol(*args).returncode in (0, 1)
    steps = sorted(out.rglob("step-*.yaml"))
    assert steps
    for path in steps:  # what the plan says to apply parses
        assert all(d["kind"] for d in yaml.safe_load_all(path.read_text()) if d)
    (out / "mine.txt").write_text("x\n")
    assert flowpol(*args).returncode in (0, 1)
    assert (out / "mine.txt").exists()
    steps[0].write_text(steps[0].read_text() + "# edited\n")
    run = flowpol(*args)
    assert run.returncode == 2 and "changed since flowpol migrate wrote it" in run.stderr


def test_output_of_an_earlier_release_is_refused_with_what_to_do(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert generate(out).returncode == 0
    (out / MANIFEST).unlink()  # as an earlier release left it: no list of its files
    before = snapshot(out)
    run = generate(out)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "written by an earlier flowpol release" in run.stderr
    assert snapshot(out) == before
