"""The images, built by the one documented command (scripts/build-image.sh) with
Debian's podman into a private image store, then run: `flowpol --version` and
`flowpol record --help` inside each, a short capture on the container's loopback with
only the capabilities the DaemonSet adds, and the user each runs as is the one the
manifests say."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from kustomize import render, write_overlay

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "recorder" / "deploy"
VERSION = next(line.split('"')[1] for line in
               (ROOT / "generator" / "version.py").read_text().splitlines()
               if line.startswith("__version__ = "))
TOOLS = ("mmdebstrap", "podman", "runc")
SHM_NEEDED = 6 << 30


def test_dockerignore_and_containerignore_are_the_same_allow_list() -> None:
    ignore = (ROOT / ".containerignore").read_text()
    assert (ROOT / ".dockerignore").read_text() == ignore
    lines = [line for line in ignore.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"  # everything out, then what the Containerfile copies
    copied = {"pyproject.toml", "README.md", "recorder/", "generator/", "build/image/wheels/"}
    assert copied <= {line[1:] for line in lines if line.startswith("!")}


def test_image_locks_are_the_project_s_requirements() -> None:
    run = subprocess.run(["python3", "scripts/lock_image.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    agent = (DEPLOY / "image" / "requirements-agent.txt").read_text()
    full = (DEPLOY / "image" / "requirements-full.txt").read_text()
    assert "\npandas==" not in agent and "\nnumpy==" not in agent
    assert "\npandas==" in full and "\nscapy==" in agent
    for text in (agent, full):
        pins = [line for line in text.splitlines() if "==" in line and not line.startswith("#")]
        hashes = [line for line in text.splitlines() if "--hash=sha256:" in line]
        assert pins and len(pins) == len(hashes)


def _podman_env(tmp: Path, fast: Path) -> dict[str, str]:
    """A private image store (in memory when /dev/shm has room: the build is bound by
    the disk's writes otherwise), and an engine configuration this machine can run: runc
    (crun refuses hybrid cgroup v1/v2 hosts) and rlimits within the current hard limits
    (podman's defaults exceed them where CAP_SYS_RESOURCE is missing)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = min(nofile, 1 << 20) if nofile != resource.RLIM_INFINITY else 1 << 20
    (tmp / "containers.conf").write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]\n'
        "[engine]\n"
        'runtime = "runc"\n')
    (tmp / "storage.conf").write_text(
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{fast / "graph"}"\n'
        f'runroot = "{fast / "run"}"\n')
    (fast / "tmp").mkdir()
    env = dict(os.environ)
    env.update({"CONTAINERS_CONF": str(tmp / "containers.conf"),
                "CONTAINERS_STORAGE_CONF": str(tmp / "storage.conf"),
                "TMPDIR": str(fast / "tmp")})  # mmdebstrap's and podman's scratch space
    return env


@contextlib.contextmanager
def fast_directory(fallback: Path):
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > SHM_NEEDED:
        path = Path(tempfile.mkdtemp(prefix="flowpol-image-", dir=shm))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    else:
        yield fallback


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        message = f"needs {', '.join(missing)} (scripts/test-deps.sh installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    tmp = tmp_path_factory.mktemp("image")
    with fast_directory(tmp) as fast:
        env = _podman_env(tmp, fast)
        build = subprocess.run(["bash", "scripts/build-image.sh"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=2400)
        # The phases' times, for whoever reads the test log.
        print("\n".join(line for line in build.stderr.splitlines()
                        if line.startswith("build-image: [")))
        assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
        try:
            yield env
        finally:
            subprocess.run(["podman", "rmi", "--all", "--force"], env=env,
                           capture_output=True, timeout=300)


def podman(env: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def manifests(tmp: Path) -> dict[str, dict]:
    docs = render(write_overlay(tmp, DEPLOY, [DEPLOY / "components" / "tightening"]))
    out = {}
    for d in docs:
        if d["kind"] == "DaemonSet":
            out["recorder"] = d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            out["tightening"] = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return out


def _run_as(pod: dict) -> int:
    (c,) = pod["containers"]
    return c.get("securityContext", {}).get("runAsUser",
                                            pod.get("securityContext", {}).get("runAsUser"))


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.image
def test_recorder_image(images, tmp_path: Path) -> None:
    env = images
    pod = manifests(tmp_path)["recorder"]
    (c,) = pod["containers"]
    image = f"localhost/{c['image']}"
    assert c["image"] == f"flowpol-recorder:{VERSION}"
    caps = [f"--cap-add={cap}" for cap in c["securityContext"]["capabilities"]["add"]]
    run = ["run", "--rm", "--read-only", "--network=none", "--cap-drop=ALL", *caps,
           "--security-opt=no-new-privileges"]
    # The user it runs as is the manifest's, without the manifest having to say it.
    config_user = podman(env, "image", "inspect", "--format", "{{.Config.User}}", image).stdout
    assert config_user.strip() == f"{_run_as(pod)}:0"
    uid = podman(env, *run, "--entrypoint=id", image, "-u")
    assert uid.returncode == 0 and uid.stdout.strip() == str(_run_as(pod)) == "0"
    version = podman(env, *run, image, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"flowpol {VERSION}"
    helped = podman(env, *run, image, "record", "--help")
    assert helped.returncode == 0 and "--source" in helped.stdout
    # The generator-only packages are not there; what the recorder imports is.
    py = "/opt/flowpol/bin/python"
    assert podman(env, *run, f"--entrypoint={py}", image, "-c",
                  "import scapy.all, kubernetes, orjson, yaml, typer, isal").returncode == 0
    missing = podman(env, *run, f"--entrypoint={py}", image, "-c", "import pandas")
    assert "No module named 'pandas'" in missing.stderr
    # A real capture with only the DaemonSet's capabilities: the kernel filter compiles
    # (libpcap), the packet socket opens (NET_RAW).
    record = podman(env, *run, image, "record", "--source=capture", "--interface=lo",
                    "--duration=2s", "--output=/tmp/flows.jsonl")
    assert record.returncode == 0, record.stderr
    assert "capture: listening on lo" in record.stderr


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.image
def test_tightening_image(images, tmp_path: Path) -> None:
    env = images
    pod = manifests(tmp_path)["tightening"]
    (c,) = pod["containers"]
    image = f"localhost/{c['image']}"
    assert c["image"] == f"flowpol:{VERSION}"
    run = ["run", "--rm", "--read-only", "--network=none", "--cap-drop=ALL",
           "--security-opt=no-new-privileges"]
    uid = _run_as(pod)
    assert uid == 65532 and pod["securityContext"]["runAsNonRoot"] is True
    config_user = podman(env, "image", "inspect", "--format", "{{.Config.User}}", image).stdout
    assert config_user.strip() == f"{uid}:{pod['securityContext']['runAsGroup']}"
    assert podman(env, *run, "--entrypoint=id", image, "-u").stdout.strip() == str(uid)
    version = podman(env, *run, image, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"flowpol {VERSION}"
    for command in (["record", "--help"], ["propose-git", "--help"], ["diff", "--help"]):
        out = podman(env, *run, image, *command)
        assert out.returncode == 0, (command, out.stderr)
    assert podman(env, *run, "--entrypoint=git", image, "--version").stdout.startswith("git version")
    assert podman(env, *run, "--entrypoint=ssh", image, "-V").returncode == 0
    # The job's script runs with the image's shell.
    script = (DEPLOY / "components" / "tightening" / "tighten.sh").read_text()
    refused = podman(env, *run, "--entrypoint=/bin/sh", image, "-c", script)
    assert refused.returncode == 2 and "set FLOWPOL_GIT_REMOTE" in refused.stderr
