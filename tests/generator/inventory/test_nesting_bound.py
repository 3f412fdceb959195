"""The cheap depth bound that decides whether YAML is scanned before libyaml composes it
(which crashes the process past ~20000 levels) must never be below the real depth: a
document it under-estimates would reach libyaml unscanned."""

from __future__ import annotations

import random

import pytest
import yaml

from generator.inventory.nesting import _depth_bound, yaml_too_deep

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _random_value(rng: random.Random, depth: int):  # noqa: ANN202
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(["x", 1, "[]", "- a", "{b: c}", "", None])
    if rng.random() < 0.5:
        return [_random_value(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}": _random_value(rng, depth - 1) for i in range(rng.randint(0, 3))}


def _depth(value) -> int:  # noqa: ANN001
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((c, depth + 1) for c in (item.values() if isinstance(item, dict)
                                                  else item))
    return deepest


@pytest.mark.parametrize("seed", range(40))
def test_bound_is_never_below_the_depth(seed: int) -> None:
    rng = random.Random(seed)
    value = _random_value(rng, rng.randint(1, 40))
    for style in (False, True, None):
        for indent in (2, 4):
            text = yaml.safe_dump(value, default_flow_style=style, indent=indent)
            assert _depth_bound(text) >= _depth(yaml.load(text, Loader=LOADER)), text


@pytest.mark.parametrize("text", [
    "- " * 300 + "x\n",  # compact nested sequences: no indentation at all
    # a sequence under a key needs no indentation: two levels per two columns
    "a:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(300)) + "  " * 300 + "- x\n",
    "[" * 300 + "]" * 300 + "\n",
    "[" + "[]," * 300 + "[[[[[]]]]]]\n",
])
def test_bound_covers_the_shapes_that_nest_without_indentation(text: str) -> None:
    depth = _depth(yaml.load(text, Loader=LOADER))
    assert _depth_bound(text) >= depth
    assert (yaml_too_deep(text, LOADER, limit=depth - 1) is not None) and \
        yaml_too_deep(text, LOADER, limit=depth) is None
