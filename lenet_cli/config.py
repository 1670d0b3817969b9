"""Choices shared by flags and config files, the training config, and its resolution.

Standard library only. Each ``TrainConfig`` field declares its type, default, help and
range once: ``lenet train``'s flags are generated from it (cli/train_cmds.py), config files and
checkpoints are checked against it, and the other commands check their numbers with the same
``Range`` rules (``check_value``). Precedence: built-in defaults < ``--config FILE`` < flags; every
resolved value remembers where it came from, so ``--print-config`` can say so and the CLI can
tell an explicit ``--data mnist`` from the default one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

try:  # tomllib is standard from Python 3.11; tomli is the same parser as a package for 3.10
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

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

FLOAT32_MAX = 3.4028234663852886e38  # torch keeps lr & co. as float32 in its kernels
SEED_MAX = 2**63 - 1  # TOML integers are signed 64-bit; torch.manual_seed takes this range
NAME_MAX = 100  # characters of a run directory name (file systems allow 255 bytes)


@dataclass(frozen=True)
class Range:
    """An interval of allowed numbers; ``problem(v)`` says what is wrong with ``v``, or None."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def problem(self, v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, float) and not (math.isfinite(v) and abs(v) <= FLOAT32_MAX):
            return "must be a finite number (at most 3.4e38, float32's largest)"
        below = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        above = self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi)
        return self.text() if below or above else None

    def text(self) -> str:
        if self.hi is None:
            if self.lo == 0 and self.lo_open:
                return "must be positive"
            return f"must be {'above' if self.lo_open else 'at least'} {self.lo}"
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f"must be in {left}{self.lo}, {self.hi}{right}"


@dataclass(frozen=True)
class Rule:
    """Any other test of a value: ``test(v)`` is True when ``v`` is fine."""

    test: Callable[[Any], bool]
    message: str

    def problem(self, v: Any) -> str | None:
        return None if v is None or self.test(v) else self.message


AT_LEAST_1 = Range(lo=1)
POSITIVE = Range(lo=0, lo_open=True)
NON_NEGATIVE = Range(lo=0)
FRACTION = Range(lo=0, hi=1, hi_open=True)
SEED = Range(lo=0, hi=SEED_MAX)
THREADS = Rule(lambda v: v == "auto" or v >= 1, "must be auto or at least 1")


def _plain_text(v: str) -> bool:
    return v.isprintable() and v == v.strip()


# a directory name inside --out: a path would escape it, and "" / "." / ".." are no new run
RUN_NAME = Rule(
    lambda v: (
        v not in ("", ".", "..")
        and "/" not in v
        and "\\" not in v
        and len(v) <= NAME_MAX
        and _plain_text(v)
    ),
    f"must be a plain directory name of at most {NAME_MAX} printable characters "
    "(no /, not empty, '.' or '..', no spaces at either end)",
)
PATH_TEXT = Rule(_plain_text, "must be printable text (no newline or control character)")


def check_value(label: str, value: Any, rule: Range | Rule) -> Any:
    """``value``, or a UsageError (exit 2) naming ``label`` (a flag) when ``rule`` refuses it."""
    problem = rule.problem(value)
    if problem:
        raise UsageError(f"{label} {problem}, got {value!r}")
    return value


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


def _check_type(key: str, value: Any, where: str) -> Any:
    """``value`` converted to the field's type, or a ConfigError naming the key and ``where``."""
    hint = HINTS[key]
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


def _from_flag(key: str, value: Any) -> Any:
    """A flag that takes a number or a word (``--threads 2`` / ``auto``) arrives as text."""
    hint = HINTS[key]
    if not isinstance(value, str) or int not in get_args(hint):
        return value
    words = [w for t in get_args(hint) if typing.get_origin(t) is Literal for w in get_args(t)]
    if value in words:
        return value
    try:
        return int(value)
    except ValueError:
        choices = " or ".join(words)
        raise UsageError(
            f"{flag_name(key)} must be {choices} or a whole number, got {value!r}"
        ) from None


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
        if where == "flag":
            value = _from_flag(key, value)
        value = _check_type(key, value, where)
        if where == "flag":
            check_value(flag_name(key), value, RULES[key])
        elif problem := RULES[key].problem(value):
            raise ConfigError(f"{where}: {key} = {value!r} {problem}")
        clean[key] = value
    return clean


def read_toml(path: Path, what: str = "config file", hint: str = "check the path") -> dict:
    """A TOML document, or one ConfigError line naming ``what`` it is and the file."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist", hint=hint) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {what} {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what} {path} is not valid TOML: {e}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """A config file's values, checked. Tables ([data], [run]...) only group keys."""
    path = Path(path)
    doc = read_toml(path)
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
