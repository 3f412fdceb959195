"""Reader for flowpol's own flow logs (JSON Lines, schema in docs/flow-schema.md)."""

from __future__ import annotations

import re
from typing import BinaryIO, Iterator

import orjson

from recorder.flowlog import (
    KINDS, RECORD_KINDS, RecordError, check_header, json_error_detail, parse_record,
)
from recorder.report import ReadReport
from recorder.schema import SCHEMA_NAME, LogRecord
from recorder.sources.base import ReadOptions, Source, numbered_lines

# When the first line does not parse (cut off by the sniff window, or broken), these
# still identify a flow log without claiming other JSON.
_MARKER = re.compile(
    rb'"kind"\s*:\s*"(?:header|flow|ip|name)"|"schema"\s*:\s*"' + re.escape(SCHEMA_NAME.encode()) + rb'"'
)


def _first_line(head: bytes) -> bytes:
    for line in head.splitlines():
        if line.strip():
            return line.strip()
    return b""


def sniff(head: bytes) -> bool:
    line = _first_line(head)
    if not line.startswith(b"{"):
        return False
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return _MARKER.search(line) is not None and b'"flow":{' not in line
    if not isinstance(obj, dict):
        return False
    return obj.get("kind") in KINDS or obj.get("schema") == SCHEMA_NAME


def read(
    stream: BinaryIO, path: str, report: ReadReport, options: ReadOptions
) -> Iterator[LogRecord]:
    lines = kept = 0
    loads = orjson.loads
    try:
        for lineno, raw in numbered_lines(stream.readline, path, report):
            if not raw.strip():
                continue
            lines += 1
            try:
                obj = loads(raw)
            except orjson.JSONDecodeError as e:
                report.skip(path, lineno, "invalid-json", json_error_detail(raw, e))
                continue
            if not isinstance(obj, dict):
                report.skip(path, lineno, "not-an-object", "each line must be a JSON object")
                continue
            kind = obj.get("kind")
            if kind == "header":
                check_header(obj, path, lineno)
                continue
            if kind not in RECORD_KINDS:
                if isinstance(kind, str) and kind:
                    # A later minor version may add line kinds; older readers skip them.
                    name = kind if len(kind) <= 32 and kind.isprintable() else "other"
                    report.ignore(f"unknown-kind:{name}")
                else:
                    report.skip(
                        path, lineno, "bad-record",
                        "the line has no 'kind' (header, flow, ip or name); see "
                        "docs/flow-schema.md",
                    )
                continue
            try:
                rec = parse_record(obj)
            except RecordError as e:
                report.skip(path, lineno, "bad-record", str(e))
                continue
            if kind == "name" and obj["name"] != rec.name:  # type: ignore[union-attr]
                report.note("dns-name-canonical-form")  # upper case or a trailing dot
            kept += 1
            yield rec
    finally:
        report.lines[path] += lines
        report.kept[path] += kept


SOURCE = Source(
    name="flowlog",
    description="flowpol flow log, JSON Lines",
    sniff=sniff,
    read=read,
)
