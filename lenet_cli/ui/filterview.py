"""`lenet filters`: convolution kernels in the terminal and as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenet_cli.ui import png
from lenet_cli.ui.console import out

WIDTH = 80


def _blocks(cells: list[list[list[str]]], captions: list[str]) -> list[str]:
    """Small grids of equal-width cells side by side, captioned, within 80 columns."""
    width = sum(len(x) + 1 for x in cells[0][0]) - 1
    width = max(width, max(len(c) for c in captions))
    per_row = max(1, (WIDTH + 3) // (width + 3))
    lines = []
    for start in range(0, len(cells), per_row):
        group = range(start, min(start + per_row, len(cells)))
        lines.append("   ".join(captions[i].ljust(width) for i in group).rstrip())
        for r in range(len(cells[start])):
            lines.append("   ".join(" ".join(cells[i][r]).ljust(width) for i in group).rstrip())
    return lines


def render_filters(kernels_list: list[dict[str, Any]], labels: list[str]) -> None:
    """conv1's kernels with their values; conv2's scaled to -9..+9 by the layer's largest
    absolute weight (--json has the exact values)."""
    c = out()
    for kernels, label in zip(kernels_list, labels, strict=True):
        w1, w2 = kernels["conv1"], kernels["conv2"]
        c.print(f"{label}", markup=False, highlight=False)
        c.print(f"conv1: {w1.shape[0]} kernels of {w1.shape[2]}x{w1.shape[3]}", markup=False)
        cells = [[[f"{v:+.2f}" for v in row] for row in k[0]] for k in w1]
        for line in _blocks(cells, [f"conv1 #{i}" for i in range(len(w1))]):
            c.print(line, markup=False, highlight=False)
        scale = float(abs(w2).max()) or 1.0
        c.print(f"conv2: {w2.shape[0]} x {w2.shape[1]} kernels (output channel x input map)")
        c.print(f"  weights x 9 / {scale:.3f} (the largest |weight|): -9 .. +9", markup=False)
        for o in range(w2.shape[0]):
            cells = [[[f"{round(9 * v / scale):+d}" for v in row] for row in k] for k in w2[o]]
            caps = [f"out {o} in {i}" for i in range(w2.shape[1])]
            for line in _blocks(cells, caps):
                c.print(line, markup=False, highlight=False)


def _mosaic(w: Any) -> Any:
    """Kernels [O, I, k, k] as one array, O rows by I columns, one blank pixel between them."""
    import numpy as np

    o, i, k, _ = w.shape
    grid = np.full((o * (k + 1) - 1, i * (k + 1) - 1), np.nan)
    for a in range(o):
        for b in range(i):
            grid[a * (k + 1) : a * (k + 1) + k, b * (k + 1) : b * (k + 1) + k] = w[a, b]
    return grid


def filters_png(kernels_list: list[dict[str, Any]], labels: list[str], path: Path) -> Path:
    """Each model's conv1 (rows of three kernels) and conv2 (output channel by input map), on one
    colour scale per layer shared by all models (blue negative, white 0, red positive)."""
    plt = png.pyplot()
    n = len(kernels_list)
    fig = plt.figure(figsize=(5.4 * n + 1.2, 13))
    columns = fig.subfigures(1, n, squeeze=False)[0]
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="white")  # the gaps between kernels
    limits = {
        layer: png.signed_limits(*(k[layer] for k in kernels_list)) for layer in ("conv1", "conv2")
    }
    for sub, kernels, label in zip(columns, kernels_list, labels, strict=True):
        top, bottom = sub.subfigures(2, 1, height_ratios=[1.4, 4.2])
        _conv1(top, kernels["conv1"], cmap, limits["conv1"], label)
        _conv2(bottom, kernels["conv2"], cmap, limits["conv2"])
    return png.save(fig, path)


def _conv1(part: Any, w: Any, cmap: Any, lim: float, label: str) -> None:
    """conv1's kernels in rows of three, each captioned with its output channel."""
    import numpy as np

    k, per_row = w.shape[2], 3
    rows = -(-w.shape[0] // per_row)
    padded = list(w[:, 0]) + [w[0, 0] * float("nan")] * (rows * per_row - w.shape[0])
    ax = part.subplots()
    grid = np.stack(padded).reshape(rows, per_row, k, k)
    image = ax.imshow(_mosaic(grid), cmap=cmap, vmin=-lim, vmax=lim)
    for i in range(w.shape[0]):
        r, c = divmod(i, per_row)
        ax.text(c * (k + 1) + (k - 1) / 2, r * (k + 1) - 0.6, f"#{i}", ha="center", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{label}\n\nconv1: {w.shape[0]} kernels {k}x{k}", fontsize=10, pad=14)
    part.colorbar(image, ax=ax, label="conv1 weight", shrink=0.9)


def _conv2(part: Any, w: Any, cmap: Any, lim: float) -> None:
    """conv2's kernels: one row per output channel, one column per input map."""
    k = w.shape[2]
    ax = part.subplots()
    image = ax.imshow(_mosaic(w), cmap=cmap, vmin=-lim, vmax=lim)
    ax.set_xticks([b * (k + 1) + (k - 1) / 2 for b in range(w.shape[1])], range(w.shape[1]))
    ax.set_yticks([a * (k + 1) + (k - 1) / 2 for a in range(w.shape[0])], range(w.shape[0]))
    ax.tick_params(length=0, labelsize=8)
    ax.set_xlabel("input map (conv1 channel)")
    ax.set_ylabel("conv2 output channel")
    ax.set_title(f"conv2: {w.shape[0]} x {w.shape[1]} kernels {k}x{k}", fontsize=10)
    part.colorbar(image, ax=ax, label="conv2 weight", shrink=0.9)
