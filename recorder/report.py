"""What a reader kept and skipped: counted, with examples, never silent."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from recorder.errors import InputError

MAX_EXAMPLES_PER_REASON = 5
# What an input's items are, where they are not lines (a capture's are packets): the
# unit of its counts and of the numbers its skipped items are named by.
ITEM_UNITS = {"pcap": "packet"}


def item_unit(fmt: str | None) -> str:
    return ITEM_UNITS.get(fmt or "", "line")


@dataclass(frozen=True, slots=True)
class Skipped:
    """One input item that was not turned into a record, and why."""

    path: str
    line: int | None  # line number, or packet number for captures (1-based)
    reason: str  # a short stable key, e.g. "invalid-json", "non-flow:node_status"
    detail: str = ""
    unit: str = "line"  # what ``line`` counts (``item_unit``)

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")

    @property
    def where(self) -> str:
        if self.line is None:
            return self.path
        if self.unit == "line":
            return f"{self.path}:{self.line}"
        return f"{self.path}: {self.unit} {self.line}"


@dataclass
class ReadReport:
    """Mutable tally a reader fills while it streams.

    ``skip`` is for data that was bad or unusable: counted as skipped, and an input
    error of the commands that read flow inputs (exit 2 once the output of the valid
    records is written; fatal at once under ``strict``). ``ignore`` is for items that are valid but not flows or not
    wanted (non-flow Hubble events, replies, dropped verdicts), counted per reason and
    never an error. ``note`` counts what a reader did with valid items besides keeping
    or ignoring them (DNS answers read, names brought to canonical form), never an
    error either.
    """

    strict: bool = False
    kept: Counter = field(default_factory=Counter)  # input path -> records yielded
    lines: Counter = field(default_factory=Counter)  # input path -> items read
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    ignored: Counter = field(default_factory=Counter)  # reason -> count
    noted: Counter = field(default_factory=Counter)  # what -> count
    # up to MAX_EXAMPLES_PER_REASON per input and reason; ``examples_in_input_order``
    # picks the first of them per reason, so which ones are shown does not depend on
    # how the readers of several inputs interleaved
    examples: list[Skipped] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)  # input path -> format
    # about inputs as a whole (a directory's files left out, a file of L7 records only)
    warnings: list[str] = field(default_factory=list)
    _per_input: Counter = field(default_factory=Counter, repr=False, compare=False)

    def skip(self, path: str, line: int | None, reason: str, detail: str = "") -> None:
        unit = item_unit(self.formats.get(path))
        item = Skipped(path, line, reason, detail, unit)
        if self.strict:
            numbered = unit == "line" or line is None
            raise InputError(
                ("" if numbered else f"{unit} {line}: ")
                + f"{reason}" + (f": {detail}" if detail else "")
                + " (--strict stops at the first bad item and writes nothing; without it,"
                " bad items are skipped, counted and reported after the output of every"
                " valid record is written)",
                path,
                line if numbered else None,
            )
        self.skipped[reason] += 1
        if self._per_input[path, reason] < MAX_EXAMPLES_PER_REASON:
            self._per_input[path, reason] += 1
            self.examples.append(item)

    def ignore(self, reason: str, n: int = 1) -> None:
        self.ignored[reason] += n

    def note(self, what: str, n: int = 1) -> None:
        self.noted[what] += n

    def examples_in_input_order(self) -> list[Skipped]:
        """The first MAX_EXAMPLES_PER_REASON examples of each reason, by input, then
        line: inputs are read merged in time order, so their bad lines are found
        interleaved."""
        order = {p: i for i, p in enumerate(self.formats)}
        ordered = sorted(self.examples, key=lambda e: (order.get(e.path, len(order)),
                                                       -1 if e.line is None else e.line))
        shown: Counter = Counter()
        out = []
        for e in ordered:
            if shown[e.reason] < MAX_EXAMPLES_PER_REASON:
                shown[e.reason] += 1
                out.append(e)
        return out

    def merge(self, other: "ReadReport") -> None:
        """Add what another report of other inputs counted (a reader in a worker)."""
        self.kept.update(other.kept)
        self.lines.update(other.lines)
        self.skipped.update(other.skipped)
        self.ignored.update(other.ignored)
        self.noted.update(other.noted)
        self.warnings.extend(w for w in other.warnings if w not in self.warnings)
        self.examples.extend(other.examples)
        self._per_input.update(other._per_input)
        for path, fmt in other.formats.items():
            self.formats.setdefault(path, fmt)

    @property
    def total_kept(self) -> int:
        return sum(self.kept.values())

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def to_dict(self) -> dict:
        return {
            "inputs": {
                p: {"format": self.formats.get(p), "read": self.lines[p], "kept": self.kept[p]}
                for p in sorted(set(self.lines) | set(self.kept))
            },
            "kept": self.total_kept,
            "skipped": dict(sorted(self.skipped.items())),
            "ignored": dict(sorted(self.ignored.items())),
            "noted": dict(sorted(self.noted.items())),
            "examples": [str(e) for e in self.examples_in_input_order()],
            "warnings": list(self.warnings),
        }
