"""What `lenet train` shows a person: epoch lines that fit 80 columns (validation included), a
legend for the best-epoch mark, a word about label smoothing, the partial last epoch, and notes
that never land on the progress bar."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

from lenet_cli.ui.train import TrainProgress

START = {"event": "start", "epochs": 15, "step": 0, "threads": 2, "device": "cpu",
         "steps_per_epoch": 79, "run_dir": "runs/main", "start_epoch": 0}  # fmt: skip


def _row(epoch: int, val: bool, partial: bool = False, **over) -> dict:
    row = {"epoch": epoch, "step": epoch * 79, "partial": partial, "train_loss": 0.5150,
           "train_acc": 1.0, "val_loss": 0.1586 if val else None,
           "val_acc": 0.9852 if val else None, "test_loss": 12.1586, "test_acc": 0.9852,
           "lr": 1.08e-05, "images_per_s": 133_878.4, "seconds": 123.4}  # fmt: skip
    return {**row, **over}


def _render(capsys, events: list[dict]) -> list[str]:
    progress = TrainProgress("plain")
    for e in events:
        progress(e)
    progress.close()
    return capsys.readouterr().err.splitlines()


def _data(val: int) -> dict:
    return {"event": "data", "name": "mnist-sample", "source": "bundled sample", "train": 4500,
            "val": val, "test": 10000}  # fmt: skip


@pytest.mark.parametrize("val", [False, True])
def test_epoch_lines_fit_80_columns(capsys, val):
    """Wide figures everywhere (100% accuracy, a test loss above 10, an lr of 1.08e-05, 133,878
    img/s, 123.4 s, the best mark, the last epoch partial): still within 80 columns."""
    end = [{"event": "epoch_end", "row": _row(e, val, partial=e == 15), "best": True}
           for e in (1, 15)]  # fmt: skip
    lines = _render(capsys, [_data(500 if val else 0), START, *end])
    table = [ln for ln in lines if not ln.startswith(("data:", "training on"))]
    assert len(table) >= 4, lines  # a header, two epochs, the partial note
    for line in table:
        assert len(line) <= 80, f"{len(line)}: {line!r}"
    assert sum("%" in ln for ln in table) == 2
    if val:
        assert "val" in table[0] and "98.52%" in table[-2] or "98.52%" in table[-1]


def test_best_mark_is_explained_once(capsys):
    end = [{"event": "epoch_end", "row": _row(e, False), "best": e == 1} for e in (1, 2)]
    lines = _render(capsys, [_data(0), START, *end])
    legends = [ln for ln in lines if "* = best so far" in ln]
    assert len(legends) == 1
    epochs = [ln for ln in lines if "%" in ln]
    assert epochs[0].endswith(" *") and not epochs[1].endswith("*")


def test_label_smoothing_is_said(capsys):
    end = {"event": "epoch_end", "row": _row(1, False), "best": True}
    said = _render(capsys, [_data(0), {**START, "label_smoothing": 0.1}, end])
    assert any("label smoothing 0.1" in ln for ln in said), said
    plain = _render(capsys, [_data(0), {**START, "label_smoothing": 0.0}, end])
    assert not any("smoothing" in ln for ln in plain), plain


def test_a_partial_epoch_says_how_far_it_got(capsys):
    end = {"event": "epoch_end", "row": _row(3, False, partial=True, step=2 * 79 + 20),
           "best": False}  # fmt: skip
    lines = _render(capsys, [_data(0), START, end])
    assert any("epoch 3 is partial: 20 of its 79 steps" in ln for ln in lines), lines


def test_the_threads_note_lands_on_its_own_line(tmp_path):
    """In a terminal (a pty) the progress bar is live when --threads auto reports its choice;
    the note is printed above the bar, on a line of its own, not glued to the bar's end."""
    pty = pytest.importorskip("pty")
    script = (
        "import time\n"
        "from lenet_cli.ui.train import TrainProgress\n"
        f"r = TrainProgress('rich')\nr({START!r})\n"
        "r({'event': 'epoch_start', 'batches': 79, 'done': 0, 'epoch': 1})\n"
        "time.sleep(0.3)\n"
        "r({'event': 'threads', 'threads': 1, 'reason': 'start', 'us_per_image': {1: 3.0}})\n"
        "time.sleep(0.3)\n"
        "r.close()\n"
    )
    main, child = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm", "COLUMNS": "100"}
    env.pop("CI", None)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=child, stdout=child,
                            stderr=child, env=env, close_fds=True)  # fmt: skip
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=60) == 0
    raw = b"".join(chunks).decode(errors="replace")
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)  # colours and cursor moves out
    at = shown.index("threads auto: 1")
    assert shown[at - 1] in "\r\n", repr(shown[max(0, at - 60) : at + 20])


@pytest.mark.parametrize(
    ("selected_on", "said"),
    [
        ("val", "picked by val_loss 0.0622 on the validation set)"),
        ("test", "picked by test_acc 98.52% on the test set, so optimistic"),
    ],
)
def test_summary_says_where_best_pt_was_picked(capsys, selected_on, said):
    from lenet_cli.ui.train import render_train_summary

    metric, value = ("val_loss", 0.0622) if selected_on == "val" else ("test_acc", 0.9852)
    summary = {"final": {"test_acc": 0.9762, "test_loss": 0.07}, "epochs": 7, "steps": 553,
               "seconds": 5.0, "images_per_s": 7000.0, "stopped": "epochs", "run_dir": "runs/a",
               "best": {"epoch": 7, "test_acc": 0.9762, "selected_on": selected_on,
                        "metric": metric, "value": value}}  # fmt: skip
    render_train_summary(summary)
    assert said in capsys.readouterr().out
