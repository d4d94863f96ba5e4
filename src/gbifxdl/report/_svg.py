"""Small inline SVG charts: no plotting library, no script, nothing fetched."""

from __future__ import annotations

import math
from html import escape

BLUE, GREEN, RED, GREY = "#4c78a8", "#54a24b", "#e45756", "#888"
_FONT = 'font-family="sans-serif" font-size="11"'
MAX_BARS = 300  # past this many classes, a filled rank curve reads better than hairline bars


def _fmt(n: float) -> str:
    return f"{n:,.0f}"


def class_histogram(counts: list[tuple[str, int]], names: dict[str, str] | None = None,
                    width: int = 900, height: int = 280) -> str:
    """Return an SVG of images per class, largest first, on a log-scale axis.

    Each bar links to the class's thumbnails (``#class-<label>``); past ``MAX_BARS``
    classes the bars become a filled rank curve.
    """
    if not counts:
        return '<p class="empty">no images</p>'
    left, bottom, top, right = 48, 24, 10, 10
    plot_w, plot_h = width - left - right, height - top - bottom
    top_decade = max(1, math.ceil(math.log10(max(c for _, c in counts) + 1e-9)))
    if 10**top_decade < max(c for _, c in counts):
        top_decade += 1

    floor = math.log10(0.5)  # the axis starts below 1, so a class of one image shows a bar

    def y(v: float) -> float:  # log10 scale from 0.5 to 10**top_decade
        return top + plot_h - plot_h * (math.log10(max(v, 0.5)) - floor) / (top_decade - floor)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="images per class, log scale">']
    for d in range(top_decade + 1):
        yy = y(10**d)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" {_FONT}>{_fmt(10**d)}</text>')
    step = plot_w / len(counts)
    if len(counts) <= MAX_BARS:
        for i, (label, n) in enumerate(counts):
            x, h = left + i * step, top + plot_h - y(n)
            parts.append(
                f'<a href="#class-{escape(label)}"><rect class="bar" x="{x + step * 0.1:.2f}" y="{y(n):.1f}" '
                f'width="{max(step * 0.8, 0.5):.2f}" height="{max(h, 0.5):.1f}" fill="{BLUE}">'
                f"<title>{escape(label)} {escape((names or {}).get(label) or '')}: {n}</title></rect></a>"
            )
    else:
        points = " ".join(f"{left + (i + 0.5) * step:.1f},{y(n):.1f}" for i, (_, n) in enumerate(counts))
        parts.append(f'<polygon points="{left},{top + plot_h} {points} {width - right},{top + plot_h}" '
                     f'fill="{BLUE}" opacity="0.8"/>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#333"/>')
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle" {_FONT}>'
                 f"{len(counts)} classes, largest first (log scale)</text>")
    parts.append("</svg>")
    return "".join(parts)


def hbars(items: list[tuple[str, int]], colour: str = BLUE, colours: dict[str, str] | None = None,
          width: int = 640, label_width: int = 220) -> str:
    """Return an SVG of horizontal bars, one per (label, count), with the count at its end."""
    if not items:
        return '<p class="empty">none</p>'
    row, pad = 20, 4
    height = row * len(items) + pad * 2
    top_value = max(n for _, n in items) or 1
    plot_w = width - label_width - 70
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img">']
    for i, (label, n) in enumerate(items):
        yy = pad + i * row
        w = plot_w * n / top_value
        fill = (colours or {}).get(label, colour)
        short = label if len(label) <= 34 else label[:33] + "…"
        parts.append(f'<text x="{label_width - 6}" y="{yy + 14}" text-anchor="end" {_FONT}>{escape(short)}</text>')
        parts.append(f'<rect class="bar" x="{label_width}" y="{yy + 3}" width="{max(w, 1):.1f}" height="{row - 6}" '
                     f'fill="{fill}"><title>{escape(label)}: {n}</title></rect>')
        parts.append(f'<text x="{label_width + w + 4:.1f}" y="{yy + 14}" {_FONT}>{_fmt(n)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked_hbars(items: list[tuple[str, int, int]], width: int = 640, label_width: int = 220) -> str:
    """Return an SVG of horizontal bars split into ok (green) and failed (red) parts."""
    if not items:
        return '<p class="empty">none</p>'
    row, pad = 20, 4
    height = row * len(items) + pad * 2
    top_value = max(a + b for _, a, b in items) or 1
    plot_w = width - label_width - 110
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img">']
    for i, (label, ok, failed) in enumerate(items):
        yy = pad + i * row
        w_ok, w_bad = plot_w * ok / top_value, plot_w * failed / top_value
        short = label if len(label) <= 34 else label[:33] + "…"
        parts.append(f'<text x="{label_width - 6}" y="{yy + 14}" text-anchor="end" {_FONT}>{escape(short)}</text>')
        parts.append(f'<rect class="bar" x="{label_width}" y="{yy + 3}" width="{w_ok:.1f}" height="{row - 6}" '
                     f'fill="{GREEN}"><title>{escape(label)}: {ok} ok</title></rect>')
        parts.append(f'<rect class="bar" x="{label_width + w_ok:.1f}" y="{yy + 3}" width="{w_bad:.1f}" '
                     f'height="{row - 6}" fill="{RED}"><title>{escape(label)}: {failed} failed</title></rect>')
        parts.append(f'<text x="{label_width + w_ok + w_bad + 4:.1f}" y="{yy + 14}" {_FONT}>'
                     f"{_fmt(ok)} ok, {_fmt(failed)} failed</text>")
    parts.append("</svg>")
    return "".join(parts)
