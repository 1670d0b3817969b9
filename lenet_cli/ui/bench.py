"""Rendering of `lenet bench`."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from lenet_cli.ui.console import fmt_int, out, safe


def render_bench(result: dict[str, Any]) -> None:
    """The `lenet bench` table: one row per (threads, batch size)."""
    layout = {
        "auto": f"channels_last from batch {result.get('channels_last_min_batch')} (NCHW below)",
        True: "channels_last",
        False: "NCHW",
    }[result["channels_last"]]
    title = (
        f"{result['arch']} on {result['device']} ({result['device_name']}), "
        f"{result['precision']}, {layout}{', compiled' if result['compile'] else ''}"
        f"{', fused kernels' if result.get('fused') else ''}; "
        f"median of {result['repeats']} passes of {result['images']:,} images"
        + (f"; {result['busy']} busy process(es) beside it" if result.get("busy") else "")
    )
    table = Table(title=safe(title), title_justify="left")
    for col in (
        "threads",
        "batch",
        "train img/s",
        "epoch (60k)",
        "infer img/s",
        "infer us/batch",
        "load 1m",
    ):
        table.add_column(col, justify="right")
    for r in result["results"]:
        train = "train_images_per_s" in r
        infer = "infer_images_per_s" in r
        table.add_row(
            _threads(r),
            str(r["batch_size"]),
            fmt_int(round(r["train_images_per_s"])) if train else "-",
            f"{r['train_epoch_s']:.2f} s" if train else "-",
            fmt_int(round(r["infer_images_per_s"])) if infer else "-",
            f"{r['infer_us_per_batch']:.0f}" if infer else "-",
            f"{r['load'][0]:.1f}" if r.get("load") else "-",
        )
    out().print(table)


def _threads(row: dict[str, Any]) -> str:
    """A count, or auto with what it chose (each choice, in order: "auto 2>1")."""
    if row["threads"] != "auto":
        return str(row["threads"])
    chosen = row.get("threads_chosen") or []
    return "auto " + ">".join(str(c) for c in chosen) if chosen else "auto"
