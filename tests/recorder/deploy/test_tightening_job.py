"""The tightening CronJob's command (components/tightening/tighten.sh, the file its
ConfigMap carries) run as the job runs it, against the stand-in API server
(tests/standin_apiserver.py: a loopback stand-in for the Kubernetes API, not a real
one) and a real git server on loopback (git http-backend, HTTP basic auth with the
token from the credentials directory, as the flowpol-git Secret provides it).

The segments are put where `flowpol collect` would write them (FLOWPOL_COLLECT=none);
collecting from recorders is tested with the agent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bank_scenario import write
from kustomize import render
from git_server import GitHttpServer, run_git
from git_sshd import GitSshServer
from standin_apiserver import StandInApiServer

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "recorder" / "deploy" / "components" / "tightening" / "tighten.sh"
ASSETS = REPO / "tests" / "generator" / "tighten" / "assets"
POLICY_PATH = "clusters/prod/policies"
TOKEN = "token-of-the-bot"


def policy_files(name: str) -> dict[str, str]:
    root = ASSETS / name
    return {f"{POLICY_PATH}/{f.relative_to(root)}": f.read_text()
            for f in sorted(root.rglob("*")) if f.is_file()}


def policy_objects(name: str) -> list[dict]:
    out = []
    for f in sorted((ASSETS / name).rglob("*")):
        if f.is_file():
            for d in yaml.safe_load_all(f.read_text()):
                out += d["items"] if d and d["kind"] == "List" else [d] if d else []
    return out


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    files = write(tmp_path_factory.mktemp("bank"))
    cluster = yaml.safe_load(files.cluster.read_text())
    return files, list(cluster["items"])


class Job:
    """One cluster (stand-in), one git server, and the job's script run like the CronJob
    runs it."""

    def __init__(self, tmp: Path, bank, live: str, repo_set: str, ssh: bool = False,
                 kustomization: bool = False):
        files, cluster_objects = bank
        self.tmp = tmp
        self.flows = files.flows
        self.api = StandInApiServer(cluster_objects + policy_objects(live))
        self.git = GitHttpServer(tmp / "git", user="flowpol-bot", token=TOKEN)
        self.repo_set = repo_set
        self.kustomization = kustomization
        self.credentials = tmp / "secret"
        self.sshd = GitSshServer(tmp / "sshd") if ssh else None

    def __enter__(self) -> "Job":
        self.api.__enter__()
        self.git.__enter__()
        files = policy_files(self.repo_set) | {"README.md": "policies of prod\n"}
        if self.kustomization:
            listed = sorted(n[len(POLICY_PATH) + 1:] for n in files if n.startswith(POLICY_PATH))
            files[f"{POLICY_PATH}/kustomization.yaml"] = (
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                "resources:\n" + "".join(f"  - {n}\n" for n in listed))
        bare = self.git.create_repo("policies.git", files)
        if self.sshd is not None:
            self.sshd.__enter__()
            self.sshd.write_credentials(self.credentials)
            self.remote = self.sshd.url(bare)
        else:
            self.credentials.mkdir()
            (self.credentials / "username").write_text("flowpol-bot")
            (self.credentials / "token").write_text(TOKEN + "\n")
            self.remote = self.git.url("policies.git")
        self.kubeconfig = self.api.kubeconfig_path(self.tmp)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sshd is not None:
            self.sshd.__exit__(*exc)
        self.git.__exit__(*exc)
        self.api.__exit__(*exc)

    def run(self, **settings: str) -> subprocess.CompletedProcess[str]:
        work = self.tmp / "work"
        shutil.rmtree(work, ignore_errors=True)  # an emptyDir: new for every job
        (work / "segments").mkdir(parents=True)
        shutil.copy(self.flows, work / "segments" / "segment-000001.jsonl")
        env = {
            "PATH": f"{self.tmp / 'bin'}:/usr/bin:/bin", "HOME": str(self.tmp),
            "KUBECONFIG": str(self.kubeconfig),
            "FLOWPOL_WORK": str(work), "FLOWPOL_COLLECT": "none",
            "FLOWPOL_GIT_REMOTE": self.remote, "FLOWPOL_GIT_BASE": "main",
            "FLOWPOL_GIT_PATH": POLICY_PATH, "FLOWPOL_BRANCH_PREFIX": "flowpol/tighten",
            "FLOWPOL_WINDOW": "2h", "FLOWPOL_MIN_OBSERVATION": "1h", "FLOWPOL_MIN_FLOWS": "1",
            "FLOWPOL_GIT_CREDENTIALS": str(self.credentials),
        }
        env.update(settings)
        # `flowpol` as the image has it: this tree's CLI.
        bin_dir = self.tmp / "bin"
        bin_dir.mkdir(exist_ok=True)
        launcher = bin_dir / "flowpol"
        launcher.write_text(f"#!/bin/sh\ncd {REPO} && exec {sys.executable} -m generator.cli.main "
                            "\"$@\"\n")
        launcher.chmod(0o755)
        return subprocess.run(["/bin/sh", str(SCRIPT)], env=env, capture_output=True,
                              text=True, timeout=600)


def test_job_pushes_one_branch_with_a_proposal_that_verifies_then_nothing(bank, tmp_path):
    with Job(tmp_path, bank, live="too-broad", repo_set="too-broad") as job:
        main_before = job.git.branches("policies.git")["main"]
        first = job.run()
        assert first.returncode == 0, first.stdout + first.stderr
        assert "Traceback" not in first.stderr
        branches = job.git.branches("policies.git")
        assert branches["main"] == main_before
        (branch,) = [b for b in branches if b != "main"]
        assert branch.startswith("flowpol/tighten/")
        assert f"pushed branch {branch}" in first.stdout
        assert len(job.git.pushes) == 1
        # Only changed policy files, in the repository's layout.
        changed = job.git.changed_files("policies.git", branch)
        assert changed and all(f.startswith(POLICY_PATH + "/") for f in changed)
        assert f"{POLICY_PATH}/shop/api-server.yaml" in changed
        message = job.git.log_message("policies.git", branch)
        assert message.startswith("flowpol: tighten NetworkPolicies in clusters/prod/policies")
        assert "\nChanges:\n- billing/db-ingress-only" in message
        assert "\n- shop/api-server (shop/api-server.yaml)\n  - remove-peer ingress[0].from[2]" in message
        assert "Evidence:\n" in message and "proposed set verified: 137 of 137" in message
        assert message.rstrip().endswith(f"Flowpol-Proposal: {branch.rsplit('/', 1)[1]}")
        # The branch's policies verify clean against the traffic.
        checkout = tmp_path / "checkout"
        run_git("clone", "--quiet", "--branch", branch, str(tmp_path / "git" / "policies.git"),
                str(checkout))
        assert "# ssh for debugging, from anywhere" not in \
            (checkout / POLICY_PATH / "shop" / "api-server.yaml").read_text()
        verify = subprocess.run(
            [sys.executable, "-m", "generator.cli.main", "verify", str(job.flows), "--snapshot",
             str(tmp_path / "work" / "cluster.json"), "-p", str(checkout / POLICY_PATH)],
            cwd=REPO, capture_output=True, text=True, timeout=300)
        assert verify.returncode == 0, verify.stdout + verify.stderr

        # The same traffic again: the same proposal, already on the remote.
        second = job.run()
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"already proposed: branch {branch} exists" in second.stdout
        assert job.git.branches("policies.git") == branches
        assert len(job.git.pushes) == 1


def test_job_pushes_nothing_when_nothing_changes(bank, tmp_path):
    with Job(tmp_path, bank, live="exact", repo_set="exact") as job:
        before = job.git.branches("policies.git")
        run = job.run()
        assert run.returncode == 0, run.stdout + run.stderr
        assert "nothing to propose" in run.stdout
        assert job.git.branches("policies.git") == before and job.git.pushes == []


def test_job_proposes_nothing_when_the_repository_is_not_what_runs(bank, tmp_path):
    with Job(tmp_path, bank, live="exact", repo_set="too-broad") as job:
        before = job.git.branches("policies.git")
        run = job.run()
        assert run.returncode == 1, run.stdout + run.stderr
        assert "NOT PROPOSED: the policies in" in run.stdout
        assert "shop/web-extra: in the repository" in run.stdout
        assert job.git.branches("policies.git") == before and job.git.pushes == []


def test_job_with_a_wrong_token_fails_with_git_s_message(bank, tmp_path):
    with Job(tmp_path, bank, live="exact", repo_set="exact") as job:
        (job.credentials / "token").write_text("Zq9-not-the-token")
        run = job.run()
        assert run.returncode == 2
        assert "Traceback" not in run.stderr
        assert "\nflowpol: error: git clone failed: fatal: Authentication failed" in run.stderr
        assert "Zq9-not-the-token" not in run.stderr + run.stdout
        assert job.git.unauthorized >= 1


def test_job_refuses_to_run_without_a_remote(tmp_path):
    run = subprocess.run(["/bin/sh", str(SCRIPT)], env={"PATH": "/usr/bin:/bin",
                                                        "FLOWPOL_WORK": str(tmp_path)},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "set FLOWPOL_GIT_REMOTE" in run.stderr


@pytest.mark.root
def test_job_pushes_over_ssh_with_the_key_and_host_keys_of_the_secret(bank, tmp_path):
    # sshd on loopback (root): the deploy key and known_hosts as the Secret provides them.
    with Job(tmp_path, bank, live="too-broad", repo_set="too-broad", ssh=True) as job:
        first = job.run()
        assert first.returncode == 0, first.stdout + first.stderr
        (branch,) = [b for b in job.git.branches("policies.git") if b != "main"]
        assert f"pushed branch {branch}" in first.stdout
        assert f"{POLICY_PATH}/shop/api-server.yaml" in job.git.changed_files("policies.git", branch)
        second = job.run()
        assert second.returncode == 0 and "already proposed" in second.stdout
        # A host key other than the one in known_hosts: ssh refuses, nothing is pushed.
        (job.credentials / "known_hosts").write_text(
            (job.credentials / "known_hosts").read_text().split(" ")[0]
            + " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBr0p2x1bqP0c5a8j9o6Yw1n1bQ8N0Y0k7H2o3a0c1d2\n")
        spoofed = job.run()
        assert spoofed.returncode == 2 and "git clone failed" in spoofed.stderr
        assert "Host key verification failed" in spoofed.stderr


def test_new_policies_are_added_to_the_repository_s_kustomization(bank, tmp_path):
    # The too narrow set denies observed connections: the proposal adds rules and a new
    # policy file, which must be applied with the rest.
    with Job(tmp_path, bank, live="too-narrow", repo_set="too-narrow", kustomization=True) as job:
        run = job.run()
        assert run.returncode == 0, run.stdout + run.stderr
        (branch,) = [b for b in job.git.branches("policies.git") if b != "main"]
        changed = job.git.changed_files("policies.git", branch)
        assert f"{POLICY_PATH}/flowpol-added-shop.yaml" in changed
        assert f"{POLICY_PATH}/kustomization.yaml" in changed
        assert "To do before merging" not in job.git.log_message("policies.git", branch)
        checkout = tmp_path / "checkout"
        run_git("clone", "--quiet", "--branch", branch, str(tmp_path / "git" / "policies.git"),
                str(checkout))
        # What kustomize applies from the branch is the proposed set, and it verifies.
        rendered = render(checkout / POLICY_PATH)
        assert {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in rendered
                if d["kind"] == "NetworkPolicy"} >= {("shop", n) for n in
                                                     _names(checkout / POLICY_PATH / "flowpol-added-shop.yaml")}
        applied = tmp_path / "applied.yaml"
        applied.write_text(yaml.safe_dump_all(rendered))
        verify = subprocess.run(
            [sys.executable, "-m", "generator.cli.main", "verify", str(job.flows), "--snapshot",
             str(tmp_path / "work" / "cluster.json"), "-p", str(applied)],
            cwd=REPO, capture_output=True, text=True, timeout=300)
        assert verify.returncode == 0, verify.stdout + verify.stderr


def _names(path: Path) -> set[str]:
    return {d["metadata"]["name"] for d in yaml.safe_load_all(path.read_text()) if d}
