"""Who held an IP at a given time: the IP timeline, joined with pandas.merge_asof.

Intervals come from the recorder's IP timeline records (the truth, written while pods
lived) and from the snapshot's pods (creationTimestamp to deletionTimestamp or "still
there": the fallback). A lookup finds the interval with the latest start at or before
the time, by IP, and accepts it only if the time is before the interval's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from generator.inventory.model import Pod
from recorder.schema import IpTimelineRecord, Workload

if TYPE_CHECKING:
    import pandas as pd

# int64 bounds: open interval ends (the frame's columns are int64)
FOREVER = (1 << 63) - 1
BEGINNING = -(1 << 63)
# A pod's IP is assigned a little after creationTimestamp; flows a few seconds before
# the snapshot's creation time of the pod cannot be anyone else's only if the IP was
# free, which we do not know. No slack: an earlier flow is "unresolved", not guessed.


@dataclass(frozen=True, slots=True)
class Holder:
    """The pod that held an IP during an interval."""

    namespace: str
    pod: str
    labels: tuple[tuple[str, str], ...]
    owner: Workload | None
    host_network: bool
    node: str | None
    from_snapshot: bool  # False = from a recorder IP timeline record
    valid_from: int
    valid_to: int


class IpTimeline:
    def __init__(self, pods: Iterable[Pod], records: Iterable[IpTimelineRecord]):
        # The intervals are built on first use: when the source identified every flow
        # (Hubble) the timeline is never asked, and a Holder per pod of a large
        # snapshot is a few milliseconds for nothing.
        self._pods = tuple(pods)
        self._records = tuple(records)
        self._built: tuple[list[Holder], list[str]] | None = None
        self._frame: pd.DataFrame | None = None

    def _intervals(self) -> tuple[list[Holder], list[str]]:
        if self._built is not None:
            return self._built
        holders: list[Holder] = []
        ips: list[str] = []
        for rec in self._records:
            holders.append(
                Holder(rec.namespace, rec.pod, rec.labels, rec.owner, rec.host_network,
                       rec.node, False, rec.valid_from,
                       FOREVER if rec.valid_to is None else rec.valid_to)
            )
            ips.append(rec.ip)
        for pod in self._pods:
            if pod.host_network:
                continue  # its IP is the node's: never "held" by the pod alone
            start = pod.created if pod.created is not None else BEGINNING
            end = pod.deleted if pod.deleted is not None else FOREVER
            for ip in pod.ips:
                holders.append(Holder(pod.namespace, pod.name, pod.labels, None, False,
                                      pod.node, True, start, end))
                ips.append(ip)
        self._built = (holders, ips)
        return self._built

    @property
    def _holders(self) -> list[Holder]:
        return self._intervals()[0]

    @property
    def _ips(self) -> list[str]:
        return self._intervals()[1]

    def _sorted_frame(self) -> pd.DataFrame:
        """The intervals as a sorted frame, built on the first lookup: when the source
        identified every flow (Hubble) there is none, and importing pandas and building
        the frame would cost more than the rest of the resolution."""
        if self._frame is not None:
            return self._frame
        import pandas as pd

        holders = self._holders
        frame = pd.DataFrame(
            {
                "ip": pd.Series(self._ips, dtype="string"),
                "start": pd.Series([h.valid_from for h in holders], dtype="int64"),
                # On equal starts the recorder wins over the snapshot, and a closed
                # record over an open one (the recorder writes "assigned" when a pod
                # gets its IP and the closed interval when it goes): see lookup.
                "prio": pd.Series([(0 if not h.from_snapshot else 2)
                                   + (1 if h.valid_to == FOREVER else 0) for h in holders],
                                  dtype="int64"),
                "holder": pd.Series(range(len(holders)), dtype="int64"),
            }
        )
        self._frame = frame.sort_values(["start", "prio", "holder"], kind="stable")
        return self._frame

    def __len__(self) -> int:
        return len(self._holders)

    def lookup(self, ips: list[str], times: list[int]) -> list[Holder | None]:
        """Vectorised: the holder of each (ip, time), or None."""
        if not ips:
            return []
        if not self._holders:
            return [None] * len(ips)
        import pandas as pd

        frame = self._sorted_frame()
        q = pd.DataFrame(
            {
                "ip": pd.Series(ips, dtype="string"),
                "t": pd.Series(times, dtype="int64"),
                "row": pd.Series(range(len(ips)), dtype="int64"),
            }
        ).sort_values("t", kind="stable")
        # Prefer recorder intervals over snapshot ones that start at the same time.
        right = frame.drop_duplicates(["ip", "start"], keep="first")
        joined = pd.merge_asof(q, right, left_on="t", right_on="start", by="ip",
                               direction="backward")
        out: list[Holder | None] = [None] * len(ips)
        holders = self._holders
        matched = joined[joined["holder"].notna()]
        for row, idx, t in zip(matched["row"].to_numpy(), matched["holder"].to_numpy(),
                               matched["t"].to_numpy()):
            h = holders[int(idx)]
            if t <= h.valid_to:
                out[int(row)] = h
        return out
