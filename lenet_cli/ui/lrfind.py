"""`lenet lr-find`: the loss against the learning rate, as a character chart and a PNG."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lenet_cli.ui import png
from lenet_cli.ui.console import note, out
from lenet_cli.ui.textchart import line_chart


def lr_find_listener(forward: Callable[[dict], None]) -> Callable[[dict], None]:
    """Says where the test runs when it starts; every other event goes to ``forward``."""

    def listen(e: dict[str, Any]) -> None:
        if e.get("event") == "lr_find_start":
            step = {"update": ", one C call per step", "gradients": ", gradients in one C call "
                    "per step"}.get(e.get("fused_step") or "", "")  # fmt: skip
            note(
                f"lr-find on {e['device']}{step}: {e['steps']} steps, lr from "
                f"{e['start_lr']:.3g} to {e['end_lr']:.3g}"
            )
        else:
            forward(e)

    return listen


def _lr(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def summary_lines(r: dict[str, Any]) -> list[str]:
    """What the test found and how to use it."""
    if r["stopped"] == "diverged":
        last = r["lrs"][-1] if r["lrs"] else r["start_lr"]
        ended = f"stopped after {r['steps']} steps: the loss diverged past lr {_lr(last)}"
    else:
        ended = f"{r['steps']} steps up to lr {_lr(r['end_lr'])} without the loss diverging"
    lines = [f"lr-find: {ended}"]
    if r["suggested_lr"] is None:
        lines.append(
            "no suggestion: the smoothed loss never fell (widen the range with a lower "
            "--start-lr, or more --steps)"
        )
        return lines
    low = r["min_loss_lr"]
    picks = sorted((r["suggested_lr"], low / 10))
    lines += [
        f"suggested lr {_lr(r['suggested_lr'])}: where the smoothed loss falls fastest",
        f"lowest smoothed loss {r['min_loss']:.4f} at lr {_lr(low)}; a tenth of it: "
        f"{_lr(low / 10)}",
        f"use it: lenet train --lr {_lr(r['suggested_lr'])} (with --scheduler onecycle, the "
        f"default, --lr is the peak rate: try {_lr(picks[0])} to {_lr(picks[1])})",
    ]
    return lines


def top_of_chart(r: dict[str, Any]) -> float:
    """Where the charts cut the loss off: a little above where it started, so that the
    divergence does not squash the part of the curve that matters."""
    start = max(r["smoothed"][: max(1, len(r["smoothed"]) // 10)])
    return max(start, min(r["smoothed"]) * 1.5) * 1.15


def render_lr_find(r: dict[str, Any], width: int | None = None) -> None:
    """The smoothed and raw loss against log10(lr), then the summary (stdout)."""
    c = out()
    width = min(80, width or c.width)
    xs = [round(math.log10(lr), 9) + 0.0 for lr in r["lrs"]]  # log10(1.0) may be -5e-17
    top = top_of_chart(r) if r["smoothed"] else 0.0
    series = [
        (name, xs, [min(v, top) for v in ys])
        for name, ys in (("loss (cut off at the top)", r["losses"]), ("smoothed", r["smoothed"]))
    ]
    title = f"loss against the learning rate ({r['data']}, {r['arch']}, {r['optimizer']})"
    for line in line_chart(series, title=title, x_label="log10(lr)", width=width, height=12):
        c.print(line, markup=False, highlight=False, soft_wrap=True)
    c.print()
    for line in summary_lines(r):
        c.print(line, markup=False, highlight=False, soft_wrap=True)


def lr_find_png(r: dict[str, Any], path: Path) -> Path:
    """The loss (faint) and its smoothed curve against the rate on a log axis, with the
    suggestion and the lowest smoothed loss marked."""
    plt = png.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax.plot(r["lrs"], r["losses"], color="#9ab", linewidth=1, label="loss of each batch")
    ax.plot(r["lrs"], r["smoothed"], color="#1f77b4", linewidth=2, label="smoothed loss")
    if r["suggested_lr"] is not None:
        i = r["lrs"].index(r["suggested_lr"])
        ax.axvline(r["suggested_lr"], color="#d62728", linestyle="--", linewidth=1.2)
        ax.plot([r["suggested_lr"]], [r["smoothed"][i]], "o", color="#d62728",
                label=f"suggested lr {_lr(r['suggested_lr'])} (steepest descent)")  # fmt: skip
        j = r["lrs"].index(r["min_loss_lr"])
        ax.plot([r["min_loss_lr"]], [r["smoothed"][j]], "s", color="#2ca02c",
                label=f"lowest smoothed loss at lr {_lr(r['min_loss_lr'])}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    if r["smoothed"]:  # the divergence would squash the useful part of the curve
        ax.set_ylim(min(r["losses"]) * 0.9, top_of_chart(r))
    ended = "the loss diverged" if r["stopped"] == "diverged" else "all steps ran"
    ax.set_title(
        f"lr-find: {r['data']}, {r['arch']}, {r['optimizer']}, batch {r['batch_size']}; "
        f"{r['steps']} steps, {ended}"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return png.save(fig, path)
