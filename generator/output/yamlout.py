"""A small deterministic YAML emitter that can put comments before list items.

PyYAML cannot emit comments, and the evidence for each rule belongs right above the
rule where a reviewer reads it. Scalars are quoted by PyYAML itself so the output
always parses back to the same data (a test checks that round trip).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from generator.output.plaintext import NOT_TEXT_BEYOND_C0, escape_char


@dataclass(frozen=True, slots=True)
class Commented:
    """A list item preceded by ``# comment`` lines."""

    value: object
    comments: tuple[str, ...]


def strip_comments(obj: object) -> object:
    if isinstance(obj, Commented):
        return strip_comments(obj.value)
    if isinstance(obj, dict):
        # Strings and ints, most of a manifest's values, are returned as they are
        # without a call each.
        return {k: v if type(v) is str or type(v) is int else strip_comments(v)
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [v if type(v) is str or type(v) is int else strip_comments(v) for v in obj]
    return obj


def _dump_scalar(v: object) -> str:
    text = yaml.safe_dump(v, default_flow_style=True, width=1 << 30, allow_unicode=True)
    if text.endswith("\n...\n"):
        text = text[: -len("\n...\n")]
    return text.rstrip("\n")


# yaml.safe_dump builds a whole Dumper per call (~20-50 us) and a policy set has tens of
# thousands of scalars, mostly repeats (label keys and values, names, ports, protocols):
# each distinct scalar is dumped once. Keyed by type too: True == 1 == 1.0. Strings,
# nearly all of them, have a table of their own keyed by the string alone.
_scalar_cache: dict[tuple[type, object], str] = {}
_str_cache: dict[str, str] = {}
_MAX_SCALAR_CACHE = 100_000
# A word PyYAML writes plain (no indicator characters, not starting with a digit, sign
# or dot), unless it reads back as something else (yes, off, null ...): the resolver
# decides that, as it does inside safe_dump.
_PLAIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*")
_STR_TAG = "tag:yaml.org,2002:str"
_resolver = yaml.resolver.Resolver()
# Other strings: safe_dump writes a string that reads back as a string plain, as it
# is, when its emitter's analysis allows a plain scalar outside flow context (the
# context of a lone document, with no line width in the way); else it quotes it.
# The same analysis is asked here, without the rest of a Dumper. It does not write.
_analyzer = yaml.emitter.Emitter(None, allow_unicode=True)


def _scalar(v: object) -> str:
    t = type(v)
    if t is int:
        return str(v)  # what safe_dump writes for an int
    if t is str:
        text = _str_cache.get(v)  # type: ignore[arg-type]
        if text is None:
            text = _str_scalar(v)  # type: ignore[arg-type]
        return text
    try:
        return _scalar_cache[(t, v)]
    except KeyError:
        pass
    except TypeError:  # unhashable: an empty {} or []
        return _dump_scalar(v)
    text = _dump_scalar(v)
    if len(_scalar_cache) >= _MAX_SCALAR_CACHE:
        _scalar_cache.clear()
    _scalar_cache[(t, v)] = text  # type: ignore[assignment]
    return text


def _str_scalar(v: str) -> str:
    # Plain when it reads back as a string and the emitter would not quote it.
    resolved = _resolver.resolve(yaml.ScalarNode, v, (True, False))  # type: ignore[arg-type]
    if resolved == _STR_TAG and (_PLAIN_WORD.fullmatch(v)
                                 or _analyzer.analyze_scalar(v).allow_block_plain):
        text = v
    else:
        text = _dump_scalar(v)
    if len(_str_cache) >= _MAX_SCALAR_CACHE:
        _str_cache.clear()
    _str_cache[v] = text
    return text


# A comment is one line of text for a reviewer: nothing in it may end it early, or what
# follows would be read as YAML (a file name ending "\n  - {}" would add an allow-all
# rule). YAML 1.1 (what PyYAML reads) breaks lines at \n, \r, \x85, \u2028 and \u2029
# (spec 1.1, 4.1.4 "End of Line Markers"; 1.2 dropped the last three, so readers
# differ); other tools (Python's splitlines, editors) also break at \x0b, \x0c and
# \x1c-\x1e. Every control character (Cc), line or paragraph separator (Zl, Zp),
# surrogate (Cs) and format character (Cf: bidi overrides that make a reviewer read
# the line in another order) is written as a Python-style escape, and so is the
# backslash itself, so that the escaped text reads back unambiguously. A stream with
# C0 controls other than tab/LF/CR is not even readable YAML (1.1, 5.1 "Character Set").
# The characters past the C0 controls: generator/output/plaintext.py.
_UNSAFE_IN_COMMENT = re.compile("[\\\\\x00-\x1f" + NOT_TEXT_BEYOND_C0 + "]")


def comment_line(text: str) -> str:
    """``# text`` on one line whatever ``text`` holds: the one place comments are
    written (headers and evidence alike)."""
    if not text:
        return "#"
    return "# " + _UNSAFE_IN_COMMENT.sub(escape_char, text)


def _is_scalar(v: object) -> bool:
    return not isinstance(v, (dict, list, Commented)) or v in ({}, [])


def _emit(obj: object, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = _scalar(k)
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{key}:")
                # block sequences at the key's indent, as kubectl
                _emit(v, indent if isinstance(v, list) else indent + 2, out)
            elif isinstance(v, Commented):
                raise TypeError("Commented is only allowed as a list item")
            else:
                out.append(f"{pad}{key}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, Commented):
                for c in item.comments:
                    out.append(pad + comment_line(c))
                item = item.value
            if _is_scalar(item):
                out.append(f"{pad}- {_scalar(item)}")
                continue
            # The item's lines, indented under the dash; its first line then takes it.
            first = len(out)
            _emit(item, indent + 2, out)
            out[first] = f"{pad}- {out[first][indent + 2:]}"
    else:
        out.append(f"{pad}{_scalar(obj)}")


def dump(obj: object, header_comments: tuple[str, ...] = ()) -> str:
    out = [comment_line(c) for c in header_comments]
    _emit(obj, 0, out)
    return "\n".join(out) + "\n"


def dump_all(docs: list[object], header_comments: tuple[str, ...] = ()) -> str:
    parts = [dump(d) for d in docs]
    head = "".join(comment_line(c) + "\n" for c in header_comments)
    return head + "---\n" + "---\n".join(parts) if parts else head
