"""Rendering of `lenet data`: source lists, verify reports, digits, download progress."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from lenet_cli.ui.console import err, fmt_int, note, out, safe


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
            safe(where),
            fmt_int(counts["train"]) if "train" in counts else "",
            fmt_int(counts["test"]) if "test" in counts else "",
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
        f" ({safe(report['where'])}: {safe(str(report['directory']))})"
        if report.get("directory")
        else ""
    )
    c.print(f"{safe(report['name'])}{where}: {state}")
    if report["files"]:
        table = Table(show_header=True)
        for col in ("split", "kind", "file", "bytes", "MD5 vs published"):
            table.add_column(col, justify="right" if col == "bytes" else "left")
        for f in report["files"]:
            md5 = {True: "matches", False: "differs", None: "n/a (raw)"}[f.get("canonical_md5")]
            table.add_row(f["split"], f["kind"], safe(f["path"]), fmt_int(f["bytes"]), md5)
        c.print(table)
    for split, n in report.get("counts", {}).items():
        c.print(f"{split}: {fmt_int(n)} images and labels, 28x28, labels 0-9")
    for n in report.get("notes", []):
        note(n)
    for p in report.get("problems", []):
        err().print(f"[red]problem:[/] {safe(p)}", soft_wrap=True)


_SHADES = " .:-=+*#%@"


def render_digits(images: list[list[list[int]]], captions: list[str], title: str = "") -> None:
    """Draw grey images (0-255), several per row, two pixel rows per text line, captions beneath.

    With colour: upper-half blocks whose foreground is the top pixel and background the bottom
    one. Without colour (NO_COLOR, not a terminal): one shade character per pixel pair.
    """
    from rich.text import Text

    c = out()
    colour = c.color_system is not None
    height, width = len(images[0]), len(images[0][0])
    per_row = max(1, min(len(images), (c.width + 1) // (width + 2)))
    if title:
        c.print(safe(title))
    for start in range(0, len(images), per_row):
        group = list(range(start, min(start + per_row, len(images))))
        for y in range(0, height - 1, 2):
            line = Text()
            for k, i in enumerate(group):
                if k:
                    line.append("  ")
                top, bottom = images[i][y], images[i][y + 1]
                for x in range(width):
                    a, b = top[x], bottom[x]
                    if colour:
                        line.append("▀", style=f"rgb({a},{a},{a}) on rgb({b},{b},{b})")
                    else:
                        line.append(_SHADES[(a + b) * (len(_SHADES) - 1) // 510])
            c.print(line, no_wrap=True, overflow="crop")
        line = Text()
        for k, i in enumerate(group):
            if k:
                line.append("  ")
            line.append(captions[i].ljust(width)[:width])  # Text.append: no markup
        c.print(line, no_wrap=True, overflow="crop")


def download_note(e: dict[str, Any]) -> str | None:
    """The plain line for a download event (an attempt, or a mirror that failed), else None."""
    if e.get("event") == "download":
        return f"downloading {e['file']} from {e['url']}"
    if e.get("event") == "download_failed":
        return f"mirror failed: {e['url']}: {e['error']}"
    return None


class _DownloadProgress:
    """Download progress on stderr fed by on_progress(done, total) / on_event(dict): a Rich bar
    per file on a terminal; elsewhere (pipes, CI) one plain line per attempt, no bars."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._bars = err().is_terminal
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err(),
            transient=False,
            disable=not self._bars,
        )
        self._task = None

    def __enter__(self) -> _DownloadProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def event(self, e: dict[str, Any]) -> None:
        if e.get("event") == "download" and self._bars:
            self._task = self._progress.add_task(safe(e["file"]), total=None)
            return
        if e.get("event") == "download_failed" and self._task is not None:
            self._progress.remove_task(self._task)  # the next mirror gets a bar of its own
            self._task = None
        line = download_note(e)
        if line:
            self._progress.console.print(safe(line), soft_wrap=True)

    def update(self, done: int, total: int | None) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=done, total=total)


def download_progress() -> _DownloadProgress:
    return _DownloadProgress()
