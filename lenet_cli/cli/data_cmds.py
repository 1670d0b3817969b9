"""`lenet data`: list, download, import, verify and show the data sets.

Thin wrappers over lenet_cli.data (imported inside each command, so `lenet --help` never
imports torch); rendering is in lenet_cli.ui. Data goes to stdout, notes and progress to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from lenet_cli import ui
from lenet_cli.cli.app import JsonOpt, SeedOpt
from lenet_cli.cli.helptext import HelpGroup, HelpTyper
from lenet_cli.config import DataName
from lenet_cli.errors import DataError, OutputExistsError, UsageError, WriteError

FileName = Literal["mnist", "fashion-mnist", "kmnist"]  # the sources with files to fetch
Split = Literal["train", "test"]

data_app = HelpTyper(
    cls=HelpGroup,
    help="Find, download, import, verify and look at the data sets (MNIST and its relatives).",
    no_args_is_help=True,
)

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Read the IDX files from this directory only (default: LENET_DATA_DIR, the user "
        "cache, system locations).",
    ),
]


@data_app.command("list")
def list_cmd(
    checksums: Annotated[
        bool,
        typer.Option(
            "--checksums/--no-checksums", help="Compare each file with its published MD5."
        ),
    ] = True,
    json_out: JsonOpt = False,
) -> None:
    """Each data source: where it was found, its sizes, whether its files are the published ones."""
    from lenet_cli.data import list_sources

    rows = list_sources(checksums=checksums)
    if json_out:
        ui.print_json({"sources": rows})
    else:
        ui.render_data_list(rows)


@data_app.command("download")
def download_cmd(
    name: Annotated[FileName, typer.Argument(help="The data set to fetch.")],
    mirror: Annotated[
        list[str] | None,
        typer.Option(
            "--mirror",
            help="Base URL to fetch from instead of the built-in list (repeat for several; "
            "also LENET_MIRRORS=URL,URL).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Fetch a data set into the user cache, each file checked against its published MD5."""
    from lenet_cli.data import download, verify

    with ui.download_progress() as progress:
        located = download(
            name, mirrors=mirror or None, on_progress=progress.update, on_event=progress.event
        )
    report = verify(name, located.directory)
    if json_out:
        ui.print_json(report)
    else:
        ui.render_verify(report)


@data_app.command("import")
def import_cmd(
    name: Annotated[FileName, typer.Argument(help="Which data set the files hold.")],
    directory: Annotated[
        Path, typer.Argument(help="Directory with the four IDX files (.gz or raw).")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Validate local IDX files and copy them into the user cache (nothing is copied on errors)."""
    from lenet_cli.data import import_source

    report = import_source(name, directory)
    if json_out:
        ui.print_json(report)
    else:
        ui.note(f"imported {name} into {report['directory']}")
        ui.render_verify(report)


@data_app.command("verify")
def verify_cmd(
    name: Annotated[DataName, typer.Argument(help="The data set to check.")],
    data_dir: DataDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fully validate a data set's files (headers, sizes, counts, labels); exit 5 on problems."""
    from lenet_cli.data import verify

    report = verify(name, data_dir)
    if json_out:
        ui.print_json(report)
    else:
        ui.render_verify(report)
    if not report["ok"]:
        raise DataError(f"{name} failed verification: " + "; ".join(report["problems"]))


def _write_png(images, labels: list[int], path: Path, columns: int) -> None:
    import io

    from PIL import Image, ImageDraw

    from lenet_cli.ui.png import write_png

    scale, strip = 2, 14
    cell_w, cell_h = 28 * scale, 28 * scale + strip
    rows = (len(labels) + columns - 1) // columns
    grid = Image.new("L", (columns * cell_w, rows * cell_h), 0)
    draw = ImageDraw.Draw(grid)
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        x, y = (i % columns) * cell_w, (i // columns) * cell_h
        digit = Image.fromarray(pixels, mode="L").resize((28 * scale, 28 * scale), Image.NEAREST)
        grid.paste(digit, (x, y))
        draw.text((x + 2, y + 28 * scale + 1), str(label), fill=255)
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    write_png(buffer.getvalue(), path)  # atomically: a full disk leaves the old file whole


@data_app.command("show")
def show_cmd(
    name: Annotated[DataName, typer.Argument(help="The data set to look at.")] = "mnist-sample",
    split: Annotated[Split, typer.Option("--split", help="Which split to draw from.")] = "train",
    count: Annotated[
        int, typer.Option("--count", min=1, max=400, help="How many digits to show.")
    ] = 8,
    seed: SeedOpt = 0,
    data_dir: DataDirOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the digits as a PNG grid to this file.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the --out file.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Draw digits (picked at random with --seed) in the terminal, each with its label."""
    if out is not None and out.exists() and not force:
        raise OutputExistsError(f"{out} already exists", hint="use --force to overwrite it")
    if out is not None and out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: only PNG is written", hint="name the file *.png")
    import torch

    from lenet_cli.data import load_dataset, resolve_source
    from lenet_cli.data.cache import load_split

    if name == "random":
        ds = load_dataset("random", split, seed=seed)
        # show standard-normal pixels as grey levels: -2 sigma black, +2 sigma white
        images = ((ds.images[:, 0, 2:30, 2:30] + 2) * 63.75).clamp(0, 255).to(torch.uint8)
        labels, source = ds.labels, ds.source
    else:
        located, notice = resolve_source(name, data_dir=data_dir, download=False)
        raw = load_split(located, split, on_event=lambda e: ui.note(e["notice"]))
        images, labels, source = raw["images"], raw["labels"], str(located.directory)
    n = min(count, int(labels.shape[0]))
    pick = torch.randperm(int(labels.shape[0]), generator=torch.Generator().manual_seed(seed))[:n]
    pick = pick.sort().values
    chosen, chosen_labels = images[pick].numpy(), labels[pick].tolist()
    if out is not None:
        try:
            _write_png(chosen, chosen_labels, out, columns=min(n, 10))
        except OSError as exc:
            raise WriteError(f"cannot write {out}: {exc.strerror or exc}") from None
    if json_out:
        ui.print_json(
            {
                "name": name,
                "split": split,
                "source": source,
                "indices": pick.tolist(),
                "labels": chosen_labels,
                "png": str(out) if out else None,
            }
        )
        return
    captions = [f"label {lab} (#{i})" for lab, i in zip(chosen_labels, pick.tolist(), strict=True)]
    ui.render_digits(chosen.tolist(), captions, title=f"{name} {split} ({source})")
    if out is not None:
        ui.note(f"wrote {out}")
