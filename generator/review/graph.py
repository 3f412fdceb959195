"""The workload-to-workload graph of a recording: as Mermaid (report.md) and as an inline
SVG drawn here (report.html, which must render without fetching mermaid.js).

The SVG uses a simple layered layout: cycles broken by a depth-first search, layers by
longest path (clients left, servers right), order inside a layer by a few barycentre
sweeps. Edges between the same two peers are merged, one label line per port.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from generator.resolve.edges import APISERVER, EXTERNAL, NODE, UNRESOLVED, WORKLOAD, Edge, Peer

MAX_PORT_LINES = 4


@dataclass(frozen=True, slots=True)
class GraphNode:
    id: str
    label: str
    sublabel: str
    kind: str  # a generator.resolve.edges peer kind
    group: str  # the namespace of workloads, else the kind


@dataclass(frozen=True, slots=True)
class GraphEdge:
    src: str
    dst: str
    ports: tuple[tuple[str, int], ...]  # ("TCP/8080", connections), sorted

    @property
    def count(self) -> int:
        return sum(n for _, n in self.ports)

    def label_lines(self) -> list[str]:
        lines = [f"{p} ({n})" for p, n in self.ports[:MAX_PORT_LINES]]
        if len(self.ports) > MAX_PORT_LINES:
            lines.append(f"+{len(self.ports) - MAX_PORT_LINES} more")
        return lines


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]


def _node(p: Peer) -> GraphNode:
    if p.kind == WORKLOAD:
        return GraphNode(f"{p.namespace}/{p.workload_kind}/{p.workload_name}",
                         p.workload_name or "?", f"{p.workload_kind} · {p.namespace}", WORKLOAD,
                         p.namespace or "")
    if p.kind == NODE:
        return GraphNode(f"node:{p.ip}", p.node_name or p.ip or "?", f"node {p.ip}", NODE, NODE)
    if p.kind == APISERVER:
        return GraphNode(f"apiserver:{p.ip}", "kube-apiserver", p.ip or "", APISERVER, APISERVER)
    if p.kind == UNRESOLVED:
        return GraphNode(f"unresolved:{p.ip}", p.ip or "?", "unresolved", UNRESOLVED, UNRESOLVED)
    return GraphNode(f"external:{p.ip}", p.ip or "?", "external", EXTERNAL, EXTERNAL)


def _namespace_node(p: Peer) -> GraphNode:
    if p.kind == WORKLOAD:
        return GraphNode(f"namespace:{p.namespace}", p.namespace or "?", "namespace", WORKLOAD,
                         p.namespace or "")
    label = {NODE: "nodes", EXTERNAL: "outside the cluster", APISERVER: "kube-apiserver",
             UNRESOLVED: "unresolved"}.get(p.kind, p.kind)
    return GraphNode(f"{p.kind}:*", label, "all addresses", p.kind, p.kind)


def graph_from_edges(edges: Iterable[Edge], by_namespace: bool = False) -> Graph:
    """Peers as nodes; ``by_namespace``: workloads merged per namespace and other peers
    per kind (for graphs too large to draw workload by workload)."""
    make = _namespace_node if by_namespace else _node
    # edges share their Peer objects: one GraphNode per object (held beside it, so its
    # id stays unique meanwhile)
    made: dict[int, tuple[Peer, GraphNode]] = {}

    def node_of(peer: Peer) -> GraphNode:
        found = made.get(id(peer))
        if found is None:
            found = made[id(peer)] = (peer, make(peer))
        return found[1]

    nodes: dict[str, GraphNode] = {}
    ports: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in edges:
        a, b = node_of(e.src), node_of(e.dst)
        nodes[a.id] = a
        nodes[b.id] = b
        label = f"{e.protocol}/{e.port}" if e.port is not None else e.protocol
        ports[(a.id, b.id)][label] += e.count
    out_edges = tuple(
        GraphEdge(s, d, tuple(sorted(ports[(s, d)].items(), key=lambda x: (-x[1], x[0]))))
        for s, d in sorted(ports))
    return Graph(tuple(nodes[k] for k in sorted(nodes)), out_edges)


# ---------------------------------------------------------------- Mermaid


def _mermaid_text(text: str) -> str:
    return (text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;"))


def mermaid(graph: Graph) -> str:
    ids = {n.id: f"n{i}" for i, n in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    groups: dict[str, list[GraphNode]] = defaultdict(list)
    for n in graph.nodes:
        groups[n.group if n.kind == WORKLOAD else ""].append(n)
    for i, group in enumerate(sorted(groups)):
        members = groups[group]
        pad = "  "
        if group:
            lines.append(f'  subgraph ns{i}["namespace {_mermaid_text(group)}"]')
            pad = "    "
        for n in members:
            text = _mermaid_text(n.label) + "<br/><small>" + _mermaid_text(n.sublabel) + "</small>"
            lines.append(f'{pad}{ids[n.id]}["{text}"]')
        if group:
            lines.append("  end")
    for e in graph.edges:
        label = "<br/>".join(_mermaid_text(x) for x in e.label_lines())
        lines.append(f'  {ids[e.src]} -->|"{label}"| {ids[e.dst]}')
    styles = {NODE: "fill:#eeeeee,stroke:#888", EXTERNAL: "fill:#fde2c8,stroke:#c77c2e",
              APISERVER: "fill:#e6dcf5,stroke:#7a5cb0",
              UNRESOLVED: "fill:#f8d7da,stroke:#b4232c,stroke-dasharray:4 3"}
    for kind, style in styles.items():
        members = [ids[n.id] for n in graph.nodes if n.kind == kind]
        if members:
            lines.append(f"  classDef {kind.replace('-', '')} {style}")
            lines.append(f"  class {','.join(members)} {kind.replace('-', '')}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- SVG layout

NODE_H = 42
DUMMY_H = 10  # the slot a long edge takes in a column it passes through
ROW_GAP = 24
COL_GAP = 150
MARGIN = 24
# Edge labels: where along an edge one may sit, best first; the space kept around it;
# how far a crowded column gap is widened (per try, at most) before a label that still
# finds no free spot on its edge is moved off it, at most MAX_NUDGES label heights.
LABEL_TS = (0.5, 0.38, 0.62, 0.26, 0.74, 0.15, 0.85)
LABEL_GAP = 2.0
GAP_STEP = 90.0
MAX_GAP = 600.0
MAX_WIDENINGS = 6
MAX_NUDGES = 400
MIN_SCALE = 0.75
CHAR_W = 7.0  # px per character at 12px sans (DejaVu Sans averages ~6.9)
DUMMY = "dummy"
NAMESPACE_FILLS = ("#dbeafe", "#dcfce7", "#fef3c7", "#fce7f3", "#e0e7ff", "#ccfbf1",
                   "#fee2e2", "#ede9fe", "#ecfccb", "#cffafe")
KIND_FILLS = {NODE: ("#eeeeee", "#888888"), EXTERNAL: ("#fde2c8", "#c77c2e"),
              APISERVER: ("#e6dcf5", "#7a5cb0"), UNRESOLVED: ("#f8d7da", "#b4232c")}

Point = tuple[float, float]


@dataclass(slots=True)
class _Box:
    node: GraphNode
    layer: int
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = NODE_H

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def dummy(self) -> bool:
        return self.node.kind == DUMMY


def _layers(graph: Graph) -> dict[str, int]:
    """Longest-path layers of the graph with its back edges (found by a depth-first
    search) left out."""
    succ: dict[str, list[str]] = defaultdict(list)
    for e in graph.edges:
        if e.src != e.dst:
            succ[e.src].append(e.dst)
    state: dict[str, int] = {}
    dag: dict[str, list[str]] = defaultdict(list)
    for root in (n.id for n in graph.nodes):
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            v, it = stack[-1]
            w = next(it, None)
            if w is None:
                state[v] = 2
                stack.pop()
                continue
            if state.get(w) == 1:
                continue  # back edge
            dag[v].append(w)
            if w not in state:
                state[w] = 1
                stack.append((w, iter(succ[w])))
    indegree: dict[str, int] = {n.id: 0 for n in graph.nodes}
    for ws in dag.values():
        for w in ws:
            indegree[w] += 1
    layer = {n.id: 0 for n in graph.nodes}
    ready = [n.id for n in graph.nodes if indegree[n.id] == 0]
    while ready:
        v = ready.pop()
        for w in dag[v]:
            layer[w] = max(layer[w], layer[v] + 1)
            indegree[w] -= 1
            if indegree[w] == 0:
                ready.append(w)
    return layer


def _order(boxes: dict[str, _Box], links: list[tuple[str, str]]) -> list[list[_Box]]:
    """Columns of boxes, ordered by barycentre sweeps to keep edges short and uncrossed."""
    depth = max((b.layer for b in boxes.values()), default=0) + 1
    columns: list[list[_Box]] = [[] for _ in range(depth)]
    for b in sorted(boxes.values(), key=lambda b: (b.dummy, b.node.kind != WORKLOAD,
                                                   b.node.group, b.node.label, b.node.id)):
        columns[b.layer].append(b)
    # each box's neighbours per layer, in link order (the sums below add up in that order)
    neighbours: dict[tuple[str, int], list[str]] = defaultdict(list)
    for a, b in links:
        neighbours[(a, boxes[b].layer)].append(b)
        neighbours[(b, boxes[a].layer)].append(a)

    def place(col: list[_Box]) -> None:
        for i, b in enumerate(col):
            pos[b.node.id] = i / max(1, len(col) - 1)

    pos: dict[str, float] = {}
    for col in columns:
        place(col)
    for sweep in range(8):
        forward = sweep % 2 == 0
        for li in (range(1, depth) if forward else range(depth - 2, -1, -1)):
            toward = li - 1 if forward else li + 1

            def key(b: _Box) -> float:
                near = [pos[n] for n in neighbours.get((b.node.id, toward), ())]
                return sum(near) / len(near) if near else pos[b.node.id]

            columns[li].sort(key=key)
            place(columns[li])
    return columns


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _text_width(text: str, size: float = 12.0) -> float:
    return len(text) * CHAR_W * size / 12.0


def _bezier(c: tuple[Point, Point, Point, Point], t: float) -> Point:
    u = 1 - t
    return (u ** 3 * c[0][0] + 3 * u * u * t * c[1][0] + 3 * u * t * t * c[2][0] + t ** 3 * c[3][0],
            u ** 3 * c[0][1] + 3 * u * u * t * c[1][1] + 3 * u * t * t * c[2][1] + t ** 3 * c[3][1])


class _Placed:
    """Rectangles already drawn, in a grid of cells, for quick overlap queries."""

    CELL = 64.0

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], list[tuple[float, float, float, float]]] = \
            defaultdict(list)

    def _keys(self, x: float, y: float, w: float, h: float):
        c = self.CELL
        for i in range(int(x // c), int((x + w) // c) + 1):
            for j in range(int(y // c), int((y + h) // c) + 1):
                yield i, j

    def add(self, x: float, y: float, w: float, h: float) -> None:
        for key in self._keys(x, y, w, h):
            self.cells[key].append((x, y, w, h))

    def overlap(self, center: Point, w: float, h: float) -> float:
        x, y = center[0] - w / 2, center[1] - h / 2
        seen = set()
        total = 0.0
        for key in self._keys(x, y, w, h):
            for r in self.cells.get(key, ()):
                if r in seen:
                    continue
                seen.add(r)
                px, py, pw, ph = r
                total += max(0.0, min(x + w, px + pw) - max(x, px)) * \
                    max(0.0, min(y + h, py + ph) - max(y, py))
        return total


def _smooth(a: Point, b: Point) -> tuple[Point, Point, Point, Point]:
    dx = (b[0] - a[0]) / 2
    return (a, (a[0] + dx, a[1]), (b[0] - dx, b[1]), b)


@dataclass(slots=True)
class _Label:
    x: float
    y: float
    w: float
    h: float
    anchor: Point | None = None  # the point on its edge, when the label had to move off it


def _around(c: Point, lw: float, lh: float) -> Iterable[Point]:
    """Spots near ``c``, nearest first: up and down in label-height steps, then also
    sideways by half a label."""
    for k in range(1, MAX_NUDGES + 1):
        dy = k * (lh + LABEL_GAP)
        for dx in (0.0, -lw / 2, lw / 2):
            yield (c[0] + dx, c[1] - dy)
            yield (c[0] + dx, c[1] + dy)


def _edge_geometry(e: GraphEdge, boxes: dict[str, _Box], chains: dict[tuple[str, str], list[str]],
                   col_span: list[tuple[float, float]]):
    """The edge's curves and straight runs, the spots its label may take (a function
    giving them best first, each made as it is tried) and the column gaps its curves
    cross."""
    a, b = boxes[e.src], boxes[e.dst]
    curves: list[tuple[Point, Point, Point, Point]] = []
    straight: list[tuple[Point, Point]] = []
    if a is b:
        x0, y0 = a.x + a.w - 18, a.y
        curves.append(((x0, y0), (x0 - 4, y0 - 34), (x0 + 40, y0 - 24), (a.x + a.w, a.cy - 6)))
        return curves, straight, lambda: ((x0 + 26, y0 - 26 - k * 14) for k in range(4)), []
    if b.layer > a.layer:
        point: Point = (a.x + a.w, a.cy)
        for did in chains[(e.src, e.dst)]:
            d = boxes[did]
            left, right = col_span[d.layer]
            curves.append(_smooth(point, (left, d.cy)))
            straight.append(((left, d.cy), (right, d.cy)))
            point = (right, d.cy)
        curves.append(_smooth(point, (b.x, b.cy)))
        return (curves, straight, lambda: (_bezier(c, t) for t in LABEL_TS for c in curves),
                [a.layer + i for i in range(len(curves))])
    # back or same-layer edge: a loop below the boxes
    x1, y1 = a.x + a.w / 2, a.y + a.h
    x2, y2 = b.x + b.w / 2, b.y + b.h
    drop = 46 + abs(x2 - x1) * 0.12
    curves.append(((x1, y1), (x1, y1 + drop), (x2, y2 + drop), (x2, y2)))
    return curves, straight, lambda: (_bezier(curves[0], t) for t in (0.5, 0.35, 0.65)), []


def _place_columns(columns: list[list[_Box]], gaps: list[float]) -> tuple[list[tuple[float, float]], float, float]:
    """Positions the boxes column by column; returns each column's x span, the width
    and the height of the tallest column."""
    heights = [sum(b.h for b in col) + ROW_GAP * max(0, len(col) - 1) for col in columns]
    tallest = max(heights)
    x = float(MARGIN)
    col_span: list[tuple[float, float]] = []
    for i, (col, height) in enumerate(zip(columns, heights)):
        width = max((b.w for b in col), default=0.0)
        y = MARGIN + (tallest - height) / 2
        for b in col:
            b.x = x + (width - b.w) / 2
            b.y = y
            y += b.h + ROW_GAP
        col_span.append((x, x + width))
        x += width + (gaps[i] if i < len(gaps) else 0.0)
    return col_span, x + MARGIN, tallest


def _labels(graph: Graph, boxes: dict[str, _Box], chains: dict[tuple[str, str], list[str]],
            col_span: list[tuple[float, float]], nudge: bool):
    """Every edge's geometry and label. A label goes on the first free spot along its
    edge; the column gaps where none was free are returned, so that the caller can
    widen them and try again. With ``nudge``, such a label takes the nearest free spot
    off its edge instead (a leader line joins them): labels never overlap each other
    or a box."""
    placed = _Placed()
    for b in boxes.values():
        if not b.dummy:
            placed.add(b.x - LABEL_GAP, b.y - LABEL_GAP, b.w + 2 * LABEL_GAP, b.h + 2 * LABEL_GAP)
    crowded: set[int] = set()
    out = []
    lowest = max((b.y + b.h for b in boxes.values()), default=0.0)
    for e in graph.edges:
        lines = e.label_lines()
        lw = max(_text_width(t, 10.5) for t in lines) + 8
        lh = 13 * len(lines) + 4
        curves, straight, points, gaps = _edge_geometry(e, boxes, chains, col_span)
        w, h = lw + 2 * LABEL_GAP, lh + 2 * LABEL_GAP
        free = next((p for p in points() if not placed.overlap(p, w, h)), None)
        if free is None:  # just above or below its edge, still touching it
            free = next((q for x, y in points()
                         for q in ((x, y - lh / 2 - 1), (x, y + lh / 2 + 1))
                         if not placed.overlap(q, w, h)), None)
        anchor = None
        if free is not None:
            c = free
        else:
            crowded.update(gaps)
            c = next(points())
            if nudge:
                below_all = (c[0], lowest + lh / 2 + 3 * LABEL_GAP)  # always free
                anchor = c
                c = next((p for p in _around(c, lw, lh)
                          if p[1] - lh / 2 >= 0 and p[0] - lw / 2 >= 0
                          and not placed.overlap(p, w, h)), below_all)
        placed.add(c[0] - lw / 2 - LABEL_GAP, c[1] - lh / 2 - LABEL_GAP, lw + 2 * LABEL_GAP,
                   lh + 2 * LABEL_GAP)
        lowest = max(lowest, c[1] + lh / 2 + LABEL_GAP)
        out.append((e, curves, straight, lines, _Label(c[0], c[1], lw, lh, anchor)))
    return out, crowded


def svg(graph: Graph) -> str:
    if not graph.nodes:
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="320" height="40" role="img">'
                '<text x="10" y="24" font-size="13">no observed edges</text></svg>')
    layer = _layers(graph)
    boxes = {n.id: _Box(n, layer[n.id]) for n in graph.nodes}
    for b in boxes.values():
        b.w = max(_text_width(b.node.label, 12.5), _text_width(b.node.sublabel, 10.5)) + 24
    # An edge across several layers passes its own slot in each column between, so it
    # never runs through a box.
    chains: dict[tuple[str, str], list[str]] = {}
    links: list[tuple[str, str]] = []
    for e in graph.edges:
        a, b = boxes[e.src], boxes[e.dst]
        if a is b:
            continue
        if b.layer <= a.layer:
            links.append((e.src, e.dst))
            continue
        chain = []
        for li in range(a.layer + 1, b.layer):
            did = f"{e.src}->{e.dst}#{li}"
            boxes[did] = _Box(GraphNode(did, "", "", DUMMY, ""), li, w=0.0, h=DUMMY_H)
            chain.append(did)
        path = [e.src, *chain, e.dst]
        links += list(zip(path, path[1:]))
        chains[(e.src, e.dst)] = chain
    columns = _order(boxes, links)
    # Labels sit in the gaps between columns: a gap too crowded for its labels is widened
    # (its edges spread out along a longer run) and the labels placed again; what still
    # finds no free spot on its edge is moved off it.
    gaps = [float(COL_GAP)] * max(0, len(columns) - 1)
    widenings = 0
    while True:
        col_span, width, tallest = _place_columns(columns, gaps)
        labelled, crowded = _labels(graph, boxes, chains, col_span, nudge=False)
        if not crowded:
            break
        widen = sorted(g for g in crowded if gaps[g] < MAX_GAP)
        if not widen or widenings == MAX_WIDENINGS:
            labelled, _ = _labels(graph, boxes, chains, col_span, nudge=True)
            break
        for g in widen:
            gaps[g] = min(MAX_GAP, gaps[g] + GAP_STEP)
        widenings += 1
    namespaces = sorted({n.group for n in graph.nodes if n.kind == WORKLOAD})
    fills = {ns: NAMESPACE_FILLS[i % len(NAMESPACE_FILLS)] for i, ns in enumerate(namespaces)}

    edge_parts: list[str] = []
    label_parts: list[str] = []
    below = MARGIN + tallest
    for e, curves, straight, lines, label in labelled:
        a, b = boxes[e.src], boxes[e.dst]
        title = f"{a.node.id} -> {b.node.id}: " + ", ".join(f"{p} ({n})" for p, n in e.ports)
        lx, ly, lw, lh = label.x, label.y, label.w, label.h
        below = max(below, ly + lh / 2 + 4, max(p[1] for c in curves for p in c) + 4)
        width = max(width, lx + lw / 2 + MARGIN)
        d = f"M{curves[0][0][0]:.1f},{curves[0][0][1]:.1f}"
        for i, c in enumerate(curves):
            d += (f" C{c[1][0]:.1f},{c[1][1]:.1f} {c[2][0]:.1f},{c[2][1]:.1f} "
                  f"{c[3][0]:.1f},{c[3][1]:.1f}")
            if i < len(straight):
                d += f" L{straight[i][1][0]:.1f},{straight[i][1][1]:.1f}"
        edge_parts.append(f'<path d="{d}" class="e" marker-end="url(#arrow)">'
                          f"<title>{_esc(title)}</title></path>")
        leader = ""
        if label.anchor is not None:
            ax, ay = label.anchor
            ey = ly - lh / 2 if ay < ly else ly + lh / 2
            leader = (f'<path d="M{ax:.1f},{ay:.1f} L{lx:.1f},{ey:.1f}" class="k"/>'
                      f'<circle cx="{ax:.1f}" cy="{ay:.1f}" r="2"/>')
        label_parts.append(
            f'<g class="l"><title>{_esc(title)}</title>{leader}<rect x="{lx - lw / 2:.1f}" '
            f'y="{ly - lh / 2:.1f}" width="{lw:.1f}" height="{lh:.1f}" rx="3"/>'
            + "".join(f'<text x="{lx:.1f}" y="{ly - lh / 2 + 13 * (i + 1) - 1:.1f}">{_esc(t)}</text>'
                      for i, t in enumerate(lines)) + "</g>")

    node_parts: list[str] = []
    for b in boxes.values():
        if b.dummy:
            continue
        n = b.node
        fill, stroke = KIND_FILLS.get(n.kind, (fills.get(n.group, "#eeeeee"), "#5b6b7f"))
        dash = ' stroke-dasharray="4 3"' if n.kind == UNRESOLVED else ""
        node_parts.append(
            f'<g class="n"><title>{_esc(n.id)}</title>'
            f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" height="{NODE_H}" rx="6" '
            f'fill="{fill}" stroke="{stroke}"{dash}/>'
            f'<text class="t" x="{b.x + b.w / 2:.1f}" y="{b.y + 17:.1f}">{_esc(n.label)}</text>'
            f'<text class="s" x="{b.x + b.w / 2:.1f}" y="{b.y + 33:.1f}">{_esc(n.sublabel)}</text></g>')

    legend_y = below + 22
    legend: list[str] = []
    lx = float(MARGIN)
    entries = [(f"namespace {ns}", fills[ns], "#5b6b7f") for ns in namespaces]
    entries += [(name, *KIND_FILLS[kind]) for kind, name in
                ((NODE, "node"), (EXTERNAL, "external"), (APISERVER, "kube-apiserver"),
                 (UNRESOLVED, "unresolved")) if any(n.kind == kind for n in graph.nodes)]
    for name, fill, stroke in entries:
        legend.append(f'<rect x="{lx:.1f}" y="{legend_y - 10:.1f}" width="14" height="14" rx="3" '
                      f'fill="{fill}" stroke="{stroke}"/>'
                      f'<text class="g" x="{lx + 20:.1f}" y="{legend_y + 1:.1f}">{_esc(name)}</text>')
        lx += 20 + _text_width(name, 11.5) + 22
    width = max(width, lx + MARGIN)
    height = legend_y + 16
    style = (".e{fill:none;stroke:#57606a;stroke-width:1.3}"
             ".l rect{fill:#fff;fill-opacity:.92;stroke:#d0d7de}"
             ".k{fill:none;stroke:#8c959f;stroke-width:.8;stroke-dasharray:2 2}.l circle{fill:#8c959f}"
             ".l text{font-size:10.5px;text-anchor:middle;fill:#24292f}"
             ".n text{text-anchor:middle;fill:#1f2328}.t{font-size:12.5px;font-weight:600}"
             ".s{font-size:10.5px;fill:#57606a}.g{font-size:11.5px;fill:#24292f}"
             "text{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        # scaled down to the page's width, but not below 3/4 (labels stay readable):
        # beyond that the graph's box scrolls
        f'style="max-width:100%;min-width:{width * MIN_SCALE:.0f}px;height:auto" '
        'aria-label="workload graph">'
        f"<style>{style}</style>"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#57606a"/></marker></defs>'
        + "".join(edge_parts) + "".join(node_parts) + "".join(label_parts) + "".join(legend)
        + "</svg>"
    )
