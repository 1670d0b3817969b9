"""Picture commands: plot, activations, filters, autograd (and the PNG options they share).

Thin wrappers: resolve paths, call an engine (imported inside the body: no torch at `--help`),
render to the terminal and, with --out, to a PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lenet_cli import ui
from lenet_cli.cli.app import JsonOpt, app
from lenet_cli.errors import OutputExistsError, UsageError

OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Also draw the picture into this PNG file (or into a directory)."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing --out file.")]


def png_target(out: Path | None, default_name: str, force: bool) -> Path | None:
    """The PNG file that --out names (a directory gets ``default_name``), checked before work."""
    if out is None:
        return None
    path = out / default_name if out.is_dir() else out
    if path.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: only PNG is written", hint="name the file *.png")
    if not path.parent.is_dir():
        raise UsageError(f"--out {out}: directory {path.parent} does not exist", hint="create it")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists", hint="use --force to overwrite it")
    return path


@app.command("plot")
def plot_cmd(
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(help="Run directories to draw, overlaid [default: the newest in runs/]."),
    ] = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Loss, accuracy and learning rate per epoch of one or more runs (train / val / test)."""
    from lenet_cli.runs import curves, newest_run

    if not run_dirs:
        run_dirs = [newest_run(need="metrics")]
        ui.note(f"plotting the newest run, {run_dirs[0]} (name others as arguments)")
    target = png_target(out, "plot.png", force)
    data = curves(run_dirs)
    if target is not None:
        ui.plot_png(data, target)
        ui.note(f"wrote {target}")
    if json_out:
        ui.print_json({"runs": data, "png": str(target) if target else None})
    else:
        ui.render_plot(data)
