"""``owned._load_all`` (the read-back's YAML loading) gives what ``yaml.load_all`` with
the same loader gives: the same values, or the same error."""

from __future__ import annotations

import pytest
import yaml

from generator.output import owned
from generator.output.yamlout import Commented, dump_all

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CASES = [
    "a: 1\nb: [1, 2.5, true, null, ~, '3', 0x1f, 1_000, .inf, -.nan, 0o17, yes]\n",
    "---\n---\na: b\n",  # an empty document
    "",
    "a: 1\na: 2\n",  # a repeated key: the last wins
    "a: !!str 1\nb: '1'\n",
    "= : 1\n",
    # what only PyYAML's own construction handles
    "a: &x [1]\nb: *x\n",  # a list reached twice
    "- &a [*a]\n",  # a list containing itself
    "a: &x {k: 1}\n<<: *x\n",  # a merge key
    "!!set {a, b}",
    "a: 2001-12-14\n",
    "a: !!binary aGVsbG8=\n",
    "1: 2\n",  # a key that is no string
    "--- &a [1]\n--- [*a]\n",  # an alias to another document's anchor: an error
    "? [1]\n: 2\n",  # an unhashable key: an error
    "a: [\n",  # a syntax error
    "a: !custom 1\n",  # an unknown tag: an error
]


def _outcome(load, text: str) -> tuple:
    try:
        return ("ok", repr(load(text)))
    except yaml.YAMLError as e:
        return ("error", type(e).__name__, str(e))


@pytest.mark.parametrize("text", CASES)
def test_same_as_load_all(text: str) -> None:
    assert _outcome(owned._load_all, text) == _outcome(
        lambda t: list(yaml.load_all(t, Loader=LOADER)), text)


def test_generated_policies_take_the_fast_construction(monkeypatch) -> None:
    docs = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "a", "namespace": "n", "labels": {"x": "true"}},
             "spec": {"podSelector": {}, "egress": [
                 Commented({"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
                            "ports": [{"port": 53, "protocol": "UDP"}]}, ("why",))]}},
            {"kind": "X", "on": "yes", "n": None, "f": 1.5, "e": []}]
    text = dump_all(docs, ("header",))

    def refuse(*args, **kwargs):
        raise AssertionError("fell back to yaml.load_all")

    expected = list(yaml.load_all(text, Loader=LOADER))
    monkeypatch.setattr(yaml, "load_all", refuse)
    assert owned._load_all(text) == expected
