"""Rendering of `lenet sweep`: the live table of trials (stderr), the study's table and summary."""

from __future__ import annotations

import sys
from typing import Any

from rich import box
from rich.table import Table

from lenet_cli.ui.console import err, note, out, safe
from lenet_cli.ui.data import download_note

_DONE = ("complete", "pruned", "fail")


def _value(v: float | None, metric: str) -> str:
    """A trial's metric for a person: an accuracy as a percentage, a loss as a number."""
    if v is None:
        return "-"
    return f"{100 * v:.2f}%" if metric.endswith("_acc") else f"{v:.4f}"


def _params(params: dict[str, Any]) -> str:
    return " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _cell(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def trials_table(rows: list[dict[str, Any]], metric: str, title: str | None = None) -> Table:
    """One row per trial, one column per searched option."""
    names = list(dict.fromkeys(k for r in rows for k in r["params"]))
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("trial", justify="right")
    table.add_column("state")
    table.add_column(metric, justify="right")
    table.add_column("epochs", justify="right")
    for name in names:
        table.add_column(safe(name), justify="right")
    table.add_column("run dir")
    table.add_column("s", justify="right")
    for r in rows:
        state = r["state"] + (f" ({r['note']})" if r.get("note") else "")
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
        params = [safe(_cell(r["params"][n])) if n in r["params"] else "-" for n in names]
        table.add_row(
            str(r["number"]),
            safe(state),
            _value(r["value"], metric),
            str(r["epochs"]),
            *params,
            safe(r["dir"] or "-"),
            seconds,
        )
    return table


class SweepProgress:
    """The sweep's trials on stderr: a live table on a terminal, a line per finished trial else."""

    def __init__(self, mode: str, metric: str) -> None:
        self.mode, self.metric = mode, metric
        self._shown: set[int] = set()
        self._live: Any = None

    def __call__(self, e: dict[str, Any]) -> None:
        if e.get("event") == "note":  # a worker's notice (device chosen, data fallback...)
            (self._live.console if self._live is not None else err()).print(
                safe(e["line"]), soft_wrap=True
            )
        if e.get("event") != "trials" or self.mode == "none":
            return
        rows = e["rows"]
        if self.mode == "rich":
            if self._live is None:
                from rich.live import Live

                self._live = Live(console=err(), auto_refresh=False)
                self._live.start()
            self._live.update(trials_table(rows, self.metric, "trials"), refresh=True)
            return
        for r in rows:
            if r["state"] in _DONE and r["number"] not in self._shown:
                self._shown.add(r["number"])
                note = f" ({r['note']})" if r.get("note") else ""
                sys.stderr.write(
                    f"trial {r['number']} {r['state']}{note}  {self.metric} "
                    f"{_value(r['value'], self.metric)}"
                    f"  epochs {r['epochs']}  {_params(r['params'])}  {r['dir'] or '-'}\n"
                )
                sys.stderr.flush()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def worker_notice(e: dict[str, Any]) -> None:
    """A sweep worker's notices (its stderr goes to a log that `lenet sweep` shows)."""
    kind = e.get("event")
    if kind == "fallback":
        note(e["notice"])
    elif kind in ("download", "download_failed"):
        note(download_note(e))


def render_sweep(doc: dict[str, Any], table: bool) -> None:
    """The study on stdout: its table (with --show) and the best trial."""
    c = out()
    if table:
        c.print(trials_table(doc["trials"], doc["metric"], f"study {safe(doc['study'])}"))
    counts: dict[str, int] = {}
    for r in doc["trials"]:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    c.print(
        f"{len(doc['trials'])} trials: "
        + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())),
        soft_wrap=True,
    )
    best = doc.get("best")
    if best is None:
        c.print("no trial has completed yet")
        return
    c.print(
        f"best trial {best['number']}: {doc['metric']} {_value(best['value'], doc['metric'])} "
        f"({safe(_params(best['params']))}), run {safe(best['dir'] or '-')}",
        soft_wrap=True,
    )
    if doc.get("best_toml"):
        c.print(f"best config: {safe(doc['best_toml'])} (lenet train --config it)", soft_wrap=True)
