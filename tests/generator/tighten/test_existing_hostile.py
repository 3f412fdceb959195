"""`flowpol diff` on an existing set the API server would refuse: exit 2 with the file
and line or the object, never a traceback, nothing written (the proposed set is a copy
of the existing files, and a live cluster's policies are written one file per namespace)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from standin_apiserver import StandInApiServer
from bad_input import refused

REPO = Path(__file__).resolve().parents[3]
HOSTILE = Path(__file__).parent / "assets" / "hostile"
SHOP = REPO / "tests" / "generator" / "verify" / "assets" / "shop"
TRAFFIC = [str(SHOP / "flows.jsonl"), "--snapshot", str(SHOP / "cluster.json")]


def diff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", "diff", *TRAFFIC, *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("asset, where", [
    ("duplicate_key.yaml", "13: the key 'egress' appears twice in one mapping (first on line 12)"),
    ("namespace_dotdot.yaml", "1: NetworkPolicy api: metadata.namespace '../../escaped' is not "
                              "a valid namespace name"),
    ("alias_bomb.yaml", "2: NetworkPolicy api: its YAML aliases expand to more than 1,000,000 "
                        "values"),
    ("other_document_contains_itself.yaml", "13: document 2: lists and mappings nest more "
                                            "than 64 levels deep (or contain themselves"),
])
def test_existing_file_the_api_server_refuses(asset: str, where: str, tmp_path: Path) -> None:
    # Given as a directory, as a repository of policies is.
    (tmp_path / "repo").mkdir()
    policy = tmp_path / "repo" / asset
    policy.write_bytes((HOSTILE / asset).read_bytes())
    error = refused(diff("-p", str(tmp_path / "repo"), "--out", str(tmp_path / "out")))
    assert f"{policy}:{where}" in error
    assert not (tmp_path / "out").exists()


def test_cluster_policy_with_a_hostile_namespace_writes_no_file(tmp_path: Path) -> None:
    objects = [yaml.safe_load((HOSTILE / "namespace_dotdot.yaml").read_text())]
    with StandInApiServer(objects) as srv:
        kubeconfig = srv.kubeconfig_path(tmp_path)
        run = diff("--cluster", "--kubeconfig", str(kubeconfig),
                   "--out", str(tmp_path / "a" / "out"))
    error = refused(run)
    assert "NetworkPolicy api: metadata.namespace '../../escaped'" in error
    assert not (tmp_path / "a").exists() and not (tmp_path / "escaped.yaml").exists()
