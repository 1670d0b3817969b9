"""Commands that use a trained model: evaluate, predict (and `forward --image`).

Thin wrappers: pick the device, call an engine, render its result. torch and the engines are
imported inside the command bodies only (`lenet --help` stays instant).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from lenet_cli import ui
from lenet_cli.cli.app import DeviceOpt, JsonOpt, app, setup_device
from lenet_cli.config import DataName
from lenet_cli.errors import ImageError, UsageError


@app.command("evaluate")
def evaluate_cmd(
    checkpoint: Annotated[
        Path,
        typer.Option("--checkpoint", help="A checkpoint or run directory (best.pt, else last.pt)."),
    ],
    data: Annotated[
        DataName | None,
        typer.Option("--data", help="Data set [default: the one it was trained on]."),
    ] = None,
    split: Annotated[
        Literal["train", "test"], typer.Option("--split", help="Which split.")
    ] = "test",
    data_dir: Annotated[
        str | None, typer.Option("--data-dir", help="Read the IDX files from this directory.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size.")] = 1000,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Loss, accuracy, per-class accuracy and the confusion matrix of a trained model."""
    dev, _ = setup_device(device)
    from lenet_cli.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(
        checkpoint,
        data=data,
        split=split,
        data_dir=data_dir,
        device=dev,
        batch_size=batch_size,
        on_event=ui.TrainProgress("none" if json_out else "plain"),
    )
    if json_out:  # notices (data fallback, plain weights) went to stderr through on_event
        ui.print_json(result)
    else:
        ui.render_evaluation(result)


def run_predict(
    images: list[Path], *, checkpoint: Path | None, device: str, json_out: bool, preview: bool
) -> None:
    """Predict the digit in each image (also `lenet forward --image`)."""
    if checkpoint is None:
        raise UsageError(
            "predict needs --checkpoint (a trained model)",
            hint="train one with `lenet train`, then pass --checkpoint runs/NAME",
        )
    dev, _ = setup_device(device)
    from lenet_cli.predict import predict_images
    from lenet_cli.weights import load_model

    model, meta = load_model(checkpoint, dev)
    if meta.get("notice"):
        ui.note(meta["notice"])
    results, failures = predict_images(list(images), model, meta, dev)
    if json_out:
        if not preview:
            for r in results:
                r.pop("input")
        doc = {"checkpoint": meta["path"], "arch": meta["arch"], "results": results}
        ui.print_json({**doc, "failed": failures} if failures else doc)
    else:
        ui.render_prediction(results, preview)
    if failures:  # the good images were answered above; exit 8 says not all were
        for f in failures[:-1]:
            ui.error_line(f["error"])
        raise ImageError(
            failures[-1]["error"]
            + (f" ({len(failures)} of {len(images)} images failed)" if len(images) > 1 else "")
        )


@app.command("predict")
def predict_cmd(
    images: Annotated[
        list[Path], typer.Argument(help="Image files (PNG, JPEG...) of one digit each.")
    ],
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="A trained model: checkpoint or run directory."),
    ] = None,
    preview: Annotated[
        bool,
        typer.Option(
            "--preview", help="Draw the 32x32 input the network saw (with --json: include it)."
        ),
    ] = False,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Predict the digit in pictures, prepared as MNIST's digits were."""
    run_predict(images, checkpoint=checkpoint, device=device, json_out=json_out, preview=preview)
