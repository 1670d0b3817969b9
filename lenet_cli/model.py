"""The LeNet variants. Imports only torch; prints nothing.

``tutorial`` is exactly the network of the PyTorch "Neural Networks" tutorial (2019-2021 version):
3x3 kernels, so a 32x32 input shrinks 32 -conv-> 30 -pool-> 15 -conv-> 13 -pool-> 6 and fc1 takes
16*6*6 = 576 inputs; 10 parameter tensors, 81,194 values.

``lenet5`` is the current tutorial's version: 5x5 kernels, 32 -> 28 -> 14 -> 10 -> 5, fc1 takes
16*5*5 = 400; 61,706 values.

``classic`` follows LeNet-5 of LeCun, Bottou, Bengio and Haffner (1998), "Gradient-based learning
applied to document recognition", as a dense re-implementation. What differs from the paper:
- C3 connects every S2 map to every C3 map (the paper used a sparse table of 60 connections);
- S2 and S4 are plain 2x2 average pools (the paper's had a trainable coefficient and bias each);
- the squashing function is plain tanh (the paper used 1.7159 * tanh(2x/3));
- the output layer is a Linear layer giving scores (the paper used Euclidean RBF units with fixed
  7x12 bitmap prototypes), so it trains with cross-entropy or MSE like the others;
- C5 is a 5x5 convolution over a 5x5 map, i.e. a Linear(400, 120) layer, stored as one (same maths).
It has the same parameter count as ``lenet5`` (61,706) with a different activation and pooling.

``Net.forward`` applies ReLU after max-pooling where the tutorial applies it before. ReLU is
monotone (and passes NaN), so relu(max_pool2d(c)) == max_pool2d(relu(c)) bit for bit, and the
gradient reaches the same input (the window's first maximum; where that maximum is <= 0 both
orders give zero); ReLU then touches a quarter of the values. tests/test_model.py checks
outputs and gradients for equality with ``tutorial_forward``.

This file is the readable definition, and what ``torch.jit.trace`` and ``torch.export`` see.
On the CPU, ``lenet train``/``evaluate``/``bench`` run ``Net`` through ``fused.FusedNet``, which
wraps it (same parameters) and computes the same network as one C call forward and one backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SHAPE = (1, 32, 32)
NUM_CLASSES = 10


class Net(nn.Module):
    """The tutorial's LeNet, named ``Net`` as there; its attribute names match the tutorial's."""

    def __init__(self, kernel_size: int = 3) -> None:
        super().__init__()
        side = ((32 - kernel_size + 1) // 2 - kernel_size + 1) // 2  # 6 for 3x3, 5 for 5x5
        self.conv1 = nn.Conv2d(1, 6, kernel_size)
        self.conv2 = nn.Conv2d(6, 16, kernel_size)
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # pool, then ReLU: the tutorial's numbers exactly (see the module docstring)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def tutorial_forward(net: Net, x: torch.Tensor) -> torch.Tensor:
    """``Net``'s forward exactly as the tutorial writes it (ReLU, then max-pool): the reference
    that tests hold ``Net.forward`` to, and what benchmarks/pipeline.py runs as the usual path."""
    x = F.max_pool2d(F.relu(net.conv1(x)), 2)
    x = F.max_pool2d(F.relu(net.conv2(x)), 2)
    x = torch.flatten(x, 1)
    x = F.relu(net.fc1(x))
    x = F.relu(net.fc2(x))
    return net.fc3(x)


class ClassicLeNet5(nn.Module):
    """LeNet-5 after LeCun et al. 1998 (see the module docstring for what differs)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)  # C1
        self.conv2 = nn.Conv2d(6, 16, 5)  # C3, fully connected to S2
        self.fc1 = nn.Linear(16 * 5 * 5, 120)  # C5
        self.fc2 = nn.Linear(120, 84)  # F6
        self.fc3 = nn.Linear(84, 10)  # output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(torch.tanh(self.conv1(x)), 2)  # S2
        x = F.avg_pool2d(torch.tanh(self.conv2(x)), 2)  # S4
        x = torch.flatten(x, 1)
        x = torch.tanh(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.fc3(x)


def build_model(arch: str = "tutorial") -> nn.Module:
    """A freshly initialised network of the named architecture (torch's default init)."""
    if arch == "tutorial":
        return Net(kernel_size=3)
    if arch == "lenet5":
        return Net(kernel_size=5)
    if arch == "classic":
        return ClassicLeNet5()
    raise ValueError(f"unknown architecture {arch!r}; choose tutorial, lenet5 or classic")
