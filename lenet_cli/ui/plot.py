"""`lenet plot`: training curves as character charts (stdout) and as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenet_cli.ui import png
from lenet_cli.ui.console import out
from lenet_cli.ui.textchart import line_chart

SPLITS = ("train", "val", "test")
PANELS = (  # (key prefix or key, title, y label, scale to show)
    ("loss", "loss per epoch", "loss", 1.0),
    ("acc", "accuracy per epoch", "accuracy (%)", 100.0),
    ("lr", "learning rate at the end of each epoch", "learning rate", 1.0),
)


def _series(curves: list[dict[str, Any]], metric: str, scale: float):
    """(label, run index, split, xs, ys) of every run and split that logged ``metric``."""
    found = []
    for i, c in enumerate(curves):
        keys = [("", "lr")] if metric == "lr" else [(s, f"{s}_{metric}") for s in SPLITS]
        for split, key in keys:
            ys = [None if v is None else v * scale for v in c[key]]
            if any(v is not None for v in ys):
                label = " ".join(x for x in (c["name"] if len(curves) > 1 else "", split) if x)
                found.append((label or "lr", i, split, c["epoch"], ys))
    return found


def render_plot(curves: list[dict[str, Any]], width: int | None = None) -> None:
    """Three compact charts (loss, accuracy, learning rate), at most 80 columns wide."""
    c = out()
    width = min(80, width or c.width)
    for n, (metric, title, _, scale) in enumerate(PANELS):
        series = [(label, xs, ys) for label, _, _, xs, ys in _series(curves, metric, scale)]
        if n:
            c.print()
        for line in line_chart(series, title=title, x_label="epoch", width=width):
            c.print(line, markup=False, highlight=False, soft_wrap=True)  # never re-wrapped


def plot_png(curves: list[dict[str, Any]], path: Path) -> Path:
    """Loss, accuracy and learning rate per epoch side by side; one colour per run,
    one line style per split (train solid, val dashed, test dotted)."""
    plt = png.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    styles = {"train": "-", "val": "--", "test": ":", "": "-"}
    colours = plt.get_cmap("tab10").colors
    for ax, (metric, title, y_label, scale) in zip(axes, PANELS, strict=True):
        series = _series(curves, metric, scale)
        for label, i, split, xs, ys in series:
            pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                styles[split],
                marker="o",
                markersize=3,
                linewidth=1.8,
                # one run: a colour per split; several: a colour per run, a line style per split
                color=colours[(i if len(curves) > 1 else SPLITS.index(split or "train")) % 10],
                label=label,
            )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(y_label)
        ax.grid(True, alpha=0.3)
        epochs = sorted({e for c in curves for e in c["epoch"]})
        if len(epochs) <= 20:  # whole epochs only; a single epoch in the middle of the axis
            ax.set_xticks(epochs)
            if len(epochs) == 1:
                ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
        values = [y for s in series for y in s[4] if y is not None]
        if metric == "lr" and values and min(values) > 0 and max(values) / min(values) > 100:
            ax.set_yscale("log")
        if series:
            ax.legend(fontsize=8, loc="best")
    names = ", ".join(c["name"] for c in curves)
    fig.suptitle(f"training curves: {names}" if len(names) < 120 else "training curves")
    fig.tight_layout()
    return png.save(fig, path)
