"""The training step, chosen once when a run is built: the fused step or PyTorch's.

Both kinds offer the same two things, so the loop (loop.py) and ``lenet bench`` never ask which
one runs:
- ``batches(generator)``: the epoch's batches, one seeded permutation of the training set;
- ``step(batch) -> (loss, hits, n)``: one optimisation step on a batch of ``n`` images, its mean
  loss and correct count (device tensors or Python numbers; ``EpochSums.add`` takes either).

``FusedSteps`` is the fused step (fast/fused_step.py: forward, loss, backward and the
optimizer's update in one C call), reading each batch's rows where they lie. ``TorchSteps`` is
``train_step`` (PyTorch's ops and autograd) on gathered batches, shared out between the ranks
of a data-parallel job. ``choose`` takes the fused step wherever it applies; ``mode`` is what
env.json's ``fused_step`` and the start line say: "update", "gradients" or None, and
``why_not_fused`` why not, where the fused kernels run (``--dropout``: the fused step has none).
With ``--augment`` both augment each batch in ``step()``, never while a resume skips batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from lenet_cli.data import batch_rows, batches
from lenet_cli.fast import speed
from lenet_cli.fast.fused import FusedNet
from lenet_cli.fast.fused_step import FusedStep, why_not
from lenet_cli.losses import LossFn, build_loss
from lenet_cli.training import distributed
from lenet_cli.training.augment import Augment


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    weight: float = 1.0,
    clip: Clip | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step. Returns (loss, correct count) as device tensors: no sync here.

    ``precision`` other than fp32 runs the forward pass under autocast; ``scaler`` (fp16 on CUDA)
    scales the loss. With fp32 and no scaler this is the plain zero_grad/backward/step.
    ``weight`` scales the gradient only: a data-parallel rank's share of the global batch.
    ``clip`` clips the gradients between the backward and the update (after unscaling them).
    """
    optimizer.zero_grad(set_to_none=True)
    with speed.autocast(x.device, precision):
        scores = model(x)
        # float() is a no-op in fp32; an empty share of a batch (data-parallel) has no loss but
        # still joins the backward, where the ranks' gradients are averaged
        loss = loss_fn(scores.float(), y) if y.numel() else scores.float().sum()
    scaled = loss if weight == 1.0 else loss * weight
    if scaler is not None and scaler.is_enabled():
        scaler.scale(scaled).backward()
        if clip is not None:
            scaler.unscale_(optimizer)  # clip the true gradients; step() does not unscale again
            clip(optimizer)
        scaler.step(optimizer)  # skips the step when a gradient is inf/nan, without a sync
        scaler.update()
    else:
        scaled.backward()
        if clip is not None:
            clip(optimizer)
        optimizer.step()
    return loss.detach(), (scores.detach().argmax(dim=1) == y).sum()


class Clip:
    """``--clip-grad-norm`` / ``--clip-grad-value``: what clips the gradients before the
    update, torch's ``clip_grad_norm_`` (global L2 norm of all gradients) or ``clip_grad_value_``.
    The fused step clips the same way in C (fast/fused_step.py)."""

    def __init__(self, norm: float | None = None, value: float | None = None) -> None:
        self.norm, self.value = norm, value

    @classmethod
    def of(cls, norm: float | None, value: float | None) -> Clip | None:
        return None if norm is None and value is None else cls(norm, value)

    def __call__(self, optimizer: torch.optim.Optimizer) -> None:
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if self.value is not None:
            torch.nn.utils.clip_grad_value_(params, self.value)
        if self.norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.norm)  # no sync: the norm stays a tensor


class TorchSteps:
    """``train_step`` on gathered batches (each rank of a job takes its share of each).

    ``augment`` (augment.py) redraws each whole batch before the share is taken, so every rank
    of a job draws alike; ``why_not_fused`` says why the fused step does not run (start line,
    env.json), where the fused kernels do."""

    mode = None

    def __init__(
        self,
        net: nn.Module,
        optimizer,
        loss_fn: LossFn,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        precision: str = "fp32",
        scaler: torch.amp.GradScaler | None = None,
        job: distributed.Dist | None = None,
        clip: Clip | None = None,
        augment: Augment | None = None,
        why_not_fused: str | None = None,
    ) -> None:
        self.net, self.optimizer, self.loss_fn = net, optimizer, loss_fn
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.precision, self.scaler, self.job, self.clip = precision, scaler, job, clip
        self.augment, self.why_not_fused = augment, why_not_fused

    def batches(self, generator: torch.Generator) -> Iterable[Any]:
        return batches(self.images, self.labels, self.batch_size, generator=generator)

    def step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[Any, Any, int]:
        x, y = batch
        if self.augment is not None:
            x = self.augment(x)
        x, y, weight = distributed.share(x, y, self.job)
        loss, hits = train_step(
            self.net,
            self.optimizer,
            self.loss_fn,
            x,
            y,
            precision=self.precision,
            scaler=self.scaler,
            weight=weight,
            clip=self.clip,
        )
        return loss, hits, int(y.shape[0])


class FusedSteps:
    """The fused step (one C call) on each batch's rows of the training set, read in place;
    with ``augment``, on the batch gathered and augmented (augment.py)."""

    why_not_fused = None

    def __init__(
        self,
        fused: FusedStep,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        augment: Augment | None = None,
    ) -> None:
        self.fused, self.images, self.labels, self.batch_size = fused, images, labels, batch_size
        self.augment = augment

    @property
    def mode(self) -> str:
        """ "update": the optimizer's update is in the C call too; "gradients": torch's step
        follows it (an optimizer the C update does not compute)."""
        return "update" if self.fused.updates() else "gradients"

    def batches(self, generator: torch.Generator) -> Iterable[torch.Tensor]:
        return batch_rows(len(self.labels), self.batch_size, generator=generator)

    def step(self, rows: torch.Tensor) -> tuple[float, int, int]:
        if self.augment is None:
            loss, hits = self.fused.rows(self.images, self.labels, rows)
        else:
            x = self.augment(self.images.index_select(0, rows))
            loss, hits = self.fused(x, self.labels.index_select(0, rows))
        return loss, hits, int(rows.shape[0])


def choose(
    net: nn.Module,
    optimizer,
    loss: str,
    smoothing: float,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    compiled: bool = False,
    job: distributed.Dist | None = None,
    train_net: nn.Module | None = None,
    clip: Clip | None = None,
    augment: Augment | None = None,
    dropout: bool = False,
) -> TorchSteps | FusedSteps:
    """The fused step where it applies (fast/fused_step.py: ``why_not``), else ``train_step``
    on ``train_net`` (the model DistributedDataParallel wraps in a job, or dropout.py's
    ``DropoutNet``; ``net`` otherwise). ``clip``: both clip in the same place, between the
    backward and the update. ``augment``: both augment each batch before the step.
    ``dropout``: the fused step has none, so ``train_step`` runs."""
    scaled = scaler is not None and scaler.is_enabled()
    reason = why_not(
        net,
        optimizer,
        loss,
        precision=precision,
        scaled=scaled,
        compiled=compiled,
        data_parallel=job is not None,
    )
    if reason is None and dropout:
        reason = "the fused step has no dropout"
    if reason is None:
        fused = FusedStep(net, optimizer, loss, smoothing)
        if clip is not None:
            fused.clip(norm=clip.norm, value=clip.value)
        return FusedSteps(fused, images, labels, batch_size, augment)
    return TorchSteps(
        train_net or net,
        optimizer,
        build_loss(loss, smoothing),
        images,
        labels,
        batch_size,
        precision=precision,
        scaler=scaler,
        job=job,
        clip=clip,
        augment=augment,
        # said where the fused kernels run (with them off, fused_kernels false says it)
        why_not_fused=reason if isinstance(net, FusedNet) else None,
    )
