"""`lenet bench`: training and inference images/s on one device (a thin wrapper of bench.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from lenet_cli import ui
from lenet_cli.cli.app import ArchOpt, DeviceOpt, JsonOpt, SeedOpt, app, setup_device
from lenet_cli.config import AT_LEAST_1, Precision, check_value
from lenet_cli.errors import UsageError


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated integers, got {text!r}") from None
    if not values:
        raise UsageError(f"{flag} takes comma-separated integers, got {text!r}")
    return [check_value(flag, v, AT_LEAST_1) for v in values]


@app.command()
def bench(
    device: DeviceOpt = "auto",
    batch_sizes: Annotated[
        str, typer.Option("--batch-sizes", help="Comma-separated batch sizes to measure.")
    ] = "64,256,1024",
    threads: Annotated[
        str | None,
        typer.Option(
            "--threads",
            help="Comma-separated CPU thread counts to measure [default: the physical cores].",
        ),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, help="Timed passes per cell; the median is shown.")
    ] = 5,
    images: Annotated[
        int, typer.Option("--images", min=1, help="Images per timed pass (random, in memory).")
    ] = 8192,
    arch: ArchOpt = "tutorial",
    precision: Annotated[
        Precision,
        typer.Option("--precision", help="fp32, or autocast with bf16 / fp16 (fp16: GPU only)."),
    ] = "fp32",
    channels_last: Annotated[
        bool | None,
        typer.Option(
            "--channels-last/--no-channels-last",
            help="Memory layout of data and model [default: channels_last on CPU and CUDA].",
        ),
    ] = None,
    compile_: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the model (the warm-up pays for it; "
            "slower than eager on CPU here).",
        ),
    ] = False,
    fused: Annotated[
        bool | None,
        typer.Option(
            "--fused/--no-fused",
            help="LeNet as C kernels (the whole network, or each conv -> pool -> ReLU block) "
            "[default: on the CPU when they build].",
            show_default=False,
        ),
    ] = None,
    train: Annotated[bool, typer.Option("--train/--no-train", help="Measure training.")] = True,
    infer: Annotated[bool, typer.Option("--infer/--no-infer", help="Measure inference.")] = True,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Measure training and inference images/s (warm-up excluded, median of repeats)."""
    sizes = _int_list(batch_sizes, "--batch-sizes")
    counts: list[int | None] = _int_list(threads, "--threads") if threads else [None]
    if not (train or infer):
        raise UsageError("nothing to measure", "drop --no-train or --no-infer")

    from lenet_cli.bench import run_bench
    from lenet_cli.speed import default_threads

    dev, _ = setup_device(device)
    if counts == [None]:
        counts = [default_threads()]

    def on_event(e: dict) -> None:
        if e["event"] == "cell":
            ui.note(f"measuring batch {e['batch_size']}, {e['threads']} thread(s)...")
        elif e["event"] == "fallback":
            ui.note(e["notice"])

    result = run_bench(
        device=dev,
        batch_sizes=sizes,
        threads=counts,
        repeats=repeats,
        images=images,
        arch=arch,
        precision=precision,
        channels_last=channels_last,
        compile=compile_,
        fused=fused,
        seed=seed,
        train=train,
        infer=infer,
        on_event=on_event,
    )
    if json_out:
        ui.print_json(result)
    else:
        ui.render_bench(result)
