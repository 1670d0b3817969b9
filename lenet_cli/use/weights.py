"""Weights that `lenet train` did not write: plain state_dicts and .safetensors files.

Every tutorial reader has ``torch.save(net.state_dict(), PATH)``; such a file carries no
architecture, no normalisation and no checksum. The architecture is inferred from the tensor
names and shapes (3x3 kernels: tutorial; 5x5: lenet5, unless a .safetensors file written by
``lenet export`` names classic, which has the same shapes); inputs are normalised with MNIST's
mean and std unless the file says otherwise, and a notice says both. Loading stays
``torch.load(weights_only=True)``; safetensors files hold no code at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet_cli.errors import CheckpointError, MissingExtraError
from lenet_cli.files import MAGIC, TRAILER_LEN
from lenet_cli.model import build_model
from lenet_cli.runs.checkpoint import MAX_BYTES, load_refusal, resolve_path
from lenet_cli.runs.checkpoint import load_model as load_checkpoint_model
from lenet_cli.runs.payload import PayloadError, check_model
from lenet_cli.runs.weightsmeta import weights_metadata

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the pytorch/examples values for MNIST
_KERNELS = {"tutorial": "3x3 kernels", "lenet5": "5x5 kernels"}
_NESTED = ("state_dict", "model_state_dict", "model")  # common torch.save({...}) layouts
SAFETENSORS_FORMAT = "lenet-cli-weights"


def is_lenet_checkpoint(path: Path) -> bool:
    """Whether ``path`` ends with the checksum trailer of a checkpoint written by `lenet train`."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            if f.tell() <= TRAILER_LEN:
                return False
            f.seek(-TRAILER_LEN, 2)
            return f.read(TRAILER_LEN).startswith(MAGIC)
    except OSError:
        return True  # let the checkpoint loader report the read error


def safetensors_torch():
    """``safetensors.torch``, or a MissingExtraError naming what to install."""
    try:
        import safetensors.torch
    except ImportError:
        raise MissingExtraError(
            "reading and writing .safetensors files needs the safetensors package",
            hint="pip install safetensors (it comes with lenet-cli's dependencies)",
        ) from None
    return safetensors.torch


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    st = safetensors_torch()
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        return st.load_file(str(path)), meta
    except Exception as e:  # SafetensorError, OSError: a header or size that does not add up
        raise CheckpointError(f"{path} is not a readable .safetensors file: {_first(e)}") from None


def _first(e: Exception) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def _read_torch(path: Path) -> dict[str, Any]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for unsafe content; anything else is corruption
        raise CheckpointError(
            f"refusing {path}: {load_refusal(e)}",
            hint="pass a checkpoint of `lenet train`, a torch.save(net.state_dict()) file "
            "or a .safetensors file",
        ) from None
    if isinstance(obj, dict) and obj.get("format") == "lenet-cli-checkpoint":
        raise CheckpointError(
            f"checkpoint {path} is damaged: its checksum trailer is missing or altered",
            hint="use another checkpoint (best.pt / last.pt) or retrain",
        )
    for key in _NESTED:  # torch.save({"epoch": ..., "model_state_dict": ...}) and the like
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path} does not hold a state_dict (a dict of tensors)")
    return obj


def _clean(state: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """Names without a DataParallel ``module.`` prefix; tensors only."""
    if all(str(k).startswith("module.") for k in state):
        state = {str(k)[len("module.") :]: v for k, v in state.items()}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: {name!s} is a {type(value).__name__}, not a tensor")
    return state


def mismatch(state: dict[str, torch.Tensor], arch: str) -> str | None:
    """The first tensor of ``state`` that does not fit ``arch``, described; None if all fit."""
    want = {k: tuple(v.shape) for k, v in build_model(arch).state_dict().items()}
    for name, shape in want.items():
        if name not in state:
            return f"it has no tensor {name} (a {arch!r} LeNet has {list(shape)})"
        if tuple(state[name].shape) != shape:
            got = list(state[name].shape)
            return f"tensor {name} has shape {got}, a {arch!r} LeNet has {list(shape)}"
        if not state[name].is_floating_point():
            return f"tensor {name} is {state[name].dtype}, not floating point"
    extra = [k for k in state if k not in want]
    return f"it has a tensor {extra[0]} that no LeNet here has" if extra else None


def infer_arch(state: dict[str, torch.Tensor], where: str) -> str:
    """tutorial or lenet5 from the tensor shapes, or a CheckpointError naming the first misfit."""
    problems = {arch: mismatch(state, arch) for arch in _KERNELS}
    for arch, problem in problems.items():
        if problem is None:
            return arch
    conv1 = state.get("conv1.weight")
    closest = "lenet5" if conv1 is not None and tuple(conv1.shape[-2:]) == (5, 5) else "tutorial"
    raise CheckpointError(
        f"{where} matches no LeNet architecture: {problems[closest]}",
        hint="the tutorial's Net (3x3 kernels) and lenet5 / classic (5x5) are read",
    )


def read_weights(
    path: str | Path, model: nn.Module | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, meta) of a plain state_dict or .safetensors file; meta says what was assumed.

    ``model``: an nn.Module given in Python whose state dict the file must fit (no LeNet is
    inferred then)."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_BYTES:  # before anything reads it: a 10 GB file is not read whole
        raise CheckpointError(f"refusing {path}: it is {size:,} bytes, more than {MAX_BYTES:,}")
    if path.suffix == ".safetensors":
        state, header = _read_safetensors(path)
    else:
        state, header = _read_torch(path), {}
    state = _clean(state, path)
    try:
        said_by = weights_metadata(header, SAFETENSORS_FORMAT)
    except ValueError as e:
        raise CheckpointError(
            f"refusing {path}: {e}", hint="fix or drop that metadata key"
        ) from None
    named = said_by["arch"]
    expected, label = None, None
    if model is not None:  # its names and shapes, checked below
        arch, expected, label = None, model.state_dict(), type(model).__name__
    elif named is not None:
        arch, problem = named, mismatch(state, named)
        if problem:
            raise CheckpointError(f"{path} says it holds {named!r}, but {problem}")
    else:
        arch = infer_arch(state, str(path))
    try:
        check_model(state, label or arch, expected=expected)  # finite values, and names
    except PayloadError as e:
        raise CheckpointError(f"refusing {path}: {e}") from None
    if said_by["mean"] is not None:
        mean, std = said_by["mean"], said_by["std"]
        said = f"mean/std {mean:g}/{std:g} from its metadata"
    else:
        mean, std = MNIST_MEAN, MNIST_STD
        said = f"inputs normalised with MNIST's mean/std ({MNIST_MEAN}, {MNIST_STD}) by default"
    if model is not None:
        how = "into the model given"
    else:
        how = "named in its metadata" if named else f"inferred from its {_KERNELS[arch]}"
    meta = {
        "arch": arch,
        "mean": mean,
        "std": std,
        "data": said_by["data"],
        "epoch": None,
        "step": None,
        "config": None,
        "metrics": None,
        "path": str(path),
        "notice": f"{path} holds plain weights: read as {arch or label!r} ({how}); {said}",
    }
    return state, meta


def load_model(
    path: str | Path,
    device: torch.device,
    weights: str | None = None,
    model: nn.Module | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Like ``checkpoint.load_model``, and also for plain state_dicts and .safetensors files.

    For those, ``meta["notice"]`` says what was inferred; the caller shows it. ``weights``:
    "ema", "raw" or None (checkpoint.load_model); plain weights are raw weights only.
    ``model``: an nn.Module given in Python to load the weights into (lenet_cli.load).
    """
    path = resolve_path(path)
    if path.suffix != ".safetensors" and is_lenet_checkpoint(path):
        return load_checkpoint_model(path, device, weights, model)
    if weights == "ema":
        raise CheckpointError(
            f"{path} holds plain weights, no averaged weights of --ema",
            hint="use --weights raw, or a checkpoint of a run trained with --ema",
        )
    state, meta = read_weights(path, model)
    meta["weights"] = "raw"
    model = build_model(meta["arch"]) if model is None else model
    model.load_state_dict(state)  # shapes were checked above
    return model.to(device).eval(), meta


def init_weights(path: str | Path, arch: str) -> tuple[dict[str, torch.Tensor], str]:
    """(state_dict, notice) for ``train --init PATH``: any weights file that fits ``arch``."""
    model, meta = load_model(path, torch.device("cpu"))
    state = model.state_dict()
    problem = mismatch(state, arch)
    if problem:
        raise CheckpointError(
            f"--init {path} does not fit --arch {arch}: {problem}",
            hint=f"pass the --arch it was trained as ({meta['arch']}?)",
        )
    said = f"{meta['notice']}; " if meta.get("notice") else ""
    return state, f"{said}training starts from the weights of {meta['path']}"
