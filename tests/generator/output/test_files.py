"""report.json: written by orjson when it gives json.dumps' exact bytes, else by json."""

from __future__ import annotations

import enum
import json

import pytest

from generator.output.files import report_json


def _reference(report: object) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class _Kind(enum.IntEnum):
    A = 1


PLAIN = [
    {},
    [],
    {"b": 1, "a": [], "c": {}, "d": [{}, [], [1, {"x": []}]], "e": None, "f": True, "g": False},
    {"edges": [{"src": {"kind": "workload"}, "count": 2**63 - 1, "port": -5}] * 3},
    {"unicode": "".join(chr(i) for i in range(0x800)) + "\u2028\u2029\ue000\uffff\U0001F600"},
    {"\uffff": 1, "\U0001F600": 2, "a": 3, "Z": 4, "é": 5, "": 6},
    {"tuple": (1, "a", (None, [])), "nested": [[[[["deep"]]]]]},
]

FALLBACK = [
    {"float": 1e16},
    {"float": 0.5, "nan": float("nan")},
    {"big": 2**64},
    {"negative big": -(2**63) - 1},
    {"enum": _Kind.A},
    {"str subclass": type("S", (str,), {})("x")},
    {1: "int key", 2: "another"},
    {"surrogate": "\ud800"},
]


@pytest.mark.parametrize("report", PLAIN + FALLBACK)
def test_same_text_as_json_dumps(report: object) -> None:
    assert report_json(report) == _reference(report)  # type: ignore[arg-type]


def test_deep_nesting_takes_the_standard_encoder() -> None:
    deep: object = "leaf"
    for _ in range(300):
        deep = {"x": [deep]}
    assert report_json(deep) == _reference(deep)  # type: ignore[arg-type]


def test_a_cycle_fails_as_json_dumps_does() -> None:
    cyclic: dict = {"a": []}
    cyclic["a"].append(cyclic)
    with pytest.raises(ValueError, match="Circular reference"):
        report_json(cyclic)


def test_inside_refuses_every_way_out_of_the_directory(tmp_path) -> None:
    import pytest

    from generator.output.paths import inside
    from recorder.errors import InputError

    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(tmp_path)
    for name in ("../x.yaml", "/etc/x.yaml", "a/../../x.yaml", "", "link/x.yaml", "a\0b"):
        with pytest.raises(InputError):
            inside(out, name)
    assert inside(out, "a/b.yaml") == out / "a" / "b.yaml"


def test_policy_file_names_only_from_dns_labels() -> None:
    """The writing boundary's own check, whatever the loaders let through."""
    from generator.output.paths import policy_file
    from recorder.errors import InputError

    for bad in ("../x", "/etc/passwd", "Pay_ments", "a\nb", "a.b", "x" * 64, "-a"):
        with pytest.raises(InputError):
            policy_file(bad)
    assert policy_file("payments") == "payments.yaml"
    assert policy_file("kustomization") == "_kustomization.yaml"
    assert policy_file("") == "_cluster.yaml"
