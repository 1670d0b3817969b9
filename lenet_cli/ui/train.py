"""Rendering of train, evaluate and predict: progress, summaries, tables (the epoch table
itself is epochs.py's)."""

from __future__ import annotations

import sys
from typing import Any

from rich import box
from rich.table import Table

from lenet_cli.config.toml import GIVEN_ARCH_PREFIX
from lenet_cli.ui.console import err, fmt_loss, fmt_pct, note, out, safe
from lenet_cli.ui.data import download_note, render_digits
from lenet_cli.ui.epochs import epoch_header, epoch_line, partial_note


def progress_mode(requested: str) -> str:
    """auto -> rich on a terminal (stderr), plain otherwise (CI, pipes, nohup, TERM=dumb)."""
    import os

    if requested != "auto":
        return requested
    dumb = os.environ.get("TERM", "") == "dumb" or bool(os.environ.get("CI"))
    return "rich" if sys.stderr.isatty() and not dumb else "plain"


class TrainProgress:
    """Renders the training engine's events on stderr: Rich bars, plain lines, or nothing."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.epochs = 0
        self._progress: Any = None
        self.threads: int | None = None  # what --threads auto last chose
        self._task: Any = None
        self.val = False  # a validation split: the epoch table has its columns
        self.steps_per_epoch: int | None = None
        self._header: list[str] = []  # printed above the first epoch's line

    def _plain(self, line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e.get("event")
        if kind in ("fallback", "notice"):
            note(e["notice"])
        elif kind in ("download", "download_failed"):
            note(download_note(e))
        elif kind == "data" and self.mode != "none":
            self.val = bool(e["val"])
            val = f", {e['val']:,} validation" if e["val"] else ""
            note(
                f"data: {e['name']} ({e['source']}): {e['train']:,} training{val}, "
                f"{e['test']:,} test images"
            )
        elif kind == "start":
            self._start(e)
        elif kind == "threads":
            self._threads(e)
        elif kind == "epoch_start" and self._progress is not None:
            self._task = self._progress.add_task(
                "",
                total=e["batches"],
                completed=e["done"],
                epoch=e["epoch"],
                epochs=self.epochs,
                loss="-",
                speed="",
            )
        elif kind == "progress" and self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                completed=e["batch"],
                loss=f"{e['loss']:.4f}",
                speed=f"{e['images_per_s']:,.0f} img/s",
            )
        elif kind == "epoch_end":
            self._epoch_end(e)

    def _threads(self, e: dict[str, Any]) -> None:
        """--threads auto: say what it chose, the first time and whenever it changes."""
        if self.mode == "none" or e["threads"] == self.threads:
            return
        self.threads = e["threads"]
        timings = ", ".join(f"{n}: {us:.1f}" for n, us in sorted(e["us_per_image"].items()))
        why = {"start": "", "recheck": " (re-checked)", "slowdown": " (steps slowed down)"}
        note(
            f"threads auto: {e['threads']}{why.get(e['reason'], '')}; "
            f"us per training image at each count: {timings}"
        )

    def _start(self, e: dict[str, Any]) -> None:
        self.epochs, self.steps_per_epoch = e["epochs"], e.get("steps_per_epoch")
        if self.mode != "none":
            at = f", resuming after step {e['step']}" if e["step"] else ""
            threads = f"{e['threads']} thread" + ("s" if e["threads"] != 1 else "")
            threads += ", fused kernels" if e.get("fused") else ""
            threads += {"update": ", one C call per step", "gradients": ", gradients in one C "
                        "call per step"}.get(e.get("fused_step") or "", "")  # fmt: skip
            own = str(e.get("arch") or "")
            if own.startswith(GIVEN_ARCH_PREFIX):  # lenet_cli.train(model=...): not the C step
                threads += f", {own.removeprefix(GIVEN_ARCH_PREFIX)} given in Python: PyTorch's ops"
            if e.get("augment"):
                threads += ", batches augmented"
            if e.get("dropout"):
                threads += f", dropout {e['dropout']:g}"
            if e.get("fused_step_why_not"):  # the kernels run, the fused step does not
                threads += f", PyTorch's training step: {e['fused_step_why_not']}"
            note(
                f"training on {e['device']} ({threads}), "
                f"{e['steps_per_epoch']} steps per epoch{at}; run dir {e['run_dir']}"
            )
            # above the first epoch's line, after what epoch 1 says (--threads auto's choice)
            self._header = epoch_header(self.epochs, self.val, e.get("label_smoothing") or 0.0)
        if self.mode == "rich":
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[speed]}"),
                TimeElapsedColumn(),
                console=err(),
            )
            self._progress.start()

    def _epoch_end(self, e: dict[str, Any]) -> None:
        lines = [*self._header, epoch_line(e["row"], self.epochs, e["best"])]
        self._header = []
        if e["row"].get("partial"):
            lines.append(partial_note(e["row"], self.steps_per_epoch))
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
                self._task = None
            for line in lines:
                self._progress.console.print(safe(line), soft_wrap=True)
        elif self.mode == "plain":
            for line in lines:
                self._plain(line)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def render_train_summary(s: dict[str, Any]) -> None:
    c = out()
    final, best = s["final"], s.get("best")
    c.print(
        f"final test accuracy {fmt_pct(final.get('test_acc'))} "
        f"(loss {fmt_loss(final.get('test_loss'))}) after {s['epochs']} epochs, "
        f"{s['steps']:,} steps, {s['seconds']:.1f} s, {s['images_per_s']:,.0f} img/s",
        soft_wrap=True,
    )
    if best:
        metric = best.get("metric") or f"{best['selected_on']}_acc"
        on = (
            "validation set"
            if best["selected_on"] == "val"
            else "test set, so optimistic: use --val-split for an honest pick"
        )
        c.print(
            f"best test accuracy {fmt_pct(best['test_acc'])} at epoch {best['epoch']} "
            f"(best.pt, picked by {metric} {_metric(metric, best['value'])} on the {on})",
            soft_wrap=True,
        )
    if s.get("restored_best") is not None:
        c.print(f"final model: best.pt's weights of epoch {s['restored_best']} (--restore-best)")
    why = stop_text(s)
    if why:
        c.print(why, soft_wrap=True)
    c.print(f"saved in {safe(s['run_dir'])}", soft_wrap=True)


def _metric(name: str, value: float) -> str:
    return fmt_pct(value) if name.endswith("_acc") else fmt_loss(value)


def stop_text(s: dict[str, Any]) -> str:
    """Why a run ended, when it did not simply train all its epochs ("" then)."""
    reason, monitor = s["stopped"], s.get("monitor") or {}
    if reason == "max_steps":
        return f"stopped at step {s['steps']:,} (--max-steps)"
    if reason == "early_stop":
        best, delta = s.get("best") or {}, monitor.get("min_delta") or 0
        by = f" by more than {delta:g}" if delta else ""
        return (
            f"stopped early after epoch {s['epochs']}: {monitor.get('metric')} did not improve"
            f"{by} for {monitor.get('patience')} epochs (--early-stop); the best was epoch "
            f"{best.get('epoch')}"
        )
    return "" if reason == "epochs" else f"stopped: {reason.replace('_', ' ')}"


def render_config(rows: list[tuple[str, str]]) -> None:
    """--print-config: TOML lines, each followed by where its value came from (stdout)."""
    width = max(len(line) for line, _ in rows)
    for line, source in rows:
        sys.stdout.write(f"{line:<{width}}  # {source}\n")


def render_evaluation(r: dict[str, Any]) -> None:
    c = out()
    c.print(
        f"{safe(r['checkpoint'])} on {r['data']} {r['split']} ({r['count']:,} images): "
        f"loss {fmt_loss(r['loss'])} ({r['loss_name']}), accuracy {fmt_pct(r['accuracy'])}",
        soft_wrap=True,
    )
    table = Table(
        title="confusion matrix (rows: true class, columns: predicted)",
        title_justify="left",
        box=box.SIMPLE_HEAD,  # 13 columns of up to 4 digits fit 80 characters without rules
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    table.add_column("true", justify="right")
    for k in range(10):
        table.add_column(str(k), justify="right")
    table.add_column("n", justify="right")
    table.add_column("acc %", justify="right")
    for k, row in enumerate(r["confusion"]):
        cells = [
            f"[bold]{n}[/]" if j == k else (str(n) if n else "[dim]0[/]") for j, n in enumerate(row)
        ]
        pc = r["per_class"][k]
        acc = "-" if pc["accuracy"] is None else f"{100 * pc['accuracy']:.1f}"
        table.add_row(str(k), *cells, str(pc["count"]), acc)
    c.print(table)


def render_prediction(results: list[dict[str, Any]], preview: bool) -> None:
    c = out()
    for r in results:
        c.print(  # one line whatever the width: a long path is not broken at its spaces
            f"{safe(r['file'])}: [bold]{r['predicted']}[/] "
            f"(probability {r['probabilities'][r['predicted']]:.3f})",
            soft_wrap=True,
        )
        c.print("  digit " + " ".join(f"{k:>5}" for k in range(10)))
        c.print("  prob. " + " ".join(f"{p:.3f}" for p in r["probabilities"]))
        if preview:
            picture = [[round(v * 255) for v in row] for row in r["input"]]
            render_digits([picture], ["the 32x32 input the network saw"])
