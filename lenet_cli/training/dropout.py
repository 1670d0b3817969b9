"""``--dropout P``: the network trained with dropout after fc1's and fc2's activation.

The tutorial's ``Net`` (model.py) stays as the tutorial writes it, without dropout: it is what
evaluation, export and predict run. Training with dropout calls the same layers through
``DropoutNet``, which shares their parameters and puts ``F.dropout`` after the activations of
fc1 and fc2: in training each of their outputs is zeroed with probability P and the others
scaled by 1 / (1 - P), so at evaluation (no dropout) the plain ``Net`` sees outputs of the same
expected size.

Dropout's masks come from torch's global generator, whose state the checkpoint carries, so a
resumed run draws the masks an uninterrupted one would. The fused step (one C call) has no
dropout: a run with dropout trains through PyTorch's ops (step.py says so).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lenet_cli.model import ClassicLeNet5


class DropoutNet(nn.Module):
    """``net``'s forward with dropout ``p`` after fc1 and fc2 (their ReLU, or tanh for
    ``--arch classic``); ``net`` is a submodule, so the parameters are its own."""

    def __init__(self, net: nn.Module, p: float) -> None:
        super().__init__()
        self.net, self.p = net, p
        classic = isinstance(net, ClassicLeNet5)
        self.act = torch.tanh if classic else F.relu
        self.pool = F.avg_pool2d if classic else F.max_pool2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net, act, pool = self.net, self.act, self.pool
        x = pool(act(net.conv1(x)), 2)
        x = pool(act(net.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.dropout(act(net.fc1(x)), self.p, training=self.training)
        x = F.dropout(act(net.fc2(x)), self.p, training=self.training)
        return net.fc3(x)
