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
from lenet_cli.errors import ImageError, OutputExistsError, UsageError, WriteError

CheckpointOpt = Annotated[
    Path,
    typer.Option("--checkpoint", help="A checkpoint or run directory (best.pt, else last.pt)."),
]
EvalDataOpt = Annotated[
    DataName | None,
    typer.Option("--data", help="Data set [default: the one it was trained on]."),
]
SplitOpt = Annotated[Literal["train", "test"], typer.Option("--split", help="Which split.")]
DataDirOpt = Annotated[
    str | None, typer.Option("--data-dir", help="Read the IDX files from this directory.")
]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Batch size.")]
PngDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Also draw confusion.png, errors.png and per_class.png into this directory.",
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite PNGs already in --out.")]
WeightsOpt = Annotated[
    Literal["ema", "raw"] | None,
    typer.Option(
        "--weights",
        help="ema: the average kept by `lenet train --ema`; raw: the trained weights "
        "[default: the ones the run evaluated, ema when it kept one].",
    ),
]
PredictionsOpt = Annotated[
    bool,
    typer.Option("--predictions", help="With --json: every sample's prediction too."),
]


@app.command("evaluate")
def evaluate_cmd(
    checkpoint: CheckpointOpt,
    data: EvalDataOpt = None,
    split: SplitOpt = "test",
    data_dir: DataDirOpt = None,
    batch_size: BatchSizeOpt = 1000,
    out: PngDirOpt = None,
    force: ForceOpt = False,
    predictions: PredictionsOpt = False,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Loss, accuracy, per-class accuracy and the confusion matrix of a trained model."""
    if predictions and not json_out:
        raise UsageError("--predictions adds to the JSON document", hint="add --json")
    if out is not None:
        _check_out_dir(out, force)
    dev, _ = setup_device(device)
    from lenet_cli.use.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(
        checkpoint,
        data=data,
        split=split,
        data_dir=data_dir,
        device=dev,
        batch_size=batch_size,
        on_event=ui.TrainProgress("none" if json_out else "plain"),
        samples=out is not None or predictions,
        weights=weights,
    )
    from lenet_cli.runs.reader import class_names

    names = class_names(result["data"])
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        result["pngs"] = [str(p) for p in ui.evaluation_pngs(result, names, out)]
    for m in result.get("mistakes", []):
        m.pop("image")  # pictures go to errors.png, not to the JSON
    if not predictions:
        result.pop("predictions", None)
    if json_out:  # notices (data fallback, plain weights) went to stderr through on_event
        ui.print_json({**result, "class_names": names})
    else:
        ui.render_evaluation(result)
        ui.class_legend(names)


def _check_out_dir(out: Path, force: bool) -> None:
    """--out must be a directory (or not exist yet) without the three PNGs, unless --force."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file", hint="evaluate --out takes a directory")
    taken = [n for n in ("confusion.png", "errors.png", "per_class.png") if (out / n).exists()]
    if taken and not force:
        raise OutputExistsError(
            f"{out / taken[0]} already exists", hint="use --force to overwrite, or another --out"
        )


def run_predict(
    images: list[Path],
    *,
    checkpoint: Path | None,
    device: str,
    json_out: bool,
    preview: bool,
    weights: str | None = None,
    preview_out: Path | None = None,
    force: bool = False,
) -> None:
    """Predict the digit in each image (also `lenet forward --image`)."""
    if checkpoint is None:
        raise UsageError(
            "predict needs --checkpoint (a trained model)",
            hint="train one with `lenet train`, then pass --checkpoint runs/NAME",
        )
    targets = _preview_targets(images, preview_out, force) if preview_out else []
    dev, _ = setup_device(device)
    from lenet_cli.use.predict import predict_images
    from lenet_cli.use.weights import load_model

    model, meta = load_model(checkpoint, dev, weights)
    if meta.get("notice"):
        ui.note(meta["notice"])
    drawn = bool(targets) or (preview and not json_out)
    results, failures = predict_images(list(images), model, meta, dev, with_steps=drawn)
    if targets:
        failed = {f["file"] for f in failures}  # results keep the order of the others
        answered = [t for p, t in zip(images, targets, strict=True) if str(p) not in failed]
        written = [ui.steps_png(r, t) for r, t in zip(results, answered, strict=True)]
        for r, path in zip(results, written, strict=True):
            r["preview_png"] = str(path)
        if written and not json_out:
            ui.saved_note(written)
    ui.render_warnings(results)
    if json_out:
        for r in results:
            r.pop("steps", None)
            if not preview:
                r.pop("input")
        doc = {
            "checkpoint": meta["path"],
            "arch": meta["arch"],
            "weights": meta["weights"],
            "results": results,
        }
        ui.print_json({**doc, "failed": failures} if failures else doc)
    else:
        for r in results:
            ui.render_prediction([r], False)
            if preview:
                ui.render_steps(r)
    if failures:  # the good images were answered above; exit 8 says not all were
        for f in failures[:-1]:
            ui.error_line(f["error"])
        raise ImageError(
            failures[-1]["error"]
            + (f" ({len(failures)} of {len(images)} images failed)" if len(images) > 1 else "")
        )


def _preview_targets(images: list[Path], out: Path, force: bool) -> list[Path]:
    """Each image's steps PNG (--preview-out): a file for one image, a folder for several.
    Checked before anything is read: an existing PNG is kept unless --force, and an input
    image is never a target."""
    if len(images) > 1 and out.exists() and not out.is_dir():
        raise UsageError(
            f"--preview-out {out} is a file, and there are {len(images)} images",
            hint="for several images, pass a folder: each gets STEM-steps.png in it",
        )
    targets = ui.preview_targets([str(p) for p in images], out)
    if targets == [out] and out.suffix.lower() != ".png":
        ends = f"ends in {out.suffix}" if out.suffix else "has no .png suffix"
        raise UsageError(
            f"--preview-out {out} {ends}, but the steps are saved as PNG only",
            hint="name a .png file, or an existing folder to hold STEM-steps.png",
        )
    inputs = {p.resolve() for p in images}
    for t in targets:
        if t.resolve() in inputs:
            raise UsageError(f"--preview-out {t} is one of the images", hint="pass another path")
        if t.exists() and not force:
            raise OutputExistsError(
                f"{t} already exists", hint="use --force to overwrite, or another --preview-out"
            )
        if t.exists() and not t.is_file():
            raise UsageError(f"--preview-out {t} is not a file", hint="pass another path")
    _writable_folder(targets[0].parent)
    return targets


def _writable_folder(folder: Path) -> None:
    """--preview-out's folder, made if need be, takes a new file: a WriteError (exit 11) before
    any image or checkpoint is read, rather than after the work."""
    import os
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".lenet-", suffix=".part", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        blocker = next((p for p in (folder, *folder.parents) if p.is_file()), None)
        why = f"{blocker} is a file, not a folder" if blocker else e.strerror or str(e)
        raise WriteError(
            f"--preview-out cannot write in {folder}: {why}",
            hint="choose a folder you can write to; nothing was read or written",
        ) from None


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
            "--preview",
            help="Draw each step of the preparation, ending with the 32x32 input the network "
            "saw (with --json: include that input).",
        ),
    ] = False,
    preview_out: Annotated[
        str | None,
        typer.Option(
            "--preview-out",
            metavar="<path>",
            help="Save the steps as PNG: this .png file for one image (another suffix is "
            "refused), STEM-steps.png in this folder for several or when it is a folder.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite PNGs already at --preview-out.")
    ] = False,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Predict the digit in pictures: the paper removed and the digit's ink found as a
    scanner would, then prepared as MNIST's digits were."""
    if preview_out is not None and not preview_out.strip():
        raise UsageError(
            "--preview-out is empty", hint="name a .png file, or a folder for the steps' PNGs"
        )
    run_predict(
        images,
        checkpoint=checkpoint,
        device=device,
        json_out=json_out,
        preview=preview,
        weights=weights,
        preview_out=Path(preview_out) if preview_out is not None else None,
        force=force,
    )
