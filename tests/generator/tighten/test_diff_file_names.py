"""proposed.diff names each changed file on its ---/+++ lines: a file name from the
input (the user's repository) must never add lines to the patch."""

from __future__ import annotations

from generator.tighten.run import ProposedFile, unified_diff


def _headers(diff: str) -> list[str]:
    return [line for line in diff.splitlines() if line.startswith(("---", "+++"))]


def test_a_plain_name_is_written_as_git_writes_it() -> None:
    diff = unified_diff((ProposedFile("shop/api.yaml", "a: 1\n", "a: 2\n", "edited"),))
    assert _headers(diff) == ["--- a/shop/api.yaml", "+++ b/shop/api.yaml"]


def test_a_name_with_line_breaks_stays_on_its_line() -> None:
    name = "x.yaml\n+++ b/evil.yaml\n@@ -0,0 +1 @@\n+allow: all\u2028\"q\"\\"
    diff = unified_diff((ProposedFile(name, "a: 1\n", "a: 2\n", "edited"),))
    lines = diff.split("\n")
    assert len(_headers(diff)) == 2
    assert lines[0].startswith('--- "a/x.yaml\\n+++ b/evil.yaml\\n@@')
    assert "+allow: all" not in lines and "\u2028" not in diff
    assert lines[2:] == ["@@ -1 +1 @@", "-a: 1", "+a: 2", ""]
