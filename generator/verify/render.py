"""What `flowpol verify` prints: a concise terminal summary, or one JSON document.

Both are deterministic: groups, rules and entries come in a fixed order and no field
depends on when or where the command ran.
"""

from __future__ import annotations

from pathlib import Path

from generator.verify.check import (
    CheckedGroup, group_detail_dict, verification_dict, verification_text,
)
from generator.output.report import unresolved_summary
from generator.verify.declared import DeclaredCheck, DeclaredVerdict
from generator.verify.run import VerifyResult
from generator.verify.usage import EntryUse, RuleUse, UsageResult
from recorder.timefmt import format_time

JSON_VERSION = 1
MAX_EXAMPLES = 5


def _when(ns: int) -> str:
    return format_time(ns)[:19] + "Z"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} " + (word if n == 1 else plural or word + "s")


# ---------------------------------------------------------------- JSON


def _rule_dict(r: RuleUse) -> dict:
    return {"policy": r.policy, "direction": r.direction, "rule": r.rule, "selects": r.selects,
            "peers": list(r.peers), "ports": list(r.ports), "allows": r.allows,
            "connections": r.connections, "note": r.note}


def _entry_dict(e: EntryUse) -> dict:
    return {"policy": e.policy, "direction": e.direction, "rule": e.rule, "peer": e.peer,
            "port": e.port, "peer_text": e.peer_text, "port_text": e.port_text,
            "connections": e.connections,
            "last_seen": format_time(e.last_seen) if e.last_seen is not None else None}


def usage_dict(u: UsageResult) -> dict:
    return {
        "unused_rules": [_rule_dict(r) for r in u.unused_rules],
        "unused_entries": [_entry_dict(e) for e in u.unused_entries],
        "rules": [{**_rule_dict(r), "entries": [_entry_dict(e) for e in r.entries]}
                  for r in u.rules],
        "broader_than_use": [
            {"policy": b.policy, "direction": b.direction, "rule": b.rule,
             "connections": b.connections, "text": b.text,
             "peers": [{"peer": j, "beyond": x.beyond, "text": x.text} for j, x in b.peers],
             "ports": [{"port": k, "beyond": x.beyond, "text": x.text} for k, x in b.ports]}
            for b in u.broader],
    }


def _declared_verdict_dict(v: DeclaredVerdict) -> dict:
    t = v.target
    return {"call": v.call, "failure_policy": t.call.failure_policy,
            "service": "{}/{}:{}".format(*t.service), "workload": t.workload.display(),
            "protocol": t.protocol, "port": t.port, "pod": v.pod, "source": v.source,
            "allowed": v.allowed, "reason": v.reason,
            "consequence": None if v.allowed else v.consequence()}


def declared_dict(d: DeclaredCheck) -> dict:
    return {"checked": d.checked, "apiserver": {"sources": list(d.sources), "origin": d.origin},
            "calls": len({v.target for v in d.verdicts}),
            "denied": [_declared_verdict_dict(v) for v in d.denied],
            "allowed": [_declared_verdict_dict(v) for v in d.verdicts if v.allowed],
            "not_checked": [{"call": p.call.display(), "reason": p.reason} for p in d.problems],
            "warnings": list(d.warnings)}


def verify_dict(result: VerifyResult) -> dict:
    p, observed, check = result.policies, result.observed, result.check
    return {
        "flowpol_verify": JSON_VERSION,
        "result": "denied" if result.denied else "allowed",
        "exit_code": result.exit_code,
        "policies": {
            "origin": p.origin, "context": p.context, "files": list(p.files),
            "count": p.count, "ids": [x.id for x in p.policies],
            "cilium": [x.id for x in p.kinds.cilium],
            "cluster_network_policies": [x.id for x in p.kinds.cluster],
            "skipped": [str(s) for s in p.skipped], "ignored": list(p.ignored),
            "warnings": list(p.warnings),
        },
        "inputs": observed.read.to_dict(),
        "snapshot_warnings": list(observed.snapshot_warnings),
        "resolution": {
            "stats": observed.resolved.stats,
            "warnings": list(observed.resolved.warnings),
            "unresolved": unresolved_summary(observed),
        },
        "summary": {k: v for k, v in verification_dict(check).items() if k != "denied_list"},
        "denied": [group_detail_dict(g) for g in check.groups if not g.allowed],
        "allowed": [group_detail_dict(g) for g in check.groups if g.allowed],
        "unused": usage_dict(result.usage) if result.usage is not None else None,
        "declared": declared_dict(result.declared) if result.declared is not None else None,
    }


# ---------------------------------------------------------------- text


def _group_head(g: CheckedGroup) -> str:
    port = f"{g.protocol}/{g.port}" if g.port is not None else g.protocol
    via = f", via Service {', '.join(g.services)}" if g.services else ""
    return (f"{g.src.display()} -> {g.dst.display()} {port}: {_plural(g.count, 'connection')}, "
            f"last seen {_when(g.last_seen)}{via}")


def _policy_lines(result: VerifyResult) -> list[str]:
    p = result.policies
    namespaces = sorted({x.namespace for x in p.policies})
    source = (f"from {_plural(len(p.files), 'file')}" if p.origin == "files"
              else f"from the cluster (context {p.context})")
    lines = [f"policies: {_plural(len(p.policies), 'NetworkPolicy', 'NetworkPolicies')} in "
             f"{_plural(len(namespaces), 'namespace')} {source}"]
    if p.kinds.cilium or p.kinds.cluster:
        lines.append(f"  and {_plural(len(p.kinds.cilium), 'Cilium policy rule')}, "
                     f"{_plural(len(p.kinds.cluster), 'ClusterNetworkPolicy', 'ClusterNetworkPolicies')}")
    if p.skipped:
        reasons: dict[str, int] = {}
        for s in p.skipped:
            reasons[s.reason] = reasons.get(s.reason, 0) + 1
        lines.append(f"  skipped {_plural(len(p.skipped), 'document')} (not networking.k8s.io "
                     "NetworkPolicies): "
                     + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    if p.ignored:
        names = [Path(f).name for f in p.ignored]
        lines.append(f"  ignored {_plural(len(names), 'file')} of the directory that hold no "
                     f"policy: {', '.join(names[:8])}" + (" ..." if len(names) > 8 else ""))
    lines += [f"  warning: {w}" for w in p.warnings]
    return lines


def _input_lines(result: VerifyResult) -> list[str]:
    observed = result.observed
    r = observed.read
    lines = [f"flows: read {sum(r.lines.values()):,} item(s) from {_plural(len(r.formats), 'input')}: "
             f"{r.total_kept:,} flow record(s) kept, {r.total_skipped:,} skipped, "
             f"{sum(r.ignored.values()):,} ignored (replies, non-flow events, ...)"]
    lines += [f"  skipped {reason}: {n:,}" for reason, n in sorted(r.skipped.items())]
    lines += [f"    e.g. {ex}" for ex in r.examples_in_input_order()[:MAX_EXAMPLES]]
    lines += [f"  warning: {w}" for w in
              observed.warnings]
    unresolved = unresolved_summary(observed)
    if unresolved:
        n = sum(u["count"] for u in unresolved)
        lines.append(f"  not checked: {_plural(n, 'connection')} with an endpoint that could not "
                     "be attributed (details in --output json):")
        lines += [f"    {u['side']} {u['ip']}: {u['reason']}" for u in unresolved[:MAX_EXAMPLES]]
    return lines


def _broader_lines(u: UsageResult) -> list[str]:
    if not u.broader:
        return []  # (the unused line above already says what the rules allow beyond use)
    verb = "admits" if len(u.broader) == 1 else "admit"
    lines = [f"BROADER than their use: {_plural(len(u.broader), 'used rule')} {verb} more "
             "peers or ports than the connections that used them (`flowpol diff` narrows "
             "them):"]
    lines += [f"  {b.ref}: {b.text} ({_plural(b.connections, 'connection')} used it)"
              for b in u.broader]
    return lines


def _usage_lines(u: UsageResult) -> list[str]:
    return _unused_lines(u) + _broader_lines(u)


def _unused_lines(u: UsageResult) -> list[str]:
    rules, entries = u.unused_rules, u.unused_entries
    if not rules and not entries:
        return ["unused: none; every rule and peer/port combination matched observed traffic"]
    lines = [f"UNUSED: {_plural(len(rules), 'rule')} and "
             f"{_plural(len(entries), 'peer/port combination')} of used rules that no observed "
             "connection matched (broader than the traffic):"]
    for r in rules:
        lines.append(f"  {r.ref}: {r.allows}" + (f" ({r.note})" if r.note else ""))
    for e in entries:
        peer = f"{'from' if e.direction == 'ingress' else 'to'}[{e.peer}]" if e.peer is not None else "any peer"
        port = f"ports[{e.port}]" if e.port is not None else "every port"
        lines.append(f"  {e.policy} {e.direction}[{e.rule}] {peer} x {port}: "
                     f"{e.peer_text} on {e.port_text}")
    return lines


def _declared_lines(d: DeclaredCheck) -> list[str]:
    lines = [f"  warning: {w}" for w in d.warnings]
    if not d.checked:
        return lines
    targets = {v.target for v in d.verdicts}
    denied = d.denied
    if targets:
        sources = ", ".join(d.sources)
        head = (f"declared: {_plural(len(targets), 'backend port')} the API server calls "
                f"(admission webhooks, aggregated APIs, conversion webhooks) from {sources}: ")
        if not denied:
            lines.insert(0, head + "every call allowed")
        else:
            lines.insert(0, head + f"{_plural(len({v.target for v in denied}), 'call')} denied")
            lines.append("DENIED: calls the cluster declares the API server makes, whether or "
                         "not the recording shows them, which these policies would block:")
            for v in denied:
                t = v.target
                lines.append(f"  {v.source} -> {t.workload.display()} {t.protocol}/{t.port} "
                             f"(pod {v.pod}) for {v.call}: {v.consequence()}")
                lines.append(f"    {v.reason}")
    lines += [f"  declared, not checked: {p.call.display()}: {p.reason}" for p in d.problems]
    return lines


def text_lines(result: VerifyResult, show_allowed: bool = False) -> list[str]:
    check = result.check
    lines = _policy_lines(result) + _input_lines(result)
    denied = [g for g in check.groups if not g.allowed]
    allowed = [g for g in check.groups if g.allowed]
    lines.append(f"verified: {verification_text(verification_dict(check))}"
                 + (f" in {_plural(len(denied), 'group')}" if denied else ""))
    if denied:
        lines.append("DENIED: observed connections these policies would block:")
        for g in denied:
            lines.append(f"  {_group_head(g)}")
            lines.append(f"    {g.reason}")
            if g.hint:
                lines.append(f"    hint: {g.hint}")
    if show_allowed and allowed:
        lines.append("ALLOWED:")
        for g in allowed:
            lines.append(f"  {_group_head(g)}")
            lines.append(f"    {g.reason}")
    if result.declared is not None:
        lines += _declared_lines(result.declared)
    if result.usage is not None:
        lines += _usage_lines(result.usage)
    return lines
