"""What the network computes for one input, layer by layer (nothing printed).

The model runs its own forward pass; forward hooks on its layers record what each produced, so
the pictures show the very numbers behind the prediction:
- conv1's and conv2's feature maps after the activation (ReLU; tanh for ``classic``),
- each block's pooled maps (what the next layer receives),
- fc1's and fc2's outputs after the activation, fc3's scores and their softmax.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lenet_cli.errors import UsageError

STAGES = ("input", "conv1", "pool1", "conv2", "pool2", "fc1", "fc2", "scores", "softmax")


def _activation(arch: str):
    return torch.tanh if arch == "classic" else torch.relu


@torch.no_grad()
def activations(model: nn.Module, x: torch.Tensor, arch: str) -> dict[str, np.ndarray]:
    """Every stage's values for one input ``x`` [1, 1, 32, 32], as float32 numpy arrays
    without the batch dimension (conv1 [6, 30, 30] ... softmax [10] for the tutorial net)."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"one input of shape [1, 1, H, W] expected, got {list(x.shape)}")
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, use_input: bool = False):
        def hook(module, inputs, output=None):  # noqa: ANN001, ANN202
            seen[name] = (inputs[0] if use_input else output).detach()

        return hook

    handles = [
        model.conv1.register_forward_hook(keep("conv1")),
        model.conv2.register_forward_pre_hook(keep("pool1", use_input=True)),
        model.conv2.register_forward_hook(keep("conv2")),
        model.fc1.register_forward_pre_hook(keep("pool2", use_input=True)),
        model.fc1.register_forward_hook(keep("fc1")),
        model.fc2.register_forward_hook(keep("fc2")),
    ]
    was_training = model.training
    try:
        model.eval()
        scores = model(x).float()
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    act = _activation(arch)
    channels, side = (
        seen["conv2"].shape[1],
        int(round((seen["pool2"].numel() / seen["conv2"].shape[1]) ** 0.5)),
    )
    values = {
        "input": x[0, 0],
        "conv1": act(seen["conv1"][0]),
        "pool1": seen["pool1"][0],
        "conv2": act(seen["conv2"][0]),
        "pool2": seen["pool2"].reshape(channels, side, side),
        "fc1": act(seen["fc1"][0]),
        "fc2": act(seen["fc2"][0]),
        "scores": scores[0],
        "softmax": torch.softmax(scores[0], dim=0),
    }
    return {k: v.float().cpu().numpy() for k, v in values.items()}


def dataset_input(
    index: int,
    data: str | None,
    split: str,
    meta: dict[str, Any],
    data_dir: str | None,
    on_event=None,  # noqa: ANN001
) -> tuple[torch.Tensor, int, str]:
    """Image ``index`` of a data set's split, normalised as the model was trained: (x, label,
    where it came from). The data set is the one evaluate takes (``model_data``): ``data``, else
    the model's, else mnist (for plain weights: the bundled sample when full MNIST is absent)."""
    from lenet_cli.use.evaluate import model_data

    ds, images = model_data(
        meta, data=data, split=split, data_dir=data_dir, device=torch.device("cpu"),
        on_event=on_event,
    )  # fmt: skip
    if not 0 <= index < len(ds):
        raise UsageError(
            f"--index {index} is out of range: {ds.name} {split} has {len(ds):,} images",
            hint=f"use 0 to {len(ds) - 1}",
        )
    return images[index : index + 1], int(ds.labels[index]), f"{ds.name} {split} image #{index}"


def file_input(path: Path, mean: float, std: float) -> tuple[torch.Tensor, None, str]:
    """A picture prepared as MNIST's digits were (see predict.py)."""
    from lenet_cli.use.predict import prepare_image

    x, _ = prepare_image(path, mean, std)
    return x.unsqueeze(0), None, str(path)


def describe(values: dict[str, np.ndarray]) -> dict[str, Any]:
    """The stages as JSON-ready nested lists (4 decimals), with their shapes."""
    return {
        k: {"shape": list(v.shape), "values": np.round(v.astype(np.float64), 4).tolist()}
        for k, v in values.items()
    }
