"""The epoch table of `lenet train`: a two-line header, then one plain line per epoch (and a
note under an epoch that stopped part-way), as train.py's TrainProgress prints it."""

from __future__ import annotations

from typing import Any

from lenet_cli.ui.console import fmt_loss, fmt_pct

# The epoch table: a two-line header, then one line per epoch, each cell right-aligned to its
# width; with a validation split a line is 78 columns (a wider figure pushes its own line only).
_LOSS, _ACC = 6, 7  # "0.5150", "100.00%"
_GROUP = 2 + _LOSS + 1 + _ACC  # a split's two cells and the space before them


def _epoch_width(epochs: int) -> int:
    return max(len("epoch"), 2 * len(str(epochs)) + 1)


def _splits(val: bool) -> tuple[str, ...]:
    return ("train", "val", "test") if val else ("train", "test")


def epoch_header(epochs: int, val: bool, smoothing: float = 0.0) -> list[str]:
    """The lines above the epoch table: the splits, the columns, what ``*`` means and, with
    label smoothing, that the train loss includes it (so it stays well above 0)."""
    w, splits = _epoch_width(epochs), _splits(val)
    groups = "".join(f"  {' ' + s + ' ':-^{_GROUP - 2}}" for s in splits)
    names = "".join(f"  {'loss':>{_LOSS}} {'acc':>{_ACC}}" for _ in splits)
    lines = [
        f"{'':>{w}}{groups}   * = best so far",
        f"{'epoch':>{w}}{names} {'lr':>8} {'img/s':>7} {'s':>5}",
    ]
    if smoothing:
        lines.insert(0, f"the train loss includes label smoothing {smoothing:g} (it stays above 0)")
    return lines


def epoch_line(row: dict[str, Any], epochs: int, best: bool) -> str:
    """One plain line per epoch under ``epoch_header`` (no control characters)."""
    splits = _splits(row.get("val_acc") is not None)
    cells = "".join(
        f"  {fmt_loss(row[f'{s}_loss']):>{_LOSS}} {fmt_pct(row[f'{s}_acc']):>{_ACC}}"
        for s in splits
    )
    return (
        f"{row['epoch']}/{epochs}".rjust(_epoch_width(epochs))
        + cells
        + f" {row['lr']:>8.3g} {row['images_per_s']:>7,.0f} {row['seconds']:>5.1f}"
        + (" *" if best else "")
    )


def partial_note(row: dict[str, Any], steps_per_epoch: int | None) -> str:
    """The line under an epoch that stopped part-way (--max-steps)."""
    done = row["step"] - (row["epoch"] - 1) * steps_per_epoch if steps_per_epoch else 0
    if 0 < done < (steps_per_epoch or 0):
        return f"(epoch {row['epoch']} is partial: {done} of its {steps_per_epoch} steps)"
    return f"(epoch {row['epoch']} is partial)"
