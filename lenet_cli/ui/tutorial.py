"""`lenet tutorial`: one step's text, code and output."""

from __future__ import annotations

import textwrap
from typing import Any

from lenet_cli.ui.console import out


def _shown(value: Any) -> Any:
    """Lists of numbers as the tutorial's tensors print them, short: [+0.055 -0.012 ...]."""
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return "[" + " ".join(f"{v:+.3f}" for v in value) + "]"
    return value


def render_tutorial_step(step: dict[str, Any], total: int) -> None:
    c = out()
    c.print()
    c.print(f"[bold]Step {step['number']} of {total}: {step['title']}[/]")
    for line in textwrap.wrap(" ".join(step["text"].split()), width=78):
        c.print(line, markup=False, highlight=False)
    c.print()
    for line in step["code"].splitlines():
        c.print(f"    {line}".rstrip(), markup=False, highlight=False, style="cyan", soft_wrap=True)
    c.print()
    values = {k: _shown(v) for k, v in step["values"].items()}
    for line in step["output"].format(**values).splitlines():
        shown = f"  {line}" if len(line) <= 78 else line  # torch's own 80-column lines as they are
        c.print(shown.rstrip(), markup=False, highlight=False, soft_wrap=True)
