"""The machine-readable report (report.json) and the terminal summary of a run."""

from __future__ import annotations

from collections import defaultdict

from generator.inventory.index import InventoryIndex
from generator.output.files import policy_file
from generator.pipeline import ObservedTraffic
from generator.resolve.edges import APISERVER, EXTERNAL, NODE, WORKLOAD, Edge, Peer
from generator.synthesize import model as m
from generator.synthesize.synthesis import SYSTEM_NAMESPACES, SynthesisResult, is_dns_edge
from generator.output.timetext import format_time_fast
from generator.verify.check import verification_dict, verification_text
from generator.verify.union import UnionCheck, union_dict
from generator.version import __version__

MAX_LISTED = 200
MAX_SUMMARY_ITEMS = 20  # per listing in the terminal summary; report.json has all
DIFF_POINTER = ("`flowpol diff --cluster` (or `--existing FILES`) lists what they allow "
                "that nobody used and proposes a tightened set")


def _peer(p: Peer) -> dict:
    d = {"kind": p.kind}
    for k in ("namespace", "workload_kind", "workload_name", "ip", "node_name"):
        v = getattr(p, k)
        if v is not None:
            d[k] = v
    return d


def _edge(e: Edge, peers: dict[int, dict]) -> dict:
    # Edges share Peer objects: each one's dict is made once (``peers``, by id; the
    # edges keep the peers alive) and copied for each of its edges.
    src, dst = peers.get(id(e.src)), peers.get(id(e.dst))
    if src is None:
        src = peers[id(e.src)] = _peer(e.src)
    if dst is None:
        dst = peers[id(e.dst)] = _peer(e.dst)
    d = {"src": dict(src), "dst": dict(dst), "protocol": e.protocol, "port": e.port,
         "count": e.count, "first_seen": format_time_fast(e.first_seen),
         "last_seen": format_time_fast(e.last_seen), "inputs": list(e.inputs),
         "services": [f"{ns}/{n}" for ns, n in e.services]}
    if e.names:
        d["names"] = list(e.names)
    return d


def external_names(observed: ObservedTraffic) -> dict:
    """The external addresses workloads connected to, by the DNS name each connection
    had at its time (generator.resolve.names): per name its addresses, connections and
    clients; addresses with several names at once; addresses without a name, and why."""
    by_name: dict[str, dict] = {}
    several: dict[tuple[str, tuple[str, ...]], list] = {}
    unnamed: dict[str, list] = {}
    for e in observed.edges:
        if e.dst.kind != EXTERNAL or e.dst.ip is None:
            continue
        client = e.src.display()
        if not e.names:
            u = unnamed.setdefault(e.dst.ip, [0, set()])
            u[0] += e.count
            u[1].add(client)
            continue
        if len(e.names) > 1:
            g = several.setdefault((e.dst.ip, e.names), [0, set()])
            g[0] += e.count
            g[1].add(client)
        for name in e.names:
            n = by_name.setdefault(name, {"addresses": set(), "connections": 0, "clients": set(),
                                          "first_seen": e.first_seen, "last_seen": e.last_seen})
            n["addresses"].add(e.dst.ip)
            n["connections"] += e.count
            n["clients"].add(client)
            n["first_seen"] = min(n["first_seen"], e.first_seen)
            n["last_seen"] = max(n["last_seen"], e.last_seen)
    reasons = ({a.address: a.unnamed_reason for a in observed.names.addresses}
               if observed.names is not None else {})
    return {
        "grace_period_seconds": (observed.names.stats.get("grace-period-seconds")
                                 if observed.names is not None else None),
        "stats": dict(observed.names.stats) if observed.names is not None else {},
        "names": [{"name": name, "addresses": sorted(n["addresses"]),
                   "connections": n["connections"], "clients": sorted(n["clients"]),
                   "first_seen": format_time_fast(n["first_seen"]),
                   "last_seen": format_time_fast(n["last_seen"])}
                  for name, n in sorted(by_name.items())],
        "several_names": [{"address": address, "names": list(names), "connections": g[0],
                           "clients": sorted(g[1])}
                          for (address, names), g in sorted(several.items())],
        "unnamed": [{"address": address, "connections": u[0], "clients": sorted(u[1]),
                     "reason": reasons.get(address)}
                    for address, u in sorted(unnamed.items())],
    }


def unresolved_summary(observed: ObservedTraffic) -> list[dict]:
    # Address-only inputs can leave hundreds of thousands of unresolved aggregates:
    # the loop does no more per item than it must, and peers are formatted per group.
    groups: dict[tuple, dict] = {}
    for u in observed.resolved.unresolved:
        key = (u.side, u.ip, u.reason)
        g = groups.get(key)
        if g is None:
            g = groups[key] = {"side": u.side, "ip": u.ip, "reason": u.reason,
                               "count": 0, "first_seen": u.first_seen,
                               "last_seen": u.last_seen, "inputs": set(), "peers": set()}
        g["count"] += u.count
        if u.first_seen < g["first_seen"]:
            g["first_seen"] = u.first_seen
        if u.last_seen > g["last_seen"]:
            g["last_seen"] = u.last_seen
        g["inputs"].add(u.input)
        g["peers"].add((u.other_ip, u.protocol, u.port))
    out = []
    for key in sorted(groups):
        g = groups[key]
        peers = {f"{ip} {protocol}/{port}" if port is not None else f"{ip} {protocol}"
                 for ip, protocol, port in g["peers"]}
        out.append({**g, "first_seen": format_time_fast(g["first_seen"]),
                    "last_seen": format_time_fast(g["last_seen"]),
                    "inputs": sorted(g["inputs"]), "peers": sorted(peers)[:20]})
    return out


def connection_counts(observed: ObservedTraffic) -> dict:
    """How the flow records became connections: each connection counted once (its
    repeated observations merged), dropped attempts left out; the same numbers in the
    summary, report.json and the review."""
    a = observed.aggregate_stats
    unattributed = sum(u.count for u in observed.resolved.unresolved)
    return {
        "flow_records": observed.read.total_kept,
        "connections": a["seen"] - a["duplicates"] - a["dropped"] - a["overflow"],
        "repeated_observations_merged": a["duplicates"],
        "dropped_attempts_left_out": a["dropped"],
        "unattributed": unattributed,
        "edges": len(observed.edges),
    }


def host_network_pods(index: InventoryIndex, peer: Peer) -> list[str]:
    """The hostNetwork pods the snapshot places behind a node peer: on that node, or
    listing its address."""
    pods = {p.key: p for p in index.inventory.pods if p.host_network
            and ((peer.node_name is not None and p.node == peer.node_name)
                 or (peer.ip is not None and peer.ip in p.ips))}
    out = []
    for key in sorted(pods):
        w = index.workload_of(pods[key])
        owner = "" if w.kind == "Pod" else f" ({w.kind} {w.name})"
        out.append(f"{key[0]}/{key[1]}{owner}")
    return out


def _use_dict(u) -> dict:
    t = u.target
    return {"declared_by": t.call.display(), "kind": t.call.kind, "name": t.call.name,
            "webhook": t.call.webhook, "failure_policy": t.call.failure_policy,
            "service": f"{t.service[0]}/{t.service[1]}:{t.service[2]}",
            "workload": t.workload.display(), "port": f"{t.protocol}/{t.port}",
            "status": u.status, "connections_observed": u.calls, "admits": list(u.admits)}


def declared_dict(synth: SynthesisResult) -> dict:
    api = synth.apiserver
    return {
        "apiserver": None if api is None else {
            "origin": api.origin, "sources": [s.display() for s in api.sources],
            "cidrs": [s.cidr for s in api.sources], "warnings": list(api.warnings)},
        "calls": [_use_dict(u) for u in synth.declared],
        "no_rule": [{"declared_by": p.call.display(), "reason": p.reason}
                    for p in synth.declared_problems],
    }


def idle_dict(item: m.IdleWorkload) -> dict:
    return {"workload": item.workload.display(), "why": item.reason, "status": item.status,
            "note": item.note, "policy": item.name, "held_out": list(item.directions),
            "next_run": format_time_fast(item.next_run) if item.next_run is not None else None}


def idle_line(item: m.IdleWorkload) -> str:
    return f"{item.workload.display()}: {item.reason}; {item.status}" + (
        f" ({item.name})" if item.name else "")


def declared_line(u) -> str:
    t = u.target
    seen = (f"{u.calls} connection(s) to it observed" if u.calls
            else "no connection to it observed")
    return (f"{t.workload.display()} {t.protocol}/{t.port} for {t.call.display()}"
            + (f" (failurePolicy {t.call.failure_policy})" if t.call.failure_policy else "")
            + f": {u.status}" + (f" from {', '.join(u.admits)}" if u.admits else "")
            + f"; {seen}")


def apiserver_traffic(observed: ObservedTraffic) -> list[Edge]:
    """Observed connections from the API server (labelled by resolution)."""
    return [e for e in observed.edges if e.src.kind == APISERVER]


def node_peer_facts(observed: ObservedTraffic) -> list[dict]:
    """Node peers (DNS to node-local-dns aside) with their connections and the
    hostNetwork pods that may be behind them."""
    counts: dict[str, int] = defaultdict(int)
    peers: dict[str, Peer] = {}
    for e in observed.edges:
        dns_edge = e.src.kind == WORKLOAD and is_dns_edge(observed.index, e)
        for p in ((e.src,) if dns_edge else (e.src, e.dst)):
            if p.kind == NODE:
                counts[p.display()] += e.count
                peers.setdefault(p.display(), p)
    return [{"peer": k, "connections": counts[k],
             "host_network_pods": host_network_pods(observed.index, peers[k])}
            for k in sorted(counts)]


def _edge_label(e: Edge) -> str:
    return f"{e.src.display()} -> {e.dst.display()} {e.protocol}/{e.port}"


def out_of_scope_edges(edges: tuple[Edge, ...], scope: tuple[str, ...]) -> list[tuple[str, str]]:
    """Observed edges no policy of this run covers because neither end is a workload of
    a namespace in scope: listed as skipped, so that nothing drawn in the graph goes
    unmentioned."""
    in_scope = set(scope)
    out = []
    for e in edges:
        if e.port is None:
            continue  # ICMP: the synthesis lists it with its own reason
        if any(p.kind == WORKLOAD and p.namespace in in_scope for p in (e.src, e.dst)):
            continue
        outside = sorted({p.namespace for p in (e.src, e.dst) if p.kind == WORKLOAD})
        if not outside:
            why = "neither end is a pod of a namespace in scope; no policy selects either"
        elif any(ns in SYSTEM_NAMESPACES for ns in outside):
            why = (f"namespace {', '.join(outside)} is not in scope (system namespaces are "
                   "left out unless --namespace names them); no policy written for it")
        else:
            why = (f"namespace {', '.join(outside)} is not in scope (--namespace / "
                   "--exclude-namespace); no policy written for it")
        out.append((_edge_label(e), why))
    return out


def dropped_attempt_facts(observed: ObservedTraffic) -> list[dict]:
    """The connection attempts left out because a verdict dropped them: who tried what,
    how often, when."""
    rows = [{"client": e.src.display(), "server": e.dst.display(), "protocol": e.protocol,
             "port": e.port, "attempts": e.count,
             "first_seen": format_time_fast(e.first_seen),
             "last_seen": format_time_fast(e.last_seen), "inputs": list(e.inputs)}
            for e in observed.dropped_attempts]
    rows.sort(key=lambda r: (-r["attempts"], r["client"], r["server"], r["protocol"],
                             -1 if r["port"] is None else r["port"]))
    return rows


def skipped_edges(observed: ObservedTraffic, synth: SynthesisResult) -> list[tuple[str, str]]:
    """What the synthesis skipped, and the edges outside its scope."""
    return list(synth.skipped_edges) + out_of_scope_edges(observed.edges, synth.namespaces)


def build_report(observed: ObservedTraffic, synth: SynthesisResult,
                 verification: dict | None, union: UnionCheck | None = None) -> dict:
    peers: dict[int, dict] = {}
    return {
        "flowpol_report": 1,
        "flowpol_version": __version__,
        "inputs": observed.read.to_dict(),
        "aggregation": observed.aggregate_stats,
        "connections": connection_counts(observed),
        "dropped_attempts": dropped_attempt_facts(observed)[:MAX_LISTED],
        "snapshot_warnings": list(observed.snapshot_warnings),
        "resolution": {
            "stats": observed.resolved.stats,
            "warnings": list(observed.resolved.warnings),
            "unresolved": unresolved_summary(observed),
        },
        "scope": {"namespaces": list(synth.namespaces)},
        "policies": [
            {"namespace": p.namespace, "name": p.name,
             "workload": f"{p.workload[0]}/{p.workload[1]}" if p.workload else None,
             "file": policy_file(p.namespace)}
            for p in synth.policies
        ],
        "dns": synth.dns,
        "node_peers": node_peer_facts(observed),
        "node_peer_note": (
            "Node peers (kubelet probes, hostNetwork pods, SNATed traffic) are not pods: "
            "they are allowed by ipBlock of the node IP. A pod's own node can always reach "
            "it; traffic from other nodes depends on the CNI."),
        "external_peers": list(synth.external_peers),
        "external_names": external_names(observed),
        "idle_workloads": [idle_dict(i) for i in synth.model.idle] if synth.model else [],
        "declared": declared_dict(synth),
        "existing_policies": union_dict(union) if union is not None else None,
        "skipped_edges": [{"edge": e, "reason": r} for e, r in skipped_edges(observed, synth)],
        "warnings": list(synth.warnings),
        "edges": [_edge(e, peers) for e in observed.edges],
        "verification": verification,
    }


def _capped(lines: list[str], what: str) -> list[str]:
    if len(lines) <= MAX_SUMMARY_ITEMS:
        return lines
    return lines[:MAX_SUMMARY_ITEMS] + [f"  ... and {len(lines) - MAX_SUMMARY_ITEMS} more "
                                        f"{what} (report.json)"]


def declared_summary(synth: SynthesisResult, observed: ObservedTraffic) -> list[str]:
    lines = []
    api = synth.apiserver
    if synth.declared or synth.declared_problems:
        where = ", ".join(s.display() for s in api.sources) if api and api.sources else "unknown"
        lines.append(f"the API server calls from {where}"
                     + (f" ({api.origin})" if api and api.origin else "")
                     + f"; {len(synth.declared)} declared backend port(s):")
        lines += _capped([f"  declared: {declared_line(u)}" for u in synth.declared],
                         "declared port(s)")
        lines += _capped([f"  declared, no rule: {p.call.display()}: {p.reason}"
                          for p in synth.declared_problems], "declaration(s)")
    calls = apiserver_traffic(observed)
    if calls:
        lines.append(f"observed from the API server: {sum(e.count for e in calls)} "
                     f"connection(s):")
        lines += _capped([f"  {e.src.display()} -> {e.dst.display()} {e.protocol}/{e.port}: "
                          f"{e.count}" for e in calls], "edge(s)")
    return lines


def idle_summary(synth: SynthesisResult) -> list[str]:
    idle = synth.model.idle if synth.model else ()
    if not idle:
        return []
    held = sum(1 for i in idle if i.status == m.HELD_OUT)
    return [f"{len(idle)} idle workload(s) in scope (no observed traffic); {held} held out of "
            "default-deny by a policy of their own (--isolate-idle isolates them):"] + \
        _capped([f"  idle: {idle_line(i)}" for i in idle], "idle workload(s)")


def union_summary(union: UnionCheck | None) -> list[str]:
    if union is None or (not union.existing and not union.unreadable):
        return []
    lines = [f"existing NetworkPolicies selecting pods in scope: {len(union.existing)}; they "
             "stay in force after apply (flowpol deletes and rewrites none):"]
    lines += _capped([f"  {e.policy} selects {', '.join(e.selects)}"
                      + (" (replaced by the generated policy of that name on apply)"
                         if e.replaced else "") for e in union.existing], "policies")
    lines += [f"  could not read {u}" for u in union.unreadable]
    if union.effective is not None:
        lines.append("  effective set (generated + existing): "
                     + verification_text(verification_dict(union.effective)))
    if union.extra:
        lines.append(f"  what they allow beyond flowpol's rules ({len(union.extra)} rule "
                     f"entr{'y' if len(union.extra) == 1 else 'ies'}):")
        lines += _capped([f"    {x.line()}" for x in union.extra], "entries")
        lines.append(f"  {DIFF_POINTER}")
    return lines


def summary_lines(observed: ObservedTraffic, synth: SynthesisResult,
                  verification: dict | None, out_dir: str,
                  union: UnionCheck | None = None) -> list[str]:
    r = observed.read
    lines = [
        f"read {sum(r.lines.values()):,} item(s) from {len(r.formats)} input(s): "
        f"{r.total_kept:,} flow record(s) kept, {r.total_skipped:,} skipped, "
        f"{sum(r.ignored.values()):,} ignored (replies, non-flow events, ...)",
    ]
    for reason, n in sorted(r.skipped.items()):
        lines.append(f"  skipped {reason}: {n:,}")
    for ex in r.examples_in_input_order()[:5]:
        lines.append(f"    e.g. {ex}")
    c = connection_counts(observed)
    lines.append(
        f"{c['connections']:,} connection(s) ({c['repeated_observations_merged']:,} repeated "
        "observation(s) merged)" + (f"; {c['dropped_attempts_left_out']:,} dropped "
                                    "connection attempt(s) left out, listed in report.md"
                                    if c["dropped_attempts_left_out"] else ""))
    lines.append(f"resolved to {c['edges']:,} edge(s); " + (
        f"{c['unattributed']:,} connection(s) with an endpoint not attributed (see report.md)"
        if c["unattributed"] else "every connection attributed"))
    n_wl = sum(1 for p in synth.policies if p.workload)
    lines.append(f"wrote {len(synth.policies)} policies ({n_wl} workload policies) for "
                 f"{len(synth.namespaces)} namespace(s) to {out_dir}: "
                 + ", ".join(synth.namespaces))
    if synth.node_peers:
        lines.append(f"node peers (ipBlock): {', '.join(synth.node_peers)}")
    if synth.external_peers:
        names = external_names(observed)
        lines.append(f"external peers: {len(synth.external_peers)}"
                     + (f"; by DNS name: {', '.join(n['name'] for n in names['names'][:5])}"
                        + (" ..." if len(names["names"]) > 5 else "") if names["names"] else "")
                     + (f"; {len(names['unnamed'])} address(es) without a name"
                        if names["unnamed"] else ""))
    skipped = skipped_edges(observed, synth)
    if skipped:
        lines.append(f"{len(skipped):,} observed edge(s) without a rule, listed in report.md")
    lines += declared_summary(synth, observed)
    lines += idle_summary(synth)
    lines += union_summary(union)
    for w in list(observed.warnings) + list(synth.warnings):
        lines.append(f"warning: {w}")
    if verification is not None:
        lines.append(f"verified: {verification_text(verification)}")
    return lines
