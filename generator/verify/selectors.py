"""Label selectors (metav1.LabelSelector): parsing with API-server validation, matching.

Matching follows ``k8s.io/apimachinery/pkg/labels``: ``matchLabels`` and every
``matchExpressions`` requirement are ANDed; an empty selector matches everything;
``NotIn`` and ``DoesNotExist`` match objects that do not carry the key at all.
A selector that is absent (``None``) is the caller's business: in a NetworkPolicy peer
it means "this part of the peer is not specified", not "matches nothing".
"""

from __future__ import annotations

from typing import Any, Mapping

from generator.inventory.apivalidation import label_key_problem, label_value_problem
from generator.inventory.model import LabelSelector

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

# Label pairs already found valid: a generated policy set repeats the same few
# selectors in rule after rule, and the checks are regular expressions.
_VALID_LABELS: set[tuple[str, str]] = set()
_MAX_VALID_LABELS = 100_000


class SelectorError(ValueError):
    """A selector the API server would reject. The message says how to fix it."""


def parse_label_selector(raw: Any, field: str) -> LabelSelector:
    """A raw ``{matchLabels, matchExpressions}`` dict to a LabelSelector.

    ``field`` is the path of the selector in its object, used in messages. Raises
    SelectorError for anything the API server rejects.
    """
    if raw is None:
        return LabelSelector()
    if not isinstance(raw, dict):
        raise SelectorError(f"{field} must be a mapping with matchLabels/matchExpressions, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in ("matchLabels", "matchExpressions"))
    if unknown:
        raise SelectorError(
            f"{field} has unknown field(s) {', '.join(unknown)}; a label selector has only "
            "matchLabels and matchExpressions (labels go under matchLabels)"
        )
    labels_raw = raw.get("matchLabels") or {}
    if not isinstance(labels_raw, dict):
        raise SelectorError(f"{field}.matchLabels must be a mapping of label key to value")
    match_labels = []
    for key, value in labels_raw.items():
        if type(key) is not str or type(value) is not str or (key, value) not in _VALID_LABELS:
            problem = label_key_problem(key) or label_value_problem(key, value)
            if problem:
                raise SelectorError(f"{field}.matchLabels: {problem}")
            if type(key) is str and type(value) is str:
                if len(_VALID_LABELS) >= _MAX_VALID_LABELS:
                    _VALID_LABELS.clear()
                _VALID_LABELS.add((key, value))
        match_labels.append((key, value))
    exprs_raw = raw.get("matchExpressions") or []
    if not isinstance(exprs_raw, list):
        raise SelectorError(f"{field}.matchExpressions must be a list of {{key, operator, values}}")
    expressions = []
    for i, expr in enumerate(exprs_raw):
        expressions.append(_parse_requirement(expr, f"{field}.matchExpressions[{i}]"))
    return LabelSelector(tuple(sorted(match_labels)), tuple(expressions))


def _parse_requirement(expr: Any, field: str) -> tuple[str, str, tuple[str, ...]]:
    if not isinstance(expr, dict):
        raise SelectorError(f"{field} must be a mapping with key, operator and values")
    unknown = sorted(str(k) for k in expr if k not in ("key", "operator", "values"))
    if unknown:
        raise SelectorError(f"{field} has unknown field(s) {', '.join(unknown)}; use key, operator, values")
    key = expr.get("key")
    problem = label_key_problem(key)
    if problem:
        raise SelectorError(f"{field}: {problem}")
    op = expr.get("operator")
    if op not in OPERATORS:
        raise SelectorError(
            f"{field}: unknown operator {op!r}; use one of {', '.join(OPERATORS)} (case matters)"
        )
    values = expr.get("values") or []
    if not isinstance(values, list):
        raise SelectorError(f"{field}.values must be a list of strings")
    if op in ("In", "NotIn"):
        if not values:
            raise SelectorError(f"{field}: operator {op} needs at least one value in values")
        for v in values:
            problem = label_value_problem(key, v)
            if problem:
                raise SelectorError(f"{field}.values: {problem}")
    elif values:
        raise SelectorError(f"{field}: operator {op} takes no values; remove values")
    return (key, op, tuple(values))


def matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` (key -> value) satisfy ``selector``. Empty selector: True."""
    for key, value in selector.match_labels:
        if labels.get(key) != value:
            return False
    for key, op, values in selector.match_expressions:
        present = key in labels
        if op == "In":
            if not present or labels[key] not in values:
                return False
        elif op == "NotIn":
            if present and labels[key] in values:
                return False
        elif op == "Exists":
            if not present:
                return False
        elif op == "DoesNotExist":
            if present:
                return False
        else:  # pragma: no cover - parse_label_selector rejects it
            raise SelectorError(f"unknown operator {op!r}")
    return True


def selector_to_dict(selector: LabelSelector) -> dict:
    """The API form of a selector (for messages and round trips)."""
    out: dict = {}
    if selector.match_labels:
        out["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
        out["matchExpressions"] = [
            {"key": k, "operator": op, **({"values": list(v)} if v else {})}
            for k, op, v in selector.match_expressions
        ]
    return out


def describe(selector: LabelSelector) -> str:
    """Short human text, kubectl style: ``app=web,tier in (a,b),!debug``; ``{}`` = all."""
    parts = [f"{k}={v}" for k, v in selector.match_labels]
    for key, op, values in selector.match_expressions:
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        else:
            parts.append(f"!{key}")
    return ",".join(parts) if parts else "{}"
