"""The tutorial's ``Net`` on the CPU as one C call forward and one backward (layer 2).

``FusedNet(net)`` wraps a ``model.Net`` and shares its layers: the same parameters and the same
``state_dict`` keys, so checkpoints stay plain ``Net`` state_dicts and ``load_state_dict``,
optimizers and checkpoints see no difference. Its forward calls the op ``lenet::net_forward``
where the kernel applies (float32 CPU images, no autocast, no input gradient wanted, shapes the
kernel's buffers hold) and ``Net``'s own forward anywhere else.

Why C: on the CPU, LeNet's first block (one input channel, six output channels) is where
PyTorch spends half a training step (oneDNN is inefficient with so few channels; max-pool
writes int64 indices that backward scatters into a zeroed full-size gradient), and a step is
about twenty autograd nodes of tiny ops. ``kernels/whole_net.c`` runs the network image by
image in cache; docs/kernels.md has the design and the figures.

The C calls are registered with ``torch.library.custom_op``, each with a fake implementation
(shapes only), and the forward with an autograd formula whose backward is the op
``lenet::net_backward``: ``torch.export``, ``torch.compile`` and autograd see two ops with known
shapes instead of an opaque call. The forward op's extra outputs are what the backward needs;
with ``keep`` False (no gradient wanted) they are empty and the kernel uses scratch buffers.

Numbers: the same operations as ``Net``'s forward (the first maximum of each pool window, NaN
wins, ReLU's gradient mask), summed in another order: values differ by float rounding (about
1e-7 relative). No input gradient; no second derivative (an error, not a wrong number).
"""

from __future__ import annotations

import torch
from torch import nn

from lenet_cli import kernel
from lenet_cli.kernel import status  # noqa: F401  (re-exported: whether the kernel runs)
from lenet_cli.model import Net

LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")


@torch.library.custom_op("lenet::net_forward", mutates_args=())
def net_forward(x: torch.Tensor, params: list[torch.Tensor], keep: bool) -> list[torch.Tensor]:
    """[scores, *kept] for images ``x`` and Net's ten parameters (LAYERS order, weight then
    bias); ``kept`` (six tensors) is what ``net_backward`` needs, empty unless ``keep``."""
    return kernel.forward(x, params, keep)


@net_forward.register_fake
def _(x, params, keep):
    n = x.shape[0]
    specs = kernel.kept_specs(x.shape, params)
    kept = [x.new_empty(shape if keep else (0,), dtype=dtype) for shape, dtype in specs]
    return [x.new_empty((n, params[8].shape[0])), *kept]


@torch.library.custom_op("lenet::net_backward", mutates_args=())
def net_backward(
    x: torch.Tensor, params: list[torch.Tensor], gscores: torch.Tensor, kept: list[torch.Tensor]
) -> list[torch.Tensor]:
    """The ten parameters' gradients from dLoss/dscores and ``net_forward``'s kept tensors."""
    return kernel.backward(x, params, gscores, kept)


@net_backward.register_fake
def _(x, params, gscores, kept):
    return [kernel.grad_like(p, i) for i, p in enumerate(params)]


def _setup_context(ctx, inputs, output) -> None:
    x, params, keep = inputs
    ctx.keep = keep
    ctx.save_for_backward(x, *params, *output[1:])
    ctx.mark_non_differentiable(*output[1:])
    ctx.set_materialize_grads(False)  # no zero gradients allocated for the kept outputs


def _backward(ctx, grads):
    if grads[0] is None:  # the scores were not used
        return None, None, None
    if not ctx.keep:
        raise RuntimeError("lenet::net_forward was called with keep=False: no backward")
    x, *rest = ctx.saved_tensors
    params, kept = rest[:10], rest[10:]
    return None, net_backward(x, params, grads[0], kept), None


net_forward.register_autograd(_backward, setup_context=_setup_context)


def supports(model: nn.Module) -> bool:
    """Whether ``model`` is a ``Net`` whose layers the kernel computes: plain stride-1 unpadded
    biased convolutions and biased linear layers."""
    if not isinstance(model, Net):
        return False
    convs = (model.conv1, model.conv2)
    return all(
        c.stride == (1, 1) and c.padding == (0, 0) and c.dilation == (1, 1) and c.groups == 1
        for c in convs
    ) and all(m.bias is not None for m in (*convs, model.fc1, model.fc2, model.fc3))


class FusedNet(nn.Module):
    """``Net`` with its forward and backward as the ops above; shares ``net``'s layers."""

    def __init__(self, net: Net) -> None:
        super().__init__()
        if not supports(net):
            raise ValueError("the fused CPU kernel runs the tutorial's Net (tutorial, lenet5)")
        for name in LAYERS:  # the same modules, registered under the same names: same keys
            self.add_module(name, net.get_submodule(name))
        # not a submodule: its layers are registered above already (no `plain.` keys)
        self.__dict__["plain"] = net

    def _params(self) -> list[torch.Tensor]:
        # read from the parameter dicts: `module.weight` goes through nn.Module.__getattr__
        return [
            t for name in LAYERS for t in self._modules[name]._parameters.values() if t is not None
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = self._params()
        if x.requires_grad or torch.is_autocast_enabled("cpu") or kernel.status() is not None:
            return self.plain(x)  # the kernel gives no input gradient, and computes in float32
        if kernel.unfit(x, params) is not None:
            return self.plain(x)
        keep = torch.is_grad_enabled() and any(p.requires_grad for p in params)
        return net_forward(x, params, keep)[0]
