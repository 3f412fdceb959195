"""Text from an input made safe to show on one line: the characters that end a line,
drive a terminal or reorder what a reader sees, written as Python-style escapes.

One character class for every place that shows names from an input to a person: YAML
comments (generator/output/yamlout.py), the review reports
(generator/review/document.py), the CLI's error line and every line the commands print
(generator/cli/common.py ``say``), and the tightening job's commit message."""

from __future__ import annotations

import re

# Past the C0 controls: C1 controls and DEL, soft hyphen, format characters (Cf: bidi
# overrides that make a reader see the line in another order), line and paragraph
# separators (Zl, Zp: YAML 1.1 and Python's splitlines break lines at \u2028/\u2029,
# and at \x85), noncharacters and surrogates.
NOT_TEXT_BEYOND_C0 = (
    "\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ufffe\uffff"
    "\ud800-\udfff")
_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_char(m: re.Match[str]) -> str:
    """A match of one character as its Python-style escape."""
    c = m.group()
    named = _NAMED_ESCAPES.get(c)
    if named is not None:
        return named
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


_NOT_TEXT_IN_LINE = re.compile("[\x00-\x1f" + NOT_TEXT_BEYOND_C0 + "]")


def one_line(text: str) -> str:
    """``text`` on one line of plain characters whatever it holds, for a person to read:
    every control character (tab and newline included) and the class above escaped,
    the backslash left alone (the reprs of input in messages already use it as their
    escape)."""
    return _NOT_TEXT_IN_LINE.sub(escape_char, text)
