"""`lenet sweep` for a person: accuracies as percentages (the JSON keeps fractions)."""

from __future__ import annotations

import io

from rich.console import Console

from lenet_cli.ui.sweep import SweepProgress, render_sweep, trials_table

ROWS = [{"number": 0, "state": "complete", "value": 0.9852, "epochs": 2, "params": {"lr": 0.01},
         "dir": "trial-000", "seconds": 1.5}]  # fmt: skip


def _text(renderable) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=120).print(renderable)
    return buffer.getvalue()


def test_accuracy_metrics_are_shown_as_percentages(capsys):
    assert "98.52%" in _text(trials_table(ROWS, "test_acc")) and "0.9852" not in _text(
        trials_table(ROWS, "test_acc")
    )
    assert "0.9852" in _text(trials_table(ROWS, "val_loss"))  # a loss stays a number
    doc = {"study": "s", "metric": "val_acc", "trials": ROWS, "best": {**ROWS[0]}}
    render_sweep(doc, table=False)
    assert "best trial 0: val_acc 98.52%" in capsys.readouterr().out
    progress = SweepProgress("plain", "test_acc")
    progress({"event": "trials", "rows": ROWS})
    assert "test_acc 98.52%" in capsys.readouterr().err
