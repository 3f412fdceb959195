"""``object_problem``'s one walk of a tree answers what its two walks for shared parts
(``too_deep``, ``_expands_past``) answer, for trees and for YAML-aliased values."""

from __future__ import annotations

import random

import pytest
import yaml

from generator.inventory import nesting
from generator.inventory.nesting import object_problem


def _slow(value) -> str | None:  # noqa: ANN001
    if nesting.too_deep(value):
        return nesting._TOO_DEEP
    if nesting._expands_past(value, nesting.MAX_OBJECT_VALUES):
        return nesting._EXPANDS
    return None


def _random_tree(rng: random.Random, depth: int):  # noqa: ANN202
    """Up to ``depth`` levels: one child goes on down, the others stay shallow."""
    if depth == 0 or rng.random() < 0.01:
        return rng.choice(["x", 1, None, True, 2.5])
    n = rng.randint(1, 3)
    deep = rng.randrange(n)
    children = [_random_tree(rng, depth - 1 if i == deep else min(depth - 1, 2))
                for i in range(n)]
    if rng.random() < 0.5:
        return children
    return {f"k{i}": c for i, c in enumerate(children)}


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("seed", range(200))
def test_random_trees(seed: int) -> None:
    rng = random.Random(seed)
    value = {"spec": _random_tree(rng, rng.choice([5, 30, 70, 90]))}
    assert object_problem(value) == _slow(value)


@pytest.mark.parametrize("depth", [nesting.MAX_OBJECT_DEPTH, nesting.MAX_OBJECT_DEPTH + 1])
def test_depth_limit(depth: int) -> None:
    value = _nested(depth)
    assert object_problem(value) == _slow(value)
    assert (object_problem(value) is None) == (depth <= nesting.MAX_OBJECT_DEPTH)


def test_values_limit(monkeypatch) -> None:
    monkeypatch.setattr(nesting, "MAX_OBJECT_VALUES", 10)
    for value in ({"a": list(range(8))}, {"a": list(range(9))}, {"a": [[1] * 4, [2] * 4]}):
        assert object_problem(value) == _slow(value)
    assert object_problem({"a": list(range(9))}) == nesting._EXPANDS


@pytest.mark.parametrize("text", [
    "a: &x [1, 2]\nb: *x\n",  # shared, within the limits
    "- &a [*a]\n",  # contains itself
    "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    "f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",  # "billion laughs"
    "a: &x " + "[" * 40 + "]" * 40 + "\nb: [[[[[[[[[[[[[[[[[[[[[[[[[[[[*x]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
])
def test_aliased(text: str) -> None:
    value = yaml.safe_load(text)
    assert object_problem(value) == _slow(value)
    assert object_problem(value) is not None or "[1, 2]" in text
