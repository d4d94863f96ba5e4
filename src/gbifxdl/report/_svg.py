"""Small inline SVG charts: no plotting library, no script, nothing fetched."""

from __future__ import annotations

import math
from html import escape

BLUE, GREEN, RED, GREY = "#4c78a8", "#54a24b", "#e45756", "#888"
FONT_PX = 14  # chart text, in pixels at the chart's own width (issue 20, item 18: readable without hovering)
_FONT = f'font-family="sans-serif" font-size="{FONT_PX}"'
MAX_BARS = 300  # past this many classes, a filled rank curve reads better than hairline bars
LABELLED_CLASSES = 40  # classes drawn as labelled bars (name and count as text); more get a rank curve too


def _fmt(n: float) -> str:
    return f"{n:,.0f}"


def class_histogram(counts: list[tuple[str, int]], names: dict[str, str] | None = None,
                    width: int = 900, height: int = 280, max_bars: int = MAX_BARS) -> str:
    """Return an SVG of images per class, largest first, on a log-scale axis.

    Each bar links to the class's thumbnails (``#class-<label>``); past ``max_bars``
    classes the bars become a filled rank curve.
    """
    if not counts:
        return '<p class="empty">no images</p>'
    left, bottom, top, right = 56, 28, 10, 10
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
    if len(counts) <= max_bars:
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
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 8}" text-anchor="middle" {_FONT}>'
                 f"{len(counts):,} {'class' if len(counts) == 1 else 'classes'}, largest first (log scale)</text>")
    parts.append("</svg>")
    return "".join(parts)


def hbars(items: list[tuple[str, int]], colour: str = BLUE, colours: dict[str, str] | None = None,
          width: int = 640, label_width: int = 220, *, texts: dict[str, str] | None = None,
          links: dict[str, str] | None = None, log: bool = False, label: str = "") -> str:
    """Return an SVG of horizontal bars, one per (label, count), the label before the bar and the
    count after it, both as text (nothing to hover for).

    ``texts`` gives a label's shown text (default the label itself), ``links`` a bar's link
    target, ``log`` a log-scale bar length (from 0.5, so a count of one still shows).
    """
    if not items:
        return '<p class="empty">none</p>'
    row, pad = 24, 4
    height = row * len(items) + pad * 2
    top_value = max(n for _, n in items) or 1
    plot_w = width - label_width - 80
    chars = max(12, int(label_width / (FONT_PX * 0.55)))

    def length(n: float) -> float:
        if not log:
            return plot_w * n / top_value
        floor = math.log10(0.5)
        return plot_w * (math.log10(max(n, 0.5)) - floor) / (math.log10(max(top_value, 1)) - floor)

    aria = f' aria-label="{escape(label)}"' if label else ""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img"{aria}>']
    for i, (key, n) in enumerate(items):
        yy = pad + i * row
        w = length(n)
        fill = (colours or {}).get(key, colour)
        shown = (texts or {}).get(key, key)
        short = shown if len(shown) <= chars else shown[: chars - 1] + "…"
        bar = (f'<rect class="bar" x="{label_width}" y="{yy + 3}" width="{max(w, 1):.1f}" height="{row - 6}" '
               f'fill="{fill}"><title>{escape(shown)}: {n:,}</title></rect>')
        if links and key in links:
            bar = f'<a href="{escape(links[key])}">{bar}</a>'
        parts.append(f'<text class="label" x="{label_width - 6}" y="{yy + 17}" text-anchor="end" {_FONT}>'
                     f"{escape(short)}</text>")
        parts.append(bar)
        parts.append(f'<text class="count" x="{label_width + w + 4:.1f}" y="{yy + 17}" {_FONT}>{_fmt(n)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked_hbars(items: list[tuple[str, int, int]], width: int = 640, label_width: int = 220) -> str:
    """Return an SVG of horizontal bars split into ok (green) and failed (red) parts."""
    if not items:
        return '<p class="empty">none</p>'
    row, pad = 24, 4
    height = row * len(items) + pad * 2
    top_value = max(a + b for _, a, b in items) or 1
    plot_w = width - label_width - 150
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img">']
    for i, (label, ok, failed) in enumerate(items):
        yy = pad + i * row
        w_ok, w_bad = plot_w * ok / top_value, plot_w * failed / top_value
        short = label if len(label) <= 34 else label[:33] + "…"
        parts.append(f'<text class="label" x="{label_width - 6}" y="{yy + 17}" text-anchor="end" {_FONT}>'
                     f"{escape(short)}</text>")
        parts.append(f'<rect class="bar" x="{label_width}" y="{yy + 3}" width="{w_ok:.1f}" height="{row - 6}" '
                     f'fill="{GREEN}"><title>{escape(label)}: {ok} ok</title></rect>')
        parts.append(f'<rect class="bar" x="{label_width + w_ok:.1f}" y="{yy + 3}" width="{w_bad:.1f}" '
                     f'height="{row - 6}" fill="{RED}"><title>{escape(label)}: {failed} failed</title></rect>')
        parts.append(f'<text class="count" x="{label_width + w_ok + w_bad + 4:.1f}" y="{yy + 17}" {_FONT}>'
                     f"{_fmt(ok)} ok, {_fmt(failed)} failed</text>")
    parts.append("</svg>")
    return "".join(parts)
