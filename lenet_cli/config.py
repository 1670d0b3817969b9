"""Choices shared by flags and config files, the training config, and its resolution.

Standard library only (layer 1). Precedence: built-in defaults < ``--config FILE`` < flags; every
resolved value remembers where it came from, so ``--print-config`` can say so and the CLI can
tell an explicit ``--data mnist`` from the default one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import tomllib

from lenet_cli.errors import ConfigError, UsageError

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


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Field names are the TOML keys (or with dashes)."""

    # data
    data: DataName = "mnist"
    data_dir: str | None = None
    val_split: float = 0.0
    # model and loss
    arch: Arch = "tutorial"
    loss: LossName = "cross-entropy"
    label_smoothing: float = 0.0
    # optimisation
    optimizer: OptimizerName = "adamw"
    lr: float = 0.003
    momentum: float = 0.9
    weight_decay: float = 0.0005
    scheduler: SchedulerName = "onecycle"
    step_size: int = 5  # step scheduler: epochs between decays
    gamma: float = 0.1  # step scheduler: decay factor
    warmup: float = 0.2  # onecycle: fraction of the steps spent warming up
    # run
    epochs: int = 15
    max_steps: int | None = None
    batch_size: int = 64
    eval_batch_size: int = 1000
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    threads: int | None = None
    out: str = "runs"
    name: str | None = None
    early_stop: int | None = None
    # speed
    precision: Precision = "fp32"
    channels_last: bool | None = None  # None: the faster layout for the device (speed.py)
    compile: bool = False
    fused: bool | None = None  # None: the fused CPU kernels when they build (speed.fused_choice)
    # output
    progress: ProgressMode = "auto"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FLOAT32_MAX = 3.4028234663852886e38
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
_HINTS = typing.get_type_hints(TrainConfig)
# Checked after types: (test, message). Each names the key.
_RANGES: dict[str, tuple[Any, str]] = {
    "val_split": (lambda v: 0.0 <= v < 1.0, "must be in [0, 1)"),
    "label_smoothing": (lambda v: 0.0 <= v < 1.0, "must be in [0, 1)"),
    "lr": (lambda v: v > 0, "must be positive"),
    "momentum": (lambda v: 0.0 <= v < 1.0, "must be in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, "must be >= 0"),
    "step_size": (lambda v: v >= 1, "must be at least 1"),
    "gamma": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "warmup": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "epochs": (lambda v: v >= 1, "must be at least 1"),
    "max_steps": (lambda v: v is None or v >= 1, "must be at least 1"),
    "batch_size": (lambda v: v >= 1, "must be at least 1"),
    "eval_batch_size": (lambda v: v >= 1, "must be at least 1"),
    "threads": (lambda v: v is None or v >= 1, "must be at least 1"),
    "early_stop": (lambda v: v is None or v >= 1, "must be at least 1"),
    # a directory name inside --out: a path would escape it, and "" / "." / ".." are no new run
    "name": (
        lambda v: v is None or (v not in ("", ".", "..") and "/" not in v and "\\" not in v),
        "must be a plain directory name (no /, not empty, '.' or '..')",
    ),
}


def _check_type(key: str, value: Any, where: str) -> Any:
    """``value`` converted to the field's type, or a ConfigError naming the key and ``where``."""
    hint = _HINTS[key]
    if value is None and type(None) in get_args(hint):
        return None
    options = [a for a in get_args(hint) if a is not type(None)] if get_args(hint) else [hint]
    if typing.get_origin(hint) is Literal:
        if value not in options:
            raise ConfigError(f"{where}: {key} = {value!r} is not one of " + ", ".join(options))
        return value
    for t in options:
        if typing.get_origin(t) is Literal:
            if value in get_args(t):
                return value
            raise ConfigError(f"{where}: {key} = {value!r} is not one of " + ", ".join(get_args(t)))
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, t) and not (t is int and isinstance(value, bool)):
            return value
    names = " or ".join(getattr(t, "__name__", str(t)) for t in options)
    raise ConfigError(
        f"{where}: {key} must be {names}, got {type(value).__name__} {value!r}",
        hint="fix the value (TOML: strings in quotes, numbers without)",
    )


def validate(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check keys and types of a partial config; keys may use dashes. Returns clean values.

    ``where`` names the source; "flag" means command-line flags, whose bad values are usage
    errors (exit 2) naming the --flag, where a file's are config errors (exit 7) naming the key.
    """
    clean: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(FIELDS)
            raise ConfigError(f"{where}: unknown key {raw_key!r}", hint=hint)
        value = _check_type(key, value, where)
        problem = _range_problem(key, value)
        if problem and where == "flag":
            raise UsageError(f"--{key.replace('_', '-')} {problem}, got {value!r}")
        if problem:
            raise ConfigError(f"{where}: {key} = {value!r} {problem}")
        clean[key] = value
    return clean


def _range_problem(key: str, value: Any) -> str | None:
    """What is wrong with a value of the right type, or None."""
    # TOML and flags accept inf and nan; torch stores lr & co. as float32 in its kernels
    if isinstance(value, float) and not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):
        return "must be a finite number (at most 3.4e38, float32's largest)"
    if key in _RANGES and value is not None and not _RANGES[key][0](value):
        return _RANGES[key][1]
    return None


def load_toml(path: str | Path) -> dict[str, Any]:
    """A config file's values, checked. Tables ([data], [run]...) only group keys."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for k, v in items:
            if k in flat:
                raise ConfigError(f"{path}: key {k!r} is set twice")
            flat[k] = v
    return validate(flat, str(path))


@dataclass(frozen=True)
class Resolved:
    config: TrainConfig
    sources: dict[str, str] = field(default_factory=dict)  # key -> "default" | file | "flag"

    def explicit(self, key: str) -> bool:
        """Whether ``key`` was set by a file or a flag rather than left at its default."""
        return self.sources.get(key, "default") != "default"


def resolve(
    defaults: TrainConfig,
    file: Mapping[str, Any] | None,
    flags: Mapping[str, Any],
    *,
    file_name: str = "config file",
    defaults_name: str = "default",
) -> Resolved:
    """defaults < file < flags. Flags set to None were not given. Everything is validated."""
    values = defaults.to_dict()
    sources = dict.fromkeys(values, defaults_name)
    given = {k: v for k, v in flags.items() if v is not None}
    layers = ((validate(file or {}, file_name), file_name), (validate(given, "flag"), "flag"))
    for clean, name in layers:
        for key, value in clean.items():
            values[key] = value
            sources[key] = name
    return Resolved(TrainConfig(**values), sources)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def to_toml(config: TrainConfig, header: str = "", skip: tuple[str, ...] = ()) -> str:
    """The config as TOML that ``load_toml`` reads back (None values are left out)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for key, value in config.to_dict().items():
        if key in skip:
            lines.append(f"# {key} = {_toml_value(value)}  (left out: a rerun makes a new run)")
        elif value is None:
            lines.append(f"# {key} is not set")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
