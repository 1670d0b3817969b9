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

Speed notes, none of which changes a number:
- the tutorial writes max_pool2d(relu(conv(x))). ReLU and max-pooling commute (ReLU is monotone),
  so relu(max_pool2d(conv(x))) gives bit-identical outputs and gradients while applying ReLU to a
  quarter of the values;
- where no gradient is needed (evaluation, prediction), ``max_pool2`` takes the maximum of the four
  strided views instead of calling max_pool2d, which also computes the int64 argmax indices that
  only backward uses (the first pool at batch 1024, 2 threads: 5.8 ms instead of 13.0 ms).

With ``fused = True`` (set by ``speed.prepare_model`` on the CPU), ``Net`` runs as C kernels
(``fused.py``): on 32x32 images (3x3 or 5x5 kernels) the whole network is one call forward and one
backward; otherwise each block, relu(max_pool2d(conv(x))), is one call wherever its kernel
applies. The values then differ from PyTorch's ops by float rounding only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lenet_cli import fused as _fused

INPUT_SHAPE = (1, 32, 32)
NUM_CLASSES = 10


def max_pool2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)`` value for value; without argmax indices when no gradient is needed."""
    if torch.is_grad_enabled() and x.requires_grad:
        return F.max_pool2d(x, 2)  # backward needs its indices (the first maximum of each window)
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2  # an odd last row/column is dropped, as there
    top = torch.maximum(x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2])
    return torch.maximum(top, torch.maximum(x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]))


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
        self.fused = False  # C kernels on the CPU (fused.py)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plan = _fused.plan(x, self) if self.fused else None
        if plan is not None:  # the whole network: one C call forward, one backward
            return _fused.lenet(x, *plan)
        if self.fused and _fused.applies(x, self.conv1):
            x = _fused.conv_pool_relu(x, self.conv1)
        else:  # pool before ReLU: the tutorial's numbers (see the module docstring)
            x = F.relu(max_pool2(self.conv1(x)))
        if self.fused and _fused.applies2(x, self.conv2):
            x = _fused.conv_pool_relu16(x, self.conv2)
        else:
            x = F.relu(max_pool2(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def tutorial_forward(net: Net, x: torch.Tensor) -> torch.Tensor:
    """``Net``'s forward exactly as the tutorial writes it (ReLU, then max-pool).

    The reference that tests hold ``Net.forward`` to, and what the usual-pipeline benchmark runs.
    """
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
