"""``lenet lr-find``: the learning-rate range test (L. Smith, "Cyclical Learning Rates for
Training Neural Networks", 2015).

A short run of the training as configured (the same data, model, optimizer, clipping and
training step, the fused step included) whose learning rate rises exponentially from
``start_lr`` to ``end_lr`` over ``steps`` steps, one batch each. Nothing is saved. The loss of
each batch is recorded with its rate. The test stops early when the loss diverges: its running
average (an exponential moving average with bias correction, beta 0.9) above 4x its lowest,
or a loss that is not finite; that is its normal end on a wide range, a result and not an
error.

The curve the suggestions are read from (``smoothed``) is the same average run forwards and
then backwards over the logarithms of the recorded losses, so that it does not lag behind the
rate (a running average alone puts every feature of the curve several steps, most of a decade
of lr, late) and the diverging losses at the end, hundreds of times the others, do not pull
the curve before them up. The
suggestion (``suggested_lr``) is where the smoothed loss falls fastest: the steepest negative
slope of the smoothed loss against log10(lr), between the first tenth of the steps and the
lowest smoothed loss. Also reported: the rate at the lowest smoothed loss and a tenth of it
(the other common pick: the loss is still falling there, well before it turns). Both are
starting points for ``lenet train --lr``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from lenet_cli.config import TrainConfig
from lenet_cli.errors import UsageError
from lenet_cli.fast import speed
from lenet_cli.training.run import Run
from lenet_cli.training.splits import Splits, load_splits
from lenet_cli.use.weights import init_weights

BETA = 0.9  # the smoothing of the loss curve
DIVERGED = 4.0  # the smoothed loss above this many times its lowest: diverged
SETTLE = 0.1  # the first tenth of the steps is left out of the steepest-slope search


def lr_at(i: int, steps: int, start: float, end: float) -> float:
    """The rate of step ``i`` of ``steps``: from ``start`` to ``end``, evenly in log space."""
    return start * (end / start) ** (i / max(1, steps - 1))


def check_range(start_lr: float, end_lr: float, steps: int) -> None:
    if not (0 < start_lr < end_lr) or not math.isfinite(end_lr):
        raise UsageError(
            f"--start-lr {start_lr:g} and --end-lr {end_lr:g} are not a rising range of rates",
            hint="e.g. --start-lr 1e-7 --end-lr 10",
        )
    if steps < 5:
        raise UsageError(f"--steps {steps} is too few to draw a curve", hint="use 50 or more")


def running_average(losses: list[float], beta: float = BETA) -> list[float]:
    """The bias-corrected exponential moving average of ``losses``, step by step."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def smooth(losses: list[float], beta: float = BETA) -> list[float]:
    """``running_average`` of the log losses forwards, then backwards over the result: no lag,
    and a divergence does not leak back far."""
    logs = [math.log(max(loss, 1e-30)) for loss in losses]
    both = running_average(running_average(logs, beta)[::-1], beta)[::-1]
    return [math.exp(v) for v in both]


def suggest(lrs: list[float], smoothed: list[float]) -> dict[str, Any]:
    """The suggested rate (steepest descent of the smoothed loss) and the rate at its lowest."""
    if not smoothed:
        return {"suggested_lr": None, "min_loss_lr": None, "min_loss": None}
    low = min(range(len(smoothed)), key=smoothed.__getitem__)
    first = min(int(len(smoothed) * SETTLE), max(0, low - 2))
    logs = [math.log10(lr) for lr in lrs]
    slopes = [
        (smoothed[i + 1] - smoothed[i - 1]) / (logs[i + 1] - logs[i - 1])
        for i in range(max(1, first), min(low, len(smoothed) - 1))
    ]
    steepest = None
    if slopes and min(slopes) < 0:
        steepest = max(1, first) + min(range(len(slopes)), key=slopes.__getitem__)
    return {
        "suggested_lr": lrs[steepest] if steepest is not None else None,
        "min_loss_lr": lrs[low],
        "min_loss": smoothed[low],
    }


def find_lr(
    cfg: TrainConfig,
    device: torch.device,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    data_explicit: bool = False,
    on_event: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Run the range test with ``cfg``'s data, model, optimizer and step; returns the curve
    (``lrs``, ``losses``, ``smoothed``), why it stopped and the suggestions."""
    check_range(start_lr, end_lr, steps)

    def emit(**event: Any) -> None:
        if on_event is not None:
            on_event(event)

    run, data = _build_run(cfg, device, data_explicit, emit)
    emit(event="lr_find_start", steps=steps, start_lr=start_lr, end_lr=end_lr,
         device=str(device), fused_step=run.steps.mode)  # fmt: skip
    lrs, losses, stopped = _sweep(run, steps, start_lr, end_lr, emit)
    smoothed = smooth(losses)
    return {
        "start_lr": start_lr,
        "end_lr": end_lr,
        "steps_planned": steps,
        "steps": len(losses),
        "stopped": stopped,
        "data": data.train.name,
        "arch": cfg.arch,
        "optimizer": cfg.optimizer,
        "batch_size": cfg.batch_size,
        "device": str(device),
        "fused_step": run.steps.mode,
        **suggest(lrs, smoothed),
        "how": "steepest descent of the smoothed loss against log10(lr)",
        "lrs": lrs,
        "losses": losses,
        "smoothed": smoothed,
    }


def _build_run(
    cfg: TrainConfig, device: torch.device, data_explicit: bool, emit: Callable[..., None]
) -> tuple[Run, Splits]:
    """The run as ``lenet train`` would build it (data, model, optimizer, step), with
    ``--init``'s weights loaded in place."""
    speed.check_precision(device, cfg.precision)
    fused, note = speed.fused_choice(device, cfg.fused, compile=cfg.compile)
    if note:
        emit(event="fallback", notice=note)
    torch.manual_seed(cfg.seed)
    data = load_splits(cfg, device, data_explicit, emit)
    run = Run(cfg, device, data, fused)
    if cfg.init is not None:
        state, notice = init_weights(cfg.init, cfg.arch)
        run.model.load_state_dict(state)  # in place: the step and optimizer share them
        emit(event="fallback", notice=notice)
    return run, data


def _sweep(
    run: Run, steps: int, start_lr: float, end_lr: float, emit: Callable[..., None]
) -> tuple[list[float], list[float], str]:
    """One batch per rate, the rate rising, until ``steps`` or divergence; returns the rates,
    the losses and why it stopped (``"steps"`` or ``"diverged"``)."""
    run.model.train()
    lrs: list[float] = []
    losses: list[float] = []
    stopped, avg, lowest = "steps", 0.0, math.inf  # the running average and its lowest
    while len(losses) < steps and stopped == "steps":
        for batch in run.steps.batches(run.generator):
            lr = lr_at(len(losses), steps, start_lr, end_lr)
            for group in run.optimizer.param_groups:
                group["lr"] = lr  # the fused step reads it from the group at every step
            loss = float(run.steps.step(batch)[0])
            if not math.isfinite(loss):
                stopped = "diverged"
                break
            avg = BETA * avg + (1 - BETA) * loss
            value = avg / (1 - BETA ** (len(losses) + 1))
            lrs.append(lr)
            losses.append(loss)
            lowest = min(lowest, value)
            emit(event="lr_find_step", step=len(losses), steps=steps, lr=lr, loss=loss)
            if value > DIVERGED * lowest:
                stopped = "diverged"
                break
            if len(losses) >= steps:
                break
    return lrs, losses, stopped
