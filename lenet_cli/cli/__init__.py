"""The `lenet` command line. Importing this package must not import torch (help stays instant)."""

from __future__ import annotations

from lenet_cli.cli import (
    bench_cmds,  # noqa: F401  (registers `lenet bench`)
    export_cmds,  # noqa: F401  (registers `lenet export`)
    model_cmds,  # noqa: F401  (registers its commands)
    sweep_cmds,  # noqa: F401  (registers `lenet sweep`)
    train_cmds,  # noqa: F401  (registers its commands)
    tutorial_cmds,  # noqa: F401  (registers `lenet tutorial`)
    use_cmds,  # noqa: F401  (registers its commands)
    viz_cmds,  # noqa: F401  (registers the picture commands)
)
from lenet_cli.cli.app import app
from lenet_cli.cli.data_cmds import data_app
from lenet_cli.cli.runs_cmds import runs_app

# Sub-apps and further command modules register here, one line each.
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")


def main() -> None:
    app(prog_name="lenet")


__all__ = ["app", "main"]
