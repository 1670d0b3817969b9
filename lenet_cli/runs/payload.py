"""What a checkpoint may hold: every field's type and range, checked after loading.

A checkpoint whose checksum is right can still be hostile or broken: written by another tool,
edited, or saved by a buggy release. Nothing in it is used before ``check_payload`` passed:
plain types only (numbers, strings, lists, dicts, tensors), finite numbers and weights, the
tensors of the architecture's state dict with their exact shapes, a pixel std above zero, a
config that passes the same validation as a config file. Each problem is one phrase naming the
field, which the caller turns into a CheckpointError (exit 6).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from lenet_cli.config import ARCHES, DATA_NAMES, validate
from lenet_cli.errors import ConfigError
from lenet_cli.model import build_model

_MAX_DEPTH = 12  # nesting of optimizer/scheduler/state dicts is 4 at most


class PayloadError(Exception):
    """One phrase: what is wrong and where ("model.conv1.weight holds NaN or Inf")."""


def _is_int(v: Any) -> bool:
    """A whole number that fits an int64 (torch's counters and tensors hold no more)."""
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_plain(value: Any, where: str, depth: int = 0) -> None:
    """Only None, bool, int, finite float, str, bytes, tensors, and lists/tuples/dicts of them."""
    if depth > _MAX_DEPTH:
        raise PayloadError(f"{where} is nested more than {_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadError(f"{where} is {value}, not a finite number")
        return
    if isinstance(value, torch.Tensor):
        problem = tensor_problem(value)
        if problem:
            raise PayloadError(f"{where} {problem}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, (str, int)):
                raise PayloadError(f"{where} has a key of type {type(k).__name__}")
            check_plain(item, f"{where}.{k}", depth + 1)
        return
    raise PayloadError(f"{where} is a {type(value).__name__}, not a plain value")


# the float types whose values torch can check and the network can compute with on every device;
# float8 has no isfinite kernel and no LeNet op, and a meta tensor holds no values at all
FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def tensor_problem(t: torch.Tensor) -> str | None:
    """What makes ``t`` unusable, as the end of a phrase ("holds NaN or Inf"), or None.

    Layout, device and dtype are checked before any value is read (reading a meta tensor's
    values, or a float8 tensor's finiteness, raises inside torch)."""
    if t.layout != torch.strided:  # sparse and other layouts: no op here expects one
        return f"is a {t.layout} tensor, not a dense one"
    if t.device.type == "meta":
        return "is a meta-device tensor: it holds no values"
    if t.is_floating_point() and t.dtype not in FLOAT_DTYPES:
        name = str(t.dtype).removeprefix("torch.")
        return f"is {name}; weights are read as float32, float64, float16 or bfloat16"
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        return "holds NaN or Inf"
    return None


def _number(payload: Mapping, key: str, low: float, high: float, low_open: bool = False) -> None:
    v = payload.get(key)
    if not _is_real(v) or v > high or v < low or (low_open and v == low):
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise PayloadError(f"{key} = {v!r} is not a number in {bound}")


def check_model(
    state: Any, arch: str, name: str = "model", expected: dict[str, Any] | None = None
) -> None:
    """The state dict of ``arch``: the same names, shapes, floating dtypes, finite values.
    ``name``: the payload's key that holds it (model, or ema: the average of --ema).
    ``expected``: the state dict to match instead of ``arch``'s (a model given in Python,
    ``arch`` its class name)."""
    if not isinstance(state, dict):
        raise PayloadError(f"{name} is a {type(state).__name__}, not a state dict")
    expected = build_model(arch).state_dict() if expected is None else expected
    missing = [k for k in expected if k not in state]
    extra = [str(k) for k in state if k not in expected]
    if missing or extra:
        raise PayloadError(
            f"{name} does not hold a {arch!r} network: "
            + "; ".join(
                part
                for part in (
                    "missing " + ", ".join(missing[:4]) if missing else "",
                    "unexpected " + ", ".join(extra[:4]) if extra else "",
                )
                if part
            )
        )
    for key, want in expected.items():
        got = state[key]
        if not isinstance(got, torch.Tensor) or not got.is_floating_point():
            raise PayloadError(f"{name}.{key} is not a floating-point tensor")
        if tuple(got.shape) != tuple(want.shape):
            raise PayloadError(
                f"{name}.{key} has shape {tuple(got.shape)}, {arch!r} needs {tuple(want.shape)}"
            )
        problem = tensor_problem(got)
        if problem:
            raise PayloadError(f"{name}.{key} {problem}")


def check_payload(payload: dict[str, Any], where: str, model: Any = None) -> None:
    """The fields every use of a checkpoint reads (evaluate, predict, export, inspect).

    ``model``: an nn.Module given in Python to load the weights into (lenet_cli.load): they
    must fit its state dict, whatever the checkpoint's arch."""
    arch = payload.get("arch")
    expected, label = None, arch
    if model is not None:
        expected, label = model.state_dict(), type(model).__name__
    elif arch not in ARCHES:
        raise PayloadError(f"arch = {arch!r} is not one of " + ", ".join(ARCHES))
    check_model(payload.get("model"), label, expected=expected)
    if payload.get("ema") is not None:  # --ema's average, read like the model
        check_model(payload["ema"], label, "ema", expected)
    _number(payload, "mean", 0.0, 1.0)
    _number(payload, "std", 0.0, 1.0, low_open=True)  # images are divided by it
    # data, epoch and step are written by every `lenet train`; optional for other writers
    if payload.get("data") is not None and payload["data"] not in DATA_NAMES:
        raise PayloadError(f"data = {payload.get('data')!r} is not one of the known data sets")
    for key in ("epoch", "step", "ema_updates"):
        if key in payload and (not _is_int(payload[key]) or payload[key] < 0):
            raise PayloadError(f"{key} = {payload.get(key)!r} is not a whole number >= 0")
    for key in ("config", "metrics"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise PayloadError(f"{key} is a {type(payload[key]).__name__}, not a table")
    for key, value in payload.items():
        if key not in ("model", "ema"):
            check_plain(value, str(key))
    if payload.get("config") is not None:
        _check_config(payload["config"], arch, where)


# The config keys that evaluate/predict read from a checkpoint. Only these are validated there:
# a checkpoint from an older release may hold keys or values that have since changed, and it
# must stay usable (resuming validates the whole config: it trains with it).
_READ_KEYS = ("arch", "loss", "seed", "data", "data_dir")


def _check_config(config: dict[str, Any], arch: str, where: str, *, whole: bool = False) -> None:
    if config.get("arch", arch) != arch:
        raise PayloadError(f"config.arch = {config['arch']!r} but arch = {arch!r}")
    part = config if whole else {k: config[k] for k in _READ_KEYS if k in config}
    try:
        validate(part, f"{where} (config)")
    except ConfigError as e:
        raise PayloadError(e.message.replace(f"{where} (config): ", "config: ")) from None


def _check_run_state(state: dict[str, Any]) -> None:
    """Counters whole numbers >= 0, sums finite numbers >= 0, ``best``/``last_row`` tables."""
    from lenet_cli.runs.metrics import RunState  # the fields and their types, from their owner

    for key in ("epoch", "step"):
        if key not in state:
            raise PayloadError(f"state.{key} is missing")
    for key, default in RunState().to_dict().items():
        if key not in state:
            continue
        value = state[key]
        if isinstance(default, int) and not (_is_int(value) and value >= 0):
            raise PayloadError(f"state.{key} = {value!r} is not a whole number >= 0")
        if isinstance(default, float) and not (_is_real(value) and value >= 0):
            raise PayloadError(f"state.{key} = {value!r} is not a finite number >= 0")
        if default is None and value is not None and not isinstance(value, dict):
            raise PayloadError(f"state.{key} is a {type(value).__name__}, not a table")
        if isinstance(default, list):
            _check_entries(value, f"state.{key}")


def _check_entries(value: Any, where: str) -> None:
    """--save-top-k's list: entries {epoch >= 1, step >= 0, value: a finite number}."""
    if not isinstance(value, list) or len(value) > 1_000_000:
        raise PayloadError(f"{where} is not a list")
    for i, e in enumerate(value):
        if not (
            isinstance(e, dict)
            and _is_int(e.get("epoch"))
            and e["epoch"] >= 1
            and _is_int(e.get("step"))
            and e["step"] >= 0
            and _is_real(e.get("value"))
        ):
            raise PayloadError(f"{where}[{i}] is not an epoch's entry (epoch, step, value)")


def _check_top_k_bounds(state: dict[str, Any]) -> None:
    """--save-top-k's entries name distinct epochs this run reached: resuming removes every
    epoch-NNN.pt the list does not name, so an entry for a later epoch would cost a kept file.
    (The open epoch, ``state.epoch + 1``, may be listed by a run stopped mid-epoch.)"""
    seen: set[int] = set()
    for i, e in enumerate(state.get("top_k") or []):
        if e["epoch"] > state["epoch"] + 1 or e["step"] > state["step"]:
            raise PayloadError(
                f"state.top_k[{i}] names epoch {e['epoch']} (step {e['step']}), beyond the "
                f"checkpoint's own (epoch {state['epoch']}, step {state['step']})"
            )
        if e["epoch"] in seen:
            raise PayloadError(f"state.top_k names epoch {e['epoch']} twice")
        seen.add(e["epoch"])


def _check_ema_matches(payload: dict[str, Any]) -> None:
    """A run trained with --ema resumes its average, which the checkpoint must hold (and the
    count of updates it has seen); one without --ema holds none."""
    decay = payload["config"].get("ema")
    if decay is not None and payload.get("ema") is None:
        raise PayloadError(f"config.ema = {decay!r} but the checkpoint holds no 'ema' weights")
    if decay is None and payload.get("ema") is not None:
        raise PayloadError("the checkpoint holds 'ema' weights but config.ema is not set")
    if payload.get("ema") is not None and "ema_updates" not in payload:
        raise PayloadError("the checkpoint holds 'ema' weights but no ema_updates")


# the flags lenet's optimizers are built with: off (a checkpoint with one on was not written by
# `lenet train`, and torch's step would then read state the checkpoint may not hold)
_FLAGS_OFF = ("amsgrad", "maximize", "capturable", "differentiable", "nesterov")


def _check_optimizer(optimizer: dict[str, Any], shapes: list[tuple[int, ...]]) -> None:
    """One param group over the model's parameters in order, plain hyperparameters, and per
    parameter a state of tensors of its shape (or scalars: the step count): what torch's
    optimizers, whose CPU kernels trust the state's sizes, and the C update may read."""
    (group, *more) = optimizer["param_groups"] or [None]
    if group is None or more or group["params"] != list(range(len(shapes))):
        raise PayloadError(
            f"optimizer.param_groups is not one group over the model's {len(shapes)} parameters"
        )
    if "lr" not in group:
        raise PayloadError("optimizer.param_groups[0] has no lr")
    for key, value in group.items():
        if key == "params" or value is None or isinstance(value, bool):
            if key in _FLAGS_OFF and value:
                raise PayloadError(f"optimizer.param_groups[0].{key} is on; lenet never sets it")
        elif key == "betas":
            if not (isinstance(value, (list, tuple)) and len(value) == 2
                    and all(_is_real(b) and 0 <= b < 1 for b in value)):  # fmt: skip
                raise PayloadError(
                    f"optimizer.param_groups[0].betas = {value!r} is not two in [0, 1)"
                )
        elif not _is_real(value):
            raise PayloadError(f"optimizer.param_groups[0].{key} = {value!r} is not a number")
    first = next((s for s in optimizer["state"].values() if isinstance(s, dict) and s), {})
    for index, state in optimizer["state"].items():
        if not isinstance(state, dict):
            raise PayloadError(f"optimizer.state[{index}] is not a table")
        if state and set(state) != set(first):  # what one parameter has, each has
            raise PayloadError(
                f"optimizer.state[{index}] holds {sorted(state)}, another parameter's "
                f"{sorted(first)}"
            )
        for key, value in state.items():
            where = f"optimizer.state[{index}].{key}"
            if isinstance(value, torch.Tensor) and value.dim() != 0:  # 0-dim: a step count
                if tuple(value.shape) != shapes[index] or not value.is_floating_point():
                    raise PayloadError(
                        f"{where} is {value.dtype} {list(value.shape)}, not float "
                        f"{list(shapes[index])} as its parameter"
                    )
            elif not (value is None or _is_real(value) or isinstance(value, torch.Tensor)):
                raise PayloadError(f"{where} is a {type(value).__name__}, not a tensor")


def check_resume(payload: dict[str, Any], where: str) -> None:
    """What resuming reads besides the model: the whole config, optimizer, scheduler, run
    state, RNG states."""
    for key in ("config", "optimizer", "scheduler", "state", "rng"):
        if not isinstance(payload.get(key), dict):
            raise PayloadError(f"{key} is missing or not a table")
    _check_config(payload["config"], payload["arch"], where, whole=True)
    optimizer = payload["optimizer"]
    if not isinstance(optimizer.get("state"), dict) or not isinstance(
        optimizer.get("param_groups"), list
    ):
        raise PayloadError("optimizer is not an optimizer state dict (state, param_groups)")
    groups = optimizer["param_groups"]
    if not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        raise PayloadError("optimizer.param_groups are not lists of parameter indices")
    params = [p for g in groups for p in g["params"]]
    if not all(_is_int(p) for p in params) or not set(optimizer["state"]) <= set(params):
        raise PayloadError("optimizer.state does not match its param_groups")
    _check_optimizer(optimizer, [tuple(t.shape) for t in payload["model"].values()])
    _check_run_state(payload["state"])
    _check_top_k_bounds(payload["state"])
    _check_ema_matches(payload)
    rng = payload["rng"]
    size = torch.get_rng_state().numel()
    cpu = rng.get("torch")
    if not isinstance(cpu, torch.Tensor) or cpu.dtype != torch.uint8 or cpu.numel() != size:
        raise PayloadError(f"rng.torch is not a CPU generator state ({size} bytes)")
    gen = rng.get("data_generator")
    if not isinstance(gen, torch.Tensor) or gen.dtype != torch.uint8 or gen.dim() != 1:
        raise PayloadError("rng.data_generator is not a generator state")
    augment = rng.get("augment_generator")  # --augment's draws (absent: a new run's)
    if augment is not None and not (
        isinstance(augment, torch.Tensor)
        and augment.dtype == torch.uint8
        and augment.numel() == size
    ):
        raise PayloadError(f"rng.augment_generator is not a CPU generator state ({size} bytes)")
    python = rng.get("python")
    if python is not None and not (
        isinstance(python, (list, tuple))
        and len(python) == 3
        and _is_int(python[0])
        and isinstance(python[1], (list, tuple))
        and all(_is_int(x) for x in python[1])
    ):
        raise PayloadError("rng.python is not a Python random state")
