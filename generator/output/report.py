"""The machine-readable report (report.json) and the terminal summary of a run."""

from __future__ import annotations

from collections import defaultdict

from generator.resolve.edges import WORKLOAD, Edge, Peer
from generator.pipeline import ObservedTraffic
from generator.synthesize.synthesis import SynthesisResult, is_dns_edge
from generator.output.timetext import format_time_fast
from generator.version import __version__

MAX_LISTED = 200


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
    return {"src": dict(src), "dst": dict(dst), "protocol": e.protocol, "port": e.port,
            "count": e.count, "first_seen": format_time_fast(e.first_seen),
            "last_seen": format_time_fast(e.last_seen), "inputs": list(e.inputs),
            "services": [f"{ns}/{n}" for ns, n in e.services]}


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


def build_report(observed: ObservedTraffic, synth: SynthesisResult,
                 verification: dict | None) -> dict:
    peers: dict[int, dict] = {}
    node_edges = defaultdict(int)
    for e in observed.edges:
        dns_edge = e.src.kind == WORKLOAD and is_dns_edge(observed.index, e)
        for p in ((e.src,) if dns_edge else (e.src, e.dst)):
            if p.kind == "node":
                node_edges[p.display()] += e.count
    return {
        "flowpol_report": 1,
        "flowpol_version": __version__,
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
        "edges": [_edge(e, peers) for e in observed.edges],
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
    for ex in r.examples_in_input_order()[:5]:
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
