"""A report as a list of blocks, rendered to Markdown and to self-contained HTML.

One model, two renderers, so report.md and report.html always say the same thing.
Inline markup in text: only `code` spans (backticks); everything else is literal.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Callable, Union

from generator.output.plaintext import NOT_TEXT_BEYOND_C0, escape_char
from generator.review.graph import Graph, mermaid, svg


@dataclass(frozen=True, slots=True)
class Heading:
    level: int  # 1..4
    text: str


@dataclass(frozen=True, slots=True)
class Paragraph:
    text: str
    tone: str | None = None  # None, "ok", "warn", "bad": a callout in HTML, bold lead in md


@dataclass(frozen=True, slots=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[int, ...] = ()  # columns to right-align
    wrap: tuple[int, ...] = ()  # long-text columns that may break anywhere (HTML)


@dataclass(frozen=True, slots=True)
class Code:
    text: str
    language: str = ""


@dataclass(frozen=True, slots=True)
class GraphBlock:
    graph: Graph


@dataclass(frozen=True, slots=True)
class SideBySide:
    """Two texts next to each other, line by line: a rule as written and what it
    becomes (``flowpol diff``'s narrowed rules)."""

    left_title: str
    left: str
    right_title: str
    right: str


Block = Union[Heading, Paragraph, Bullets, Table, Code, GraphBlock, SideBySide]


@dataclass(frozen=True, slots=True)
class Document:
    title: str
    blocks: tuple[Block, ...]


_CODE_SPAN = re.compile(r"`([^`]+)`")
_TONE_WORD = {"ok": "OK", "warn": "Note", "bad": "Attention"}


# Characters of the text that are not text: control characters (an ESC in a file name
# would drive the terminal of whoever runs `cat report.md`), line and paragraph
# separators, and format characters (bidi overrides make a reviewer read a line in
# another order), written as YAML comments write them (yamlout). Tab and newline stay:
# a newline is a <br> in a cell, a line in a code block, and a space where it would end
# a heading, paragraph or list item ("\n# x" in a file name would add a heading).
_NOT_TEXT = re.compile("[\x00-\x08\x0b-\x1f" + NOT_TEXT_BEYOND_C0 + "]")


def _visible(text: str) -> str:
    return _NOT_TEXT.sub(escape_char, text)  # the same object when nothing matches


def _fence(text: str, shortest: int) -> str:
    """Backticks that open and close a code span or block around ``text``: longer than
    any run of them in it, and at least ``shortest``."""
    longest = max((len(r) for r in re.findall(r"`+", text)), default=0)
    return "`" * max(shortest, longest + 1)


def _one_line(text: str) -> str:
    return text.replace("\n", " ")


# ---------------------------------------------------------------- Markdown


def _md_plain(text: str) -> str:
    text = _visible(text).replace("\\", "\\\\")
    for ch in "*_<>|":
        text = text.replace(ch, "\\" + ch)
    return text


def _md_inline(text: str, in_table: bool = False) -> str:
    if "`" not in text:  # most table cells: no code span to keep
        return _md_plain(text)
    out, pos = [], 0
    for m in _CODE_SPAN.finditer(text):
        out.append(_md_plain(text[pos:m.start()]))
        code = _visible(m.group(1))
        if in_table:  # GFM: a pipe ends the cell even inside a code span
            code = code.replace("|", "\\|")
        out.append(f"`{code}`")
        pos = m.end()
    out.append(_md_plain(text[pos:]))
    return "".join(out)


def _md_cell(text: str) -> str:
    return _md_inline(text, in_table=True).replace("\n", "<br>") or " "


def _memoized(render: Callable[[str], str]) -> Callable[[str], str]:
    """``render`` remembering its answers, for one document: table cells repeat a lot
    (counts, times, peers, "not observed"), and escaping each costs a dozen passes."""
    done: dict[str, str] = {}

    def memo(text: str) -> str:
        found = done.get(text)
        if found is None:
            found = done[text] = render(text)
        return found
    return memo


_NBSP = "\u00a0"


def _md_code_cell(line: str) -> str:
    """One line of text as a table cell's code span: indentation kept (no-break
    spaces; a browser collapses plain ones), a fence longer than any run of backticks
    in it, and pipes escaped (GFM ends a cell at a pipe even inside a code span)."""
    if not line.strip():
        return " "
    line = _visible(line)
    body = line.lstrip(" ")
    text = _NBSP * (len(line) - len(body)) + body
    fence = _fence(text, 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def _md_side_by_side(b: SideBySide) -> list[str]:
    left, right = b.left.rstrip("\n").split("\n"), b.right.rstrip("\n").split("\n")
    rows = max(len(left), len(right))
    left += [""] * (rows - len(left))
    right += [""] * (rows - len(right))
    out = [f"| {_md_cell(b.left_title)} | {_md_cell(b.right_title)} |", "|---|---|"]
    out += [f"| {_md_code_cell(a)} | {_md_code_cell(c)} |" for a, c in zip(left, right)]
    return out + [""]


def to_markdown(doc: Document) -> str:
    out = [f"# {_one_line(_md_inline(doc.title))}", ""]
    cell = _memoized(_md_cell)
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += [f"{'#' * min(b.level + 1, 6)} {_one_line(_md_inline(b.text))}", ""]
        elif isinstance(b, Paragraph):
            lead = f"**{_TONE_WORD[b.tone]}:** " if b.tone else ""
            out += [lead + _one_line(_md_inline(b.text)), ""]
        elif isinstance(b, Bullets):
            out += [f"- {_one_line(_md_inline(i))}" for i in b.items] + [""]
        elif isinstance(b, Table):
            out.append("| " + " | ".join(map(cell, b.headers)) + " |")
            out.append("|" + "|".join("---:" if i in b.numeric else "---"
                                      for i in range(len(b.headers))) + "|")
            out += ["| " + " | ".join(map(cell, row)) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Code):
            text = _visible(b.text)
            fence = _fence(text, 3)
            out += [f"{fence}{b.language}", text.rstrip("\n"), fence, ""]
        elif isinstance(b, GraphBlock):
            out += ["```mermaid", mermaid(b.graph).rstrip("\n"), "```", ""]
        elif isinstance(b, SideBySide):
            out += _md_side_by_side(b)
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------- HTML


def _html_inline(text: str) -> str:
    text = _visible(text)
    if "`" not in text:  # most table cells: no code span to keep
        return html.escape(text).replace("\n", "<br>")
    out, pos = [], 0
    for m in _CODE_SPAN.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        out.append(f"<code>{html.escape(m.group(1))}</code>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out).replace("\n", "<br>")


_SLUG = re.compile(r"[^a-z0-9]+")


def _slug(text: str, taken: set[str]) -> str:
    base = _SLUG.sub("-", text.lower()).strip("-") or "section"
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --head: #f6f8fa;
        --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; }
* { box-sizing: border-box; }
body { font: 14px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       color: var(--fg); background: var(--bg); margin: 0; padding: 24px 32px; }
main { max-width: 1320px; margin: 0 auto; }
h1 { font-size: 26px; border-bottom: 1px solid var(--line); padding-bottom: 8px; }
h2 { font-size: 20px; border-bottom: 1px solid var(--line); padding-bottom: 6px; margin-top: 32px; }
h3 { font-size: 16px; margin-top: 24px; }
h4 { font-size: 14px; margin-top: 16px; }
code { font: 12.5px/1.4 "DejaVu Sans Mono", Menlo, Consolas, monospace; background: #eff1f3;
       padding: 1px 4px; border-radius: 4px; }
pre { background: var(--head); border: 1px solid var(--line); border-radius: 6px; padding: 12px;
      overflow-x: auto; font: 12.5px/1.45 "DejaVu Sans Mono", Menlo, Consolas, monospace; }
table { border-collapse: collapse; margin: 8px 0 16px; width: 100%; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
td.wrap { overflow-wrap: anywhere; }
th { background: var(--head); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fbfcfd; }
.callout { border-left: 4px solid var(--muted); background: var(--head); padding: 8px 12px;
           border-radius: 4px; margin: 12px 0; }
.callout.ok { border-color: var(--ok); } .callout.warn { border-color: var(--warn); }
.callout.bad { border-color: var(--bad); }
.callout b.ok { color: var(--ok); } .callout b.warn { color: var(--warn); }
.callout b.bad { color: var(--bad); }
.graph { border: 1px solid var(--line); border-radius: 6px; overflow-x: auto; padding: 8px;
         background: #fff; }
table.side td { width: 50%; background: #fff; }
table.side pre { margin: 0; border: 0; background: transparent; padding: 0; }
nav.toc { font-size: 13px; columns: 2; background: var(--head); border: 1px solid var(--line);
          border-radius: 6px; padding: 8px 24px; }
nav.toc a { color: #0969da; text-decoration: none; }
"""


def to_html(doc: Document) -> str:
    """A single file: inline CSS, inline SVG, no script, nothing fetched (CSP says so)."""
    taken: set[str] = set()
    body: list[str] = []
    toc: list[str] = []
    inline = _memoized(_html_inline)
    for b in doc.blocks:
        if isinstance(b, Heading):
            level = min(b.level + 1, 6)
            slug = _slug(b.text, taken)
            if level == 2:
                toc.append(f'<li><a href="#{slug}">{_html_inline(b.text)}</a></li>')
            body.append(f'<h{level} id="{slug}">{_html_inline(b.text)}</h{level}>')
        elif isinstance(b, Paragraph):
            if b.tone:
                body.append(f'<div class="callout {b.tone}"><b class="{b.tone}">'
                            f'{_TONE_WORD[b.tone]}:</b> {_html_inline(b.text)}</div>')
            else:
                body.append(f"<p>{_html_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_html_inline(i)}</li>" for i in b.items)
                        + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{inline(h)}</th>" for h in b.headers)
            width = max(map(len, b.rows), default=0)
            opening = ['<td class="num">' if i in b.numeric else '<td class="wrap">' if i in b.wrap
                       else "<td>" for i in range(width)]
            rows = "".join(
                "<tr>" + "".join([o + inline(c) + "</td>" for o, c in zip(opening, row)]) + "</tr>"
                for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Code):
            body.append(f"<pre>{html.escape(_visible(b.text))}</pre>")
        elif isinstance(b, GraphBlock):
            body.append(f'<div class="graph">{svg(b.graph)}</div>')
        elif isinstance(b, SideBySide):
            body.append(
                f'<table class="side"><thead><tr><th>{inline(b.left_title)}</th>'
                f'<th>{inline(b.right_title)}</th></tr></thead><tbody><tr>'
                f"<td><pre>{html.escape(_visible(b.left))}</pre></td>"
                f"<td><pre>{html.escape(_visible(b.right))}</pre></td></tr></tbody></table>")
    nav = f'<nav class="toc"><ul>{"".join(toc)}</ul></nav>' if len(toc) > 2 else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(_visible(doc.title))}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{_html_inline(doc.title)}</h1>\n{nav}\n" + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )
