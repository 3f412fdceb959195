from __future__ import annotations

import yaml

from generator.output.yamlout import Commented, dump, dump_all, strip_comments


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


def test_strings_are_written_as_safe_dump_writes_them() -> None:
    # The emitter writes most strings without a Dumper (see _str_scalar); each must be
    # exactly what yaml.safe_dump writes for it.
    import random

    from generator.output import yamlout

    words = ["yes", "No", "on", "OFF", "null", "~", "true", "1.0", "0x1F", "1e3", ".inf",
             "-.nan", "2001-12-14", "12:30:45", "0o17", "<<", "=", "-", "---", "...", "? x",
             "- a", ": b", "a: b", "a #c", "#x", "", " ", "a ", " a", "10.0.0.1/32",
             "fd00::1/128", "app.kubernetes.io/name", "3 ingress and 2 egress edge(s), "
             "40 connection(s), 2026-11-18T00:00:00Z .. 2026-11-18T06:00:00Z",
             "Deployment/web", "x\ny", "tab\there", "é", "\u2028", "\x85", "\ufeff", "😀",
             "'quoted'", '"dq"', "a,b", "[x]", "{x}", "@x", "`x", "%x", "!x", "&x", "*x", "|", ">"]
    rng = random.Random(3)
    alphabet = "ab0 -_./:#,'\"!&*?|>%@`{}[]=~\t\n\\é\u2028\x85\x00\x7f😀"
    words += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
              for _ in range(3000)]
    words += [" ".join(rng.choice(words[:40]) for _ in range(rng.randint(1, 5)))
              for _ in range(1000)]
    for w in words:
        yamlout._str_cache.clear()
        assert yamlout._scalar(w) == yamlout._dump_scalar(w), repr(w)
        assert yamlout._scalar(w) == yamlout._dump_scalar(w), repr(w)  # cached
