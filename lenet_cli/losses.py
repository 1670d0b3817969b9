"""Loss functions by name. Each returns the mean over the batch's samples.

``mse`` is the tutorial's ``nn.MSELoss`` applied to the network's raw scores (no softmax) against
one-hot targets: the mean over the batch of each sample's mean squared error over the 10 scores.
``cross-entropy`` takes the raw scores too (it applies log-softmax itself).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lenet_cli.model import NUM_CLASSES

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def one_hot_targets(labels: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """[N] class indices -> [N, 10] float targets; ``smoothing`` spreads that much mass evenly."""
    target = F.one_hot(labels, NUM_CLASSES).to(torch.float32)
    if smoothing:
        target = target * (1.0 - smoothing) + smoothing / NUM_CLASSES
    return target


def build_loss(name: str, label_smoothing: float = 0.0) -> LossFn:
    """``fn(scores [N,10], labels [N]) -> scalar``, averaged per sample."""
    if name == "cross-entropy":

        def cross_entropy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(scores, labels, label_smoothing=label_smoothing)

        return cross_entropy
    if name == "mse":

        def mse(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(scores, one_hot_targets(labels, label_smoothing))

        return mse
    raise ValueError(f"unknown loss {name!r}; choose cross-entropy or mse")
