"""The report's pictures as SVG (docs/STATS.md, "Quarterly risk report"): bar charts and the
hotspot map, drawn from numbers and from shapes already projected to the picture's pixels.

Pure functions: no database, no Flask. The colours are named so that a test can look for
them in the rendered page.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

CURRENT = "#2b6cb0"  # this quarter's bars
PREVIOUS = "#a0aec0"  # the quarter before's bars
LEVEL = "#2f855a"  # closed cases by resolving level
MONTH = "#6b46c1"  # reports by month
HOT = "#d7191c"  # a hot cell on the map
REPEATED = "#f08c00"  # a spot reported again and again
UNRANKED = "#edf2f7"  # a child region without a score
# a child region's fill by its score: (at least, colour), best first
SCORE_BANDS = ((90.0, "#c6e6c1"), (80.0, "#e3f1b7"), (70.0, "#fde3a7"), (0.0, "#f9b4a4"))
INK, GRID_LINE, FONT_PX = "#1a202c", "#e2e8f0", 11


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _text(x: float, y: float, content, *, anchor: str = "start", size: int = FONT_PX, fill: str = INK,
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}">{escape(content)}</text>')


def _svg(width: int, height: int, body: list[str], title: str) -> Markup:
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                  f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
                  f'font-family="Noto Sans CJK SC, sans-serif">{"".join(body)}</svg>')


def _legend(x: float, y: float, entries: Sequence[tuple[str, str]]) -> list[str]:
    body = []
    for label, colour in entries:
        body.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour}"/>')
        body.append(_text(x + 14, y, label))
        x += 28 + 7 * len(label) + 7 * sum(1 for ch in label if ord(ch) > 0x2e80)  # CJK is twice as wide
    return body


def paired_bars(rows: Sequence[tuple[str, float, float]], labels: tuple[str, str], title: str,
                width: int = 640) -> Markup:
    """Horizontal bars, two a row: ``(row label, this value, the value before)``, with the
    two series' ``labels`` as the legend."""
    label_w, bar_h, gap, top = 150, 11, 10, 26
    height = top + len(rows) * (2 * bar_h + gap) + 8
    most = max([v for _, a, b in rows for v in (a, b)] + [1])
    scale = (width - label_w - 60) / most
    body = _legend(label_w, 14, [(labels[0], CURRENT), (labels[1], PREVIOUS)])
    y = top
    for label, now, before in rows:
        body.append(_text(label_w - 6, y + bar_h + 4, label, anchor="end"))
        for value, colour, dy in ((now, CURRENT, 0), (before, PREVIOUS, bar_h)):
            w = max(value * scale, 0.0)
            body.append(f'<rect x="{label_w}" y="{y + dy:.1f}" width="{w:.1f}" height="{bar_h - 1}" fill="{colour}"/>')
            body.append(_text(label_w + w + 4, y + dy + bar_h - 2, _number(value), size=9))
        y += 2 * bar_h + gap
    if not rows:
        body.append(_text(width / 2, top + 10, "—", anchor="middle"))
    return _svg(width, height, body, title)


def columns(items: Sequence[tuple[str, float, str | None]], colour: str, title: str, width: int = 640,
            height: int = 200) -> Markup:
    """Vertical columns: ``(label under it, value, a note over it or None)``."""
    left, bottom, top = 36, 34, 22
    plot_h = height - top - bottom
    most = max([value for _, value, _ in items] + [1])
    step = (width - left - 10) / max(len(items), 1)
    col_w = min(step * 0.6, 60)
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="{INK}"/>']
    for tick in (0.5, 1.0):
        y = top + plot_h * (1 - tick)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="{GRID_LINE}"/>')
        body.append(_text(left - 4, y + 4, _number(most * tick), anchor="end", size=9))
    for n, (label, value, note) in enumerate(items):
        x = left + n * step + (step - col_w) / 2
        h = plot_h * value / most
        body.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{col_w:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"/>')
        body.append(_text(x + col_w / 2, top + plot_h - h - 4, _number(value), anchor="middle", size=9))
        body.append(_text(x + col_w / 2, top + plot_h + 14, label, anchor="middle", size=10))
        if note:
            body.append(_text(x + col_w / 2, top + plot_h + 27, note, anchor="middle", size=9, fill="#4a5568"))
    return _svg(width, height, body, title)


@dataclass(frozen=True)
class Shape:
    """A region on the map: its SVG path (pixels), a point for its name, its fill."""

    name: str
    path: str
    label_x: float
    label_y: float
    fill: str


@dataclass(frozen=True)
class Mark:
    """A point on the map (pixels): a hot cell or a repeated spot."""

    x: float
    y: float
    colour: str
    label: str | None = None


def score_fill(score: float | None) -> str:
    if score is None:
        return UNRANKED
    return next(colour for least, colour in SCORE_BANDS if score >= least)


def region_map(shapes: Sequence[Shape], marks: Sequence[Mark], size: tuple[int, int], legend: list[tuple[str, str]],
               scale: tuple[float, str] | None, title: str) -> Markup:
    """The regions filled, named at their points, the marks over them, a legend and a scale
    bar (``(pixels, label)``) under the map."""
    width, height = size
    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f7fafc"/>']
    for shape in shapes:
        body.append(f'<path d="{escape(shape.path)}" fill="{shape.fill}" stroke="#718096" stroke-width="0.8" '
                    'fill-rule="evenodd"/>')
    for shape in shapes:
        body.append(_text(shape.label_x, shape.label_y, shape.name, anchor="middle", size=9, fill="#2d3748"))
    for mark in marks:
        r = 5 if mark.colour == HOT else 3.5  # a hot cell over a repeated spot
        body.append(f'<circle cx="{mark.x:.1f}" cy="{mark.y:.1f}" r="{r}" fill="{mark.colour}" stroke="#ffffff" '
                    'stroke-width="1"/>')
        if mark.label:
            body.append(_text(mark.x + 7, mark.y + 3, mark.label, size=8, fill=mark.colour, weight="bold"))
    total_h = height + 26
    body.extend(_legend(4, height + 18, legend))
    if scale:
        pixels, label = scale
        x0 = width - pixels - 8
        body.append(f'<path d="M{x0:.1f} {height + 10} v6 h{pixels:.1f} v-6" fill="none" stroke="{INK}"/>')
        body.append(_text(x0 + pixels / 2, height + 8, label, anchor="middle", size=9))
    return _svg(width, total_h, body, title)
