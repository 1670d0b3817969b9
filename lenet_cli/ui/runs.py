"""Rendering of `lenet runs` (the table of runs) and `lenet runs diff` (two runs side by side)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from lenet_cli.ui.console import note, out, safe


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _secs(v: Any) -> str:
    return "-" if v is None else f"{v:,.1f} s"


def _value(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if key == "images_per_s":
        return f"{v:,.0f}"
    if key.endswith("_acc"):
        return _pct(v)
    if key.endswith("_s"):
        return _secs(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return safe(str(v))


def render_runs(runs: list[dict[str, Any]], root: str) -> None:
    c = out()
    if not runs:
        c.print(f"no runs in {safe(root)}", soft_wrap=True)
        return
    # run names are long (mnist-sample-lenet5-20261201-150200): off a terminal the table takes
    # the width it needs rather than cutting them; on one, it fits the window
    table = Table(title=f"runs in {safe(root)}", title_justify="left", box=box.SIMPLE_HEAD)
    right = ("epochs", "best", "final", "wall", "img/s")
    for col in ("name", "data", "arch", "epochs", "best", "final", "wall", "img/s", "status"):
        table.add_column(col, justify="right" if col in right else "left")
    for r in runs:
        planned = f"/{r['epochs_planned']}" if r["epochs_planned"] else ""
        table.add_row(
            safe(r["name"]),
            safe(r["data"] or "-"),
            safe(r["arch"] or "-"),
            f"{r['epochs']}{planned}",
            _pct(r["best_acc"]),
            _pct(r["final_acc"]),
            _secs(r["wall_s"]),
            _value("images_per_s", r["images_per_s"]),
            r["status"],
        )
    if not c.is_terminal:
        c = Console(file=c.file, highlight=False, width=1000, no_color=True)
    c.print(table)
    for r in runs:  # why a run could not be read: on stderr, one line each
        if r["status"] == "unreadable":
            note(f"{r['name']} is unreadable: {r['reason']}")


def render_runs_diff(d: dict[str, Any]) -> None:
    c = out()
    sections = [("config keys that differ", d["config"])]
    if d.get("display"):  # what the runs printed, not what they computed
        sections.append(("display settings that differ", d["display"]))
    for title, rows in (*sections, ("results", d["results"])):
        table = Table(title=title, title_justify="left")
        table.add_column("key")
        table.add_column(safe(d["a"]), justify="right")
        table.add_column(safe(d["b"]), justify="right")
        for row in rows:
            table.add_row(row["key"], _value(row["key"], row["a"]), _value(row["key"], row["b"]))
        if rows:
            c.print(table)
        else:
            c.print(f"{title}: none")
