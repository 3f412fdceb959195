"""Edits of NetworkPolicy objects, applied to the data and, where it can be done
faithfully, to the YAML text they came from - so the proposed file is the author's own
file with rules, peers and ports taken out (or added), comments and layout kept, and the
unified diff shows only what changed.

Each ``Edit`` addresses a list item or key by its path from the policy object, e.g.
``("spec", "ingress", 0, "from", 1)``. ``apply_edits`` gives the new object;
``edit_text`` changes the text: block-style list items are removed or replaced by their
line ranges (with the comment lines right above them), new items are rendered with
``yamlout`` at the list's indentation. Anything else (flow style, a key to create, JSON)
falls back to re-emitting that policy, then the whole file. Whatever path is taken, the
new text is parsed again and must equal the new objects exactly, or the next fallback
is used: the text can never say something other than the data.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from generator.tighten.existing import YAML_LOADER, Locator, PolicyFile, read_documents
from generator.output.yamlout import dump, dump_all, strip_comments

REMOVE = "remove"  # a list item
REPLACE = "replace"  # a list item, by ``items`` (one or more)
APPEND = "append"  # ``items`` at the end of the list at ``path`` (created if missing)
REMOVE_KEY = "remove-key"  # a mapping key and its value
SET = "set"  # a mapping key to ``items[0]``

EDITED = "edited"  # the author's text with lines removed/inserted
REWRITTEN = "rewritten"  # some or all of it re-emitted


@dataclass(frozen=True, slots=True)
class Edit:
    op: str
    path: tuple
    items: tuple = ()


# ---------------------------------------------------------------- the data


def _get(obj: Any, path: tuple) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def apply_edits(obj: dict, edits: tuple[Edit, ...] | list[Edit]) -> dict:
    """The object after the edits. Indices in paths refer to the ORIGINAL object; new
    items keep any ``Commented`` wrapper (strip it with ``yamlout.strip_comments``)."""
    new = copy.deepcopy(obj)
    removed: dict[tuple, set[int]] = defaultdict(set)
    replaced: dict[tuple, dict[int, tuple]] = defaultdict(dict)
    appended: dict[tuple, list] = defaultdict(list)
    later: list[Edit] = []
    for e in edits:
        if e.op == REMOVE:
            removed[e.path[:-1]].add(e.path[-1])
        elif e.op == REPLACE:
            replaced[e.path[:-1]][e.path[-1]] = e.items
        elif e.op == APPEND:
            appended[e.path] += list(e.items)
        else:
            later.append(e)
    lists = set(removed) | set(replaced) | set(appended)
    # Deeper lists first: changing an outer list would shift the indices on the way in.
    for path in sorted(lists, key=len, reverse=True):
        parent = _get(new, path[:-1])
        current = parent.get(path[-1]) if isinstance(parent, dict) else parent[path[-1]]
        out = []
        for i, item in enumerate(current or []):
            if i in removed[path]:
                continue
            if i in replaced[path]:
                out.extend(copy.deepcopy(list(replaced[path][i])))
            else:
                out.append(item)
        out.extend(copy.deepcopy(appended[path]))
        parent[path[-1]] = out
    for e in later:
        parent = _get(new, e.path[:-1])
        if e.op == REMOVE_KEY:
            parent.pop(e.path[-1], None)
        elif e.op == SET:
            parent[e.path[-1]] = copy.deepcopy(e.items[0])
        else:
            raise ValueError(f"unknown edit {e.op!r}")
    return new


# ---------------------------------------------------------------- the text


class _Unsupported(Exception):
    """This edit cannot be made on the text faithfully; re-emit instead."""


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _last_line(node: Node) -> int:
    """0-based line of the node's last character (block collections end where their
    last child does; their end mark is already at the next token)."""
    if isinstance(node, ScalarNode) or getattr(node, "flow_style", False):
        end = node.end_mark
        return end.line if end.column > 0 else end.line - 1
    children: list[Node] = []
    if isinstance(node, SequenceNode):
        children = list(node.value)
    elif isinstance(node, MappingNode):
        children = [n for pair in node.value for n in pair]
    return max((_last_line(c) for c in children), default=node.start_mark.line)


def _child(node: Node, key: Any) -> Node:
    if isinstance(node, SequenceNode) and isinstance(key, int):
        if key >= len(node.value):
            raise _Unsupported
        return node.value[key]
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return v
    raise _Unsupported


def _node_at(node: Node, path: tuple) -> Node:
    for key in path:
        node = _child(node, key)
    return node


class _Text:
    def __init__(self, text: str):
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.lines = text.split(self.newline)
        self.trailing_newline = text.endswith(self.newline)
        if self.trailing_newline:
            self.lines.pop()
        # (first line, last line inclusive, replacement lines); applied bottom-up
        self.changes: list[tuple[int, int, list[str]]] = []

    def item_range(self, seq: Node, index: int, with_comments: bool = True
                   ) -> tuple[int, int, int]:
        """(first line, last line, dash column) of a block sequence item, with the
        comment lines right above it at its dash's indentation (``with_comments``)."""
        if not isinstance(seq, SequenceNode) or seq.flow_style or index >= len(seq.value):
            raise _Unsupported
        item = seq.value[index]
        line, col = item.start_mark.line, item.start_mark.column
        prefix = self.lines[line][:col]
        if prefix.strip() == "-":
            dash_line = line
        elif not prefix.strip() and line > 0 and self.lines[line - 1].strip() == "-":
            dash_line = line - 1
        else:
            raise _Unsupported
        dash_col = self.lines[dash_line].index("-")
        end = _last_line(item)
        while end + 1 < len(self.lines) and _is_comment(self.lines[end + 1]) \
                and _indent(self.lines[end + 1]) > dash_col:
            end += 1
        start = dash_line
        while with_comments and start > 0 and _is_comment(self.lines[start - 1]) \
                and _indent(self.lines[start - 1]) == dash_col:
            start -= 1
        return start, end, dash_col

    def key_range(self, mapping: Node, key: str) -> tuple[int, int]:
        if not isinstance(mapping, MappingNode) or mapping.flow_style:
            raise _Unsupported
        for k, v in mapping.value:
            if isinstance(k, ScalarNode) and k.value == key:
                line, col = k.start_mark.line, k.start_mark.column
                if self.lines[line][:col].strip():
                    raise _Unsupported  # e.g. "- ingress:": the dash belongs to the parent
                end = max(_last_line(v), line)
                while end + 1 < len(self.lines) and _is_comment(self.lines[end + 1]) \
                        and _indent(self.lines[end + 1]) > col:
                    end += 1
                start = line
                while start > 0 and _is_comment(self.lines[start - 1]) \
                        and _indent(self.lines[start - 1]) == col:
                    start -= 1
                return start, end
        raise _Unsupported

    def replace(self, start: int, end: int, new: list[str]) -> None:
        """Lines start..end (inclusive) become ``new``; ``end == start - 1`` inserts
        ``new`` before line ``start``."""
        self.changes.append((start, end, new))

    def render(self) -> str:
        _check_disjoint(self.changes)
        lines = list(self.lines)
        # Bottom-up; at the same line a replacement goes before an insertion there.
        for start, end, new in sorted(self.changes, key=lambda c: (c[0], c[1] >= c[0]),
                                      reverse=True):
            lines[start:end + 1] = new
        text = self.newline.join(lines)
        return text + self.newline if self.trailing_newline and lines else text


def _check_disjoint(changes: list[tuple[int, int, list[str]]]) -> None:
    ranges = sorted((s, e) for s, e, _ in changes if e >= s)
    for (_, e1), (s2, _) in zip(ranges, ranges[1:]):
        if s2 <= e1:
            raise _Unsupported  # overlapping edits: re-emit
    for p in (s for s, e, _ in changes if e < s):
        if any(s < p <= e for s, e in ranges):
            raise _Unsupported  # an insertion inside a replaced range


def _render_items(items: tuple | list, indent: int) -> list[str]:
    return [(" " * indent + line) if line else line for line in dump(list(items)).splitlines()]


def _edit_policy(t: _Text, node: Node, edits: tuple[Edit, ...]) -> None:
    for e in edits:
        if e.op in (REMOVE, REPLACE):
            seq = _node_at(node, e.path[:-1])
            # A replaced item keeps the author's comment above it; a removed one takes it.
            start, end, col = t.item_range(seq, e.path[-1], with_comments=e.op == REMOVE)
            t.replace(start, end, _render_items(e.items, col) if e.op == REPLACE else [])
        elif e.op == APPEND:
            seq = _node_at(node, e.path)
            if not isinstance(seq, SequenceNode) or not seq.value:
                raise _Unsupported
            _, end, col = t.item_range(seq, len(seq.value) - 1)
            t.replace(end + 1, end, _render_items(e.items, col))
        elif e.op == REMOVE_KEY:
            start, end = t.key_range(_node_at(node, e.path[:-1]), e.path[-1])
            t.replace(start, end, [])
        else:
            raise _Unsupported


def _reemit_policy(t: _Text, root: Node, locator: Locator, obj: dict) -> None:
    if locator[1] is None:
        t.replace(root.start_mark.line, _last_line(root), dump(obj).splitlines())
        return
    start, end, col = t.item_range(_child(root, "items"), locator[1])
    t.replace(start, end, _render_items([obj], col))


def _expected(docs: list[Any], new_objects: dict[Locator, dict], added: list[dict]) -> list[Any]:
    out = copy.deepcopy(docs)
    for (d, i), obj in new_objects.items():
        if i is None:
            out[d] = obj
        else:
            out[d]["items"][i] = obj
    return out + added


def edit_file(file: PolicyFile, changed: dict[Locator, tuple[dict, tuple[Edit, ...]]],
              added: list[dict] = ()) -> tuple[str, str]:
    """The file's new text and how it was made (EDITED or REWRITTEN).

    ``changed``: per policy locator, its new object (may hold ``Commented`` items) and the
    edits that made it; ``added``: new policy objects appended as documents.
    """
    docs, _ = read_documents(file.text, file.path)
    plain = {loc: strip_comments(obj) for loc, (obj, _) in changed.items()}
    expected = _expected(docs, plain, [strip_comments(a) for a in added])
    if file.is_json:
        if added:
            raise ValueError("new policies are never added to a JSON file")
        out = expected[0] if len(expected) == 1 else expected
        return json.dumps(out, indent=2, ensure_ascii=False) + "\n", REWRITTEN

    def parses_back(text: str) -> bool:
        try:
            return list(yaml.load_all(text, Loader=YAML_LOADER)) == expected
        except yaml.YAMLError:
            return False

    roots = list(yaml.compose_all(file.text, Loader=YAML_LOADER))
    method = EDITED
    t = _Text(file.text)
    for locator, (obj, edits) in sorted(changed.items()):
        node = roots[locator[0]] if locator[1] is None \
            else _child(roots[locator[0]], "items").value[locator[1]]
        before = len(t.changes)
        try:
            _edit_policy(t, node, edits)
            _check_disjoint(t.changes[before:])
        except _Unsupported:
            del t.changes[before:]
            _reemit_policy(t, roots[locator[0]], locator, obj)
            method = REWRITTEN
    try:
        text = t.render()
    except _Unsupported:
        text, method = None, REWRITTEN
    if text is not None and added:
        if text and not text.endswith(t.newline):
            text += t.newline
        text += "".join(f"---{t.newline}" + dump(a).replace("\n", t.newline) for a in added)
    if text is not None and parses_back(text):
        return text, method
    # Last resort: the whole file from the data (comments of the author are lost).
    docs_out = [d for d in _expected(docs, {loc: obj for loc, (obj, _) in changed.items()},
                                     list(added)) if d is not None]
    return dump_all(docs_out), REWRITTEN
