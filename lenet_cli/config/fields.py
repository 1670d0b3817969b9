"""The training config: every field's type, default, help and rule, declared once.

Standard library only. ``lenet train``'s flags are generated from these fields
(cli/train_cmds.py), and config files and checkpoints are checked against them.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Literal

from lenet_cli.config.choices import (
    AUGMENT,
    Arch,
    DataName,
    LossName,
    MonitorName,
    OptimizerName,
    Precision,
    ProgressMode,
    SchedulerName,
    opt,
)
from lenet_cli.config.rules import (
    AT_LEAST_1,
    EPOCHS,
    FRACTION,
    MLFLOW_URI,
    NON_NEGATIVE,
    PATH_TEXT,
    POSITIVE,
    RUN_NAME,
    SEED,
    THREADS,
    Range,
    Rule,
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Field names are the TOML keys (or with dashes).

    Each field's help becomes its flag's help (with "Default: X." added when X is not None); a
    bool field becomes ``--x/--no-x``.
    """

    # data
    data: DataName = opt(
        "mnist",
        "Data set. Without full MNIST the default uses the bundled 5,000-digit sample and says "
        "so; --data mnist given never does.",
        panel="Data",
    )
    data_dir: str | None = opt(
        None, "Read the IDX files from this directory (no download).", PATH_TEXT, panel="Data"
    )
    val_split: float = opt(
        0.0,
        "Fraction of the training set held out to pick best.pt on (not on test).",
        FRACTION,
        panel="Data",
    )
    # model and loss
    arch: Arch = opt(
        "tutorial",
        "Network: tutorial (3x3), lenet5 (5x5), classic (LeNet-5 1998).",
        panel="Model",
    )
    init: str | None = opt(
        None,
        "Start from these weights (fresh optimizer): a checkpoint, run directory, state_dict or "
        ".safetensors file that fits --arch.",
        PATH_TEXT,
        panel="Model",
    )
    loss: LossName = opt(
        "cross-entropy",
        "mse: the tutorial's MSELoss of raw scores and one-hot targets.",
        panel="Model",
    )
    label_smoothing: float = opt(0.0, "Label smoothing (either loss).", FRACTION, panel="Model")
    # augmentation and dropout (training only; both may change on --resume)
    augment: bool = opt(
        False,
        "Redraw every training batch at random by the --augment-* strengths (pens, sizes, "
        "slants: digits as photos show them).",
        panel=AUGMENT,
    )
    augment_shift: float = opt(2.0, "Shift up to this many pixels.", Range(0, 16), panel=AUGMENT)
    augment_rotate: float = opt(
        12.0, "Rotate up to this many degrees.", Range(0, 180), panel=AUGMENT
    )
    augment_scale: float = opt(
        0.12, "Scale by 1 +- this fraction.", Range(0, 1, hi_open=True), panel=AUGMENT
    )
    augment_shear: float = opt(10.0, "Shear up to this many degrees.", Range(0, 60), panel=AUGMENT)
    augment_stroke: float = opt(
        0.5,
        "Thicken or thin the strokes by up to this fraction of a 3x3 dilation or erosion.",
        Range(0, 1),
        panel=AUGMENT,
    )
    augment_elastic: float = opt(
        20.0,
        "Elastic distortion: alpha in pixels of Simard et al.'s smoothed random field (sigma 4).",
        Range(0, 100),
        panel=AUGMENT,
    )
    dropout: float = opt(
        0.0,
        "Dropout probability after fc1's and fc2's ReLU, in training only (PyTorch's ops: not "
        "in the fused step).",
        FRACTION,
        panel=AUGMENT,
    )
    # optimisation
    optimizer: OptimizerName = opt(
        "adamw",
        "manual-sgd: the tutorial's w -= lr * grad; the others: torch.optim's.",
        panel="Optimisation and schedule",
    )
    lr: float = opt(
        0.003, "Learning rate (onecycle: the peak).", POSITIVE, panel="Optimisation and schedule"
    )
    momentum: float = opt(
        0.9, "Momentum (sgd, rmsprop).", FRACTION, panel="Optimisation and schedule"
    )
    weight_decay: float = opt(
        0.0005, "Weight decay.", NON_NEGATIVE, panel="Optimisation and schedule"
    )
    scheduler: SchedulerName = opt(
        "onecycle",
        "Learning-rate schedule, stepped every batch.",
        panel="Optimisation and schedule",
    )
    step_size: int = opt(
        5, "step: epochs between decays.", AT_LEAST_1, panel="Optimisation and schedule"
    )
    gamma: float = opt(
        0.1,
        "step: lr factor at each decay.",
        Range(lo=0, hi=1, lo_open=True),
        panel="Optimisation and schedule",
    )
    warmup: float = opt(
        0.2, "onecycle: fraction of steps warming up.", FRACTION, panel="Optimisation and schedule"
    )
    # run
    epochs: int = opt(
        15,
        "Epochs in all (with --resume: the new total).",
        EPOCHS,
        panel="Optimisation and schedule",
    )
    max_steps: int | None = opt(
        None, "Stop after this many steps in all.", AT_LEAST_1, panel="Optimisation and schedule"
    )
    batch_size: int = opt(64, "Training batch size.", AT_LEAST_1, panel="Data")
    eval_batch_size: int = opt(
        1000, "Batch size of the evaluation after each epoch.", AT_LEAST_1, panel="Data"
    )
    seed: int = opt(0, "Seed of the initial weights, split and data order.", SEED)
    deterministic: bool = opt(False, "Deterministic algorithms only (exact GPU reruns).")
    device: str = opt(
        "auto", "auto (CUDA, then MPS, else CPU), cpu, cuda, cuda:N or mps.", panel="Speed"
    )
    threads: int | Literal["auto"] = opt(
        "auto",
        "CPU threads: a number, or auto: the faster of 1 and all cores, timed at the start and "
        "again as the run goes.",
        THREADS,
        panel="Speed",
    )
    out: str = opt("runs", "Parent directory of run directories.", PATH_TEXT, panel="Run directory")
    name: str | None = opt(
        None,
        "Run directory name (default DATA-ARCH-YYYYmmdd-HHMMSS); never overwritten.",
        RUN_NAME,
        panel="Run directory",
    )
    early_stop: int | None = opt(
        None,
        "Stop after N epochs in a row without a better --early-stop-metric.",
        AT_LEAST_1,
        panel="Optimisation and schedule",
    )
    early_stop_metric: MonitorName | None = opt(
        None,
        "The metric that --early-stop, best.pt and --save-top-k follow. Default: val_acc with "
        "--val-split, else test_acc (an optimistic pick).",
        panel="Optimisation and schedule",
    )
    min_delta: float = opt(
        0.0,
        "An epoch improves when it beats the best by more than this (accuracy as a fraction).",
        NON_NEGATIVE,
        panel="Optimisation and schedule",
    )
    restore_best: bool = opt(
        False,
        "End with best.pt's weights: the summary's final model is the best epoch's (last.pt "
        "stays the point to resume from).",
        panel="Optimisation and schedule",
    )
    clip_grad_norm: float | None = opt(
        None,
        "Scale the gradients down so that their global L2 norm is at most X.",
        POSITIVE,
        panel="Optimisation and schedule",
    )
    clip_grad_value: float | None = opt(
        None,
        "Clamp every gradient element into [-X, X].",
        POSITIVE,
        panel="Optimisation and schedule",
    )
    ema: float | None = opt(
        None,
        "Keep an exponential moving average of the weights with this decay (e.g. 0.999), "
        "updated after each step; the run evaluates it and saves it beside the raw weights.",
        Range(lo=0, hi=1, lo_open=True, hi_open=True),
        panel="Optimisation and schedule",
    )
    save_top_k: int | None = opt(
        None,
        "Also keep the best K epochs' checkpoints as epoch-NNN.pt (by --early-stop-metric).",
        AT_LEAST_1,
        panel="Run directory",
    )
    # speed
    precision: Precision = opt(
        "fp32",
        "Mixed: autocast to bf16, or to fp16 on a GPU; results differ slightly from fp32.",
        panel="Speed",
    )
    channels_last: bool | None = opt(  # None: the faster layout for the device (speed.py)
        None,
        "Layout of images and conv weights. Default: channels_last on CPU and CUDA, NCHW on MPS.",
        panel="Speed",
    )
    compile: bool = opt(
        False,
        "torch.compile the model (pays on GPUs; on a CPU see docs/benchmarks.md).",
        panel="Speed",
    )
    fused: bool | None = opt(  # None: the fused CPU kernels when they build (speed.fused_choice)
        None,
        "The tutorial's LeNet as one C kernel forward, one backward (CPU; built on first use). "
        "Default: on when they build, else torch's ops with a note.",
        panel="Speed",
    )
    # output
    progress: ProgressMode = opt(
        "auto", "auto: Rich bars on a terminal, else one line per epoch.", panel="Logging"
    )
    log_every: int | None = opt(
        None,
        'Also log loss and lr every N steps (metrics.jsonl rows of "kind": "step").',
        AT_LEAST_1,
        panel="Logging",
    )
    tensorboard: bool = opt(
        False,
        "Also write TensorBoard event files (pip install 'lenet-cli[tensorboard]').",
        panel="Logging",
    )
    mlflow: str | None = opt(
        None,
        "Also log to MLflow: a tracking URI (sqlite:///mlflow.db, file:DIR, http://HOST:PORT) "
        "or local for sqlite:///mlflow.db (pip install 'lenet-cli[mlflow]').",
        MLFLOW_URI,
        panel="Logging",
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
