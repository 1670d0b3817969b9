"""Optimizers and learning-rate schedules by name.

``manual-sgd`` is the tutorial's rule, ``f.data.sub_(f.grad.data * learning_rate)`` on each
parameter, written as a tiny ``torch.optim.Optimizer`` so that checkpoints and resume treat it
like the others (it has no state; its state_dict holds the lr).

Every schedule is a ``LambdaLR`` stepped once per optimisation step, whose multiplier is a pure
function of the step count. Its state_dict is only the step count and base lrs, so a checkpoint
resumes it exactly, and resuming with a longer ``--epochs`` recomputes the curve for the new
length instead of failing. ``onecycle`` here schedules the lr only (warm-up from lr/25 to lr,
then cosine down to lr/1e4); it does not cycle momentum as torch's OneCycleLR does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from lenet_cli.lazy_dynamo import without_dynamo


class ManualSGD(torch.optim.Optimizer):
    """w -= lr * grad, nothing else (the tutorial's step 7)."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 (torch's signature)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(p.grad * group["lr"])
        return loss


def build_optimizer(
    name: str,
    params: Iterable[nn.Parameter],
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    lean: bool = True,
) -> torch.optim.Optimizer:
    """The optimizer ``name``; fused or foreach where torch offers it (fewer kernels per step).

    ``lean``: built and stepped without importing torch._dynamo (lazy_dynamo.py: a faster
    start-up, the same numbers); pass False when the process will torch.compile.
    """
    params = list(params)
    # One fused kernel per step on CPU and CUDA: for LeNet's small tensors on a CPU, a fused
    # AdamW step takes about a third of foreach's time, SGD with momentum under half.
    fused = bool(params) and params[0].device.type in ("cpu", "cuda")
    fast = {"fused": True} if fused else {"foreach": True}
    kw = {"lr": lr, "weight_decay": weight_decay}
    makers = {
        "manual-sgd": lambda: ManualSGD(params, lr=lr),
        "sgd": lambda: torch.optim.SGD(params, momentum=momentum, **kw, **fast),
        "adam": lambda: torch.optim.Adam(params, **kw, **fast),
        "adamw": lambda: torch.optim.AdamW(params, **kw, **fast),
        "rmsprop": lambda: torch.optim.RMSprop(params, momentum=momentum, **kw, foreach=True),
        "adadelta": lambda: torch.optim.Adadelta(params, **kw, foreach=True),
    }
    if name not in makers:
        raise ValueError(f"unknown optimizer {name!r}")
    return without_dynamo(makers[name]) if lean else makers[name]()


def adopt_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give every state tensor of a parameter's shape (momentum buffers, Adam's averages) its
    parameter's memory layout, values unchanged. A checkpoint keeps the layout its run had
    (channels_last or not), and a tensor loaded from a file may even be strided oddly (an
    expanded view): torch's fused CPU kernels assume the parameter's layout, and the C update
    (fused_step.py) reads the state only when it is laid out as its parameter."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if (
                    isinstance(value, torch.Tensor)
                    and value.shape == p.shape
                    and value.stride() != p.stride()
                ):
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def lr_factor(
    name: str,
    step: int,
    *,
    total_steps: int,
    steps_per_epoch: int,
    step_size: int,
    gamma: float,
    warmup: float,
) -> float:
    """The multiplier of the base lr after ``step`` optimisation steps."""
    if name == "none":
        return 1.0
    if name == "step":
        return gamma ** (step // max(1, step_size * steps_per_epoch))
    total = max(1, total_steps)
    if name == "cosine":
        t = min(step, total) / total
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if name == "onecycle":
        start, end = 1.0 / 25.0, 1.0 / 1e4
        up = max(1, round(warmup * total))
        if step < up:
            return start + (1.0 - start) * step / up
        t = min(step - up, total - up) / max(1, total - up)
        return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(f"unknown scheduler {name!r}")


def build_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    step_size: int = 5,
    gamma: float = 0.1,
    warmup: float = 0.2,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step schedule (see the module docstring)."""

    def factor(step: int) -> float:
        return lr_factor(
            name,
            step,
            total_steps=total_steps,
            steps_per_epoch=steps_per_epoch,
            step_size=step_size,
            gamma=gamma,
            warmup=warmup,
        )

    factor(0)  # an unknown name fails here, not at the first step
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
