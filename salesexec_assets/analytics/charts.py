"""Small charts as inline SVG text: the report needs no chart library and no script.

Why our own: the report must open offline as ONE file, print well and stay small. Inline
SVG is vector (sharp on paper), needs no JavaScript (no console errors, nothing to
fetch), and each chart here is a few kilobytes. Plotly would embed 4.8 MB of JavaScript,
a CDN build would break offline, and matplotlib would add a large dependency for five
simple shapes. Every chart carries a ``<title>`` and visible labels, so it reads without
colour too.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from html import escape

WIDTH = 720
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _svg(height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" class="chart">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, label: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {_FONT} fill="#222"{extra}>'
        f"{escape(label)}</text>"
    )


def nice_ceiling(value: float) -> float:
    """The axis maximum: 1, 2, 2.5 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _y_axis(top: float, bottom: float, left: float, maximum: float, percent: bool) -> list[str]:
    parts = []
    for tick in range(5):
        value = maximum * tick / 4
        y = bottom - (bottom - top) * tick / 4
        label = f"{value:.0%}" if percent else f"{value:g}"
        parts.append(
            f'<line x1="{left}" x2="{WIDTH - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        parts.append(_text(left - 6, y + 4, label, "end"))
    return parts


def stacked_bars(
    categories: Sequence[str], series: Mapping[str, Sequence[float]], title: str
) -> str:
    """Columns per category, stacked by series (e.g. leads per day by source), with a
    legend. ``series`` values line up with ``categories``."""
    height, left, top, bottom = 300, 44, 12, 230
    totals = [sum(values[i] for values in series.values()) for i in range(len(categories))]
    maximum = nice_ceiling(max(totals, default=0))
    slot = (WIDTH - 10 - left) / max(len(categories), 1)
    body = _y_axis(top, bottom, left, maximum, percent=False)
    for index, category in enumerate(categories):
        x = left + slot * index + slot * 0.15
        y = bottom
        for color, (name, values) in zip(PALETTE * 3, series.items(), strict=False):
            value = values[index]
            if not value:
                continue
            h = (bottom - top) * value / maximum
            y -= h
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{escape(category)} · {escape(name)}: {value:g}</title>'
                "</rect>"
            )
        if index % max(1, len(categories) // 10) == 0:
            body.append(_text(x + slot * 0.35, bottom + 14, category[5:], "middle"))
    for index, (color, name) in enumerate(zip(PALETTE * 3, series, strict=False)):
        x, y = left + (index % 4) * 165, bottom + 34 + (index // 4) * 16
        body.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{color}"/>')
        body.append(_text(x + 14, y, name))
    rows = (len(series) + 3) // 4
    return _svg(height + max(0, rows - 2) * 16, title, body)


def horizontal_bars(
    items: Sequence[tuple[str, float]], title: str, *, label_width: int = 150
) -> str:
    """One bar per item with its value written at its end (the funnel, a leaderboard)."""
    bar, gap, top = 26, 8, 6
    height = top + len(items) * (bar + gap) + 4
    maximum = max((value for _, value in items), default=0) or 1
    body = []
    for index, ((label, value), color) in enumerate(zip(items, PALETTE * 3, strict=False)):
        y = top + index * (bar + gap)
        w = (WIDTH - label_width - 70) * value / maximum
        body.append(_text(label_width - 8, y + bar * 0.65, label, "end"))
        body.append(
            f'<rect x="{label_width}" y="{y}" width="{w:.1f}" height="{bar}" fill="{color}"/>'
        )
        body.append(_text(label_width + w + 6, y + bar * 0.65, f"{value:g}"))
    return _svg(height, title, body)


def bin_counts(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """How many ``values`` fall in each bin ``[edges[i], edges[i+1])``; the last bin is
    ``[edges[-1], inf)`` and a value below ``edges[0]`` counts in the first."""
    counts = [0] * len(edges)
    for value in values:
        counts[max(0, bisect.bisect_right(edges, value) - 1)] += 1
    return counts


def histogram(
    values: Sequence[float], edges: Sequence[float], labels: Sequence[str], title: str
) -> str:
    """Columns of :func:`bin_counts`, one per label (``len(labels) == len(edges)``)."""
    counts = bin_counts(values, edges)
    height, left, top, bottom = 260, 44, 22, 226
    maximum = nice_ceiling(max(counts, default=0))
    slot = (WIDTH - 10 - left) / len(counts)
    body = _y_axis(top, bottom, left, maximum, percent=False)
    for index, (count, label) in enumerate(zip(counts, labels, strict=True)):
        h = (bottom - top) * count / maximum
        x = left + slot * index + 4
        body.append(
            f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{slot - 8:.1f}" height="{h:.1f}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {count}</title></rect>'
        )
        if count:
            body.append(_text(x + (slot - 8) / 2, bottom - h - 4, str(count), "middle"))
        body.append(_text(x + (slot - 8) / 2, bottom + 14, label, "middle"))
    body.append(_text(left + (WIDTH - left) / 2, bottom + 30, "minutes to first contact", "middle"))
    return _svg(height, title, body)


def line(categories: Sequence[str], values: Sequence[float | None], title: str) -> str:
    """A rate (0..1) per category; a category without a value breaks the line."""
    height, left, top, bottom = 240, 44, 12, 210
    slot = (WIDTH - 10 - left) / max(len(categories), 1)
    body = _y_axis(top, bottom, left, 1.0, percent=True)
    segments: list[list[str]] = [[]]
    for index, (category, value) in enumerate(zip(categories, values, strict=True)):
        x = left + slot * (index + 0.5)
        if index % max(1, len(categories) // 10) == 0:
            body.append(_text(x, bottom + 14, category[5:], "middle"))
        if value is None:
            segments.append([])
            continue
        y = bottom - (bottom - top) * value
        segments[-1].append(f"{x:.1f},{y:.1f}")
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{PALETTE[2]}">'
            f"<title>{escape(category)}: {value:.0%}</title></circle>"
        )
    for points in segments:
        if len(points) > 1:
            body.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{PALETTE[2]}" '
                'stroke-width="2"/>'
            )
    return _svg(height, title, body)
