"""`lenet export`: a trained model as .safetensors, a torch.export program or ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from lenet_cli import ui
from lenet_cli.cli.app import JsonOpt, app
from lenet_cli.cli.use_cmds import WeightsOpt
from lenet_cli.config import DataName

ExportFormat = Literal["safetensors", "pt2", "onnx"]


@app.command("export")
def export_cmd(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A checkpoint or run directory (best.pt, else last.pt), or plain weights: "
            "a torch.save(net.state_dict()) file or a .safetensors file."
        ),
    ],
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="safetensors (weights + metadata), pt2 (torch.export program) or onnx "
            "(needs `pip install 'lenet-cli[onnx]'`).",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="File to write [default: beside the checkpoint, new suffix]."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Run the test set through the exported file and compare with the checkpoint "
            "(scores within 1e-4, same accuracy; exit 13 otherwise).",
        ),
    ] = False,
    data: Annotated[
        DataName | None,
        typer.Option("--data", help="Data set for --verify [default: the one it was trained on]."),
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option("--data-dir", help="Read the IDX files from this directory.")
    ] = None,
    weights: WeightsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Export a trained model to run without lenet-cli: safetensors, torch.export or ONNX."""
    from lenet_cli.use.export import export_checkpoint

    result = export_checkpoint(
        checkpoint,
        fmt,
        out=out,
        force=force,
        verify=verify,
        data=data,
        data_dir=data_dir,
        on_event=ui.TrainProgress("none"),
        weights=weights,
    )
    if json_out:
        ui.print_json(result)
    else:
        ui.render_export(result)
