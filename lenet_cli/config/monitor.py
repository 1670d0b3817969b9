"""The metric a run follows (``--early-stop-metric``) and the options that go with it, checked.

Standard library only. One metric decides three things: when ``--early-stop`` stops, which epoch
``best.pt`` holds, and which checkpoints ``--save-top-k`` keeps. Losses improve downwards,
accuracies upwards; an epoch improves on the best when it beats it by more than ``--min-delta``.
"""

from __future__ import annotations

from lenet_cli.config.fields import TrainConfig
from lenet_cli.errors import UsageError

LOWER_IS_BETTER = frozenset({"val_loss", "test_loss"})


def monitored(cfg: TrainConfig) -> str:
    """The metric ``cfg`` follows: its --early-stop-metric, else val_acc with a validation
    split, else test_acc."""
    if cfg.early_stop_metric is not None:
        return cfg.early_stop_metric
    return "val_acc" if cfg.val_split > 0 else "test_acc"


def better(value: float, best: float | None, metric: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` of ``metric`` beats ``best`` (None: nothing yet) by more than
    ``min_delta``."""
    if best is None:
        return True
    if metric in LOWER_IS_BETTER:
        return value < best - min_delta
    return value > best + min_delta


def rank_key(value: float, metric: str) -> float:
    """A sort key that puts the better value of ``metric`` first."""
    return value if metric in LOWER_IS_BETTER else -value


def check_options(cfg: TrainConfig) -> None:
    """Options that cannot work together: a UsageError (exit 2) naming them."""
    if (cfg.early_stop_metric or "").startswith("val_") and cfg.val_split == 0:
        raise UsageError(
            f"--early-stop-metric {cfg.early_stop_metric} needs a validation split",
            hint="add --val-split 0.1 (or follow test_acc / test_loss)",
        )
    if cfg.clip_grad_norm is not None and cfg.clip_grad_value is not None:
        raise UsageError(
            "--clip-grad-norm and --clip-grad-value are two ways to clip: choose one",
            hint="--clip-grad-norm scales all gradients together; --clip-grad-value clamps each",
        )
