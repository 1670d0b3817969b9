"""The convolution kernels of a model as plain arrays (nothing printed)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn


def filters(model: nn.Module) -> dict[str, np.ndarray]:
    """conv1's kernels [6, 1, k, k] and conv2's [16, 6, k, k] as float32 arrays."""
    return {
        name: getattr(model, name).weight.detach().float().cpu().numpy()
        for name in ("conv1", "conv2")
    }


def describe(kernels: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per layer: the shape, the largest absolute value (the colour scale) and the weights."""
    return {
        name: {
            "shape": list(w.shape),
            "max_abs": float(np.abs(w).max()),
            "weights": np.round(w.astype(np.float64), 5).tolist(),
        }
        for name, w in kernels.items()
    }
