"""The training config: every field's type, default, help and rule, declared once.

Standard library only. ``lenet train``'s flags are generated from these fields
(cli/train_cmds.py), and config files and checkpoints are checked against them.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from lenet_cli.config.rules import (
    AT_LEAST_1,
    FRACTION,
    NON_NEGATIVE,
    PATH_TEXT,
    POSITIVE,
    RUN_NAME,
    SEED,
    THREADS,
    Range,
    Rule,
)

Arch = Literal["tutorial", "lenet5", "classic"]
LossName = Literal["cross-entropy", "mse"]
DataName = Literal["random", "mnist", "mnist-sample", "fashion-mnist", "kmnist"]
OptimizerName = Literal["manual-sgd", "sgd", "adam", "adamw", "rmsprop", "adadelta"]
SchedulerName = Literal["none", "step", "cosine", "onecycle"]
ProgressMode = Literal["auto", "rich", "plain", "none"]
Precision = Literal["fp32", "bf16-mixed", "fp16-mixed"]

ARCHES: tuple[str, ...] = get_args(Arch)
LOSSES: tuple[str, ...] = get_args(LossName)
DATA_NAMES: tuple[str, ...] = get_args(DataName)
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
SCHEDULERS: tuple[str, ...] = get_args(SchedulerName)
PROGRESS_MODES: tuple[str, ...] = get_args(ProgressMode)
PRECISIONS: tuple[str, ...] = get_args(Precision)


def opt(default: Any, help: str, rule: Range | Rule | None = None) -> Any:  # noqa: A002
    """A TrainConfig field: its default, the help of its flag, and the rule its values obey."""
    return field(default=default, metadata={"help": help, "rule": rule})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Field names are the TOML keys (or with dashes).

    Each field's help becomes its flag's help (with "Default: X." added when X is not None); a
    bool field becomes ``--x/--no-x``.
    """

    # data
    data: DataName = opt(
        "mnist",
        "Data set. The default mnist falls back to the bundled 5,000-digit sample (with a notice) "
        "when full MNIST is absent; an explicit --data mnist never does.",
    )
    data_dir: str | None = opt(
        None, "Read the IDX files from this directory (no download).", PATH_TEXT
    )
    val_split: float = opt(
        0.0,
        "Fraction of the training set held out for validation (then best.pt is picked on it, not "
        "on test).",
        FRACTION,
    )
    # model and loss
    arch: Arch = opt("tutorial", "Network: tutorial (3x3), lenet5 (5x5), classic (LeNet-5 1998).")
    init: str | None = opt(
        None,
        "Start from these weights (a fresh optimizer and schedule): a checkpoint, run directory, "
        "torch.save(net.state_dict()) file or .safetensors file that fits --arch.",
        PATH_TEXT,
    )
    loss: LossName = opt(
        "cross-entropy",
        "cross-entropy, or mse: the tutorial's MSELoss between the raw scores (no softmax) and "
        "one-hot targets.",
    )
    label_smoothing: float = opt(0.0, "Label smoothing (either loss).", FRACTION)
    # optimisation
    optimizer: OptimizerName = opt(
        "adamw", "manual-sgd is the tutorial's w -= lr * grad; the others are torch.optim's."
    )
    lr: float = opt(0.003, "Learning rate (the peak, for onecycle).", POSITIVE)
    momentum: float = opt(0.9, "Momentum (sgd, rmsprop).", FRACTION)
    weight_decay: float = opt(0.0005, "Weight decay.", NON_NEGATIVE)
    scheduler: SchedulerName = opt("onecycle", "Learning-rate schedule, stepped every batch.")
    step_size: int = opt(5, "step: epochs between decays.", AT_LEAST_1)
    gamma: float = opt(0.1, "step: lr factor at each decay.", Range(lo=0, hi=1, lo_open=True))
    warmup: float = opt(0.2, "onecycle: fraction of steps spent warming up.", FRACTION)
    # run
    epochs: int = opt(15, "Epochs in all (with --resume: the new total).", AT_LEAST_1)
    max_steps: int | None = opt(None, "Stop after this many steps in all.", AT_LEAST_1)
    batch_size: int = opt(64, "Training batch size.", AT_LEAST_1)
    eval_batch_size: int = opt(1000, "Batch size of the evaluations after each epoch.", AT_LEAST_1)
    seed: int = opt(0, "Seed of the initial weights, split and data order.", SEED)
    deterministic: bool = opt(False, "Deterministic algorithms only (needed for exact GPU reruns).")
    device: str = opt("auto", "auto (CUDA, then MPS, else CPU), cpu, cuda, cuda:N or mps.")
    threads: int | Literal["auto"] = opt(
        "auto",
        "CPU threads: a number, or auto: time the first steps at 1 thread and at all physical "
        "cores, keep the faster, and check again every few seconds and when steps slow down "
        "(another program took a core).",
        THREADS,
    )
    out: str = opt("runs", "Parent directory of run directories.", PATH_TEXT)
    name: str | None = opt(
        None, "Run directory name (default DATA-ARCH-YYYYmmdd-HHMMSS); never overwritten.", RUN_NAME
    )
    early_stop: int | None = opt(
        None, "Stop after N epochs without a better validation (else test) accuracy.", AT_LEAST_1
    )
    # speed
    precision: Precision = opt(
        "fp32",
        "fp32, or bf16-mixed / fp16-mixed autocast (fp16 needs a GPU; mixed precision changes the "
        "arithmetic, so results differ slightly from fp32).",
    )
    channels_last: bool | None = opt(  # None: the faster layout for the device (speed.py)
        None,
        "Memory layout of images and conv weights. Default: channels_last on CPU and CUDA "
        "(measured faster), NCHW on MPS.",
    )
    compile: bool = opt(
        False, "torch.compile the model (pays on GPUs; measured slower on this 2-core CPU)."
    )
    fused: bool | None = opt(  # None: the fused CPU kernels when they build (speed.fused_choice)
        None,
        "Run the tutorial's LeNet as one C kernel forward and one backward (CPU; built "
        "on first use with the C compiler). Default: on the CPU when they build, else PyTorch's "
        "ops with a note.",
    )
    # output
    progress: ProgressMode = opt(
        "auto", "auto: Rich bars on a terminal, one plain line per epoch otherwise."
    )
    log_every: int | None = opt(
        None,
        'Also log the training loss and lr every N steps: metrics.jsonl rows with "kind": '
        '"step" (and TensorBoard\'s with --tensorboard).',
        AT_LEAST_1,
    )
    tensorboard: bool = opt(
        False,
        "Write TensorBoard event files into the run directory: per-epoch metrics, the --log-every "
        "steps, hparams, a grid of test digits (needs pip install 'lenet-cli[tensorboard]').",
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
HINTS: dict[str, Any] = typing.get_type_hints(TrainConfig)
RULES: dict[str, Range | Rule] = {
    f.name: f.metadata["rule"] or Range() for f in dataclasses.fields(TrainConfig)
}


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")
