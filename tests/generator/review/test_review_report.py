"""report.md and report.html beside `flowpol generate`'s YAML: the Mermaid graph, per
policy its rules with evidence, what was skipped and why, the verification result; the
HTML the same content, self-contained."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bank_scenario import write
from generator.generate import GenerateRequest, run_generate
from generator.review.document import (
    Bullets, Code, Document, Heading, Paragraph, Table, to_html, to_markdown,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("review")
    files = write(base / "bank")
    out = base / "out"
    result = run_generate(GenerateRequest(files.inputs, files.snapshot, out))
    assert {p.name for p in result.files} >= {"report.md", "report.html", "report.json"}
    return out


def _section(md: str, heading: str) -> str:
    start = md.index(heading)
    nxt = md.find("\n## ", start + len(heading))
    return md[start: nxt if nxt != -1 else len(md)]


def test_markdown_has_the_graph_the_evidence_and_the_verification(generated: Path) -> None:
    md = (generated / "report.md").read_text()
    graph = _section(md, "## Traffic graph")
    mermaid = graph[graph.index("```mermaid\n") + 11: graph.index("\n```", graph.index("```mermaid"))]
    assert mermaid.startswith("flowchart LR\n")
    nodes = dict(re.findall(r'^\s+(n\d+)\["([^"<]+)<br/>', mermaid, re.M))
    edges = re.findall(r'^\s+(n\d+) -->\|"([^"]+)"\| (n\d+)$', mermaid, re.M)
    named = {(nodes[a], label, nodes[b]) for a, label, b in edges}
    assert ("web", "TCP/8080 (24)", "api") in named
    assert ("ledger", "TCP/5432 (12)", "db") in named
    assert ("web", "UDP/53 (23)<br/>TCP/53 (1)", "coredns") in named
    assert 'subgraph ns' in mermaid and '["namespace billing"]' in mermaid
    verification = _section(md, "## Verification")
    assert ("**OK:** Every observed connection is allowed by these policies: 137 observed "
            "connections in ") in verification
    policies = _section(md, "## Policies")
    api = policies[policies.index("#### shop/flowpol-api"):]
    api = api[:api.index("\n#### ")]
    assert "for Deployment/api; selects pods app=api in namespace shop" in api
    row = next(line for line in api.splitlines() if "pods app=web" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:7] == ["TCP/8080", "shop/Deployment/web", "24", "2026-11-20T09:00:22Z",
                          "2026-11-20T10:55:22Z"]
    assert cells[7].startswith("flows.jsonl")  # the input; then the Service, when known
    deny = policies[policies.index("#### shop/flowpol-default-deny"):]
    assert "No ingress or egress rule: the selected pods are isolated" in deny.split("####")[1]
    idle = _section(md, "## Idle workloads")
    row = next(line for line in idle.splitlines() if line.startswith("| ops/CronJob/archive |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # Sundays 03:00: the schedule did not fire in the recording (a Friday), next run Sunday
    assert cells[1].startswith("its schedule `0 3 * * 0` did not fire during the recording")
    assert cells[2].startswith("held out (`flowpol-archive`)")
    assert cells[3] == "2026-11-22T03:00:00Z"


def test_html_is_self_contained_and_says_the_same(generated: Path) -> None:
    page = (generated / "report.html").read_text()
    assert "<script" not in page.lower()
    urls = set(re.findall(r"""(?:src|href)\s*=\s*["']([^"'#][^"']*)""", page))
    assert urls == set(), urls  # only in-page anchors
    assert re.findall(r"https?://[^\s\"'<]+", page) == ["http://www.w3.org/2000/svg"]
    assert "default-src 'none'" in page  # CSP: the browser may fetch nothing
    svg = page[page.index("<svg"): page.index("</svg>") + 6]
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    labels = {t.text for t in root.iterfind(".//s:g[@class='n']/s:text[@class='t']", ns)}
    assert labels >= {"web", "api", "ledger", "db", "report", "backup", "admin", "coredns",
                      "203.0.113.10"}
    assert len(root.findall(".//s:path[@class='e']", ns)) == 14  # peer pairs of 15 edges
    md = (generated / "report.md").read_text()
    for heading in re.findall(r"^#{2,4} (.+)$", md, re.M):
        assert f">{heading.replace('`', '')}<" in re.sub(r"</?code>", "", page), heading
    assert page.count("<table>") == len(re.findall(r"^\|(?:---:?\|)+$", md, re.M))


def test_graph_layout_puts_clients_left_of_their_servers(generated: Path) -> None:
    page = (generated / "report.html").read_text()
    svg = ET.fromstring(page[page.index("<svg"): page.index("</svg>") + 6])
    ns = {"s": "http://www.w3.org/2000/svg"}
    x = {}
    for g in svg.iterfind(".//s:g[@class='n']", ns):
        x[g.find("s:title", ns).text] = float(g.find("s:rect", ns).get("x"))
    assert x["shop/Deployment/web"] < x["shop/Deployment/api"] < x["billing/Deployment/ledger"] \
        < x["billing/StatefulSet/db"]
    assert x["node:192.168.56.11"] < x["shop/Deployment/api"]


def test_document_rendering_escapes_and_keeps_code_spans() -> None:
    doc = Document("t `x`", (
        Heading(1, "A <b> heading"),
        Paragraph("a * b_c `k=v|w` <i>", "warn"),
        Bullets(("one", "`two`")),
        Table(("h|1", "n"), (("`a|b`", "1"), ("x\ny", "2")), numeric=(1,)),
        Code("<&>", "sh"),
    ))
    md = to_markdown(doc)
    assert "## A \\<b\\> heading" in md
    assert "**Note:** a \\* b\\_c `k=v|w` \\<i\\>" in md
    assert "| h\\|1 | n |\n|---|---:|\n| `a\\|b` | 1 |\n| x<br>y | 2 |" in md
    assert "```sh\n<&>\n```" in md
    page = to_html(doc)
    assert "<h2 id=\"a-b-heading\">A &lt;b&gt; heading</h2>" in page
    assert "<code>k=v|w</code> &lt;i&gt;" in page and '<td class="num">1</td>' in page
    assert "<pre>&lt;&amp;&gt;</pre>" in page
