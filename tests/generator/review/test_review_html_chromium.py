"""report.html opened in a real headless Chromium (Debian's `chromium`), offline: the
rendered DOM holds the graph and the tables, and a screenshot - kept as a test artifact
in test-artifacts/review/ - shows the graph's boxes in their colours.

Without Chromium the test skips with the reason, and fails under CI=true
(scripts/test-deps.sh installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

from bank_scenario import write
from generator.generate import GenerateRequest, run_generate
from generator.review.graph import KIND_FILLS, NAMESPACE_FILLS

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts" / "review"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (apt-get install -y chromium; scripts/test-deps.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _run(chromium: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120)


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8: pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and color in (2, 6) and interlace == 0
            bpp = 4 if color == 6 else 3
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1: (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i:i + 3]) for r in rows for i in range(0, len(r), bpp)]


def _rgb(hex_colour: str) -> bytes:
    return bytes.fromhex(hex_colour.lstrip("#"))


def test_report_html_renders_graph_and_tables_in_headless_chromium(tmp_path: Path) -> None:
    chromium = _chromium()
    files = write(tmp_path / "bank")
    out = tmp_path / "out"
    run_generate(GenerateRequest(files.inputs, files.snapshot, out))
    page = (out / "report.html").resolve().as_uri()

    dom = _run(chromium, "--dump-dom", "--virtual-time-budget=2000", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert html.count("<svg") == 1 and html.count('class="n"') == 11  # 8 workloads, 3 others
    assert html.count("<table>") >= 10 and "shop/flowpol-api" in html
    assert "Every observed connection is allowed by these policies" in html

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    if shot.exists():
        shot.unlink()
    done = _run(chromium, f"--screenshot={shot}", "--window-size=1400,2000", page)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    width, height, pixels = _png_pixels(shot)
    assert (width, height) == (1400, 2000)
    counts: dict[bytes, int] = {}
    for px in pixels:
        counts[px] = counts.get(px, 0) + 1
    # The graph's boxes, in the colours of the three namespaces and of node peers.
    for colour in NAMESPACE_FILLS[:4] + (KIND_FILLS["node"][0],):
        assert counts.get(_rgb(colour), 0) > 1500, colour
    # Table header cells (#f6f8fa) and the green OK callout border (#1a7f37) are drawn.
    assert counts.get(_rgb("#f6f8fa"), 0) > 5000
    assert counts.get(_rgb("#1a7f37"), 0) > 100


# ---------------------------------------------------------------- edge labels at 1,400 px

# Added to a copy of the page (its CSP, which forbids scripts in the real report, taken
# out): the rendered boxes of every label, its texts and the nodes, as Chromium laid
# them out, written into the DOM for --dump-dom.
MEASURE = """<script>
window.addEventListener('load', () => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const labels = [...document.querySelectorAll('svg g.l')].map(g => ({
    rect: box(g.querySelector('rect')), texts: [...g.querySelectorAll('text')].map(box),
    leader: g.querySelector('path.k') !== null}));
  const nodes = [...document.querySelectorAll('svg g.n rect')].map(box);
  const out = document.createElement('pre');
  out.id = 'measured';
  out.textContent = JSON.stringify({labels, nodes, width: window.innerWidth});
  document.body.appendChild(out);
});
</script>"""


def _measure(chromium: str, page: Path, tmp_path: Path) -> dict:
    import html as html_module
    import json
    import re

    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text())
    probe = tmp_path / f"measure-{page.stem}.html"
    probe.write_text(text.replace("</body>", MEASURE + "</body>"))
    dom = _run(chromium, "--dump-dom", "--virtual-time-budget=3000", "--window-size=1400,2000",
               probe.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stdout[-2000:]
    return json.loads(html_module.unescape(found.group(1)))


def _area(a: list[float], b: list[float]) -> float:
    return (max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            * max(0.0, min(a[3], b[3]) - max(a[1], b[1])))


def _assert_labels_apart(measured: dict) -> None:
    labels = measured["labels"]
    assert measured["width"] == 1400 and labels
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            assert _area(a["rect"], b["rect"]) < 0.5, (a, b)
        for t in a["texts"]:  # the text the browser drew stays inside its box
            assert a["rect"][0] - 0.5 <= t[0] and t[2] <= a["rect"][2] + 0.5, a
        for n in measured["nodes"]:
            assert _area(a["rect"], n) < 0.5, (a, n)


def _screenshot(chromium: str, page: Path, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / name
    if shot.exists():
        shot.unlink()
    done = _run(chromium, f"--screenshot={shot}", "--window-size=1400,1000", page.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    width, _, pixels = _png_pixels(shot)
    assert width == 1400
    fills = {_rgb(c) for c in NAMESPACE_FILLS}
    assert sum(px in fills for px in pixels) > 2000  # the graph's boxes are drawn
    return shot


def test_demo_graph_labels_do_not_overlap_at_1400_px(tmp_path: Path) -> None:
    chromium = _chromium()
    demo = REPO / "fixtures" / "demo"
    out = tmp_path / "demo"
    result = run_generate(GenerateRequest([str(demo / "flows")], [str(demo / "cluster.json")],
                                          out))
    page = (out / "report.html").resolve()
    measured = _measure(chromium, page, tmp_path)
    pairs = {(json.dumps(e["src"], sort_keys=True), json.dumps(e["dst"], sort_keys=True))
             for e in result.report["edges"]}
    assert len(measured["labels"]) == len(pairs)  # one per pair of peers with traffic
    _assert_labels_apart(measured)
    _screenshot(chromium, page, "demo-graph-1400.png")


def test_a_crowded_graph_moves_labels_off_their_edges_not_onto_each_other(tmp_path: Path
                                                                          ) -> None:
    """Twelve clients each talking to the same twelve servers on four ports: more
    labels than the space between the two columns holds along the edges."""
    from generator.review.document import Document, GraphBlock, to_html
    from generator.review.graph import Graph, GraphEdge, GraphNode

    chromium = _chromium()
    clients = [GraphNode(f"ns/Deployment/c{i:02}", f"client-{i:02}", "Deployment · ns",
                         "workload", "ns") for i in range(12)]
    servers = [GraphNode(f"ns/Deployment/s{i:02}", f"server-{i:02}", "Deployment · ns",
                         "workload", "ns") for i in range(12)]
    edges = tuple(GraphEdge(c.id, s.id, tuple((f"TCP/{8000 + k}", 10 + k) for k in range(4)))
                  for c in clients for s in servers)
    graph = Graph(tuple(sorted(clients + servers, key=lambda n: n.id)), edges)
    page = tmp_path / "crowded.html"
    page.write_text(to_html(Document("crowded", (GraphBlock(graph),))))
    measured = _measure(chromium, page, tmp_path)
    assert len(measured["labels"]) == len(edges)
    _assert_labels_apart(measured)
    assert any(label["leader"] for label in measured["labels"])  # some had to move off
