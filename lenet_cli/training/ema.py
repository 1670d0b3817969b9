"""``--ema DECAY``: an exponential moving average of the weights, kept beside them.

After every optimisation step (the fused step's too: it writes the parameters in place, and the
average reads them right after) each averaged tensor moves towards its parameter:
``avg = d * avg + (1 - d) * weight``, one ``_foreach_lerp_`` over the ten tensors. The decay
used at the n-th update is ``min(DECAY, (1 + n) / (10 + n))`` (TensorFlow's
ExponentialMovingAverage with ``num_updates``): with a fixed 0.999 the average of a short run
would still be mostly the random initial weights after the first epochs.

The average is what the run evaluates after each epoch (``swapped``: copied into the
parameters in place, so the fused kernels and their pointers see it, then copied back) and is
saved in every checkpoint under ``"ema"`` beside the raw ``"model"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class Ema:
    """The moving average of ``model``'s parameters (its buffers, if any, are copied as they
    are); ``updates`` counts the steps averaged so far."""

    def __init__(self, model: nn.Module, decay: float, updates: int = 0) -> None:
        self.decay, self.updates = decay, updates
        named = dict(model.named_parameters())
        self.model, self.names = model, list(named)
        self.params = list(named.values())
        # clone keeps each parameter's layout (channels_last conv weights stay so)
        self.shadow = [p.detach().clone() for p in self.params]

    def current_decay(self) -> float:
        """The decay of the latest update, the n-th: min(DECAY, (1 + n) / (10 + n))."""
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average one step towards the parameters as they are now (the first
        update starts it at them: the weights a run starts from may be loaded after it is
        built, --init)."""
        if self.updates == 0:
            torch._foreach_copy_(self.shadow, self.params)
        self.updates += 1
        torch._foreach_lerp_(self.shadow, self.params, 1.0 - self.current_decay())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The average as the model's state dict (its names, shapes and buffers)."""
        averaged = dict(zip(self.names, self.shadow, strict=True))
        return {k: averaged.get(k, v) for k, v in self.model.state_dict().items()}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any], updates: int) -> None:
        for name, t in zip(self.names, self.shadow, strict=True):
            t.copy_(state[name])
        self.updates = updates

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """The average in the model's parameters (in place) while the block runs."""
        with torch.no_grad():
            raw = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, raw)
