"""What resuming reads from a checkpoint besides its model: the whole config, the optimizer's
state, the scheduler, the run's counters and --save-top-k's list, --ema's average, the RNG
states. Checked by ``check_resume`` after ``payload.check_payload`` passed; each problem is a
``PayloadError`` naming the field.
"""

from __future__ import annotations

from typing import Any

import torch

from lenet_cli.runs.payload import PayloadError, check_config, is_int, is_real


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
        if isinstance(default, int) and not (is_int(value) and value >= 0):
            raise PayloadError(f"state.{key} = {value!r} is not a whole number >= 0")
        if isinstance(default, float) and not (is_real(value) and value >= 0):
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
            and is_int(e.get("epoch"))
            and e["epoch"] >= 1
            and is_int(e.get("step"))
            and e["step"] >= 0
            and is_real(e.get("value"))
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
                    and all(is_real(b) and 0 <= b < 1 for b in value)):  # fmt: skip
                raise PayloadError(
                    f"optimizer.param_groups[0].betas = {value!r} is not two in [0, 1)"
                )
        elif not is_real(value):
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
            elif not (value is None or is_real(value) or isinstance(value, torch.Tensor)):
                raise PayloadError(f"{where} is a {type(value).__name__}, not a tensor")


def check_resume(payload: dict[str, Any], where: str) -> None:
    """What resuming reads besides the model: the whole config, optimizer, scheduler, run
    state, RNG states."""
    for key in ("config", "optimizer", "scheduler", "state", "rng"):
        if not isinstance(payload.get(key), dict):
            raise PayloadError(f"{key} is missing or not a table")
    check_config(payload["config"], payload["arch"], where, whole=True)
    optimizer = payload["optimizer"]
    if not isinstance(optimizer.get("state"), dict) or not isinstance(
        optimizer.get("param_groups"), list
    ):
        raise PayloadError("optimizer is not an optimizer state dict (state, param_groups)")
    groups = optimizer["param_groups"]
    if not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        raise PayloadError("optimizer.param_groups are not lists of parameter indices")
    params = [p for g in groups for p in g["params"]]
    if not all(is_int(p) for p in params) or not set(optimizer["state"]) <= set(params):
        raise PayloadError("optimizer.state does not match its param_groups")
    _check_optimizer(optimizer, [tuple(t.shape) for t in payload["model"].values()])
    _check_run_state(payload["state"])
    _check_top_k_bounds(payload["state"])
    _check_ema_matches(payload)
    _check_rng(payload["rng"])


def _check_rng(rng: dict[str, Any]) -> None:
    """The generator states a resume restores: torch's CPU one, the data order's, --augment's
    and Python's, each of its kind and size."""
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
        and is_int(python[0])
        and isinstance(python[1], (list, tuple))
        and all(is_int(x) for x in python[1])
    ):
        raise PayloadError("rng.python is not a Python random state")
