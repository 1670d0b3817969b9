"""One cell of ``lenet bench``: training and inference images/s at one batch size and the
current thread count (``bench_one``), on random data made once on the device.

Training is lenet's own path: a seeded randperm per pass and the step `lenet train` takes
(``step.choose``), SGD with momentum as ``optim`` builds it. Each figure is the median of
``repeats`` timed passes over all the images after one untimed warm-up pass, each pass ended by
a device synchronize; nothing in a timed pass reads a value back to the host.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from lenet_cli.device import synchronize
from lenet_cli.fast import speed
from lenet_cli.fast.threads import ThreadTuner
from lenet_cli.model import INPUT_SHAPE, NUM_CLASSES, build_model
from lenet_cli.optim import build_optimizer
from lenet_cli.training.step import choose

EPOCH_IMAGES = 60_000  # ``*_epoch_s``: the time an epoch of this many images takes


def _median_rate(
    run_pass: Callable[[], None], device: torch.device, images: int, repeats: int
) -> tuple[float, float, list[float]]:
    """(warm-up seconds, median images/s, every pass's seconds)."""
    t0 = time.perf_counter()
    run_pass()
    synchronize(device)
    warmup = time.perf_counter() - t0
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_pass()
        synchronize(device)
        seconds.append(time.perf_counter() - t0)
    return warmup, images / statistics.median(seconds), seconds


def _random_data(
    device: torch.device, images: int, seed: int, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` random images and labels, made once on ``device`` from ``seed``, in the layout."""
    gen = torch.Generator(device=device).manual_seed(seed)
    x_all = torch.randn((images, *INPUT_SHAPE), generator=gen, device=device)
    y_all = torch.randint(0, NUM_CLASSES, (images,), generator=gen, device=device)
    return speed.prepare_inputs(x_all, channels_last), y_all


def _train_figures(
    run, model, x_all, y_all, *, device, batch_size, repeats, precision, seed, lr, tuner, compiled
) -> dict[str, Any]:
    """Training images/s at one batch size: `lenet train`'s optimizer, batches and step."""
    optimizer = build_optimizer(
        "sgd", model.parameters(), lr=lr, momentum=0.9, weight_decay=0.0
    )  # as `lenet train` builds it (fused)
    scaler = speed.grad_scaler(device, precision)
    order = torch.Generator().manual_seed(seed)
    steps = choose(
        run,
        optimizer,
        "cross-entropy",
        0.0,
        x_all,
        y_all,
        batch_size,
        precision=precision,
        scaler=scaler,
        compiled=compiled,
    )  # as `lenet train` does

    def train_pass() -> None:
        for batch in steps.batches(order):
            started = time.perf_counter()
            n = steps.step(batch)[2]
            if tuner is not None:  # CPU steps are synchronous
                tuner.record(time.perf_counter() - started, n)

    model.train()
    warm, rate, secs = _median_rate(train_pass, device, len(x_all), repeats)
    figures = {
        "train_images_per_s": rate,
        "train_epoch_s": EPOCH_IMAGES / rate,
        "train_warmup_s": warm,
        "train_pass_s": secs,
    }
    if tuner is not None:
        figures["threads_chosen"] = [c.threads for c in tuner.choices]
    return figures


def _infer_figures(run, model, x_all, *, device, batch_size, repeats, precision) -> dict[str, Any]:
    """Inference images/s at one batch size: eval mode, ``torch.inference_mode()``, autocast."""
    images = len(x_all)
    model.eval()

    @torch.inference_mode()
    def infer_pass() -> None:
        with speed.autocast(device, precision):
            for start in range(0, images, batch_size):
                run(x_all[start : start + batch_size])

    warm, rate, secs = _median_rate(infer_pass, device, images, repeats)
    return {
        "infer_images_per_s": rate,
        "infer_us_per_batch": 1e6 * batch_size / rate,
        "infer_warmup_s": warm,
        "infer_pass_s": secs,
    }


def bench_one(
    *,
    device: torch.device,
    batch_size: int,
    images: int,
    repeats: int,
    arch: str,
    precision: str,
    channels_last: bool,
    compile: bool,
    seed: int,
    fused: bool = False,
    lr: float = 0.01,
    do_train: bool = True,
    do_infer: bool = True,
    tuner: ThreadTuner | None = None,
) -> dict[str, Any]:
    """One (batch size, current threads) cell: training and inference figures."""
    x_all, y_all = _random_data(device, images, seed, channels_last)
    torch.manual_seed(seed)
    model = build_model(arch)
    run = speed.prepare_model(
        model, device, channels_last=channels_last, compile=compile, fused=fused
    )
    row: dict[str, Any] = {"batch_size": batch_size, "threads": torch.get_num_threads()}
    timing = {
        "device": device,
        "batch_size": batch_size,
        "repeats": repeats,
        "precision": precision,
    }
    if do_train:
        row.update(
            _train_figures(
                run, model, x_all, y_all, seed=seed, lr=lr, tuner=tuner, compiled=compile, **timing
            )
        )
    if do_infer:
        row.update(_infer_figures(run, model, x_all, **timing))
    return row
