"""`lenet bench`: training and inference images/s on one device (a thin wrapper of bench.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from lenet_cli import ui
from lenet_cli.cli.app import ArchOpt, DeviceOpt, JsonOpt, SeedOpt, app, setup_device
from lenet_cli.config import AT_LEAST_1, Precision, check_value
from lenet_cli.errors import UsageError


def _int_list(text: str, flag: str, words: tuple[str, ...] = ()) -> list:
    """Comma-separated whole numbers >= 1 (and ``words``, kept as they are)."""
    parts = [part for part in text.replace(" ", "").split(",") if part]
    what = "integers" + "".join(f" or {w}" for w in words)
    try:
        values = [part if part in words else int(part) for part in parts]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated {what}, got {text!r}") from None
    if not values:
        raise UsageError(f"{flag} takes comma-separated {what}, got {text!r}")
    return [v if v in words else check_value(flag, v, AT_LEAST_1) for v in values]


BatchSizesOpt = Annotated[
    str, typer.Option("--batch-sizes", help="Comma-separated batch sizes to measure.")
]
BenchThreadsOpt = Annotated[
    str | None,
    typer.Option(
        "--threads",
        help="Comma-separated CPU thread counts to measure, and auto (what `lenet train "
        "--threads auto` does: time the steps, keep the faster count) [default: the physical "
        "cores].",
    ),
]
RepeatsOpt = Annotated[
    int, typer.Option("--repeats", min=1, help="Timed passes per cell; the median is shown.")
]
ImagesOpt = Annotated[
    int, typer.Option("--images", min=1, help="Images per timed pass (random, in memory).")
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option("--precision", help="fp32, or autocast with bf16 / fp16 (fp16: GPU only)."),
]
ChannelsLastOpt = Annotated[
    bool | None,
    typer.Option(
        "--channels-last/--no-channels-last",
        help="Memory layout of data and model [default: channels_last on CPU and CUDA].",
    ),
]
CompileOpt = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="torch.compile the model (the warm-up pays for it; slower than eager on a CPU).",
    ),
]
FusedOpt = Annotated[
    bool | None,
    typer.Option(
        "--fused/--no-fused",
        help="The tutorial's LeNet as one C kernel forward and one backward "
        "[default: on the CPU when it builds].",
        show_default=False,
    ),
]
BusyOpt = Annotated[
    int,
    typer.Option(
        "--busy",
        min=0,
        help="Busy-looping processes to run beside the measurement (a machine shared with "
        "other programs), e.g. --busy 1 --threads 1,2,auto.",
    ),
]
TrainOpt = Annotated[bool, typer.Option("--train/--no-train", help="Measure training.")]
InferOpt = Annotated[bool, typer.Option("--infer/--no-infer", help="Measure inference.")]


def _on_event(e: dict) -> None:
    """Progress of run_bench on stderr: the cell being measured, and any fallback notice."""
    if e["event"] == "cell":
        ui.note(f"measuring batch {e['batch_size']}, threads {e['threads']}...")
    elif e["event"] == "fallback":
        ui.note(e["notice"])


@app.command()
def bench(
    device: DeviceOpt = "auto",
    batch_sizes: BatchSizesOpt = "64,256,1024",
    threads: BenchThreadsOpt = None,
    repeats: RepeatsOpt = 5,
    images: ImagesOpt = 8192,
    arch: ArchOpt = "tutorial",
    precision: PrecisionOpt = "fp32",
    channels_last: ChannelsLastOpt = None,
    compile_: CompileOpt = False,
    fused: FusedOpt = None,
    busy: BusyOpt = 0,
    train: TrainOpt = True,
    infer: InferOpt = True,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Measure training and inference images/s (warm-up excluded, median of repeats)."""
    sizes = _int_list(batch_sizes, "--batch-sizes")
    counts: list = _int_list(threads, "--threads", ("auto",)) if threads else [None]
    if not (train or infer):
        raise UsageError("nothing to measure", "drop --no-train or --no-infer")

    from lenet_cli.fast.speed import default_threads
    from lenet_cli.training.bench import run_bench

    dev, _ = setup_device(device)
    if counts == [None]:
        counts = [default_threads()]
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
        busy=busy,
        on_event=_on_event,
    )
    if json_out:
        ui.print_json(result)
    else:
        ui.render_bench(result)
