"""Picture commands: plot, activations, filters, autograd (and the PNG options they share).

Thin wrappers: resolve paths, call an engine (imported inside the body: no torch at `--help`),
render to the terminal and, with --out, to a PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lenet_cli import ui
from lenet_cli.cli.app import ArchOpt, JsonOpt, SeedOpt, app
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
        typer.Argument(
            help="Run directories (or checkpoints in them) to draw, overlaid [default: the "
            "newest in runs/]."
        ),
    ] = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Loss, accuracy and learning rate per epoch of one or more runs (train / val / test)."""
    from lenet_cli.runs.reader import curves, newest_run

    if not run_dirs:
        run_dirs = [newest_run(need="metrics")]
        ui.note(f"plotting the newest run, {run_dirs[0]} (name others as arguments)")
    target = png_target(out, "plot.png", force)
    data = curves([p.parent if p.is_file() else p for p in run_dirs])  # a checkpoint: its run
    if target is not None:
        ui.plot_png(data, target)
        ui.note(f"wrote {target}")
    if json_out:
        ui.print_json({"runs": data, "png": str(target) if target else None})
    else:
        ui.render_plot(data)


CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="A checkpoint or run directory (best.pt, else last.pt), or plain weights (a "
        "torch.save(net.state_dict()) or .safetensors file) [default: the newest run in runs/].",
    ),
]


def load_checkpoint_model(checkpoint: Path | None):
    """(model on the CPU, its metadata), from --checkpoint or the newest run (said on stderr):
    a checkpoint or run directory, or plain weights, through the loader of every command."""
    import torch

    from lenet_cli.runs.reader import checkpoint_or_newest
    from lenet_cli.use.weights import load_model

    path, notice = checkpoint_or_newest(checkpoint)
    if notice:
        ui.note(notice)
    model, meta = load_model(path, torch.device("cpu"))
    if meta.get("notice"):
        ui.note(meta["notice"])
    return model, meta


@app.command("activations")
def activations_cmd(
    image: Annotated[
        Path | None, typer.Argument(help="A picture of one digit (PNG, JPEG...), or use --index.")
    ] = None,
    index: Annotated[
        int | None,
        typer.Option("--index", min=0, help="Image N of the data set [default: 0 if no IMAGE]."),
    ] = None,
    checkpoint: CheckpointOpt = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Data set for --index [default: the checkpoint's]."),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split for --index: test or train.")] = (
        "test"
    ),
    data_dir: Annotated[
        str | None, typer.Option("--data-dir", help="Read the IDX files from this directory.")
    ] = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Every layer's output for one input: conv maps, pooled maps, fc layers, softmax."""
    from lenet_cli.runs.reader import class_names
    from lenet_cli.teach.activations import activations, dataset_input, describe, file_input

    if image is not None and index is not None:
        raise UsageError("give IMAGE or --index, not both")
    target = png_target(out, "activations.png", force)
    model, meta = load_checkpoint_model(checkpoint)
    data_name = data or meta.get("data") or "mnist"
    if image is not None:
        x, label, source = file_input(image, meta["mean"], meta["std"])
    else:
        if index is None:
            index = 0
            ui.note(f"no IMAGE or --index: using {split} image #0")
        x, label, source = dataset_input(
            index, data, split, meta, data_dir, on_event=ui.TrainProgress("none")
        )
    values = activations(model, x, meta["arch"])
    names = class_names(data_name)
    doc = {"checkpoint": meta["path"], "arch": meta["arch"], "source": source, "label": label}
    doc["predicted"] = int(values["softmax"].argmax())
    if target is not None:
        ui.activations_png(doc, values, names, target)
        ui.note(f"wrote {target}")
    if json_out:
        ui.print_json(
            {
                **doc,
                "class_names": names,
                "png": str(target) if target else None,
                "stages": describe(values),
            }
        )
    else:
        ui.render_activations(doc, values, names)


@app.command("filters")
def filters_cmd(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint, run directory or plain weights file; twice (before, after) for a "
            "side-by-side comparison [default: the newest run in runs/].",
        ),
    ] = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """conv1's and conv2's kernels as images, on one colour scale per layer."""
    from lenet_cli.teach.filters import describe, filters

    paths: list[Path | None] = list(checkpoint or [None])
    if len(paths) > 2:
        raise UsageError(f"--checkpoint given {len(paths)} times", hint="give one, or two")
    target = png_target(out, "filters.png", force)
    kernels, labels, metas = [], [], []
    for path in paths:
        model, meta = load_checkpoint_model(path)
        kernels.append(filters(model))
        epoch = f", epoch {meta['epoch']}" if meta.get("epoch") is not None else ""
        where = Path(meta["path"])
        labels.append(f"{where.parent.name}/{where.name} ({meta['arch']}{epoch})")
        metas.append(meta)
    if target is not None:
        ui.filters_png(kernels, labels, target)
        ui.note(f"wrote {target}")
    if json_out:
        models = [
            {"checkpoint": m["path"], "arch": m["arch"], "epoch": m.get("epoch"), **describe(k)}
            for m, k in zip(metas, kernels, strict=True)
        ]
        ui.print_json({"models": models, "png": str(target) if target else None})
    else:
        ui.render_filters(kernels, labels)


@app.command("autograd")
def autograd_cmd(
    seed: SeedOpt = 0,
    arch: ArchOpt = "tutorial",
    out: OutOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """The tutorial's walk of the autograd graph: loss.grad_fn down to the parameters."""
    from lenet_cli.teach.autograd_view import chain, loss_graph

    target = png_target(out, "autograd.png", force)
    doc = loss_graph(arch, seed)
    doc["chain"] = chain(doc["graph"])
    if target is not None:
        ui.autograd_png(doc, target)
        ui.note(f"wrote {target}")
    if json_out:
        ui.print_json({**doc, "png": str(target) if target else None})
    else:
        ui.render_autograd(doc)
