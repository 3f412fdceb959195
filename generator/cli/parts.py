"""``flowpol import --part K/N``: one of N disjoint shares of the input files.

N processes given the same inputs and parts 0/N ... N-1/N import every file exactly once
between them, side by side, each into a flow log of its own; ``flowpol generate`` then
reads the N flow logs. This is how a large raw archive (a week of a large cluster's
captures, one file per node and hour) is imported by a Kubernetes Indexed Job
(recorder/deploy/jobs/archive-import), each pod with its completion index as K.

A file's part is decided by the file alone: a hash of its path as the inputs expand it
(the same arguments give the same paths in every pod), modulo N. It does not depend on
which other files exist or on their order, so a file that appears or grows while the
pods list the archive cannot shift the others into a second part or out of all of them.
The price is balance: with F files each part gets about F/N, give or take sqrt(F/N)
(1,000 files in 16 parts: 62 +- 8); a part may get none, and then writes a flow log
without records.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from recorder.errors import InputError, UsageError
from recorder.report import ReadReport
from recorder.sources.notflows import flow_files

# Kubernetes limits an Indexed Job's completions to 100,000 (batch/v1 JobSpec).
MAX_PARTS = 100_000
_PART = re.compile(r"([0-9]{1,6})/([0-9]{1,6})")


@dataclass(frozen=True, slots=True)
class Part:
    index: int  # K, from 0
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_part(text: str) -> Part:
    """``K/N`` with 0 <= K < N <= MAX_PARTS, else a UsageError saying what to give."""
    m = _PART.fullmatch(text.strip())
    if m is None:
        raise UsageError(f"--part {text!r} is not K/N (e.g. 0/8: the first of 8 parts; "
                         "in an Indexed Job, K is the pod's JOB_COMPLETION_INDEX)")
    index, count = int(m.group(1)), int(m.group(2))
    if not 0 < count <= MAX_PARTS:
        raise UsageError(f"--part {text!r}: the number of parts must be 1 to {MAX_PARTS:,}")
    if index >= count:
        raise UsageError(f"--part {text!r}: parts are numbered 0 to {count - 1}")
    return Part(index, count)


def part_of(path: Path, count: int) -> int:
    """Which of ``count`` parts the file at ``path`` (as the inputs expand it) is in."""
    digest = hashlib.sha256(os.fsencode(path)).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True, slots=True)
class PartInputs:
    files: list[str]  # this part's files, in input order
    total: int  # files of all parts


def select_part(inputs: list[str], part: Part, report: ReadReport) -> PartInputs:
    """The files of ``inputs`` that fall in ``part``. Directories are walked as every
    command walks them (files that are clearly not flows left out with a warning). An
    input that cannot be listed (missing, a pipe) is kept in every part, so that reading
    it reports it there as it does without ``--part``."""
    files: list[str] = []
    total = 0
    for raw in inputs:
        try:
            paths = flow_files(raw, report)
        except InputError:
            files.append(raw)
            continue
        total += len(paths)
        files.extend(str(p) for p in paths if part_of(p, part.count) == part.index)
    return PartInputs(files, total)
