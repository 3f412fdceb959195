"""Label selector parsing and matching (k8s.io/apimachinery/pkg/labels semantics)."""

from __future__ import annotations

import pytest

from generator.inventory.model import LabelSelector
from generator.verify.selectors import (
    SelectorError,
    describe,
    matches,
    parse_label_selector,
    selector_to_dict,
)


def sel(raw: dict) -> LabelSelector:
    return parse_label_selector(raw, "spec.podSelector")


WEB = {"app": "web", "tier": "front"}


def test_empty_selector_matches_everything() -> None:
    assert matches(sel({}), {})


def test_none_parses_to_empty_selector() -> None:
    assert parse_label_selector(None, "x").is_empty()


def test_match_labels_requires_every_pair() -> None:
    assert not matches(sel({"matchLabels": {"app": "web", "tier": "back"}}), WEB)


def test_match_labels_subset_matches() -> None:
    assert matches(sel({"matchLabels": {"app": "web"}}), WEB)


def test_match_labels_empty_value_needs_the_key() -> None:
    assert not matches(sel({"matchLabels": {"debug": ""}}), WEB)


def test_in_matches_listed_value() -> None:
    assert matches(sel({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "web"]}]}), WEB)


def test_in_needs_the_key() -> None:
    assert not matches(sel({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}), WEB)


def test_notin_rejects_listed_value() -> None:
    assert not matches(sel({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}), WEB)


def test_notin_matches_when_key_absent() -> None:
    assert matches(sel({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}), WEB)


def test_exists() -> None:
    assert matches(sel({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}), WEB)


def test_exists_fails_without_key() -> None:
    assert not matches(sel({"matchExpressions": [{"key": "env", "operator": "Exists"}]}), WEB)


def test_does_not_exist() -> None:
    assert matches(sel({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}), WEB)


def test_does_not_exist_fails_with_key() -> None:
    assert not matches(sel({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}), WEB)


def test_labels_and_expressions_are_anded() -> None:
    s = sel({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}],
    })
    assert not matches(s, WEB)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"matchExpressions": [{"key": "app", "operator": "in", "values": ["a"]}]}, "unknown operator 'in'"),
        ({"matchExpressions": [{"key": "app", "operator": "In"}]}, "needs at least one value"),
        ({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["a"]}]}, "takes no values"),
        ({"matchLabels": {"enabled": True}}, 'write "true" in quotes'),
        ({"matchLabels": {"bad key!": "x"}}, "not a valid qualified name"),
        ({"matchLabels": {"app": "-web"}}, "label value '-web'"),
        ({"app": "web"}, "labels go under matchLabels"),
        ({"matchExpressions": {"key": "app"}}, "must be a list"),
    ],
)
def test_invalid_selectors_are_rejected_with_a_hint(raw: dict, fragment: str) -> None:
    with pytest.raises(SelectorError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        sel(raw)


def test_error_names_the_field() -> None:
    with pytest.raises(SelectorError, match=r"spec.podSelector.matchExpressions\[0\]"):
        sel({"matchExpressions": [{"key": "app", "operator": "Bogus"}]})


def test_prefixed_key_is_valid() -> None:
    s = sel({"matchLabels": {"kubernetes.io/metadata.name": "prod"}})
    assert matches(s, {"kubernetes.io/metadata.name": "prod"})


def test_round_trip_to_dict() -> None:
    raw = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                             {"key": "debug", "operator": "DoesNotExist"}],
    }
    assert selector_to_dict(sel(raw)) == raw


def test_describe_kubectl_style() -> None:
    raw = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "debug", "operator": "DoesNotExist"}]}
    assert describe(sel(raw)) == "app=web,!debug"


def test_labels_seen_valid_before_do_not_let_invalid_ones_through() -> None:
    # Valid (key, value) pairs are remembered; anything else is still checked.
    for _ in range(2):
        assert sel({"matchLabels": {"app": "web"}}).match_labels == (("app", "web"),)
    for bad in ({"app": "web!"}, {"app": True}, {"app": 1}, {"-app": "web"}, {"app": "x" * 64}):
        with pytest.raises(SelectorError, match="matchLabels"):
            sel({"matchLabels": bad})
