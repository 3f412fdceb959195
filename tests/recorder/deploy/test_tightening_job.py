"""The tightening CronJob's command (components/tightening/tighten.sh, the file its
ConfigMap carries) run as the job runs it, against the stand-in API server
(tests/standin_apiserver.py: a loopback stand-in for the Kubernetes API, not a real
one), a recorder's real HTTP endpoint on a loopback address (serving the scenario's
traffic as segments, reviewing tokens with the stand-in) and a real git server on
loopback (git http-backend, HTTP basic auth with the token from the credentials
directory, as the flowpol-git Secret provides it).

The job checks the remote first, then runs the real `flowpol collect` (--direct from the
recorder pod's address, or through the stand-in's pod proxy) with its ServiceAccount's
token for the recorders (FLOWPOL_TOKEN_FILE, as the projected volume provides it) and
--since FLOWPOL_COLLECT_SINCE."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import k8s_objects as k
from bank_scenario import write
from kustomize import render
from git_server import GitHttpServer, run_git
from git_sshd import GitSshServer
from reader_tokens import NS, reader_accounts
from standin_apiserver import StandInApiServer, issue_token

from recorder.agent.metrics import MetricsSnapshot, registry
from recorder.agent.readers import AUDIENCE, ApiTokenReview, SegmentReaders, parse_readers
from recorder.agent.segments import SegmentWriter
from recorder.agent.serve import AgentHttpServer
from recorder.report import ReadReport
from recorder.schema import FlowLogHeader, FlowRecord
from recorder.sources import read_inputs
from recorder.timefmt import parse_time

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "recorder" / "deploy" / "components" / "tightening" / "tighten.sh"
ASSETS = REPO / "tests" / "generator" / "tighten" / "assets"
POLICY_PATH = "clusters/prod/policies"
TOKEN = "token-of-the-bot"
JOB_SA = "flowpol-tightening"
RECORDER_POD = "flowpol-recorder-x7k2p"
# The scenario's traffic is from 2026-11-20; a segment from before this is not collected.
SINCE = "2026-11-19T00:00:00Z"
OLD = parse_time("2026-11-01T00:00:00Z")
# The readers the tightening component gives the DaemonSet (segment-readers.yaml).
READERS = f"{NS}/flowpol-collector,{NS}/{JOB_SA}"


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
        # The recorder pod: hostNetwork, its address a loopback one of its own.
        self.recorder_ip = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}." \
                           f"{random.randint(1, 254)}"
        recorder = k.pod(RECORDER_POD, NS, node="node-a", host_network=True,
                         ip=self.recorder_ip, labels={"app.kubernetes.io/name": "flowpol-recorder"})
        self.api = StandInApiServer(cluster_objects + policy_objects(live) + reader_accounts()
                                    + [k.obj("ServiceAccount", JOB_SA, NS), recorder])
        self.git = GitHttpServer(tmp / "git", user="flowpol-bot", token=TOKEN)
        self.repo_set = repo_set
        self.kustomization = kustomization
        self.credentials = tmp / "secret"
        self.sshd = GitSshServer(tmp / "sshd") if ssh else None

    def __enter__(self) -> "Job":
        self.api.__enter__()
        self._start_recorder()
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

    def _start_recorder(self) -> None:
        """The recorder's HTTP endpoint at the pod's address, serving an old segment and
        the scenario's traffic as a second one; tokens reviewed by the stand-in."""
        self.segments = SegmentWriter(self.tmp / "node-segments", FlowLogHeader(node="node-a"))
        self.segments.open()
        self.old_segment = self.segments.write(
            [FlowRecord(OLD, OLD, "TCP", "10.244.9.9", "10.244.9.8", 8080)], OLD).name
        records = list(read_inputs([str(self.flows)], ReadReport(strict=True)))
        self.segments.write(records, min(r.first_seen for r in records))
        readers = SegmentReaders(parse_readers(READERS), ApiTokenReview(
            str(self.api.kubeconfig_path(self.tmp, filename="recorder-kubeconfig"))))
        self.recorder = AgentHttpServer((self.recorder_ip, 9401), self.segments, readers,
                                        registry(MetricsSnapshot), lambda: True)
        self.recorder.start()
        self.token_file = self.tmp / "recorder-token"  # the projected volume's file
        self.token_file.write_text(issue_token(self.api, NS, JOB_SA, [AUDIENCE], 600))

    def __exit__(self, *exc: object) -> None:
        if self.sshd is not None:
            self.sshd.__exit__(*exc)
        self.git.__exit__(*exc)
        self.recorder.stop()
        self.api.__exit__(*exc)

    def collected(self) -> list[str]:
        return sorted(p.relative_to(self.tmp / "work" / "segments").as_posix()
                      for p in (self.tmp / "work" / "segments").rglob("flows-*"))

    def run(self, **settings: str) -> subprocess.CompletedProcess[str]:
        work = self.tmp / "work"
        shutil.rmtree(work, ignore_errors=True)  # an emptyDir: new for every job
        env = {
            "PATH": f"{self.tmp / 'bin'}:/usr/bin:/bin", "HOME": str(self.tmp),
            "KUBECONFIG": str(self.kubeconfig), "FLOWPOL_NAMESPACE": NS,
            "FLOWPOL_WORK": str(work), "FLOWPOL_COLLECT": "direct",
            "FLOWPOL_COLLECT_SINCE": SINCE, "FLOWPOL_TOKEN_FILE": str(self.token_file),
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
        # collect --direct with the job's token: the segment of the scenario, not the one
        # from before FLOWPOL_COLLECT_SINCE.
        assert "collected 1 new segment(s)" in first.stdout and "1 older than --since" in \
            first.stdout
        (collected,) = job.collected()
        assert collected.startswith(f"node-a/{RECORDER_POD}/flows-00000001-")
        assert job.recorder.readers.refused == dict.fromkeys(job.recorder.readers.refused, 0)
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
        assert "Evidence:\n" in message and "proposed set verified: 137 observed connections" in message
        assert "137 allowed, 0 denied" in message
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
    # Collecting through the API server's pod proxy this time.
    with Job(tmp_path, bank, live="exact", repo_set="exact") as job:
        before = job.git.branches("policies.git")
        run = job.run(FLOWPOL_COLLECT="proxy")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "collected 1 new segment(s)" in run.stdout
        assert [r.path for r in job.api.requests if "/proxy/segments/" in r.path] == [
            f"/api/v1/namespaces/{NS}/pods/{RECORDER_POD}:9401/proxy/segments/"
            + job.collected()[0].rsplit("/", 1)[1]]
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


def test_job_with_a_wrong_token_fails_with_git_s_message_before_collecting(bank, tmp_path):
    with Job(tmp_path, bank, live="exact", repo_set="exact") as job:
        (job.credentials / "token").write_text("Zq9-not-the-token")
        run = job.run()
        assert run.returncode == 2
        assert "Traceback" not in run.stderr
        assert "flowpol: error: git ls-remote failed: fatal: Authentication failed" in run.stderr
        assert "Zq9-not-the-token" not in run.stderr + run.stdout
        assert job.git.unauthorized >= 1
        # Nothing else was done: no pod list, no segment fetched.
        assert not job.api.requests_for("pods") and not (tmp_path / "work" / "segments").exists()
        # A wrong base branch is found as early.
        (job.credentials / "token").write_text(TOKEN)
        run = job.run(FLOWPOL_GIT_BASE="mian")
        assert run.returncode == 2 and "has no branch 'mian'; fix --base" in run.stderr
        assert not job.api.requests_for("pods")


def test_job_whose_token_the_recorders_refuse_pushes_nothing(bank, tmp_path):
    with Job(tmp_path, bank, live="too-broad", repo_set="too-broad") as job:
        # A token of its ServiceAccount, but for the API server (a projected volume
        # without audience: flowpol-recorder).
        job.token_file.write_text(issue_token(job.api, NS, JOB_SA))
        run = job.run()
        assert run.returncode == 2 and "Traceback" not in run.stderr
        assert f"the recorder {NS}/{RECORDER_POD} refused the token in {job.token_file}" in \
            run.stderr
        assert job.recorder.readers.refused["unauthenticated"] == 1
        assert job.collected() == [] and job.git.pushes == []


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
        assert spoofed.returncode == 2 and "git ls-remote failed" in spoofed.stderr
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
