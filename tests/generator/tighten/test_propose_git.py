"""propose-git's parts: the drift check, the proposal id, where files may be written,
the git credentials, and the CLI's refusals. The whole job against a git server is
tests/recorder/deploy/test_tightening_job.py."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from generator.tighten import gitrepo
from generator.tighten.existing import existing_from_objects
from generator.tighten.propose_git import _inside, add_to_kustomization, drift, proposal_id
from recorder.errors import InputError, UsageError

REPO = Path(__file__).resolve().parents[3]


def policy(name: str, ns: str = "shop", **spec) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"app": name}}, **spec}}


INGRESS = [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
            "ports": [{"port": 8080}]}]


def repo_set(*objects: dict):
    return existing_from_objects(list(objects), "files", "repo")


def test_api_server_defaults_are_no_drift() -> None:
    mine = repo_set(policy("api", ingress=INGRESS))
    # As the API server returns it: protocol and policyTypes filled in, server fields.
    live = policy("api", policyTypes=["Ingress"], ingress=[
        {"from": INGRESS[0]["from"], "ports": [{"protocol": "TCP", "port": 8080}]}])
    live["metadata"].update({"uid": "u-1", "resourceVersion": "7", "generation": 1,
                             "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}})
    assert drift(mine, [live]) == ()


def test_drift_names_what_differs_in_the_repository_s_namespaces_only() -> None:
    mine = repo_set(policy("api", ingress=INGRESS), policy("old"))
    live = [policy("api", ingress=[{"from": INGRESS[0]["from"], "ports": [{"port": 9090}]}]),
            policy("new"),
            policy("elsewhere", ns="billing")]  # not managed in this repository
    assert drift(mine, live) == (
        "shop/api: the repository's (repo) differs from the cluster's",
        "shop/new: in the cluster, not in the repository",
        "shop/old: in the repository (repo), not in the cluster (not applied yet?)",
    )


def test_proposal_id_ignores_comments_and_layout_but_not_policies() -> None:
    a = "# evidence: 12 connections\napiVersion: v1\nkind: X\nmetadata: {name: a}\n"
    b = "apiVersion: v1\nkind: X\nmetadata:\n  name: a   # 13 connections now\n"
    c = "apiVersion: v1\nkind: X\nmetadata: {name: b}\n"
    assert proposal_id([("f.yaml", a)]) == proposal_id([("f.yaml", b)])
    assert proposal_id([("f.yaml", a)]) != proposal_id([("f.yaml", c)])
    assert proposal_id([("f.yaml", a)]) != proposal_id([("g.yaml", a)])
    assert len(proposal_id([("f.yaml", a)])) == 16


def test_files_are_never_written_outside_the_checkout(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "policies").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside")
    (root / "policies" / "link.yaml").symlink_to(tmp_path / "outside" / "x.yaml")
    assert _inside(root, "policies/a.yaml") == root / "policies" / "a.yaml"
    for bad in ("../x.yaml", "policies/../../x.yaml", "/etc/x.yaml", "escape/x.yaml",
                "policies/link.yaml"):
        with pytest.raises(InputError):
            _inside(root, bad)


def test_ssh_credentials_need_known_hosts_and_get_a_private_key_copy(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "ssh-privatekey").write_text("KEY")
    (secret / "ssh-privatekey").chmod(0o440)
    with pytest.raises(UsageError, match="known_hosts"):
        gitrepo.prepare_access(secret, tmp_path / "scratch")
    (secret / "known_hosts").write_text("git.example.com ssh-ed25519 AAAA\n")
    access = gitrepo.prepare_access(secret, tmp_path / "scratch2")
    key = tmp_path / "scratch2" / "id"
    assert access.method == "ssh" and key.read_text() == "KEY"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cmd = access.env["GIT_SSH_COMMAND"]
    assert "StrictHostKeyChecking=yes" in cmd and str(secret / "known_hosts") in cmd
    assert "KEY" not in "".join(access.env.values())


def test_token_credentials_answer_git_through_a_helper(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "token").write_text("s3cr3t-token\n")
    access = gitrepo.prepare_access(secret, tmp_path / "scratch")
    assert access.method == "token"
    assert "s3cr3t-token" not in "".join(access.env.values())
    helper = access.env["GIT_CONFIG_VALUE_1"]
    said = subprocess.run([helper, "get"], capture_output=True, text=True).stdout
    assert said == "username=x-access-token\npassword=s3cr3t-token\n"
    assert subprocess.run([helper, "store"], capture_output=True, text=True).stdout == ""
    (secret / "username").write_text("bot")
    access = gitrepo.prepare_access(secret, tmp_path / "scratch2")
    said = subprocess.run([access.env["GIT_CONFIG_VALUE_1"], "get"], capture_output=True,
                          text=True).stdout
    assert said == "username=bot\npassword=s3cr3t-token\n"


def test_credentials_that_are_not_usable_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        gitrepo.prepare_access(tmp_path / "missing", tmp_path / "s")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="neither ssh-privatekey"):
        gitrepo.prepare_access(empty, tmp_path / "s")
    (empty / "token").write_text("one\ntwo\n")
    with pytest.raises(UsageError, match="more than one line"):
        gitrepo.prepare_access(empty, tmp_path / "s")


def flowpol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "KUBECONFIG": os.devnull})


def test_cli_refuses_a_bad_author_and_a_foreign_out_directory(tmp_path: Path) -> None:
    flows = tmp_path / "flows.jsonl"
    flows.write_text("")
    common = [str(flows), "--snapshot", str(flows), "--remote", "http://127.0.0.1:9/x.git"]
    bad = flowpol("propose-git", *common, "--out", str(tmp_path / "o"), "--author", "flowpol")
    assert bad.returncode == 2 and "--author 'flowpol': give 'NAME <EMAIL>'" in bad.stderr
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    refused = flowpol("propose-git", *common, "--out", str(theirs))
    assert refused.returncode == 2 and "was not written by flowpol propose-git" in refused.stderr
    assert (theirs / "notes.txt").read_text() == "mine"
    branch = flowpol("propose-git", *common, "--out", str(tmp_path / "o2"),
                     "--branch-prefix", "bad..name")
    assert branch.returncode == 2 and "not a valid git branch name" in branch.stderr
    for run in (bad, refused, branch):
        assert "Traceback" not in run.stderr


@pytest.mark.parametrize("text", [
    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
    "  - a.yaml\n  # the old ones\n  - b.yaml\nnamespace: shop\n",
    "resources:\n- a.yaml\n- b.yaml\n",
    "resources:\n    - a.yaml\n    - b.yaml",  # no newline at the end
])
def test_a_new_file_is_added_to_the_kustomization_beside_it(tmp_path: Path, text: str) -> None:
    import yaml

    (tmp_path / "kustomization.yaml").write_text(text)
    old = yaml.safe_load(text)
    edited, note = add_to_kustomization(tmp_path, "flowpol-added-shop.yaml")
    assert edited == tmp_path / "kustomization.yaml" and note is None
    new = edited.read_text()
    assert yaml.safe_load(new) == {**old, "resources": ["a.yaml", "b.yaml", "flowpol-added-shop.yaml"]}
    # The author's lines kept as they were: one line inserted, nothing else touched.
    (added,) = [line for line in new.splitlines() if "flowpol-added" in line]
    assert added.strip() == "- flowpol-added-shop.yaml"
    assert new.replace(added + "\n", "", 1) == (text if text.endswith("\n") else text + "\n")
    assert add_to_kustomization(tmp_path, "flowpol-added-shop.yaml") == (None, None)


def test_a_kustomization_it_cannot_edit_safely_becomes_a_note(tmp_path: Path) -> None:
    assert add_to_kustomization(tmp_path, "x.yaml") == (None, None)  # none there
    for text in ("resources: [a.yaml]\n", "resources:\n", "kind: Kustomization\n", "[1, 2]\n",
                 "resources: {a: 1}\n"):
        (tmp_path / "kustomization.yaml").write_text(text)
        edited, note = add_to_kustomization(tmp_path, "x.yaml")
        assert edited is None and note == "add x.yaml to the resources of kustomization.yaml"
        assert (tmp_path / "kustomization.yaml").read_text() == text
