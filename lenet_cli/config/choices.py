"""What an option may be and where its flag is shown: the choices (``Literal`` types, shared by
the config and the flags, and their tuples of values), the panels of `lenet train --help`, and
``opt``, which declares a ``TrainConfig`` field with its help, rule and panel.

Standard library only.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Literal, get_args

from lenet_cli.config.rules import Range, Rule

Arch = Literal["tutorial", "lenet5", "classic"]
LossName = Literal["cross-entropy", "mse"]
DataName = Literal["random", "mnist", "mnist-sample", "fashion-mnist", "kmnist"]
OptimizerName = Literal["manual-sgd", "sgd", "adam", "adamw", "rmsprop", "adadelta"]
SchedulerName = Literal["none", "step", "cosine", "onecycle"]
ProgressMode = Literal["auto", "rich", "plain", "none"]
Precision = Literal["fp32", "bf16-mixed", "fp16-mixed"]
MonitorName = Literal["val_loss", "val_acc", "test_loss", "test_acc"]

ARCHES: tuple[str, ...] = get_args(Arch)
LOSSES: tuple[str, ...] = get_args(LossName)
DATA_NAMES: tuple[str, ...] = get_args(DataName)
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
SCHEDULERS: tuple[str, ...] = get_args(SchedulerName)
PROGRESS_MODES: tuple[str, ...] = get_args(ProgressMode)
PRECISIONS: tuple[str, ...] = get_args(Precision)
MONITORS: tuple[str, ...] = get_args(MonitorName)


# The panels of `lenet train --help`, in the order shown. "Options" (Typer's own panel, first)
# holds what concerns the whole command.
GENERAL = "Options"
PANELS: tuple[str, ...] = (
    GENERAL,
    "Data",
    "Model",
    "Augmentation and dropout",
    "Optimisation and schedule",
    "Run directory",
    "Speed",
    "Logging",
    "Scale-out",
)


AUGMENT = "Augmentation and dropout"


def opt(
    default: Any,
    help: str,  # noqa: A002
    rule: Range | Rule | None = None,
    panel: str = GENERAL,
) -> Any:
    """A TrainConfig field: its default, the help of its flag, the rule its values obey, and the
    panel of `lenet train --help` that lists its flag (one of PANELS)."""
    if panel not in PANELS:
        raise ValueError(f"panel {panel!r} is none of {PANELS}")
    return field(default=default, metadata={"help": help, "rule": rule, "panel": panel})
