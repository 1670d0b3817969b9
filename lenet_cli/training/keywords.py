"""``lenet_cli.train``'s keywords checked before anything is read: the options as `lenet train`
checks its flags (an unknown one gets the closest name), ``model=`` run once on a batch of
images, and the keywords that cannot go together."""

from __future__ import annotations

import difflib
import numbers
import os
from typing import Any

import torch
from torch import nn

from lenet_cli.config import FIELDS, HINTS, validate
from lenet_cli.errors import ConfigError, UsageError

# keywords of lenet_cli.train besides TrainConfig's fields
OWN = ("config", "data", "test_data", "model", "callbacks", "resume", "restart_schedule", "nproc")


def _plain(key: str, value: Any) -> Any:
    """A keyword's value as a flag would carry it: paths as text, NumPy numbers as Python's."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, bool) or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float in _types(key):
        return float(value)
    return value


def _types(key: str) -> tuple:
    import typing

    return typing.get_args(HINTS[key]) or (HINTS[key],)


def flags_of(options: dict[str, Any]) -> dict[str, Any]:
    """Keyword options checked as `lenet train` checks its flags (a bad one: UsageError, exit
    2); None means not given, as an absent flag."""
    flags = {}
    for key, value in options.items():
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS + OWN, n=1)
            raise UsageError(
                f"train() has no option {key!r}",
                hint=f"did you mean {close[0]!r}?"
                if close
                else "the options are `lenet train`'s flags with _ for - (docs/api.md)",
            )
        if value is not None:
            flags[key] = _plain(key, value)
    try:
        validate(flags, "flag")
    except ConfigError as e:  # a wrong type: what Typer says of a flag's value (exit 2)
        raise UsageError(e.message.removeprefix("flag: "), hint=e.hint) from None
    return flags


def check_model(model: Any) -> nn.Module:
    """``model=``: an nn.Module with parameters that maps [N, 1, 32, 32] to [N, 10]."""
    if not isinstance(model, nn.Module):
        raise UsageError(
            f"model= takes a torch.nn.Module, got {type(model).__name__}",
            hint="pass an instance: model=MyNet()",
        )
    params = list(model.parameters())
    if not params:
        raise UsageError(f"model= {type(model).__name__} has no parameters to train")
    x = torch.zeros(2, 1, 32, 32, device=params[0].device, dtype=params[0].dtype)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(x)
    except Exception as e:  # the user's forward: any error it raises says what does not fit
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UsageError(
            f"model= {type(model).__name__} fails on a batch of [2, 1, 32, 32] images: "
            f"{type(e).__name__}: {first}",
            hint="lenet's inputs are 32x32 grey images (28x28 digits padded by 2)",
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 10):
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UsageError(
            f"model= {type(model).__name__} maps [2, 1, 32, 32] to {got}, not [2, 10]",
            hint="the last layer gives one score per class (10)",
        )
    return model


def conflicts(flags: dict[str, Any], data: Any, test_data: Any, model: Any) -> None:
    """The keywords that cannot go together: each pair a UsageError (exit 2) naming both."""
    tensors = data is not None and not isinstance(data, str)
    if test_data is not None and not tensors:
        raise UsageError(
            "test_data= goes with data=(images, labels)",
            hint="pass the training set as data=, or drop test_data=",
        )
    if tensors and flags.get("data_dir") is not None:
        raise UsageError("data_dir= reads IDX files; data= gave tensors: pass one of them")
    if model is None:
        return
    for key, why in (
        ("arch", "names a built-in network"),
        ("init", "loads weights into a built-in network (load yours before passing it)"),
    ):
        if flags.get(key) is not None:
            raise UsageError(f"{key}= {why}, and model= gives your own: pass one of them")
    if flags.get("fused"):
        raise UsageError(
            "fused=True: the fused C step computes the built-in networks only",
            hint="drop fused= (your model trains with PyTorch's ops)",
        )
