"""A large cluster's week at the central step: --nodes nodes, --days days, reduced on each
node (recorder/reduce.py), then `flowpol generate` on what the nodes send.

    python benchmarks/bench_cluster.py [--nodes 1000] [--days 7] [--namespaces 200]
                                       [--jobs N] [--dir DIR]

The cluster is make_synthetic.py's at scale: --namespaces namespaces of 10 workloads
(Deployments behind Services, a StatefulSet, a CronJob, a bare pod; DaemonSets in two
of them), pods spread over --nodes nodes, every workload calling 1-3 servers and the
cluster DNS. Its snapshot is the `cluster.json` the central step reads.

Each node's input is what `reduce_records(..., attribute=True)` writes for a node that
ran the recorder (60-s windows) for --days days: per day and workload edge its pods
took part in, one record (count, first and last sighting of the day) named by the two
workloads (hints: namespace, owner, labels; pod addresses of the first window), plus
the IP timeline of its pods. Every edge is taken as busy every day on the node of every
one of its client pods and server pods: an upper bound. (That
`reduce_records` turns raw windows into exactly such records is tested on its own;
benchmarks/bench_reduce.py measures what it costs a node.)

Printed: records reaching the central step, their bytes, and `flowpol generate` on all
the node files as a child process - wall and CPU time, peak RSS - against the targets
< 10 min and < 4 GiB. The data is generated once into --dir and reused.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import make_synthetic as synthetic  # noqa: E402
from e2e import child, flowpol, load  # noqa: E402

NS = 1_000_000_000
DAY = 86400 * NS


def _hints(pod):  # noqa: ANN001, ANN202
    from recorder.schema import EndpointHints, Workload, labels_tuple

    return EndpointHints(namespace=pod.namespace, labels=labels_tuple(pod.labels),
                         workload=Workload(pod.workload.kind, pod.workload.name),
                         peer_kind="pod")


def generate(out: Path, nodes: int, days: int, namespaces: int, seed: int = 7) -> dict:
    from recorder.flowlog import write_flow_log
    from recorder.schema import FlowLogHeader, FlowRecord, IpTimelineRecord, Workload

    synthetic.N_NODES, synthetic.N_NAMESPACES = nodes, namespaces
    synthetic.DAEMONSET_NAMESPACES = 2
    syn = synthetic.Synthetic(seed)
    cluster = syn.cluster
    (out / "nodes").mkdir(parents=True, exist_ok=True)
    if not (out / "cluster.json").exists():
        (out / "cluster.tmp").write_text(cluster.snapshot_json())
        (out / "cluster.tmp").rename(out / "cluster.json")
    rnd = random.Random(seed)
    start = synthetic.START
    alive = [p for p in cluster.pods if p.alive(start) and not p.host_network]
    hints = {}
    per_node: dict[str, list] = {n.name: [] for n in syn.nodes}
    for p in alive:
        wl = p.workload
        per_node[p.node.name].append(IpTimelineRecord(
            p.ip, p.created, p.ended, p.namespace, p.name,
            labels=tuple(sorted(p.labels.items())), owner=Workload(wl.kind, wl.name),
            node=p.node.name))
    by_workload: dict[str, list] = {}
    for w in syn.workloads:
        pods = [p for p in w.pods if p.alive(start) and not p.host_network]
        if pods:
            by_workload[w.key] = pods
    edges = []
    for w in syn.clients:
        for server in w.servers + [syn.coredns]:
            if w.key in by_workload and server.key in by_workload:
                proto = "UDP" if server is syn.coredns else "TCP"
                edges.append((w.key, server.key, proto, server.port or 53))
    records = 0
    for day in range(days):
        t0 = start + day * DAY
        for client_key, server_key, proto, port in edges:
            clients, servers = by_workload[client_key], by_workload[server_key]
            seen_on = {}  # node -> (client pod, server pod) of its first window
            for c in clients:  # the client pods' nodes see it leave ...
                seen_on.setdefault(c.node.name, (c, rnd.choice(servers)))
            for s in servers:  # ... the server pods' nodes see it arrive
                seen_on.setdefault(s.node.name, (rnd.choice(clients), s))
            for node, (c, s) in seen_on.items():
                first = t0 + rnd.randrange(DAY // 2)
                last = first + rnd.randrange(DAY // 2)
                hc = hints.get(c.name) or hints.setdefault(c.name, _hints(c))
                hs = hints.get(s.name) or hints.setdefault(s.name, _hints(s))
                per_node[node].append(FlowRecord(
                    first, last, proto, c.ip, s.ip, port, count=rnd.randrange(1, 5000),
                    node=node, src=hc, dst=hs, source_format="capture",
                    input=f"capture:{node}"))
                records += 1
    size = 0
    for node, recs in per_node.items():
        path = out / "nodes" / f"{node}.jsonl"
        write_flow_log(recs, path, FlowLogHeader(node=node))
        size += path.stat().st_size
    return {"records": records, "bytes": size, "edges": len(edges), "pods": len(alive),
            "workloads": len(by_workload)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--namespaces", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "flowpol-cluster")
    args = ap.parse_args()
    data = args.dir / f"{args.nodes}-nodes-{args.days}-days-{args.namespaces}-ns-every-pod"
    meta = data / "meta.txt"
    if not meta.exists():
        t = time.perf_counter()
        m = generate(data, args.nodes, args.days, args.namespaces)
        meta.write_text(" ".join(f"{k}={v}" for k, v in m.items()) + "\n")
        print(f"generated in {time.perf_counter() - t:.0f} s", flush=True)
    m = dict(kv.split("=") for kv in meta.read_text().split())
    cmd = flowpol("generate", str(data / "nodes"), "--snapshot", str(data / "cluster.json"),
                  "--out", str(data / "out"))
    if args.jobs is not None:
        cmd += ["--jobs", str(args.jobs)]
    run = child(cmd, one_core=False)
    print(f"RESULT central step, {args.nodes:,} nodes x {args.days} days ({m['pods']} pods, "
          f"{m['workloads']} workloads, {m['edges']} workload edges): {int(m['records']):,} "
          f"records ({int(m['bytes']) / 2**20:,.0f} MiB) reach it | flowpol generate "
          f"{run.wall:.0f} s wall {run.cpu:.0f} s CPU (target < 600 s), peak RSS "
          f"{run.rss_kib / 2**20:.2f} GiB (target < 4 GiB) | {load()}")


if __name__ == "__main__":
    main()
