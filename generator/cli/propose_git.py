"""`flowpol propose-git`: `flowpol diff` against the policies of a git repository (which
must be the live ones), and the proposal pushed as a branch when it changes something.

Exit 0 when it pushed the proposal, had nothing to propose, or the remote has the
proposal's branch already; 1 when the repository's policies are not the cluster's
(nothing proposed); 2 on usage, input or git errors (after bad input, as with `diff`,
the proposal from every valid record is pushed first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from generator.cli.command import FlowpolCommand
from generator.cli.common import (
    OLD_OUT_SPELLINGS, DumpTime, FlowInputs, IncludeDropped, InputFormat, KubeContext,
    Kubeconfig, MinFlows, MinObservation, SnapshotFiles, Strict, parse_duration, read_options,
    reading_progress, say, thresholds,
)
from recorder.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("propose-git", cls=FlowpolCommand.with_aliases(OLD_OUT_SPELLINGS))(propose_git)


def propose_git(
    inputs: FlowInputs,
    snapshot: SnapshotFiles,
    out: Path = typer.Option(..., "--out", metavar="DIR",
                             help="Working directory: the clone (repo/) and the diff "
                                  "(proposal/); emptied on every run."),
    remote: str = typer.Option(..., "--remote", metavar="URL",
                               help="The git repository holding the NetworkPolicies."),
    base: str = typer.Option("main", "--base", metavar="BRANCH",
                             help="Its branch the proposal starts from."),
    path: str = typer.Option(".", "--path", metavar="DIR",
                             help="Directory of the policies inside the repository."),
    branch_prefix: str = typer.Option(
        "flowpol/tighten", "--branch-prefix", metavar="PREFIX",
        help="The proposal is pushed as PREFIX/<proposal id>."),
    credentials: Optional[Path] = typer.Option(
        None, "--credentials", metavar="DIR",
        help="Directory with the git Secret's files: ssh-privatekey and known_hosts, or "
             "token (or username and password) for https."),
    author: str = typer.Option("flowpol <flowpol@localhost>", "--author",
                               metavar="'NAME <EMAIL>'", help="Author of the commit."),
    no_push: bool = typer.Option(False, "--no-push",
                                 help="Do everything but the push (the commit is not made)."),
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    min_observation: MinObservation = "7d",
    min_flows: MinFlows = 1,
    window: Optional[str] = typer.Option(
        None, "--window", metavar="DURATION",
        help="Count as use only connections in the last DURATION of the recording."),
    fmt: InputFormat = None,
    include_dropped: IncludeDropped = False,
    strict: Strict = False,
    dump_time: DumpTime = None,
    check_remote: bool = typer.Option(
        False, "--check-remote",
        help="Only check, before the rest: does git reach --remote with --credentials, "
             "and has it --base? (git ls-remote; nothing is read, cloned or pushed, INPUT "
             "need not exist yet.) Exit 0 or 2."),
) -> None:
    """Tighten the NetworkPolicies kept in a git repository: diff them (they must be the
    cluster's) against the traffic in INPUT and push the proposal as a new branch, once."""
    from generator.pipeline import raise_for_bad_input
    from generator.tighten.propose_git import GitTarget, result_lines, run_propose
    from generator.tighten.run import DiffRequest

    if check_remote:
        _check_remote(remote, base, credentials)
        return
    name, sep, email = author.rpartition(" <")
    if not sep or not email.endswith(">") or not name.strip():
        raise UsageError(f"--author {author!r}: give 'NAME <EMAIL>'")
    target = GitTarget(remote=remote, base=base, path=path, branch_prefix=branch_prefix,
                       credentials=credentials, author=(name.strip(), email[:-1]),
                       push=not no_push)
    with reading_progress(inputs) as watcher:
        request = DiffRequest(
            inputs=list(inputs), snapshot=list(snapshot), out_dir=out, fmt=fmt, strict=strict,
            read_options=read_options(include_dropped, dump_time, watcher),
            thresholds=thresholds(min_observation, min_flows),
            window_ns=parse_duration(window, "--window") if window else None)
        result = run_propose(request, target, kubeconfig, context)
    say(result_lines(result, target))
    if result.diff is not None:
        raise_for_bad_input(result.diff.observed.read, result.diff.observed.unreadable,
                            f"the proposal in {out}")
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _check_remote(remote: str, base: str, credentials: Optional[Path]) -> None:
    import tempfile

    from generator.tighten import gitrepo

    with tempfile.TemporaryDirectory(prefix="flowpol-git-") as scratch:
        access = gitrepo.prepare_access(credentials, Path(scratch) / "access")
        gitrepo.check_remote(access, remote, base)
    say([f"git reaches {remote} (branch {base})"
         + (f" with the credentials in {credentials}" if credentials else "")])
