"""Is a workload ready to be isolated? A verdict per workload from what the recording
shows of it.

Ready when: it was seen; in at least --min-flows connections; its own observed activity
spans at least --min-observation (for a CronJob: the recording does, and its schedule
fired during it - a weekly job that never ran was never observed); and a podSelector can
single its pods out. Also reported: how many of its current pods were seen. Workloads
whose pods are all hostNetwork are not subject to NetworkPolicy; finished one-off Jobs
and completed bare pods are not affected by it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from generator.resolve.edges import WORKLOAD, Connection
from generator.inventory.index import InventoryIndex, WorkloadRef
from generator.inventory.model import Controller
from generator.inventory.cron import in_window
from generator.review.evidence import Span, Thresholds, duration_text, when, workload_ref

READY = "ready"
NOT_READY = "not ready"
NOT_AFFECTED = "not affected"
FINISHED_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True, slots=True)
class Activity:
    connections: int
    first_seen: int
    last_seen: int
    pods: frozenset[str]  # names of the pods seen

    @property
    def observed_for(self) -> int:
        return self.last_seen - self.first_seen


@dataclass(frozen=True, slots=True)
class Readiness:
    workload: WorkloadRef
    verdict: str  # READY, NOT_READY, NOT_AFFECTED
    reasons: tuple[str, ...]  # why not ready / not affected
    notes: tuple[str, ...]
    activity: Activity | None
    pods_current: int  # pods of the snapshot that are not finished
    pods_current_seen: int
    schedule: str | None = None  # CronJobs
    fired: int | None = None  # times the schedule fired during the recording
    time_zone: str | None = None  # CronJobs: spec.timeZone, None = UTC
    suspended: bool = False  # CronJobs: spec.suspend at the snapshot

    @property
    def ready(self) -> bool:
        return self.verdict == READY

    @property
    def display(self) -> str:
        return self.workload.display()


def activity(connections: Iterable[Connection]) -> dict[WorkloadRef, Activity]:
    acc: dict[WorkloadRef, list] = {}
    for c in connections:
        for peer, pod in ((c.src, c.src_pod), (c.dst, c.dst_pod)):
            if peer.kind != WORKLOAD:
                continue
            ref = workload_ref(peer)
            slot = acc.get(ref)
            if slot is None:
                slot = acc[ref] = [0, c.first_seen, c.last_seen, set()]
            slot[0] += c.count
            slot[1] = min(slot[1], c.first_seen)
            slot[2] = max(slot[2], c.last_seen)
            if pod is not None:
                slot[3].add(pod.name)
    return {k: Activity(v[0], v[1], v[2], frozenset(v[3])) for k, v in acc.items()}


def _cronjob(index: InventoryIndex, ref: WorkloadRef) -> Controller | None:
    return next((c for c in index.inventory.controllers
                 if (c.namespace, c.kind, c.name) == (ref.namespace, "CronJob", ref.name)), None)


def judge(ref: WorkloadRef, act: Activity | None, index: InventoryIndex, span: Span | None,
          t: Thresholds, has_policy: bool, dns_only: bool) -> Readiness:
    pods = index.pods_of(ref)
    current = [p for p in pods if p.phase not in FINISHED_PHASES]
    seen = act.pods if act else frozenset()
    current_seen = sum(1 for p in current if p.name in seen)
    if pods and all(p.host_network for p in pods):
        return Readiness(ref, NOT_AFFECTED, ("its pods use the host network; NetworkPolicy does "
                                             "not apply to them",), (), act, len(current),
                         current_seen)
    if ref.kind in ("Job", "Pod") and pods and not current and act is None:
        return Readiness(ref, NOT_AFFECTED, (f"finished ({pods[0].phase}); default-deny does not "
                                             "affect it",), (), act, 0, 0)
    reasons: list[str] = []
    notes: list[str] = []
    schedule = fired = time_zone = None
    suspended = False
    if ref.kind == "CronJob":
        cj = _cronjob(index, ref)
        schedule = cj.schedule if cj else None
        time_zone = cj.time_zone if cj else None
        suspended = bool(cj and cj.suspended)
        zone = f" ({time_zone})" if time_zone else ""
        if suspended:
            # A suspended CronJob starts no run, whatever its schedule says: what fired
            # tells nothing, and its traffic shows only if it ran before the suspension.
            if act is None:
                reasons.append(
                    "it is suspended (spec.suspend) and was not seen running, so its traffic "
                    "is unknown: resume it while recording before default-deny, or it will "
                    "run into default-deny when it is resumed")
            else:
                notes.append(f"suspended at the snapshot; {len(act.pods)} run pod(s) seen "
                             "before")
        elif schedule and span is not None:
            window = in_window(schedule, span.start, span.end, time_zone)
            fired = window.fired
            if window.error:
                reasons.append(window.error)
        if fired == 0:
            assert span is not None  # fired is only counted over a recording
            reasons.append(f"its schedule `{schedule}`{zone} did not fire during the recording "
                           f"({when(span.start)} to {when(span.end)}), so its traffic was never "
                           "observed")
        elif fired and act is None:
            reasons.append(f"its schedule `{schedule}`{zone} fired {fired} time(s) during the "
                           "recording but no run was seen")
        elif fired and act is not None:
            notes.append(f"schedule `{schedule}`{zone} fired {fired} time(s); {len(act.pods)} run "
                         "pod(s) seen")
    if act is None:
        if ref.kind != "CronJob":
            reasons.append("never seen in the recording"
                           + ("" if pods else " (and no pod in the snapshot)"))
    else:
        if act.connections < t.min_flows:
            reasons.append(f"seen in {act.connections} connection(s), fewer than --min-flows "
                           f"{t.min_flows}")
        if ref.kind == "CronJob":
            covered = span.duration if span else 0
            if covered < t.min_observation_ns:
                reasons.append(f"the recording covers {duration_text(covered)}, less than "
                               f"--min-observation {duration_text(t.min_observation_ns)}")
        elif act.observed_for < t.min_observation_ns:
            reasons.append(f"observed for {duration_text(act.observed_for)} ({when(act.first_seen)} "
                           f"to {when(act.last_seen)}), less than --min-observation "
                           f"{duration_text(t.min_observation_ns)}")
        if current and current_seen < len(current) and ref.kind != "CronJob":
            notes.append(f"{current_seen} of its {len(current)} current pod(s) seen")
        if not has_policy:
            if dns_only:
                notes.append("only DNS observed: the namespace's allow-dns policy (step 3) "
                             "covers it")
            else:
                reasons.append("no label selects its pods alone, so no allow policy can be "
                               "written for it")
    return Readiness(ref, NOT_READY if reasons else READY, tuple(reasons), tuple(notes), act,
                     len(current), current_seen, schedule, fired, time_zone, suspended)


def judge_all(workloads: Iterable[WorkloadRef], connections: Iterable[Connection],
              index: InventoryIndex, span: Span | None, t: Thresholds,
              with_policy: set[WorkloadRef], dns_only: set[WorkloadRef]) -> list[Readiness]:
    acts = activity(connections)
    return [judge(ref, acts.get(ref), index, span, t, ref in with_policy, ref in dns_only)
            for ref in workloads]


def dns_only_workloads(connections: Iterable[Connection], is_dns) -> set[WorkloadRef]:
    """Workloads whose every observed connection as a client is DNS and that are never
    a server: their policy would be empty, allow-dns is all they need."""
    kinds: dict[WorkloadRef, set[bool]] = defaultdict(set)
    servers: set[WorkloadRef] = set()
    for c in connections:
        if c.src.kind == WORKLOAD:
            kinds[workload_ref(c.src)].add(bool(is_dns(c)))
        if c.dst.kind == WORKLOAD:
            servers.add(workload_ref(c.dst))
    return {ref for ref, k in kinds.items() if k == {True} and ref not in servers}
