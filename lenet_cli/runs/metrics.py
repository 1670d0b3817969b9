"""What a run records: its counters (``RunState``), its epoch rows and summary, and
the environment of each session (``env_info``). rundir.py writes them into the run directory.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from lenet_cli import __version__
from lenet_cli.config.monitor import better


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def env_info(
    device: torch.device,
    threads: int,
    seed: int,
    deterministic: bool,
    fused: bool = False,
    fused_step: str | None = None,
) -> dict[str, Any]:
    """Where and with what a session ran."""
    info: dict[str, Any] = {
        "time": now(),
        "argv": list(sys.argv),
        "lenet_cli": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "threads": threads,
        "threads_note": "default --threads is the physical cores (speed.default_threads)",
        "fused_kernels": fused,  # the CPU kernels of fused.py (float rounding differs)
        # each training step one C call (fused_step.py): "update" (the optimizer's too) or
        # "gradients" (torch's step follows); null: autograd and torch.optim
        "fused_step": fused_step,
        "cpu_count": os.cpu_count(),
        "seed": seed,
        "deterministic": deterministic,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


class RunState:
    """Counters of a run that a checkpoint carries: where it is, the open epoch's sums, the best.

    ``epoch`` counts completed epochs; ``batch_in_epoch`` the batches done of the open one.
    """

    FIELDS = (
        "epoch",
        "step",
        "batch_in_epoch",
        "loss_sum",
        "correct",
        "seen",
        "seconds",
        "total_seconds",
        "total_images",
        "best",
        "epochs_since_best",
        "last_row",
        "schedule_start",
        "top_k",
    )

    def __init__(self) -> None:
        self.epoch = self.step = self.batch_in_epoch = 0
        self.loss_sum, self.correct, self.seen, self.seconds = 0.0, 0, 0, 0.0
        self.total_seconds, self.total_images = 0.0, 0
        self.best: dict[str, Any] | None = None
        self.epochs_since_best = 0
        self.last_row: dict[str, Any] | None = None
        self.schedule_start = 0  # the step where the lr schedule began (--restart-schedule)
        # --save-top-k: the epochs whose checkpoints are kept, best first ({epoch, step, value})
        self.top_k: list[dict[str, Any]] = []

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunState:
        state = cls()
        for k in cls.FIELDS:
            if k in d:
                setattr(state, k, d[k])
        return state

    def next_epoch(self) -> None:
        self.total_seconds += self.seconds
        self.total_images += self.seen
        self.epoch += 1
        self.batch_in_epoch = self.seen = self.correct = 0
        self.loss_sum = self.seconds = 0.0

    def track_best(self, row: dict[str, Any], metric: str, min_delta: float = 0.0) -> bool:
        """Record ``row`` as the latest; True when its ``metric`` (val_acc, test_loss...) beats
        the best so far by more than ``min_delta`` (config/monitor.py)."""
        self.last_row = row
        value = row[metric]
        best = self.best["value"] if self.best is not None else None
        if better(value, best, metric, min_delta):
            self.best = {
                "selected_on": metric.partition("_")[0],
                "metric": metric,
                "value": value,
                "epoch": row["epoch"],
                "step": row["step"],
                "test_loss": row["test_loss"],
                "test_acc": row["test_acc"],
                "val_loss": row["val_loss"],
                "val_acc": row["val_acc"],
            }
            self.epochs_since_best = 0
            return True
        self.epochs_since_best += 1
        return False

    def row(self, partial: bool, lr: float, val: dict | None, test: dict) -> dict[str, Any]:
        """The metrics row of the epoch just trained (``val``/``test``: evaluation results)."""
        seen = max(1, self.seen)
        return {
            "epoch": self.epoch + 1,
            "step": self.step,
            "partial": partial,
            "train_loss": self.loss_sum / seen,
            "train_acc": self.correct / seen,
            "val_loss": val["loss"] if val else None,
            "val_acc": val["accuracy"] if val else None,
            "test_loss": test["loss"],
            "test_acc": test["accuracy"],
            "lr": lr,
            "images_per_s": self.seen / max(1e-9, self.seconds),
            "seconds": self.seconds,
            "time": now(),
        }

    def summary(self, run_dir: Path, data: str, arch: str, reason: str, wall: float) -> dict:
        """The run's result: final and best test metrics, time and speed (``--json``)."""
        last = self.last_row or {}
        seconds = self.total_seconds + self.seconds
        return {
            "run_dir": str(run_dir),
            "data": data,
            "arch": arch,
            "stopped": reason,
            "epochs": self.epoch,
            "steps": self.step,
            "final": {k: last.get(k) for k in ("test_loss", "test_acc", "val_loss", "val_acc")},
            "best": dict(self.best) if self.best else None,
            "seconds": wall,
            "train_seconds": seconds,
            "images_per_s": (self.total_images + self.seen) / max(1e-9, seconds),
        }
