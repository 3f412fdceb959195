"""`flowpol verify` after resolution: check + grouping + `--unused` rule usage.

    python benchmarks/bench_verify_usage.py [--pods 10000] [--policies 2000]
                                            [--connections 1000000] [--seed 7]

Uses the cluster, policies and connections of bench_verify.py (same seed, same shapes),
wraps the connections as resolved ``Connection`` records (peers by workload), then times,
single-threaded: ``check_policies`` (evaluate every connection, group, hints) and
``rule_usage`` (which policy/rule/peer/port matched each connection) sharing one
Evaluator, as `flowpol verify --unused` does.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_verify import Cluster, make_connections, make_policies  # noqa: E402
from generator.verify.check import check_policies  # noqa: E402
from generator.resolve.edges import EXTERNAL, WORKLOAD, Connection, Peer, PodView  # noqa: E402
from generator.verify.evaluator import Evaluator  # noqa: E402
from generator.verify.policy import parse_policy  # noqa: E402
from generator.verify.usage import rule_usage  # noqa: E402


def _peer(end: PodView | str) -> Peer:
    if isinstance(end, str):
        return Peer(EXTERNAL, ip=end)
    return Peer(WORKLOAD, end.namespace, "Deployment", dict(end.labels).get("app", end.name))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--policies", type=int, default=2_000)
    ap.add_argument("--connections", type=int, default=1_000_000)
    ap.add_argument("--namespaces", type=int, default=60)
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    cluster = Cluster(rng, args.pods, args.namespaces, args.nodes)
    policies = tuple(parse_policy(p) for p in make_policies(rng, cluster, args.policies))
    connections = [
        Connection(_peer(src), _peer(dst), proto, port,
                   src if isinstance(src, str) else src.ip or "",
                   dst if isinstance(dst, str) else dst.ip or "",
                   None if isinstance(src, str) else src,
                   None if isinstance(dst, str) else dst,
                   1, i, i)
        for i, (src, dst, proto, port) in enumerate(make_connections(rng, cluster, args.connections))
    ]
    print(f"{len(connections):,} connections, {len(policies):,} policies, {len(cluster.pods):,} pods")

    class _Index:  # check_policies only reads index.inventory when it builds the evaluator
        inventory = None

    t0 = time.perf_counter()
    evaluator = Evaluator(policies, cluster.namespaces, cluster.nodes)
    t1 = time.perf_counter()
    result = check_policies(connections, policies, _Index(), evaluator)  # type: ignore[arg-type]
    t2 = time.perf_counter()
    usage = rule_usage(connections, policies, evaluator)
    t3 = time.perf_counter()
    print(f"build evaluator:  {t1 - t0:8.3f} s")
    print(f"check_policies:   {t2 - t1:8.3f} s  {len(connections) / (t2 - t1):12,.0f} connections/s  "
          f"({result.allowed:,} allowed, {result.denied:,} denied, {len(result.groups):,} groups)")
    print(f"rule_usage:       {t3 - t2:8.3f} s  {len(connections) / (t3 - t2):12,.0f} connections/s  "
          f"({len(usage.rules):,} rules, {len(usage.unused_rules):,} unused, "
          f"{len(usage.unused_entries):,} unused peer/port entries of used rules)")
    print(f"total:            {t3 - t0:8.3f} s")


if __name__ == "__main__":
    main()
