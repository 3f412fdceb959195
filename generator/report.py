"""The machine-readable report (report.json) and the terminal summary of a run."""

from __future__ import annotations

from collections import defaultdict

from generator.edges import Edge, Peer
from generator.pipeline import ObservedTraffic
from generator.synthesize import SynthesisResult
from recorder.timefmt import format_time

MAX_LISTED = 200


def _peer(p: Peer) -> dict:
    d = {"kind": p.kind}
    for k in ("namespace", "workload_kind", "workload_name", "ip", "node_name"):
        v = getattr(p, k)
        if v is not None:
            d[k] = v
    return d


def _edge(e: Edge) -> dict:
    return {"src": _peer(e.src), "dst": _peer(e.dst), "protocol": e.protocol, "port": e.port,
            "count": e.count, "first_seen": format_time(e.first_seen),
            "last_seen": format_time(e.last_seen), "inputs": list(e.inputs),
            "services": [f"{ns}/{n}" for ns, n in e.services]}


def unresolved_summary(observed: ObservedTraffic) -> list[dict]:
    groups: dict[tuple, dict] = {}
    for u in observed.resolved.unresolved:
        key = (u.side, u.ip, u.reason)
        g = groups.setdefault(key, {"side": u.side, "ip": u.ip, "reason": u.reason,
                                    "count": 0, "first_seen": u.first_seen,
                                    "last_seen": u.last_seen, "inputs": set(),
                                    "peers": set()})
        g["count"] += u.count
        g["first_seen"] = min(g["first_seen"], u.first_seen)
        g["last_seen"] = max(g["last_seen"], u.last_seen)
        g["inputs"].add(u.input)
        g["peers"].add(f"{u.other_ip} {u.protocol}/{u.port}" if u.port is not None
                       else f"{u.other_ip} {u.protocol}")
    out = []
    for key in sorted(groups):
        g = groups[key]
        out.append({**g, "first_seen": format_time(g["first_seen"]),
                    "last_seen": format_time(g["last_seen"]),
                    "inputs": sorted(g["inputs"]), "peers": sorted(g["peers"])[:20]})
    return out


def build_report(observed: ObservedTraffic, synth: SynthesisResult,
                 verification: dict | None) -> dict:
    node_edges = defaultdict(int)
    for e in observed.edges:
        for p in (e.src, e.dst):
            if p.kind == "node":
                node_edges[p.display()] += e.count
    return {
        "flowpol_report": 1,
        "inputs": observed.read.to_dict(),
        "aggregation": observed.aggregate_stats,
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
             "file": f"{p.namespace}.yaml"}
            for p in synth.policies
        ],
        "dns": synth.dns,
        "node_peers": [{"peer": k, "connections": v} for k, v in sorted(node_edges.items())],
        "node_peer_note": (
            "Node peers (kubelet probes, hostNetwork pods, SNATed traffic) are not pods: "
            "they are allowed by ipBlock of the node IP. A pod's own node can always reach "
            "it; traffic from other nodes depends on the CNI."),
        "external_peers": list(synth.external_peers),
        "idle_workloads": list(synth.idle_workloads),
        "skipped_edges": [{"edge": e, "reason": r} for e, r in synth.skipped_edges],
        "warnings": list(synth.warnings),
        "edges": [_edge(e) for e in observed.edges],
        "verification": verification,
    }


def summary_lines(observed: ObservedTraffic, synth: SynthesisResult,
                  verification: dict | None, out_dir: str) -> list[str]:
    r = observed.read
    lines = [
        f"read {sum(r.lines.values())} item(s) from {len(r.formats)} input(s): "
        f"{r.total_kept} flow record(s) kept, {r.total_skipped} skipped, "
        f"{sum(r.ignored.values())} ignored (replies, non-flow events, ...)",
    ]
    for reason, n in sorted(r.skipped.items()):
        lines.append(f"  skipped {reason}: {n}")
    for ex in r.examples[:5]:
        lines.append(f"    e.g. {ex}")
    n_unres = len(observed.resolved.unresolved)
    lines.append(f"resolved {len(observed.edges)} edge(s); {n_unres} flow aggregate(s) "
                 "unresolved (see report.json)" if n_unres else
                 f"resolved {len(observed.edges)} edge(s); every flow attributed")
    n_wl = sum(1 for p in synth.policies if p.workload)
    lines.append(f"wrote {len(synth.policies)} policies ({n_wl} workload policies) for "
                 f"{len(synth.namespaces)} namespace(s) to {out_dir}: "
                 + ", ".join(synth.namespaces))
    if synth.node_peers:
        lines.append(f"node peers (ipBlock): {', '.join(synth.node_peers)}")
    if synth.external_peers:
        lines.append(f"external peers: {len(synth.external_peers)}")
    for w in list(observed.snapshot_warnings) + list(observed.resolved.warnings) + list(synth.warnings):
        lines.append(f"warning: {w}")
    if verification is not None:
        lines.append(
            f"verified: {verification['allowed']} of {verification['checked']} observed "
            f"connection(s) allowed, {verification['denied']} denied")
    return lines
