"""`flowpol propose-git` as a function: the tightening of `flowpol diff`, proposed as a
branch of the git repository that holds the policies.

1. Clone the base branch of the remote (shallow) into ``OUT/repo``.
2. The policies under ``--path`` in it are the existing set, so the proposal keeps the
   repository's layout: the same files, edited in place (comments kept), and new
   policies in ``flowpol-added-<namespace>.yaml`` beside them. They must be the live
   ones: for every namespace the repository has policies for, the cluster's
   NetworkPolicies must be the same (compared as the API server reads them: defaults
   such as ``protocol: TCP`` or inferred ``policyTypes`` do not count as a change).
   Otherwise the recording was made under other policies than the ones the proposal
   would edit, and nothing is proposed (exit 1, the differences listed).
3. ``flowpol diff`` against them (``OUT/proposal``: proposed files, report, diff.json).
4. Nothing to push when no file changes, or when the proposed set would deny an
   observed connection (exit 1; it cannot: the proposal keeps every observed
   connection, and this is checked rather than assumed).
5. The proposal's id is a hash of the proposed policy objects of the changed files
   (comments and evidence counts left out). Its branch, ``PREFIX/<id>``, is pushed
   unless the remote has it already: the same proposal is never pushed twice, however
   often the job runs, as long as its branch stays on the remote.
6. The commit holds only the changed policy files (and, for a new file, the
   kustomization beside it with the file added to its resources); its message is the
   change list and the evidence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from generator.output.files import atomic_write, replace_owned_dir
from generator.output.plaintext import one_line
from generator.tighten import gitrepo
from generator.tighten.existing import (
    YAML_LOADER, ExistingSet, clean_live_object, existing_from_files, policy_key,
)
from generator.tighten.run import DiffRequest, DiffResult, run_diff, summary_lines
from generator.verify.policy import NetworkPolicy, parse_policy
from recorder.errors import InputError, UsageError

MARKER = ".flowpol-propose-git"
ID_LENGTH = 16
MAX_CHANGES_LISTED = 200
TRAILER = "Flowpol-Proposal"

PUSHED = "pushed"
WOULD_PUSH = "would-push"  # --no-push
ALREADY_PROPOSED = "already-proposed"
NO_CHANGE = "no-change"
DRIFT = "drift"
WOULD_DENY = "would-deny"


@dataclass(frozen=True, slots=True)
class GitTarget:
    remote: str
    base: str = "main"
    path: str = "."
    branch_prefix: str = "flowpol/tighten"
    credentials: Path | None = None
    author: tuple[str, str] = ("flowpol", "flowpol@localhost")
    push: bool = True


@dataclass(frozen=True, slots=True)
class ProposeResult:
    outcome: str
    diff: DiffResult | None = None
    drift: tuple[str, ...] = ()
    proposal_id: str | None = None
    branch: str | None = None
    commit: str | None = None
    changed_files: tuple[str, ...] = ()  # relative to the repository's root

    @property
    def exit_code(self) -> int:
        return 1 if self.outcome in (DRIFT, WOULD_DENY) else 0


# ---------------------------------------------------------------- drift


def _semantic(p: NetworkPolicy) -> NetworkPolicy:
    return dataclasses.replace(p, path=None, line=None, policy_types_explicit=False)


def drift(repo: ExistingSet, live_objects: list[dict]) -> tuple[str, ...]:
    """How the repository's policies differ from the cluster's, in the namespaces the
    repository has policies for (empty: the same)."""
    namespaces = {p.policy.namespace for p in repo.policies}
    live: dict[str, NetworkPolicy] = {}
    for obj in live_objects:
        if (obj.get("metadata") or {}).get("namespace") in namespaces:
            live[policy_key(obj)] = parse_policy(clean_live_object(obj), "cluster")
    mine = {p.policy.id: p.policy for p in repo.policies}
    lines = []
    for key in sorted(set(live) | set(mine)):
        if key not in mine:
            lines.append(f"{key}: in the cluster, not in the repository")
        elif key not in live:
            lines.append(f"{key}: in the repository ({mine[key].path}), not in the cluster "
                         "(not applied yet?)")
        elif _semantic(mine[key]) != _semantic(live[key]):
            lines.append(f"{key}: the repository's ({mine[key].path}) differs from the "
                         "cluster's")
    return tuple(lines)


# ---------------------------------------------------------------- the proposal


def _objects(text: str) -> list[Any]:
    return [d for d in yaml.load_all(text, Loader=YAML_LOADER) if d is not None]


def proposal_id(changed: list[tuple[str, str]]) -> str:
    """Hash of (file name, policy objects) of the changed files: the same policies give
    the same id whatever the comments and evidence counts say."""
    canonical = json.dumps([[name, _objects(text)] for name, text in sorted(changed)],
                           sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:ID_LENGTH]


def commit_message(diff: DiffResult, path: str, pid: str, todo: list[str] = ()) -> str:
    pr = diff.proposal
    changed = [p for p in pr.policies if p.changed]
    where = "" if path in (".", "") else f" in {path}"
    lines = [f"flowpol: tighten NetworkPolicies{where} ({len(changed)} of "
             f"{len(pr.policies)} change)", "",
             "Proposed by flowpol propose-git from the traffic the recorders observed.",
             "The branch holds the proposed policy files; this message lists every",
             "change and the evidence.", "", "Changes:"]
    listed = 0
    for p in changed:
        lines.append(f"- {p.id} ({p.file})" + (" (new)" if p.existing is None else ""))
        for c in p.changes:
            if c.action == "keep":
                continue
            listed += 1
            if listed > MAX_CHANGES_LISTED:
                continue
            ref = f" {c.ref}" if c.ref else ""
            lines.append(f"  - {c.action}{ref}: {c.what}" + (f" ({c.why})" if c.why else ""))
    if listed > MAX_CHANGES_LISTED:
        lines.append(f"  ... {listed - MAX_CHANGES_LISTED} more change(s): see report.md of "
                     "the job's flowpol diff")
    if todo:
        lines += ["", "To do before merging (flowpol could not edit these safely):"]
        lines += [f"- {t}" for t in todo]
    lines += ["", "Evidence:"]
    lines += [line for line in summary_lines(diff) if not line.startswith("wrote ")]
    lines += ["", f"{TRAILER}: {pid}"]
    # Names in the message come from the inputs: none may start a line of its own (a
    # fake trailer) or hold a control character.
    return "\n".join(one_line(line) for line in lines) + "\n"


def _inside(root: Path, relative: str) -> Path:
    """``root/relative``, refused when it would leave ``root`` (``..``, an absolute name,
    a symbolic link in the checkout pointing elsewhere)."""
    target = root / relative
    real_root = root.resolve()
    parent = target.parent.resolve()
    if Path(relative).is_absolute() or not (parent == real_root or real_root in parent.parents):
        raise InputError(f"{relative!r} would be written outside {root}; not proposing it")
    if target.is_symlink():
        raise InputError(f"{relative!r} is a symbolic link in the repository; not proposing "
                         "over it")
    return target


# ---------------------------------------------------------------- kustomization


KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def add_to_kustomization(directory: Path, name: str) -> tuple[Path | None, str | None]:
    """Add the new file ``name`` to the ``resources`` of the kustomization in
    ``directory``, so that whatever applies the repository applies it too: one line
    inserted after the block list's last item, and the text parsed again must be the
    old kustomization with that one resource more. Returns (the kustomization written,
    None), (None, None) when there is none, or (None, what the reviewer must do)."""
    path = next((directory / k for k in KUSTOMIZATIONS if (directory / k).is_file()), None)
    if path is None:
        return None, None
    todo = f"add {name} to the resources of {path.name}"
    text = path.read_text(encoding="utf-8")
    try:
        old = yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError:
        return None, todo
    resources = old.get("resources") if isinstance(old, dict) else None
    if not isinstance(resources, list):
        return None, todo
    if name in resources:
        return None, None
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "resources:"), None)
    if start is None:
        return None, todo
    last, indent = None, None
    for i in range(start + 1, len(lines)):
        stripped = lines[i].lstrip(" ")
        depth = len(lines[i]) - len(stripped)
        if not stripped.strip() or stripped.startswith("#"):
            continue
        if stripped.startswith("- ") and depth == (depth if indent is None else indent):
            indent, last = depth, i
        elif indent is None or depth <= indent:
            break  # the next key (or a flow-style list: not edited)
    if last is None:
        return None, todo
    if not lines[last].endswith("\n"):
        lines[last] += "\n"
    plain = all(c.isalnum() or c in "._/-" for c in name) and name[0].isalnum()
    lines.insert(last + 1, " " * indent + "- " + (name if plain else json.dumps(name)) + "\n")
    new = "".join(lines)
    try:
        parsed = yaml.load(new, Loader=YAML_LOADER)
    except yaml.YAMLError:
        return None, todo
    if parsed != {**old, "resources": resources + [name]}:
        return None, todo
    atomic_write(path, new)
    return path, None


# ---------------------------------------------------------------- run


def run_propose(req: DiffRequest, target: GitTarget, kubeconfig: str | None,
                context: str | None) -> ProposeResult:
    """``req.out_dir`` is OUT: emptied on every run (a directory propose-git wrote
    before, or a new one)."""
    from generator.inventory.live import read_network_policies

    out = req.out_dir
    replace_owned_dir(out, MARKER, "propose-git",
                      f"--out {out} exists and is not a directory",
                      f"--out {out} exists and was not written by flowpol propose-git; give "
                      "another --out or remove it")
    access = gitrepo.prepare_access(target.credentials, out / ".access")
    try:
        gitrepo.check_branch_name(access, f"{target.branch_prefix}/0")
        repo = out / "repo"
        gitrepo.clone(access, target.remote, target.base, repo)
        policy_dir = _inside(repo, target.path) if target.path not in ("", ".") else repo
        if not policy_dir.is_dir():
            raise UsageError(f"--path {target.path}: no such directory in {target.remote} "
                             f"({target.base})")
        existing = existing_from_files([str(policy_dir)], req.strict)
        live = read_network_policies(kubeconfig=kubeconfig, context=context)
        differences = drift(existing, live.items)
        if differences:
            return ProposeResult(DRIFT, drift=differences)
        diff = run_diff(dataclasses.replace(req, out_dir=out / "proposal"), existing)
        changed = [f for f in diff.files if f.changed]
        if not changed:
            return ProposeResult(NO_CHANGE, diff)
        if diff.verification.denied:
            return ProposeResult(WOULD_DENY, diff)
        pid = proposal_id([(f.name, f.new) for f in changed])
        branch = f"{target.branch_prefix}/{pid}"
        prefix = "" if policy_dir == repo else target.path.strip("/") + "/"
        names = tuple(prefix + f.name for f in changed)
        if gitrepo.remote_branch_exists(access, repo, branch):
            return ProposeResult(ALREADY_PROPOSED, diff, (), pid, branch, None, names)
        todo: list[str] = []
        for f in changed:
            path = _inside(policy_dir, f.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, f.new)
            if f.old is None:
                edited, note = add_to_kustomization(path.parent, path.name)
                if edited is not None:
                    names += (str(edited.relative_to(repo)),)
                if note is not None:
                    todo.append(f"{path.parent.relative_to(repo)}: {note}")
        if not target.push:
            return ProposeResult(WOULD_PUSH, diff, (), pid, branch, None, names)
        commit = gitrepo.commit_and_push(access, repo, list(names),
                                         commit_message(diff, target.path, pid, todo), branch,
                                         target.author)
        return ProposeResult(PUSHED, diff, (), pid, branch, commit, names)
    finally:
        shutil.rmtree(out / ".access", ignore_errors=True)


def result_lines(r: ProposeResult, target: GitTarget) -> list[str]:
    lines = list(summary_lines(r.diff)) if r.diff is not None else []
    where = f"{target.remote} ({target.base}, {target.path})"
    if r.outcome == DRIFT:
        lines.append(f"NOT PROPOSED: the policies in {where} are not the cluster's:")
        lines += [f"  {d}" for d in r.drift]
        lines.append("  apply the repository (or commit what the cluster runs), then run again")
    elif r.outcome == NO_CHANGE:
        lines.append(f"nothing to propose: the policies in {where} are what the traffic needs; "
                     "nothing pushed")
    elif r.outcome == WOULD_DENY:
        lines.append("NOT PROPOSED: the proposed set would deny observed connections (see the "
                     "report); nothing pushed")
    elif r.outcome == ALREADY_PROPOSED:
        lines.append(f"already proposed: branch {r.branch} exists on the remote; nothing pushed")
    elif r.outcome == WOULD_PUSH:
        lines.append(f"would push branch {r.branch} ({len(r.changed_files)} file(s): "
                     f"{', '.join(r.changed_files)}); --no-push given")
    else:
        lines.append(f"pushed branch {r.branch} (commit {r.commit[:12]}, "
                     f"{len(r.changed_files)} file(s): {', '.join(r.changed_files)})")
    return lines
