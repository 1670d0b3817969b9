"""The benchmark engine: training and inference images/s on one device.

``run_bench`` returns plain data and never prints; progress goes to ``on_event``. Each cell is
measured by ``bench_cell.bench_one``. Method:
- data: ``images`` random normalised-like images and labels, made once on the device (in the
  chosen layout, so batches are views or one index_select, as in training);
- training is lenet's own path: a seeded randperm per pass, and the step `lenet train` takes
  (``step.choose``: the fused step where it applies, else ``train_step`` with autocast for
  mixed precision); SGD with momentum as ``optim`` builds it;
- for each (threads, batch size): one warm-up pass (not timed; it holds any compile time and
  cuDNN autotuning, reported as ``warmup_s``), then ``repeats`` timed passes over all the
  images, each ended by a device synchronize; the figure is the median pass;
- inference is the same passes under ``torch.inference_mode()`` with the model in eval mode;
- ``epoch_s`` is the time a 60,000-image epoch takes at the median rate;
- threads ``auto`` is ``lenet train --threads auto``: a ``threads.ThreadTuner`` times every
  training step (from the warm-up pass on) and sets the count; inference then runs at the count
  it chose. ``busy`` busy-looping processes run beside the whole measurement (the machine as it
  is when other programs work), to show what a fixed count and auto do then.
Nothing in a timed pass reads a value back to the host (no ``.item()``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import torch

from lenet_cli.config import AT_LEAST_1, NON_NEGATIVE, check_value
from lenet_cli.device import set_threads
from lenet_cli.errors import UsageError
from lenet_cli.fast import cpu, speed
from lenet_cli.fast.threads import ThreadTuner, candidates
from lenet_cli.model import build_model
from lenet_cli.training.bench_cell import bench_one

Event = Callable[[dict], None]


def _emit(on_event: Event | None, **event: Any) -> None:
    if on_event is not None:
        on_event(event)


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return []


def busy_loops(n: int) -> list[subprocess.Popen]:
    """``n`` processes that keep one core busy each (``python -c "while True: pass"``)."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]


def _check_args(device, precision, batch_sizes, repeats, busy, images) -> None:
    """run_bench's arguments, checked as the CLI checks them (a UsageError names the bad one)."""
    if not batch_sizes:
        raise UsageError("--batch-sizes needs at least one batch size")
    for b in batch_sizes:
        check_value("--batch-sizes", b, AT_LEAST_1)
    check_value("--repeats", repeats, AT_LEAST_1)
    check_value("--busy", busy, NON_NEGATIVE)
    if images < max(batch_sizes):
        raise UsageError(
            f"--images ({images}) must be at least the largest batch size ({max(batch_sizes)})"
        )
    speed.check_precision(device, precision)


def _layout(device: torch.device, channels_last: bool | None, bs: int) -> bool:
    """channels_last as given, else auto: the device's faster layout, NCHW for tiny batches."""
    if channels_last is not None:
        return channels_last
    return speed.channels_last_default(device) and bs >= speed.CHANNELS_LAST_MIN_BATCH


def _cells(device, threads, batch_sizes, channels_last, busy, on_event, **cell) -> list[dict]:
    """Every (threads, batch size) cell in that order, each measured by bench_one, with ``busy``
    busy loops running beside them all.

    ``cell`` holds bench_one's other arguments. The thread count is left as it was found.
    """
    before = torch.get_num_threads()
    rows = []
    loops = busy_loops(busy)
    try:
        for n_threads in threads:
            auto = n_threads == "auto"
            used = set_threads(speed.default_threads() if auto else n_threads)
            for bs in batch_sizes:
                _emit(on_event, event="cell", threads="auto" if auto else used, batch_size=bs)
                tuner = None
                if auto and device.type == "cpu":
                    tuner = ThreadTuner(candidates(speed.default_threads()), set_threads)
                load = _load()
                layout = _layout(device, channels_last, bs)
                row = bench_one(
                    device=device, batch_size=bs, channels_last=layout, tuner=tuner, **cell
                )
                if auto:
                    row["threads"] = "auto"
                row["load"] = load
                row["channels_last"] = layout
                rows.append(row)
                _emit(on_event, event="cell_done", row=row)
    finally:
        torch.set_num_threads(before)
        for proc in loops:
            proc.kill()
            proc.wait()
    return rows


def run_bench(
    *,
    device: torch.device,
    batch_sizes: list[int],
    threads: list[int | str | None],
    repeats: int = 5,
    images: int = 8192,
    arch: str = "tutorial",
    precision: str = "fp32",
    channels_last: bool | None = None,
    compile: bool = False,
    fused: bool | None = None,
    seed: int = 0,
    train: bool = True,
    infer: bool = True,
    busy: int = 0,
    on_event: Event | None = None,
) -> dict[str, Any]:
    """Every (threads, batch size) cell, in that order; returns a JSON-ready dict."""
    _check_args(device, precision, batch_sizes, repeats, busy, images)
    use_fused, fused_note = speed.fused_choice(device, fused, compile=compile)
    if fused_note:
        _emit(on_event, event="fallback", notice=fused_note)
    use_fused = use_fused and speed.fused_applies(build_model(arch))  # not --arch classic
    backends = speed.configure_backends(device)
    rows = _cells(
        device,
        threads,
        batch_sizes,
        channels_last,
        busy,
        on_event,
        images=images,
        repeats=repeats,
        arch=arch,
        precision=precision,
        compile=compile,
        seed=seed,
        fused=use_fused,
        do_train=train,
        do_infer=infer,
    )
    settings = {
        "arch": arch,
        "precision": precision,
        "channels_last": "auto" if channels_last is None else channels_last,
        "channels_last_min_batch": speed.CHANNELS_LAST_MIN_BATCH,
        "compile": compile,
        "fused": use_fused,
        "images": images,
        "repeats": repeats,
    }
    return _report(device, settings, backends, busy, rows)


def _report(device, settings: dict, backends: dict, busy: int, rows: list[dict]) -> dict:
    """run_bench's JSON-ready result: the machine, the settings and every cell's row."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu.name()
    return {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        **settings,
        "backends": backends,
        "physical_cores": speed.default_threads(),
        "busy": busy,
        "load_end": _load(),
        "results": rows,
    }
