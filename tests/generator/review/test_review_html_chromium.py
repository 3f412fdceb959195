"""report.html opened in a real headless Chromium (Debian's `chromium`), offline: the
rendered DOM holds the graph and the tables, and a screenshot - kept as a test artifact
in test-artifacts/review/ - shows the graph's boxes in their colours.

Without Chromium the test skips with the reason, and fails under CI=true
(scripts/test-deps.sh installs it).
"""

from __future__ import annotations

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
