"""`lenet runs [DIR]` (a table of runs) and `lenet runs diff A B`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from lenet_cli import ui
from lenet_cli.cli.app import JsonOpt
from lenet_cli.cli.helptext import HelpGroup, HelpTyper

SortKey = Literal[
    "started", "name", "data", "arch", "epochs", "best", "final", "wall", "speed", "status"
]


class _ListByDefault(HelpGroup):
    """`lenet runs [DIR] [OPTIONS]` means `lenet runs list ...`; `lenet runs diff A B` stays."""

    def parse_args(self, ctx, args):  # noqa: ANN001, ANN201
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


runs_app = HelpTyper(
    cls=_ListByDefault,
    help="The runs in a directory (default runs/): `lenet runs [DIR]`, `lenet runs diff A B`.",
)


@runs_app.command("list")
def list_cmd(
    directory: Annotated[
        Path, typer.Argument(help="A directory of runs (or one run directory).")
    ] = Path("runs"),
    sort: Annotated[
        SortKey,
        typer.Option(
            "--sort",
            help="Column to sort by; numbers largest first, text A-Z, started oldest first.",
        ),
    ] = "started",
    reverse: Annotated[bool, typer.Option("--reverse", help="Reverse the order.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """A table of runs: data, arch, epochs, best/final accuracy, wall time, images/s, status."""
    from lenet_cli.runs.table import list_runs

    runs = list_runs(directory, sort, reverse)
    if json_out:
        ui.print_json(runs)
    else:
        ui.render_runs(runs, str(directory))


@runs_app.command("diff")
def diff_cmd(
    a: Annotated[str, typer.Argument(help="A run directory, or a run's name in runs/.")],
    b: Annotated[str, typer.Argument(help="The other run.")],
    json_out: JsonOpt = False,
) -> None:
    """The config keys that differ between two runs, and their final metrics side by side."""
    from lenet_cli.runs.table import diff_runs, find_run

    root = Path("runs")
    doc = diff_runs(find_run(a, root), find_run(b, root))
    if json_out:
        ui.print_json(doc)
    else:
        ui.render_runs_diff(doc)
