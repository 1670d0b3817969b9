"""Console handles and the plain messages every command uses (stdout data, stderr people)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

from lenet_cli.files import json_safe

_out: Console | None = None
_err: Console | None = None


def out() -> Console:
    """Console on stdout (created on first use, so tests that swap sys.stdout see it)."""
    global _out
    if _out is None or _out.file is not sys.stdout:
        _out = Console(file=sys.stdout, highlight=False)
    return _out


def err() -> Console:
    """Console on stderr. While a live display (a progress bar) runs, Rich puts a proxy in
    sys.stderr; the console that drew the display is kept, so that a message is printed above
    the bar rather than glued to its end by a second console writing through the proxy."""
    global _err
    stream = getattr(sys.stderr, "rich_proxied_file", sys.stderr)  # rich.file_proxy.FileProxy
    if _err is None or _err.file is not stream:
        _err = Console(file=stream, highlight=False)
    return _err


def print_json(doc: Any) -> None:
    """Exactly one JSON document on stdout (strict JSON: no NaN or Infinity)."""
    sys.stdout.write(json.dumps(json_safe(doc), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def safe(text: str) -> str:
    """User-supplied text (a file name, a path) made printable: control characters shown as
    escapes (an ESC would drive the terminal), Rich markup escaped (``[red]`` stays literal)."""
    shown = "".join(ch if ch.isprintable() or ch in "\n\t" else repr(ch)[1:-1] for ch in text)
    return escape(shown)


def note(message: str) -> None:
    """A message for people, on stderr (it may hold user paths)."""
    err().print(safe(message), soft_wrap=True)


def error_line(message: str) -> None:
    err().print(f"[bold red]error:[/] {safe(message)}", soft_wrap=True)


def fmt_int(n: int) -> str:
    return f"{n:,}"


def fmt_pct(v: float | None) -> str:
    """A fraction as a percentage with two decimals; "-" for none."""
    return "-" if v is None else f"{100 * v:.2f}%"


def fmt_loss(v: float | None) -> str:
    """A loss with four decimals; "-" for none."""
    return "-" if v is None else f"{v:.4f}"
