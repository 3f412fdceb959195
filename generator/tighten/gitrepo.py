"""The real ``git`` for `flowpol propose-git`: clone, look up a remote branch, commit, push.

Credentials come from a directory holding the files of a Kubernetes Secret (mounted
as a volume), in either of the two shapes Kubernetes defines for them:

- ``ssh-privatekey`` (a ``kubernetes.io/ssh-auth`` Secret) and ``known_hosts``: ssh
  reads a private copy of the key and trusts only the listed host keys;
- ``token``, or ``password`` with ``username`` (``kubernetes.io/basic-auth``), for an
  https:// remote: git asks a credential helper that reads the files. The username
  defaults to ``x-access-token``, which GitHub and Gitea accept with a token.

Nothing secret is put on a command line, in a URL or in the environment; git never
prompts (it fails instead), and neither the system's nor the user's git configuration
is read, so the same command behaves the same everywhere.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from recorder.errors import FlowpolError, UsageError

DEFAULT_TOKEN_USER = "x-access-token"
SSH_KEY = "ssh-privatekey"
KNOWN_HOSTS = "known_hosts"
TOKEN_FILES = ("token", "password")
TIMEOUT_S = 600


class GitError(FlowpolError):
    """A git command failed (remote unreachable, authentication, rejected push)."""


@dataclass(frozen=True, slots=True)
class GitAccess:
    """How to reach the remote: the environment every git command gets."""

    env: dict[str, str] = field(default_factory=dict)
    method: str = "none"  # "ssh", "token" or "none"


def prepare_access(credentials: Path | None, scratch: Path) -> GitAccess:
    """The access the files in ``credentials`` give; helper files go to ``scratch``
    (created private; the caller removes it)."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LC_ALL": "C",
        # ssh must never ask either (no credentials: fail, not hang).
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
    }
    if credentials is None:
        return GitAccess(env, "none")
    if not credentials.is_dir():
        raise UsageError(f"--credentials {credentials}: not a directory; give the directory "
                         "where the git Secret is mounted")
    scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = credentials / SSH_KEY
    if key.is_file():
        known = credentials / KNOWN_HOSTS
        if not known.is_file():
            raise UsageError(f"--credentials {credentials}: {SSH_KEY} without {KNOWN_HOSTS}; add "
                             "the remote's host keys (ssh-keyscan HOST) to the Secret as "
                             f"{KNOWN_HOSTS}, so that ssh can check whom it talks to")
        # ssh refuses a key others may read; the mounted file is group-readable.
        private = scratch / "id"
        private.write_bytes(key.read_bytes())
        private.chmod(0o600)
        env["GIT_SSH_COMMAND"] = " ".join([
            "ssh", "-i", shlex.quote(str(private)), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=" + shlex.quote(str(known))])
        return GitAccess(env, "ssh")
    token = next((credentials / n for n in TOKEN_FILES if (credentials / n).is_file()), None)
    if token is None:
        raise UsageError(f"--credentials {credentials}: holds neither {SSH_KEY} (ssh) nor "
                         f"{' nor '.join(TOKEN_FILES)} (https); see the deploy README, "
                         "\"Periodic tightening\"")
    for f in (token, credentials / "username"):
        if f.is_file() and "\n" in f.read_text(errors="replace").strip("\n"):
            raise UsageError(f"--credentials {credentials}: {f.name} holds more than one line")
    user = credentials / "username"
    user_line = (f"printf 'username=%s\\n' \"$(cat {shlex.quote(str(user))})\"" if user.is_file()
                 else f"printf 'username={DEFAULT_TOKEN_USER}\\n'")
    helper = scratch / "credential-helper"
    helper.write_text("#!/bin/sh\n"
                      "# git credential helper of flowpol propose-git: answers 'get' only.\n"
                      "[ \"$1\" = get ] || exit 0\n"
                      f"{user_line}\n"
                      f"printf 'password=%s\\n' \"$(cat {shlex.quote(str(token))})\"\n")
    helper.chmod(0o700)
    # An empty value first clears any helper configured elsewhere.
    env.update({"GIT_CONFIG_COUNT": "2",
                "GIT_CONFIG_KEY_0": "credential.helper", "GIT_CONFIG_VALUE_0": "",
                "GIT_CONFIG_KEY_1": "credential.helper", "GIT_CONFIG_VALUE_1": str(helper)})
    return GitAccess(env, "token")


def git(access: GitAccess, *args: str, cwd: Path | None = None) -> str:
    """Run git; its stdout, or GitError with what it said."""
    exe = shutil.which("git")
    if exe is None:
        raise GitError("git is not installed; flowpol propose-git runs the git command")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(access.env)
    try:
        done = subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} did not finish within {TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise GitError(f"git {args[0]} failed: {_what_git_said(done.stderr, done.returncode)}")
    return done.stdout


def _what_git_said(stderr: str, code: int) -> str:
    """The lines that say what went wrong (ssh's host-key banner and git's advice
    around them left out)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    telling = [line for line in lines
               if line.startswith(("fatal:", "error:", "remote:", "! ["))
               or any(w in line.lower() for w in ("failed", "denied", "refused", "rejected"))]
    return " ".join((telling or lines)[-4:]) or f"exit {code}"


def clone(access: GitAccess, remote: str, branch: str, dest: Path) -> None:
    """A shallow clone of ``branch`` only."""
    git(access, "clone", "--quiet", "--depth", "1", "--single-branch", "--branch", branch,
        "--", remote, str(dest))


def remote_branch_exists(access: GitAccess, repo: Path, branch: str) -> bool:
    out = git(access, "ls-remote", "--heads", "origin", f"refs/heads/{branch}", cwd=repo)
    return any(line.endswith(f"\trefs/heads/{branch}") for line in out.splitlines())


def check_remote(access: GitAccess, remote: str, branch: str) -> None:
    """Can git reach ``remote`` with this access, and has it ``branch``? (``git
    ls-remote``: nothing is fetched.) GitError with git's words otherwise."""
    out = git(access, "ls-remote", "--heads", "--", remote, f"refs/heads/{branch}")
    if not any(line.endswith(f"\trefs/heads/{branch}") for line in out.splitlines()):
        raise GitError(f"{remote} has no branch {branch!r}; fix --base")


def check_branch_name(access: GitAccess, branch: str) -> None:
    try:
        git(access, "check-ref-format", "--branch", branch)
    except GitError:
        raise UsageError(f"{branch!r} is not a valid git branch name; fix --branch-prefix") \
            from None


def commit_and_push(access: GitAccess, repo: Path, paths: list[str], message: str,
                    branch: str, author: tuple[str, str]) -> str:
    """Commit ``paths`` (relative to ``repo``) with ``message`` and push the commit as
    the new branch ``branch`` (never forced). Returns the commit id."""
    name, email = author
    who = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
           "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    with_author = GitAccess({**access.env, **who}, access.method)
    git(with_author, "add", "--", *paths, cwd=repo)
    message_file = repo / ".git" / "FLOWPOL_MESSAGE"
    message_file.write_text(message)
    git(with_author, "commit", "--quiet", "--no-verify", "--file", str(message_file), cwd=repo)
    commit = git(access, "rev-parse", "HEAD", cwd=repo).strip()
    git(access, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=repo)
    return commit
