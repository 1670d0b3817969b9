"""Rendering of `lenet export` (what was written, and the --verify comparison)."""

from __future__ import annotations

from typing import Any

from lenet_cli.ui.console import out, safe


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def render_export(r: dict[str, Any]) -> None:
    c = out()
    c.print(
        f"wrote {safe(r['out'])} ({r['format']}, {r['arch']}, {_size(r['bytes'])}) "
        f"from {safe(r['checkpoint'])}",
        soft_wrap=True,
    )
    v = r.get("verify")
    if v:
        c.print(
            f"verified on {v['data']} {v['split']} ({v['count']:,} images): largest score "
            f"difference {v['max_abs_diff']:.2g} (tolerance {v['tolerance']:g}), "
            f"accuracy {v['accuracy_export']:.2%} exported vs {v['accuracy_checkpoint']:.2%} "
            f"checkpoint, {v['same_predictions']:,} identical predictions",
            soft_wrap=True,
        )
