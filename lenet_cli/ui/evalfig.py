"""`lenet evaluate --out DIR`: confusion.png, errors.png and per_class.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenet_cli.ui import png
from lenet_cli.ui.console import note, out


def _title(r: dict[str, Any]) -> str:
    return f"{r['arch']} on {r['data']} {r['split']} ({r['count']:,} images), accuracy " + (
        f"{100 * r['accuracy']:.2f}%"
    )


def confusion_png(r: dict[str, Any], names: list[str], path: Path) -> Path:
    """Counts and row-normalised percentages side by side, true class down, predicted across."""
    import numpy as np

    plt = png.pyplot()
    counts = np.array(r["confusion"], dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    percent = np.divide(100.0 * counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    long_names = max(len(n) for n in names) > 2
    fig, axes = plt.subplots(1, 2, figsize=(16, 7.4) if long_names else (14, 6.4))
    panels = ((counts, "counts", "Blues", "{:d}"), (percent, "% of the true class", "Greens", ""))
    for ax, (values, label, cmap, fmt) in zip(axes, panels, strict=True):
        # counts on a log colour scale: on a linear one the diagonal drowns every mistake
        shown = np.log1p(values) if fmt else values
        image = ax.imshow(shown, cmap=cmap, vmin=0)
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label(label)
        if fmt:  # the colour bar in counts, not log counts
            ticks = [t for t in (0, 1, 10, 100, 1000, 10000) if t <= values.max()]
            bar.set_ticks(np.log1p(ticks), labels=[str(t) for t in ticks])
        for (i, j), v in np.ndenumerate(values):
            text = fmt.format(int(v)) if fmt else (f"{v:.1f}" if v else "")
            dark = shown[i, j] > 0.6 * shown.max()
            colour = "white" if dark else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
        if long_names:
            ax.set_xticks(range(10), names, rotation=40, ha="right")
        else:
            ax.set_xticks(range(10), names)
        ax.set_yticks(range(10), names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"confusion matrix: {label}")
    fig.suptitle(_title(r))
    fig.tight_layout()
    return png.save(fig, path)


_UNDER_LINE = {"facecolor": "white", "edgecolor": "none", "pad": 0.5}  # a label over the line


def per_class_png(r: dict[str, Any], names: list[str], path: Path) -> Path:
    """Accuracy of each class as bars, the overall accuracy as a dashed line."""
    return png.save(per_class_figure(r, names), path)


def per_class_figure(r: dict[str, Any], names: list[str]):  # noqa: ANN201 (a matplotlib Figure)
    """``per_class_png``'s figure."""
    plt = png.pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.8))
    acc = [100 * (c["accuracy"] or 0.0) for c in r["per_class"]]
    # just below the worst class, so that differences of a few tenths show; room above 100 for
    # the values written over the bars
    low = max(0.0, min(acc) - max(0.5, 0.25 * (100 - min(acc))))
    high = 100 + 0.08 * (100 - low)
    bars = ax.bar(range(10), acc, color="tab:blue")
    for bar, c in zip(bars, r["per_class"], strict=True):
        label = "-" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f}"
        x = bar.get_x() + bar.get_width() / 2
        y = bar.get_height() + 0.01 * (high - low)
        ax.text(x, y, label, ha="center", va="bottom", fontsize=8, bbox=_UNDER_LINE)
    overall = 100 * r["accuracy"]
    ax.axhline(overall, color="tab:red", linestyle="--")
    # in the margin right of the bars, at the line's height: it covers no bar
    ax.text(1.01, overall, f"all classes\n{overall:.2f}%", color="tab:red", fontsize=8,
            va="center", ha="left", transform=ax.get_yaxis_transform(), clip_on=False)  # fmt: skip
    ticks = [f"{n}\n(n={c['count']:,})" for n, c in zip(names, r["per_class"], strict=True)]
    ax.set_xticks(range(10), ticks, fontsize=8)
    ax.set_xlim(-0.6, 9.6)
    ax.set_ylim(low, high)
    ax.set_xlabel("true class (number of images)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"accuracy per class: {_title(r)}", fontsize=10)
    fig.tight_layout()
    return fig


def errors_png(r: dict[str, Any], names: list[str], path: Path, columns: int = 8) -> Path:
    """The most confident mistakes: each picture with its true and predicted class."""
    plt = png.pyplot()
    mistakes = r["mistakes"]
    rows = max(1, -(-len(mistakes) // columns))
    size = (1.7 * columns, 2.05 * rows + 0.6)
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    # digits as ink on paper; garments and the rest as the data sets show them, light on black
    cmap = "gray_r" if names[0] == "0" else "gray"
    for ax, m in zip(axes.flat, mistakes, strict=False):
        ax.imshow(m["image"], cmap=cmap, vmin=0, vmax=1)
        title = f"true: {names[m['label']]}\npred: {names[m['predicted']]} {m['probability']:.3f}"
        ax.set_title(f"{title}\n#{m['index']}", fontsize=8)
    if not mistakes:
        axes.flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle(
        f"most confident mistakes (probability of the predicted class): {_title(r)}", fontsize=10
    )
    fig.tight_layout()
    return png.save(fig, path)


def evaluation_pngs(r: dict[str, Any], names: list[str], out_dir: Path) -> list[Path]:
    """The three pictures of an evaluation, in ``out_dir``."""
    written = [
        confusion_png(r, names, out_dir / "confusion.png"),
        errors_png(r, names, out_dir / "errors.png"),
        per_class_png(r, names, out_dir / "per_class.png"),
    ]
    for p in written:
        note(f"wrote {p}")
    return written


def class_legend(names: list[str]) -> None:
    """Name the classes behind the indices 0-9 on stdout (nothing for digits), within 80 columns."""
    import textwrap

    if names == [str(k) for k in range(10)]:
        return
    text = "classes: " + ", ".join(f"{k} {n}" for k, n in enumerate(names))
    for line in textwrap.wrap(text, width=80, break_on_hyphens=False, subsequent_indent="  "):
        out().print(line, markup=False, highlight=False, soft_wrap=True)
