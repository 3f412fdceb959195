"""A faster FlowRecord constructor for readers that create one record per input line.

A frozen dataclass's ``__init__`` sets every field through ``object.__setattr__`` with
keyword handling on top; for one-record-per-line inputs (conntrack dumps, packet
captures) that is most of the import time. :func:`flow_record_maker` generates a plain
function that takes only the fields a reader varies, fills constants and schema
defaults, and writes the slots directly. The result is an ordinary ``FlowRecord``,
equal to one built with ``FlowRecord(...)`` (tests check this), and it follows the
schema automatically when fields are added (they get their defaults).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from recorder.schema import FlowRecord


def flow_record_maker(*names: str, **fixed: Any) -> Callable[..., FlowRecord]:
    """``maker(*values)`` -> FlowRecord with ``names`` set positionally, ``fixed`` as given."""
    fields = {f.name: f for f in dataclasses.fields(FlowRecord)}
    unknown = [n for n in (*names, *fixed) if n not in fields]
    if unknown:
        raise TypeError(f"FlowRecord has no field(s) {unknown}")
    overlap = set(names) & set(fixed)
    if overlap:
        raise TypeError(f"field(s) {sorted(overlap)} both positional and fixed")
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": FlowRecord}
    body = [f"def make({', '.join(names)}):", "    r = _new(_cls)"]
    for name, f in fields.items():
        namespace[f"_set_{name}"] = FlowRecord.__dict__[name].__set__
        if name in names:
            value = name
        elif name in fixed:
            namespace[f"_fixed_{name}"] = fixed[name]
            value = f"_fixed_{name}"
        elif f.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = f.default
            value = f"_default_{name}"
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = f.default_factory
            value = f"_factory_{name}()"
        else:
            raise TypeError(f"FlowRecord field {name!r} has no default; pass it")
        body.append(f"    _set_{name}(r, {value})")
    body.append("    return r")
    exec("\n".join(body), namespace)  # noqa: S102 - code built from field names only
    return namespace["make"]  # type: ignore[no-any-return]
