"""The open epoch's running sums, and the checks that stop a run that turned non-finite.

The loss sum and correct count stay on the device between syncs (each ``.item()`` is a host
sync): they are read for progress, every ``check_every`` steps for the NaN check, and at the end
of an epoch. The one-call CPU step (fused_step.py) gives Python numbers instead, summed as such.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from lenet_cli.device import sum_dtype
from lenet_cli.errors import NonFiniteLossError
from lenet_cli.runs.metrics import RunState


class EpochSums:
    """The open epoch's loss sum and correct count, kept on the device between syncs."""

    def __init__(self, state: RunState, device: torch.device, lr: float, run_dir: Path) -> None:
        self.state, self.lr, self.run_dir = state, lr, run_dir
        self.skip = state.batch_in_epoch
        self.loss_sum = torch.tensor(state.loss_sum, dtype=sum_dtype(device), device=device)
        self.correct = torch.tensor(state.correct, dtype=torch.int64, device=device)
        self.host_loss, self.host_correct = 0.0, 0  # what add() was given as numbers
        self.seen, self.base_seconds = state.seen, state.seconds
        self.fresh = 0  # images trained in this session's part of the epoch
        self.t0 = self.last_report = time.perf_counter()

    def clear(self) -> None:
        """Start from zero (a data-parallel rank other than 0: rank 0 carries the sums so far)."""
        self.loss_sum.zero_()
        self.correct.zero_()
        self.host_loss, self.host_correct = 0.0, 0
        self.seen = 0

    def add(self, loss: torch.Tensor | float, hits: torch.Tensor | int, n: int) -> None:
        """A batch's mean loss and correct count: device tensors, or numbers from the CPU."""
        if isinstance(loss, torch.Tensor):
            self.loss_sum += loss.to(self.loss_sum.dtype) * n  # a batch's mean, by its size
            self.correct += hits
        else:
            self.host_loss += loss * n
            self.host_correct += hits
        self.seen += n
        self.fresh += n

    def due(self, interval: float) -> bool:
        return time.perf_counter() - self.last_report >= interval

    def sync(self) -> None:
        """Copy the sums into the run state (a device sync) and stop on a non-finite loss."""
        s = self.state
        s.loss_sum = self.loss_sum.item() + self.host_loss
        s.correct, s.seen = int(self.correct) + self.host_correct, self.seen
        s.seconds = self.base_seconds + time.perf_counter() - self.t0
        if not math.isfinite(s.loss_sum):
            raise NonFiniteLossError(
                f"the training loss became non-finite in epoch {s.epoch + 1} (at or before "
                f"step {s.step}); training stopped and no checkpoint was written for it",
                hint=f"lower --lr (now {self.lr}) or warm up with --scheduler onecycle; the last "
                f"good checkpoint, if any, is {self.run_dir / 'last.pt'}",
            )

    def report(self) -> dict[str, float]:
        self.sync()
        self.last_report = now = time.perf_counter()
        return {
            "loss": self.state.loss_sum / max(1, self.seen),
            "images_per_s": self.fresh / max(1e-9, now - self.t0),
        }


def check_finite_eval(row: dict[str, Any], epoch: int, lr: float) -> None:
    """Stop before saving when the weights are finite but evaluating them is not."""
    for key in ("val_loss", "test_loss"):
        value = row.get(key)
        if value is not None and not math.isfinite(value):
            raise NonFiniteLossError(
                f"the {key.split('_')[0]} loss became non-finite in epoch {epoch}; training "
                "stopped and no checkpoint was written for it",
                hint=f"lower --lr (now {lr})",
            )
