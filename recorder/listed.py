"""A batch of single observations that differ only in their connection.

A ``conntrack -L`` dump is a million lines that each become a FlowRecord sharing
everything but protocol, addresses and ports: the same time (the dump's), the same
input, count 1, no hints. Building a frozen dataclass per line and taking it apart
again in the aggregator was most of an import. A reader asked for batches
(``ReadOptions.listed_batches``) hands such lines over as one ``ListedRows``; the
aggregator adds it exactly as it would add ``records()`` (tests hold it to that).

Only a consumer that asked for batches gets them: every other one still sees
FlowRecords. ``first_seen`` is there for ``record_time``: a merge of several inputs by
time keeps a batch together, which is the order its records would have had (they
share the time, and a merge emits equal times of one input one after the other).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

from recorder.schema import FlowRecord
from recorder.sources.fastrecord import flow_record_maker

# (protocol, src_ip, dst_ip, dst_port, src_port, xlated_ip, xlated_port)
Row = tuple[str, str, str, "int | None", "int | None", "str | None", "int | None"]


@dataclass(frozen=True, slots=True)
class ListedRows:
    """FlowRecords ``first_seen == last_seen == first_seen``, count 1, no node, hints,
    service or verdict, the given source_format, input and time_known, and per row
    (protocol, src_ip, dst_ip, dst_port, src_port, xlated_ip, xlated_port)."""

    first_seen: int
    source_format: str
    input: str
    time_known: bool
    rows: Sequence[Row]

    def records(self) -> Iterator[FlowRecord]:
        """The records this batch stands for, in order."""
        make = flow_record_maker(
            "protocol", "src_ip", "dst_ip", "dst_port", "src_port", "xlated_ip",
            "xlated_port", first_seen=self.first_seen, last_seen=self.first_seen,
            input=self.input, time_known=self.time_known, source_format=self.source_format)
        for row in self.rows:
            yield make(*row)
