"""Bounds on how deeply an input may nest lists and mappings.

Parsers and our own walks recurse: json raises RecursionError past about 1000 levels,
PyYAML's libyaml composer recurses in C and crashes the process (SIGSEGV) somewhere
past 20000 levels, and YAML dumping, copying and comparing a kept object recurse too.
No Kubernetes object comes near these depths (a NetworkPolicy is about 10 levels, a
CRD's schema rarely 100), so a document deeper than ``MAX_DOCUMENT_DEPTH`` is refused
before libyaml sees it, and an object we keep and write again must stay within
``MAX_OBJECT_DEPTH``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_DOCUMENT_DEPTH = 512
MAX_OBJECT_DEPTH = 64
# Values an object may hold once YAML aliases are expanded: far beyond the largest real
# policy, far below what comparing or dumping a "billion laughs" of aliases costs.
# go-yaml, which the API server's YAML decoding uses, refuses "excessive aliasing" too.
MAX_OBJECT_VALUES = 1_000_000

# Indentation, compact sequence entries ("- - x"), complex keys: everything at the start
# of a line that can open a block collection without the line being indented further.
_BLOCK_PREFIX = re.compile(r"^[ \t?:-]*", re.MULTILINE)


def _depth_bound(text: str) -> int:
    """An upper bound of the nesting depth of YAML ``text``, from a few C-speed scans.

    Block collections: every two levels move the content at least one column right, and
    a line's content column is at most the length of its prefix of spaces, '-', '?' and
    ':'. Flow collections: at most one empty ``[]``/``{}`` on any path (a leaf), every
    other level needs its own opening bracket. Brackets inside strings only raise it."""
    widest = max((m.end() - m.start() for m in _BLOCK_PREFIX.finditer(text)), default=0)
    opening = text.count("[") + text.count("{")
    empty = text.count("[]") + text.count("{}")
    return 2 * widest + 2 + (opening - empty) + 1


def yaml_too_deep(text: str, loader: type, limit: int = MAX_DOCUMENT_DEPTH) -> int | None:
    """The 1-based line where YAML ``text`` first nests deeper than ``limit``, else None.
    The event scan (iterative, no composing) runs only when the cheap bound cannot rule
    it out, so ordinary files pay only the scans of ``_depth_bound``."""
    if _depth_bound(text) <= limit:
        return None
    depth = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            kind = type(event)
            if kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                depth += 1
                if depth > limit:
                    return event.start_mark.line + 1
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                depth -= 1
    except yaml.YAMLError:
        return None  # a syntax error: the real load reports it with its line
    return None


def too_deep(value: Any, limit: int = MAX_OBJECT_DEPTH) -> bool:
    """True when ``value`` nests mappings and lists more than ``limit`` deep. Iterative:
    it must not itself be the recursion it guards against."""
    if not isinstance(value, (dict, list)):
        return False
    # YAML aliases share one list or mapping between many places (and can make it
    # contain itself): each is walked again only when reached deeper than before, or
    # an alias "billion laughs" of a few lines would take forever here.
    deepest: dict[int, int] = {}
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if deepest.get(id(item), 0) >= depth:
            continue
        deepest[id(item)] = depth
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _expands_past(value: Any, limit: int) -> bool:
    """True when ``value`` holds more than ``limit`` lists, mappings and scalars once
    shared (aliased) parts are counted each time they appear. Sizes are computed once
    per shared part. Call only on values ``too_deep`` passed (no cycles)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, children_done = stack.pop()
        if id(item) in sizes:
            continue
        children = [c for c in (item.values() if isinstance(item, dict) else item)]
        if children_done:
            size = 1 + sum(sizes[id(c)] if isinstance(c, (dict, list)) else 1 for c in children)
            if size > limit:
                return True
            sizes[id(item)] = size
            continue
        stack.append((item, True))
        stack.extend((c, False) for c in children
                     if isinstance(c, (dict, list)) and id(c) not in sizes)
    return False


def _tree_shape(value: dict | list, limit: int) -> tuple[bool, int] | None:
    """(deeper than ``limit``, values) of ``value`` in one walk, or None when some list
    or mapping in it is reached twice (a YAML alias: shared, or containing itself).

    What ``too_deep`` and ``_expands_past`` answer, for the usual object: a tree, where
    each part is reached once and the values are just counted. A path deeper than the
    limit is one whatever else is shared, so that answer needs no tree. Iterative, like
    them. The policies of a generated set are checked so on every run, and the two
    walks with their bookkeeping for aliases were most of parsing them."""
    seen: set[int] = set()
    values = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if depth > limit:
            return True, values
        if id(item) in seen:  # all of value is alive: no id is reused meanwhile
            return None
        seen.add(id(item))
        values += 1
        depth += 1
        for child in (item.values() if isinstance(item, dict) else item):
            if isinstance(child, (dict, list)):
                push((child, depth))
            else:
                values += 1
    return False, values


def object_problem(value: Any) -> str | None:
    """Why an object we keep, compare and write again is not one, or None."""
    shape = _tree_shape(value, MAX_OBJECT_DEPTH) if isinstance(value, (dict, list)) else None
    if shape is not None:
        deep, values = shape
        if deep:
            return _TOO_DEEP
        return _EXPANDS if values > MAX_OBJECT_VALUES else None
    if too_deep(value):
        return _TOO_DEEP
    if _expands_past(value, MAX_OBJECT_VALUES):
        return _EXPANDS
    return None


_TOO_DEEP = (f"lists and mappings nest more than {MAX_OBJECT_DEPTH} levels deep (or "
             "contain themselves through a YAML alias), which no policy does")
_EXPANDS = (f"its YAML aliases expand to more than {MAX_OBJECT_VALUES:,} values "
            "(\"billion laughs\"), which no policy needs; write the values out")
