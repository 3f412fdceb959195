from __future__ import annotations

import yaml

from generator.yamlout import Commented, dump, dump_all, strip_comments


def test_round_trip_with_comments_and_awkward_scalars():
    doc = {
        "metadata": {"name": "x", "labels": {"app": "on", "version": "1.10", "empty": ""}},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                Commented({"from": [{"podSelector": {"matchLabels": {"a": "yes"}}}],
                           "ports": [{"protocol": "TCP", "port": 8080}]},
                          ("from a", "  TCP/8080: 3 connection(s)")),
                {"from": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": []},
            ],
        },
    }
    text = dump(doc, ("header",))
    assert text.startswith("# header\n")
    assert "  ingress:\n  # from a\n  #   TCP/8080: 3 connection(s)\n  - from:\n" in text
    assert yaml.safe_load(text) == strip_comments(doc)
    # values that YAML 1.1 would read as booleans or floats stay strings
    assert yaml.safe_load(text)["metadata"]["labels"] == {"app": "on", "version": "1.10",
                                                          "empty": ""}


def test_dump_all_is_deterministic_and_multi_document():
    docs = [{"a": 1}, {"b": [1, 2]}]
    text = dump_all(docs, ("h",))
    assert text == dump_all(docs, ("h",))
    assert list(yaml.safe_load_all(text)) == docs
