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


def is_int(v: Any) -> bool:
    """A whole number that fits an int64 (torch's counters and tensors hold no more)."""
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63


def is_real(v: Any) -> bool:
    """A finite number (not a bool)."""
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
    if not is_real(v) or v > high or v < low or (low_open and v == low):
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
        if key in payload and (not is_int(payload[key]) or payload[key] < 0):
            raise PayloadError(f"{key} = {payload.get(key)!r} is not a whole number >= 0")
    for key in ("config", "metrics"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise PayloadError(f"{key} is a {type(payload[key]).__name__}, not a table")
    for key, value in payload.items():
        if key not in ("model", "ema"):
            check_plain(value, str(key))
    if payload.get("config") is not None:
        check_config(payload["config"], arch, where)


# The config keys that evaluate/predict read from a checkpoint. Only these are validated there:
# a checkpoint from an older release may hold keys or values that have since changed, and it
# must stay usable (resuming validates the whole config: it trains with it).
_READ_KEYS = ("arch", "loss", "seed", "data", "data_dir")


def check_config(config: dict[str, Any], arch: str, where: str, *, whole: bool = False) -> None:
    """The config's keys that are read (``whole``: all of it) pass a config file's validation."""
    if config.get("arch", arch) != arch:
        raise PayloadError(f"config.arch = {config['arch']!r} but arch = {arch!r}")
    part = config if whole else {k: config[k] for k in _READ_KEYS if k in config}
    try:
        validate(part, f"{where} (config)")
    except ConfigError as e:
        raise PayloadError(e.message.replace(f"{where} (config): ", "config: ")) from None
