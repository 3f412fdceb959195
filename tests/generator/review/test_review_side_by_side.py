"""The side-by-side block of the review report (``flowpol diff``'s narrowed rules: the
rule as written beside what it becomes), rendered from text that came from an input:
line by line, indentation kept, nothing in it able to change the table or the page.
The CLI test (tests/generator/tighten/test_diff_narrow_cli.py) shows it in a report."""

from __future__ import annotations

from generator.review.document import Document, SideBySide, to_html, to_markdown

NBSP = "\u00a0"


def test_side_by_side_lines_up_both_texts_and_escapes_what_they_hold() -> None:
    before = "- from:\n  - podSelector: {}\n    x: a|b `c` ``d``\n"
    after = "- from:\n  - podSelector:\n      matchLabels:\n        app: <script>\n"
    doc = Document("t", (SideBySide("as | written", before, "proposed", after),))
    md = to_markdown(doc)
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert rows[0] == "| as \\| written | proposed |"
    assert rows[1] == "| `- from:` | `- from:` |"
    assert rows[2] == f"| `{NBSP * 2}- podSelector: {{}}` | `{NBSP * 2}- podSelector:` |"
    # a pipe cannot end the cell, backticks cannot end the code span (a longer fence, and
    # a space inside it when the text ends in a backtick: GFM strips one from each end)
    assert rows[3] == f"| ``` {NBSP * 4}x: a\\|b `c` ``d`` ``` | `{NBSP * 6}matchLabels:` |"
    assert rows[4] == f"|   | `{NBSP * 8}app: <script>` |"  # shorter side padded
    assert len(rows) == 5 and all(r.count(" | ") == 1 for r in rows[1:])
    page = to_html(doc)
    assert '<table class="side">' in page and "<th>as | written</th>" in page
    assert "<pre>- from:\n  - podSelector:\n      matchLabels:\n        app: &lt;script&gt;\n</pre>" \
        in page
    assert "<script>" not in page
