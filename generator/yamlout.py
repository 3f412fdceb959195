"""A small deterministic YAML emitter that can put comments before list items.

PyYAML cannot emit comments, and the evidence for each rule belongs right above the
rule where a reviewer reads it. Scalars are quoted by PyYAML itself so the output
always parses back to the same data (a test checks that round trip).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml


@dataclass(frozen=True, slots=True)
class Commented:
    """A list item preceded by ``# comment`` lines."""

    value: object
    comments: tuple[str, ...]


def strip_comments(obj: object) -> object:
    if isinstance(obj, Commented):
        return strip_comments(obj.value)
    if isinstance(obj, dict):
        return {k: strip_comments(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [strip_comments(v) for v in obj]
    return obj


def _dump_scalar(v: object) -> str:
    text = yaml.safe_dump(v, default_flow_style=True, width=1 << 30, allow_unicode=True)
    if text.endswith("\n...\n"):
        text = text[: -len("\n...\n")]
    return text.rstrip("\n")


# yaml.safe_dump builds a whole Dumper per call (~60 us) and a policy set has tens of
# thousands of scalars, mostly repeats (label keys and values, names, ports, protocols):
# each distinct scalar is dumped once. Keyed by type too: True == 1 == 1.0.
_scalar_cache: dict[tuple[type, object], str] = {}
_MAX_SCALAR_CACHE = 100_000
# A word PyYAML writes plain (no indicator characters, not starting with a digit, sign
# or dot), unless it reads back as something else (yes, off, null ...): the resolver
# decides that, as it does inside safe_dump.
_PLAIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*")
_STR_TAG = "tag:yaml.org,2002:str"
_resolver = yaml.resolver.Resolver()


def _scalar(v: object) -> str:
    t = type(v)
    if t is int:
        return str(v)  # what safe_dump writes for an int
    try:
        return _scalar_cache[(t, v)]
    except KeyError:
        pass
    except TypeError:  # unhashable: an empty {} or []
        return _dump_scalar(v)
    if t is str and _PLAIN_WORD.fullmatch(v) and \
            _resolver.resolve(yaml.ScalarNode, v, (True, False)) == _STR_TAG:  # type: ignore[arg-type]
        text = v
    else:
        text = _dump_scalar(v)
    if len(_scalar_cache) >= _MAX_SCALAR_CACHE:
        _scalar_cache.clear()
    _scalar_cache[(t, v)] = text  # type: ignore[assignment]
    return text


def _is_scalar(v: object) -> bool:
    return not isinstance(v, (dict, list, Commented)) or v in ({}, [])


def _emit(obj: object, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = _scalar(k)
            if isinstance(v, Commented):
                raise TypeError("Commented is only allowed as a list item")
            if _is_scalar(v):
                out.append(f"{pad}{key}: {_scalar(v)}")
            elif isinstance(v, list):
                out.append(f"{pad}{key}:")
                _emit(v, indent, out)  # block sequences at the key's indent, as kubectl
            else:
                out.append(f"{pad}{key}:")
                _emit(v, indent + 2, out)
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, Commented):
                for c in item.comments:
                    out.append(f"{pad}# {c}" if c else f"{pad}#")
                item = item.value
            if _is_scalar(item):
                out.append(f"{pad}- {_scalar(item)}")
                continue
            sub: list[str] = []
            _emit(item, indent + 2, sub)
            first = sub[0]
            out.append(f"{pad}- {first[indent + 2:]}")
            out.extend(sub[1:])
    else:
        out.append(f"{pad}{_scalar(obj)}")


def dump(obj: object, header_comments: tuple[str, ...] = ()) -> str:
    out = [f"# {c}" if c else "#" for c in header_comments]
    _emit(obj, 0, out)
    return "\n".join(out) + "\n"


def dump_all(docs: list[object], header_comments: tuple[str, ...] = ()) -> str:
    parts = [dump(d) for d in docs]
    head = "".join(f"# {c}\n" if c else "#\n" for c in header_comments)
    return head + "---\n" + "---\n".join(parts) if parts else head
