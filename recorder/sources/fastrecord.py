"""A faster FlowRecord constructor for readers that create one record per input line.

A frozen dataclass's ``__init__`` sets every field through ``object.__setattr__`` with
keyword handling on top; for one-record-per-line inputs (conntrack dumps, packet
captures) that is most of the import time. :func:`flow_record_maker` generates a plain
function that takes only the fields a reader varies and fills constants and schema
defaults. The result is an ordinary ``FlowRecord``, equal to one built with
``FlowRecord(...)`` (tests check this), and it follows the schema automatically when
fields are added (they get their defaults).

How the slots are filled: the function builds an instance of a private, mutable class
with exactly FlowRecord's ``__slots__`` (plain attribute stores, which the interpreter
specialises to direct slot writes) and then sets ``__class__`` to FlowRecord. CPython
allows that only between classes with the same base and identical slot layout, so the
fields land where FlowRecord reads them; this is about 3x faster than calling each
slot descriptor's ``__set__``. Where the interpreter refuses the swap (a FlowRecord
without plain slots, another Python implementation) the descriptor version is used.

:func:`slots_maker` is the same for any frozen, slotted dataclass without
``__post_init__`` (the generator builds one Connection per flow aggregate with it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, TypeVar

from recorder.schema import FlowRecord

T = TypeVar("T")


def _constant(label: str, value: Any, namespace: dict[str, Any]) -> str:
    """Source for a constant: a literal when it has one (cheaper than a global)."""
    if value is None or type(value) in (bool, int, str):
        return repr(value)
    namespace[label] = value
    return label


def _field_values(cls: type, names: tuple[str, ...], fixed: dict[str, Any],
                  namespace: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, source expression) for every field, in declaration order."""
    values = []
    for name, f in ((f.name, f) for f in dataclasses.fields(cls)):
        if name in names:
            value = name
        elif name in fixed:
            value = _constant(f"_fixed_{name}", fixed[name], namespace)
        elif f.default is not dataclasses.MISSING:
            value = _constant(f"_default_{name}", f.default, namespace)
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = f.default_factory
            value = f"_factory_{name}()"
        else:
            raise TypeError(f"{cls.__name__} field {name!r} has no default; pass it")
        values.append((name, value))
    return values


def _mutable_twin(cls: type) -> type | None:
    """A mutable class ``cls`` instances can be built as, or None if not allowed."""
    slots = cls.__dict__.get("__slots__")
    if not isinstance(slots, tuple):
        return None
    twin = type(f"_{cls.__name__}UnderConstruction", (), {"__slots__": slots})
    try:
        probe: Any = object.__new__(twin)
        probe.__class__ = cls
    except TypeError:
        return None
    return twin


_TWINS: dict[type, type | None] = {}


def flow_record_maker(*names: str, **fixed: Any) -> Callable[..., FlowRecord]:
    """``maker(*values)`` -> FlowRecord with ``names`` set positionally, ``fixed`` as given."""
    return slots_maker(FlowRecord, *names, **fixed)


def slots_maker(cls: type[T], *names: str, **fixed: Any) -> Callable[..., T]:
    """``maker(*values)`` -> a ``cls`` with ``names`` set positionally, ``fixed`` as
    given, every other field its default. ``cls``: a frozen, slotted dataclass that
    has no ``__post_init__`` (the maker would skip it)."""
    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = [n for n in (*names, *fixed) if n not in fields]
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {unknown}")
    overlap = set(names) & set(fixed)
    if overlap:
        raise TypeError(f"field(s) {sorted(overlap)} both positional and fixed")
    if cls not in _TWINS:
        _TWINS[cls] = _mutable_twin(cls)
    twin = _TWINS[cls]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_twin": twin}
    values = _field_values(cls, names, fixed, namespace)
    body = [f"def make({', '.join(names)}):"]
    if twin is not None:
        body.append("    r = _new(_twin)")
        body += [f"    r.{name} = {value}" for name, value in values]
        body.append("    r.__class__ = _cls")
    else:
        body.append("    r = _new(_cls)")
        for name, value in values:
            namespace[f"_set_{name}"] = cls.__dict__[name].__set__
            body.append(f"    _set_{name}(r, {value})")
    body.append("    return r")
    exec("\n".join(body), namespace)  # noqa: S102 - code built from field names only
    return namespace["make"]  # type: ignore[no-any-return]
