"""TensorBoard logging of a training run: a listener on the training engine's events.

Writes into the run directory itself, so ``tensorboard --logdir runs`` shows every run under its
name (MLflow and W&B import the same event files). Per step (``--log-every N``): the training
loss and learning rate; per epoch: the row of metrics.jsonl; once: a grid of test digits as the
network sees them, and at the end the hyperparameters with the final metrics (TensorBoard's
HParams tab). ``torch.utils.tensorboard`` is imported here only, when asked for: it needs the
``tensorboard`` package (the extra ``lenet-cli[tensorboard]``) and takes seconds to import.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lenet_cli.errors import MissingExtraError
from lenet_cli.runs.metricsfile import COLUMNS

# the numbers of an epoch row (metricsfile.COLUMNS) that are worth a chart
_EPOCH_SCALARS = tuple(
    c for c in COLUMNS if c not in ("epoch", "step", "partial", "seconds", "time")
)


def summary_writer_class():
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard's own check is a bare ImportError)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MissingExtraError(
            "--tensorboard needs the tensorboard package, which is not installed",
            hint="pip install 'lenet-cli[tensorboard]'",
        ) from None
    return SummaryWriter


def summary_writer(log_dir: Path, purge_step: int | None):
    """A SummaryWriter; one resumed at ``purge_step`` drops the events logged after it."""
    return summary_writer_class()(str(log_dir), purge_step=purge_step or None)


def digit_grid(images: torch.Tensor, mean: float, std: float, side: int = 8) -> torch.Tensor:
    """The first side*side images [N, 1, H, W] (normalised) as one [1, side*H, side*W] picture."""
    n = min(side * side, images.shape[0])
    x = images[:n].detach().float().cpu().contiguous() * std + mean
    x = torch.cat([x, torch.zeros(side * side - n, *x.shape[1:])]).clamp(0, 1)
    h, w = x.shape[-2:]
    return x.view(side, side, h, w).permute(0, 2, 1, 3).reshape(1, side * h, side * w)


def _hparam(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) else str(value)


class TensorBoardLog:
    """Call it with each engine event; ``close()`` at the end writes the hyperparameters."""

    def __init__(self, log_dir: Path, config: dict[str, Any], start_step: int = 0) -> None:
        self.writer = summary_writer(log_dir, start_step)
        self.config = config
        self.last_row: dict[str, Any] | None = None

    def digits(self, images: torch.Tensor, mean: float, std: float) -> None:
        self.writer.add_image(
            "test digits (as the network sees them)", digit_grid(images, mean, std)
        )

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "step":
            self.writer.add_scalar("step/loss", event["loss"], event["step"])
            self.writer.add_scalar("step/lr", event["lr"], event["step"])
        elif kind == "epoch_end":
            row = event["row"]
            for key in _EPOCH_SCALARS:
                if row.get(key) is not None:
                    split, _, name = key.partition("_")
                    tag = f"{split}/{name}" if split in ("train", "val", "test") else f"epoch/{key}"
                    self.writer.add_scalar(tag, row[key], row["step"])
            self.last_row = row
            self.writer.flush()

    def close(self) -> None:
        row = self.last_row or {}
        metrics = {
            f"hparam/{k}": row[k]
            for k in ("test_acc", "test_loss", "val_acc")
            if row.get(k) is not None
        }
        if metrics:
            hparams = {k: _hparam(v) for k, v in self.config.items() if v is not None}
            self.writer.add_hparams(hparams, metrics, run_name=".")
        self.writer.close()


def require_tensorboard() -> None:
    """MissingExtraError now, before training starts, when the package is not installed."""
    summary_writer_class()


@contextlib.contextmanager
def tensorboard_log(cfg, run_dir: Path, start_step: int, test) -> Iterator[TensorBoardLog | None]:
    """A TensorBoardLog for the run (None without --tensorboard), closed when training ends."""
    if not cfg.tensorboard:
        yield None
        return
    board = TensorBoardLog(run_dir, cfg.to_dict(), start_step)
    board.digits(test.images, test.mean, test.std)
    try:
        yield board
    finally:
        board.close()
