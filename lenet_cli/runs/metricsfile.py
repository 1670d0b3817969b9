"""metrics.jsonl and metrics.csv as a run writes them: the columns of an epoch row, the CSV
text, and the rows a resume keeps (up to its checkpoint's step)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from lenet_cli.files import json_safe

COLUMNS: tuple[str, ...] = (
    "epoch",
    "step",
    "partial",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "lr",
    "images_per_s",
    "seconds",
    "time",
)


def epoch_row(row: dict[str, Any]) -> dict[str, Any]:
    """An epoch's row as written: the columns in order, JSON-safe."""
    return json_safe({k: row.get(k) for k in COLUMNS})


def csv_text(rows: list[dict[str, Any]], header: bool) -> str:
    """Epoch rows as metrics.csv lines (an empty cell for None), after the header if asked."""
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=COLUMNS, extrasaction="ignore")
    if header:
        writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in COLUMNS})
    return table.getvalue()


def rows_on_resume(
    rows: list[dict[str, Any]],
    bad: list[str],
    step: int,
    last_row: dict[str, Any] | None,
    path: Path,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of metrics.jsonl (``path``) a resume from ``step`` keeps, and a note for each
    change: unreadable lines and rows beyond the checkpoint dropped, the checkpoint's own epoch
    row (``last_row``) restored if it was lost."""
    notes = []
    kept = [r for r in rows if r["step"] <= step]
    beyond = len(rows) - len(kept)
    if bad or beyond:
        parts = [f"{len(bad)} unreadable line(s)"] * bool(bad)
        parts += [f"{beyond} row(s) beyond the checkpoint's step {step}"] * bool(beyond)
        notes.append(f"dropped {' and '.join(parts)} of {path}")
    epochs = [r for r in kept if r.get("kind", "epoch") == "epoch"]
    if last_row is not None and not any(r["step"] == last_row["step"] for r in epochs):
        kept.append(epoch_row(last_row))
        notes.append(f"restored the metrics row of epoch {last_row['epoch']}")
    return kept, notes
