"""Inputs that are not flows, told apart by content: what to say about a file no reader
recognises, and which files of a directory input to leave out.

A file named on the command line that no reader recognises is an input error; when its
content shows what it is instead (a cluster snapshot, Kubernetes manifests, a flowpol
report, documentation, an image or archive), the error says so. A directory input is
often a folder of everything a capture produced: its files that are clearly not flows
are left out and listed in one warning, its other unrecognised files stay errors (a
damaged capture must not go unnoticed).
"""

from __future__ import annotations

import re
from pathlib import Path

from recorder.errors import InputError
from recorder.report import ReadReport
from recorder.sources.base import SNIFF_BYTES

_SNAPSHOT_KINDS = (b"Pod", b"Service", b"EndpointSlice", b"Namespace", b"Node", b"Deployment",
                   b"ReplicaSet", b"StatefulSet", b"DaemonSet", b"Job", b"CronJob")
# `kubectl get ... -o json|yaml`: a List, or one object, with apiVersion and kind.
_JSON_KIND = re.compile(rb'"kind"\s*:\s*"([A-Za-z]+)"')
_YAML_KIND = re.compile(rb"^kind:\s*([A-Za-z]+)\s*$", re.M)
_API_VERSION = re.compile(rb'"apiVersion"\s*:|^apiVersion:', re.M)
_MARKDOWN_HEADING = re.compile(rb"#{1,6} \S")
# Every flow input names addresses: a text without anything like one holds no flow. (A
# time of day passes for an IPv6 address here: that errs on the side of reading.)
_ADDRESS_LIKE = re.compile(rb"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:")
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"%PDF-", "a PDF document"),
          (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"PK\x03\x04", "a zip archive"), (b"\x7fELF", "an executable"))
SNAPSHOT = "a cluster snapshot"


def describe(head: bytes) -> str | None:
    """What ``head`` (a file's first bytes, decompressed) shows the file to be, when it
    is clearly not a flow input; None when it might be one."""
    if not head.strip():
        return None  # empty: an error of its own (a capture that recorded nothing?)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    text = head.lstrip()
    if text.startswith((b"{", b"[")) or text.startswith((b"apiVersion:", b"kind:", b"---")):
        if b'"flowpol_report"' in head or b'"flowpol_migrate"' in head \
                or b'"flowpol_diff"' in head or b'"flowpol_verify"' in head:
            return "a flowpol report"
        if _API_VERSION.search(head):
            kinds = set(_JSON_KIND.findall(head)) | set(_YAML_KIND.findall(head))
            if kinds & set(_SNAPSHOT_KINDS) or b"List" in kinds:
                return SNAPSHOT
            return "Kubernetes manifests"
        return None
    first = text.split(b"\n", 1)[0]
    if _MARKDOWN_HEADING.match(first):
        return "documentation (Markdown)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not only a character cut by the sniff window
            return None
    if _ADDRESS_LIKE.search(head) is None:
        return "a text without any IP address"
    return None


def _head(path: Path) -> bytes:
    from recorder.sources import open_input

    with open_input(path) as f:
        try:
            return f.read(SNIFF_BYTES)
        except (OSError, EOFError):
            return b""


def unknown_format_error(path: Path, display: str, formats_text: str) -> InputError:
    """The error for a file no reader recognises. ``formats_text``: what flowpol reads,
    given once per run (``InputError.hint``), not once per file."""
    what = describe(_head(path))
    if what == SNAPSHOT:
        return InputError("this looks like a cluster snapshot; pass it with --snapshot, "
                          "not as a flow input", display)
    if what is not None:
        return InputError(f"this is {what}, not a flow input; leave it out", display)
    error = InputError("unknown input format; --format forces one", display)
    error.hint = f"flowpol reads {formats_text}"
    return error


def flow_files(raw: str, report: ReadReport) -> list[Path]:
    """The files of input ``raw`` (``expand_inputs``), less, for a directory, its files
    that are clearly not flows: those are listed in one warning on ``report``."""
    from recorder.sources import detect_format, expand_inputs

    paths = expand_inputs([raw])
    if not Path(raw).is_dir():
        return paths
    kept: list[Path] = []
    left_out: list[str] = []
    for p in paths:
        try:
            what = None if detect_format(p) else describe(_head(p))
        except (InputError, OSError):
            what = None  # reading it says what is wrong
        if what is None:
            kept.append(p)
        else:
            hint = ", pass it with --snapshot" if what == SNAPSHOT else ""
            left_out.append(f"{p.relative_to(raw)}: {what}{hint}")
    if left_out:
        report.warnings.append(f"{raw}: left out {len(left_out)} file(s) that are not flow "
                               f"inputs ({'; '.join(left_out)})")
    return kept
