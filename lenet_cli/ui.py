"""Rich rendering, and nothing else. No torch at import time.

stdout carries data (tables, JSON); stderr carries notes, progress and errors. Rich drops colour
and animation when the stream is not a terminal, and honours NO_COLOR.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

_out: Console | None = None
_err: Console | None = None


def out() -> Console:
    """Console on stdout (created on first use, so tests that swap sys.stdout see it)."""
    global _out
    if _out is None or _out.file is not sys.stdout:
        _out = Console(file=sys.stdout, highlight=False)
    return _out


def err() -> Console:
    global _err
    if _err is None or _err.file is not sys.stderr:
        _err = Console(file=sys.stderr, highlight=False)
    return _err


def print_json(doc: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A message for people, on stderr (the message is escaped: it may hold user paths)."""
    err().print(escape(message), soft_wrap=True)


def error_line(message: str) -> None:
    err().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def render_model_facts(facts: dict[str, Any]) -> None:
    c = out()
    c.print(escape(facts["module"]))
    c.print()
    has_stats = bool(facts["parameters"]) and "mean" in facts["parameters"][0]
    table = Table(title=f"parameters of '{facts['arch']}'", title_justify="left")
    for col in ("#", "name", "shape", "count", "trainable"):
        table.add_column(col, justify="right" if col in ("#", "count") else "left")
    if has_stats:
        for col in ("mean", "std", "min", "max"):
            table.add_column(col, justify="right")
    for r in facts["parameters"]:
        cells = [
            str(r["index"]),
            r["name"],
            str(r["shape"]),
            _fmt_int(r["count"]),
            "yes" if r["trainable"] else "no",
        ]
        if has_stats:
            cells += [f"{r[k]:+.4f}" for k in ("mean", "std", "min", "max")]
        table.add_row(*cells)
    table.add_section()
    table.add_row("", f"total ({facts['tensors']} tensors)", "", _fmt_int(facts["total"]), "")
    c.print(table)
    trace = Table(title="one 1x32x32 input, layer by layer", title_justify="left")
    for col in ("layer", "operation", "output shape", "MACs"):
        trace.add_column(col, justify="right" if col == "MACs" else "left")
    for r in facts["trace"]:
        trace.add_row(
            r["layer"], escape(r["op"]), str(r["shape"]), _fmt_int(r["macs"]) if r["macs"] else ""
        )
    trace.add_section()
    trace.add_row("total", "", "", _fmt_int(facts["macs_per_image"]))
    c.print(trace)
    c.print(
        f"parameter memory: {_fmt_int(facts['parameter_bytes'])} bytes "
        f"({facts['total']:,} float32 values)"
    )


def render_forward(result: dict[str, Any], tensor_repr: str, max_rows: int = 16) -> None:
    c = out()
    c.print(escape(tensor_repr))
    table = Table(title="softmax probabilities of classes 0-9", title_justify="left")
    table.add_column("row", justify="right")
    table.add_column("pred", justify="right")
    table.add_column("p(pred)", justify="right")
    table.add_column("    ".join("0123456789"), no_wrap=True)
    rows = list(zip(result["predicted"], result["probabilities"], strict=True))
    for i, (pred, probs) in enumerate(rows[:max_rows]):
        table.add_row(str(i), str(pred), f"{probs[pred]:.3f}", " ".join(f"{p:.2f}" for p in probs))
    c.print(table)
    if len(rows) > max_rows:
        note(f"{len(rows) - max_rows} more rows not shown; --json prints all of them")


def _vec(values: list[float]) -> str:
    return "[" + " ".join(f"{v:+.3f}" for v in values) + "]"


def render_step(s: dict[str, Any]) -> None:
    c = out()
    c.print(f"[bold]3. forward[/] one random 1x1x32x32 input (seed {s['seed']}); output:")
    c.print(f"   {_vec(s['output'][0])}")
    c.print("[bold]4. net.zero_grad(); out.backward(torch.randn(1, 10))[/]; conv1.bias.grad:")
    c.print(f"   {_vec(s['random_backward_conv1_bias_grad'])}")
    target = "torch.randn(10).view(1, -1)" if s["loss_name"] == "mse" else "a random class"
    c.print(
        f"[bold]5. loss[/] {s['loss_name']}(output {s['output_shape']}, target "
        f"{s['target_shape']}), target = {target}:"
    )
    c.print(f"   {s['loss_before']:.6f}")
    if "ln_10" in s:
        c.print(f"   (cross-entropy at initialisation is close to ln 10 = {s['ln_10']:.4f})")
    c.print("[bold]6. backprop[/]: conv1.bias.grad before loss.backward() (after zero_grad):")
    c.print(f"   {_vec(s['conv1_bias_grad_before'])}")
    c.print("   conv1.bias.grad after loss.backward():")
    c.print(f"   {_vec(s['conv1_bias_grad_after'])}")
    c.print(f"[bold]7. update[/] f.data.sub_(f.grad.data * {s['lr']}) on every parameter; loss:")
    c.print(f"   {s['loss_before']:.6f} -> {s['loss_after_manual']:.6f}")
    c.print(f"[bold]8. torch.optim.SGD(lr={s['lr']})[/] from the same weights; loss:")
    c.print(f"   {s['loss_before']:.6f} -> {s['loss_after_sgd']:.6f}")
    c.print(
        "   largest difference between the manual rule's weights and SGD's: "
        f"{s['manual_vs_sgd_max_abs_diff']:.3g}"
    )


# --- data (lenet data ...) -------------------------------------------------------------------


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def render_data_list(rows: list[dict[str, Any]]) -> None:
    table = Table(title="data sources", title_justify="left")
    for col in ("name", "found", "where", "train", "test", "size", "checksum"):
        table.add_column(col, justify="right" if col in ("train", "test", "size") else "left")
    for r in rows:
        counts = r.get("counts", {})
        where = r["where"] or ""
        if r.get("directory"):
            where = f"{where}: {r['directory']}"
        if not r["found"]:
            where = "not found"
        checksum = {"published": "published", "differs": "re-packed", "unknown": "raw"}.get(
            r.get("checksum") or "", ""
        )
        table.add_row(
            r["name"],
            "[green]yes[/]" if r["found"] else "[red]no[/]",
            escape(where),
            _fmt_int(counts["train"]) if "train" in counts else "",
            _fmt_int(counts["test"]) if "test" in counts else "",
            _mb(r["bytes"]) if r.get("bytes") else "",
            checksum,
        )
    out().print(table)
    note(
        "checksum: 'published' = the published .gz bytes; 're-packed' = other bytes, same "
        "format (`lenet data verify NAME` checks the content); get missing sets with "
        "`lenet data download NAME` or `lenet data import NAME DIR`"
    )
    for r in rows:
        for p in r.get("problems", []):
            note(f"{r['name']}: {p}")


def render_verify(report: dict[str, Any]) -> None:
    c = out()
    state = "[green]ok[/]" if report["ok"] else "[red]FAILED[/]"
    where = (
        f" ({escape(report['where'])}: {escape(str(report['directory']))})"
        if report.get("directory")
        else ""
    )
    c.print(f"{escape(report['name'])}{where}: {state}")
    if report["files"]:
        table = Table(show_header=True)
        for col in ("split", "kind", "file", "bytes", "MD5 vs published"):
            table.add_column(col, justify="right" if col == "bytes" else "left")
        for f in report["files"]:
            md5 = {True: "matches", False: "differs", None: "n/a (raw)"}[f.get("canonical_md5")]
            table.add_row(f["split"], f["kind"], escape(f["path"]), _fmt_int(f["bytes"]), md5)
        c.print(table)
    for split, n in report.get("counts", {}).items():
        c.print(f"{split}: {_fmt_int(n)} images and labels, 28x28, labels 0-9")
    for n in report.get("notes", []):
        note(n)
    for p in report.get("problems", []):
        err().print(f"[red]problem:[/] {escape(p)}", soft_wrap=True)


_SHADES = " .:-=+*#%@"


def render_digits(
    images: list[list[list[int]]], labels: list[int], indices: list[int], title: str = ""
) -> None:
    """Draw 28x28 grey images, several per row, two pixel rows per text line, labels beneath.

    With colour: upper-half blocks whose foreground is the top pixel and background the bottom
    one. Without colour (NO_COLOR, not a terminal): one shade character per pixel pair.
    """
    from rich.text import Text

    c = out()
    colour = c.color_system is not None
    per_row = max(1, min(len(images), (c.width + 1) // 30))
    if title:
        c.print(escape(title))
    for start in range(0, len(images), per_row):
        group = list(range(start, min(start + per_row, len(images))))
        for y in range(0, 28, 2):
            line = Text()
            for k, i in enumerate(group):
                if k:
                    line.append("  ")
                top, bottom = images[i][y], images[i][y + 1]
                for x in range(28):
                    a, b = top[x], bottom[x]
                    if colour:
                        line.append("▀", style=f"rgb({a},{a},{a}) on rgb({b},{b},{b})")
                    else:
                        line.append(_SHADES[(a + b) * (len(_SHADES) - 1) // 510])
            c.print(line, no_wrap=True, overflow="crop")
        captions = Text()
        for k, i in enumerate(group):
            if k:
                captions.append("  ")
            captions.append(f"label {labels[i]} (#{indices[i]})".ljust(28)[:28])
        c.print(captions, no_wrap=True, overflow="crop")


class _DownloadProgress:
    """A Rich progress bar on stderr fed by on_progress(done, total) / on_event(dict)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err(),
            transient=False,
        )
        self._task = None

    def __enter__(self) -> _DownloadProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def event(self, e: dict[str, Any]) -> None:
        if e.get("event") == "download":
            self._task = self._progress.add_task(escape(e["file"]), total=None)
        elif e.get("event") == "download_failed":
            self._progress.console.print(
                f"[yellow]mirror failed:[/] {escape(e['url'])}: {escape(e['error'])}",
                soft_wrap=True,
            )

    def update(self, done: int, total: int | None) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=done, total=total)


def download_progress() -> _DownloadProgress:
    return _DownloadProgress()


# --- training, evaluation and prediction (train_cmds) ---------------------------------------


def progress_mode(requested: str) -> str:
    """auto -> rich on a terminal (stderr), plain otherwise (CI, pipes, nohup, TERM=dumb)."""
    import os

    if requested != "auto":
        return requested
    dumb = os.environ.get("TERM", "") == "dumb" or bool(os.environ.get("CI"))
    return "rich" if sys.stderr.isatty() and not dumb else "plain"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _loss(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def epoch_line(row: dict[str, Any], epochs: int, best: bool) -> str:
    """One plain line per epoch (no control characters)."""
    parts = [
        f"epoch {row['epoch']}/{epochs}" + (" (partial)" if row.get("partial") else ""),
        f"train loss {_loss(row['train_loss'])} acc {_pct(row['train_acc'])}",
    ]
    if row.get("val_acc") is not None:
        parts.append(f"val loss {_loss(row['val_loss'])} acc {_pct(row['val_acc'])}")
    parts += [
        f"test loss {_loss(row['test_loss'])} acc {_pct(row['test_acc'])}",
        f"lr {row['lr']:.3g}",
        f"{row['images_per_s']:,.0f} img/s",
        f"{row['seconds']:.1f} s" + (" *" if best else ""),
    ]
    return "  ".join(parts)


class TrainProgress:
    """Renders the training engine's events on stderr: Rich bars, plain lines, or nothing."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.epochs = 0
        self._progress: Any = None
        self._task: Any = None

    def _plain(self, line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e.get("event")
        if kind == "fallback":
            note(e["notice"])
        elif kind == "download":
            note(f"downloading {e.get('file', '')} from {e.get('url', '')}")
        elif kind == "data" and self.mode != "none":
            val = f", {e['val']:,} validation" if e["val"] else ""
            note(
                f"data: {e['name']} ({e['source']}): {e['train']:,} training{val}, "
                f"{e['test']:,} test images"
            )
        elif kind == "start":
            self.epochs = e["epochs"]
            if self.mode != "none":
                at = f", resuming after step {e['step']}" if e["step"] else ""
                threads = f"{e['threads']} thread" + ("s" if e["threads"] != 1 else "")
                note(
                    f"training on {e['device']} ({threads}), "
                    f"{e['steps_per_epoch']} steps per epoch{at}; run dir {e['run_dir']}"
                )
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
            line = epoch_line(e["row"], self.epochs, e["best"])
            if self._progress is not None:
                if self._task is not None:
                    self._progress.remove_task(self._task)
                    self._task = None
                self._progress.console.print(escape(line), soft_wrap=True)
            elif self.mode == "plain":
                self._plain(line)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def render_train_summary(s: dict[str, Any]) -> None:
    c = out()
    final, best = s["final"], s.get("best")
    c.print(
        f"final test accuracy {_pct(final.get('test_acc'))} "
        f"(loss {_loss(final.get('test_loss'))}) after {s['epochs']} epochs, "
        f"{s['steps']:,} steps, {s['seconds']:.1f} s, {s['images_per_s']:,.0f} img/s",
        soft_wrap=True,
    )
    if best:
        on = (
            "validation"
            if best["selected_on"] == "val"
            else "test set, so optimistic: use --val-split for an honest pick"
        )
        c.print(
            f"best test accuracy {_pct(best['test_acc'])} at epoch {best['epoch']} "
            f"(best.pt, picked on the {on})",
            soft_wrap=True,
        )
    if s["stopped"] != "epochs":
        c.print(f"stopped early: {s['stopped'].replace('_', ' ')}")
    c.print(f"saved in {escape(s['run_dir'])}", soft_wrap=True)


def render_config(rows: list[tuple[str, str]]) -> None:
    """--print-config: TOML lines, each followed by where its value came from (stdout)."""
    width = max(len(line) for line, _ in rows)
    for line, source in rows:
        sys.stdout.write(f"{line:<{width}}  # {source}\n")


def render_evaluation(r: dict[str, Any]) -> None:
    c = out()
    c.print(
        f"{escape(r['checkpoint'])} on {r['data']} {r['split']} ({r['count']:,} images): "
        f"loss {_loss(r['loss'])} ({r['loss_name']}), accuracy {_pct(r['accuracy'])}"
    )
    table = Table(
        title="confusion matrix (rows: true class, columns: predicted)", title_justify="left"
    )
    table.add_column("true", justify="right")
    for k in range(10):
        table.add_column(str(k), justify="right")
    table.add_column("count", justify="right")
    table.add_column("accuracy", justify="right")
    for k, row in enumerate(r["confusion"]):
        cells = [
            f"[bold]{n}[/]" if j == k else (str(n) if n else "[dim]0[/]") for j, n in enumerate(row)
        ]
        pc = r["per_class"][k]
        table.add_row(str(k), *cells, f"{pc['count']:,}", _pct(pc["accuracy"]))
    c.print(table)


_SHADES = " .:-=+*#%@"


def render_prediction(results: list[dict[str, Any]], preview: bool) -> None:
    c = out()
    for r in results:
        c.print(
            f"{escape(r['file'])}: [bold]{r['predicted']}[/] "
            f"(probability {r['probabilities'][r['predicted']]:.3f})"
        )
        c.print("  " + "  ".join(f"{k}: {p:.3f}" for k, p in enumerate(r["probabilities"])))
        if preview:
            c.print("  the 32x32 input the network saw:")
            for line in r["input"]:
                c.print(
                    "  " + escape("".join(_SHADES[min(9, int(v * 10))] * 2 for v in line)),
                    highlight=False,
                )


def render_bench(result: dict[str, Any]) -> None:
    """The `lenet bench` table: one row per (threads, batch size)."""
    layout = "channels_last" if result["channels_last"] else "NCHW"
    title = (
        f"{result['arch']} on {result['device']} ({result['device_name']}), "
        f"{result['precision']}, {layout}{', compiled' if result['compile'] else ''}; "
        f"median of {result['repeats']} passes of {result['images']:,} images"
    )
    table = Table(title=escape(title), title_justify="left")
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
            str(r["threads"]),
            str(r["batch_size"]),
            _fmt_int(round(r["train_images_per_s"])) if train else "-",
            f"{r['train_epoch_s']:.2f} s" if train else "-",
            _fmt_int(round(r["infer_images_per_s"])) if infer else "-",
            f"{r['infer_us_per_batch']:.0f}" if infer else "-",
            f"{r['load'][0]:.1f}" if r.get("load") else "-",
        )
    out().print(table)
