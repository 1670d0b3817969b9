"""Line charts drawn with characters: one character per column and series, so a chart
reads the same in a pipe (no colour, no control characters) as on a terminal."""

from __future__ import annotations

import math
from collections.abc import Sequence

MARKERS = "ox+*#@%&=~"


def _interpolate(xs: Sequence[float], ys: Sequence[float | None], x: float) -> float | None:
    """y at ``x`` on the polyline through the points (None outside it or across a gap)."""
    points = [(a, b) for a, b in zip(xs, ys, strict=True) if b is not None]
    if not points or x < points[0][0] or x > points[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]  # x is the last point's (or the only point's) x


def _fmt(v: float) -> str:
    if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4):
        return f"{v:.1e}"
    return f"{v:.3g}"


def _draw(grid: list[list[str]], xs, ys, mark: str, x_range, y_range) -> None:
    """Draw one series into ``grid`` with ``mark``: its value interpolated at every column.

    ``x_range`` and ``y_range`` are the (low, high) the grid spans; gaps (None) stay blank.
    """
    (x0, x1), (lo, hi) = x_range, y_range
    height, plot_w = len(grid), len(grid[0]) if grid else 0
    prev = None
    for col in range(plot_w):
        if x1 > x0:
            x = x0 + (x1 - x0) * col / max(1, plot_w - 1)
        elif col == plot_w // 2:  # one epoch: one point, in the middle
            x = x0
        else:
            continue
        y = _interpolate(xs, ys, x)
        if y is None:
            prev = None
            continue
        row = round((hi - y) / (hi - lo) * (height - 1))
        # a steep stretch: fill the rows between this column's point and the last one's
        span = range(min(row, prev), max(row, prev) + 1) if prev is not None else [row]
        for r in span:
            grid[r][col] = mark
        prev = row


def _legend(names: list[str], margin: int, width: int) -> list[str]:
    """The legend lines: each series' marker and name, wrapped to ``width``."""
    lines, entry = [], ""
    for k, name in enumerate(names):
        item = f"{MARKERS[k % len(MARKERS)]} {name}"
        if entry and margin + 1 + len(entry) + 3 + len(item) > width:
            lines.append(" " * (margin + 1) + entry)
            entry = ""
        entry = f"{entry}   {item}" if entry else item
    lines.append(" " * (margin + 1) + entry)
    return lines


def line_chart(
    series: Sequence[tuple[str, Sequence[float], Sequence[float | None]]],
    *,
    title: str,
    x_label: str,
    width: int = 80,
    height: int = 10,
) -> list[str]:
    """Lines of a chart of ``series`` (name, xs, ys) at most ``width`` characters wide.

    Each series gets a marker (o, x, +...) named in the legend under the chart; where two
    series share a cell the later one is drawn.
    """
    values = [y for _, _, ys in series for y in ys if y is not None]
    xs_all = [x for _, xs, _ in series for x in xs]
    if not values or not xs_all:
        return [title, "  (no values logged)"]
    lo, hi = min(values), max(values)
    if math.isclose(lo, hi):
        lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
    x0, x1 = min(xs_all), max(xs_all)
    labels = [_fmt(hi), _fmt((lo + hi) / 2), _fmt(lo)]
    margin = max(len(s) for s in labels) + 1
    plot_w = max(10, width - margin - 1)
    grid = [[" "] * plot_w for _ in range(height)]
    for k, (_, xs, ys) in enumerate(series):
        _draw(grid, xs, ys, MARKERS[k % len(MARKERS)], (x0, x1), (lo, hi))
    lines = [title]
    for r, cells in enumerate(grid):
        label = labels[0] if r == 0 else labels[2] if r == height - 1 else ""
        label = labels[1] if r == (height - 1) // 2 and height > 2 else label
        lines.append((label.rjust(margin - 1) + " |" + "".join(cells)).rstrip())
    lines.append(" " * margin + "+" + "-" * plot_w)
    left, right = _fmt(x0), _fmt(x1)
    axis = left + f"{x_label}".center(plot_w - len(left) - len(right)) + right
    lines.append(" " * (margin + 1) + axis)
    lines.extend(_legend([name for name, _, _ in series], margin, width))
    return lines
