"""The tutorial's ``Net`` on the CPU as one C call forward and one backward.

``FusedNet(net)`` wraps a ``model.Net`` and shares its layers: the same parameters and the same
``state_dict`` keys, so checkpoints stay plain ``Net`` state_dicts and ``load_state_dict``,
optimizers and checkpoints see no difference. Its forward runs the kernel where it applies
(float32 CPU images, no autocast, no input gradient wanted, shapes the kernel's buffers hold)
and ``Net``'s own forward anywhere else.

Why C: on the CPU, LeNet's first block (one input channel, six output channels) is where
PyTorch spends half a training step (oneDNN is inefficient with so few channels; max-pool
writes int64 indices that backward scatters into a zeroed full-size gradient), and a step is
about twenty autograd nodes of tiny ops. ``kernels/whole_net.c`` runs the network image by
image in cache; docs/kernels.md has the design and the figures.

The C calls are registered with ``torch.library.custom_op``, each with a fake implementation
(shapes only), and the forward with an autograd formula whose backward is the op
``lenet::net_backward``: ``torch.export`` and ``torch.compile`` see two ops with known shapes
instead of an opaque call. The forward op's extra outputs are what the backward needs; with
``keep`` False (no gradient wanted) they are empty and the kernel uses scratch buffers. Eager
runs (what the commands do) call the same functions through a plain autograd.Function
(``_Eager``), which skips the op dispatcher's Python overhead; tests hold both paths equal.

Training in ``lenet train`` goes one step further: ``fused_step.FusedStep`` runs forward, loss,
backward and the optimizer's update as one C call, on these same kernels.

Numbers: the same operations as ``Net``'s forward (the first maximum of each pool window, NaN
wins, ReLU's gradient mask), summed in another order: values differ by float rounding (about
1e-7 relative). No input gradient; no second derivative (an error, not a wrong number).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from lenet_cli.fast import kernel
from lenet_cli.fast.kernel import status  # noqa: F401  (re-exported: whether the kernel runs)
from lenet_cli.model import Net

LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")


def unfit(x: torch.Tensor, params) -> str | None:
    """Why the kernel cannot run Net's ten parameters (conv1, conv2, fc1, fc2, fc3; weight then
    bias) on images ``x``; None when it can. Runs on every forward (and in the ops, which may be
    called directly), so it reads each tensor's attributes once (``t.device`` would build a
    torch.device per call); the sizes are checked against the limits the loaded library reports
    (``kernel.limits()``), and the C side checks them again."""
    if len(params) != 10 or any(t.dtype is not torch.float32 or not t.is_cpu for t in params):
        return "not Net's ten float32 CPU parameters"
    if x.dtype is not torch.float32 or not x.is_cpu or x.dim() != 4:
        return "float32 CPU images [N,1,H,W] only"
    (n, c, h, w), shapes = x.shape, [t.shape for t in params]
    if [len(s) for s in shapes] != [4, 1, 4, 1, 2, 1, 2, 1, 2, 1]:
        return "not Net's ten parameters"
    (c1, cin1, k1, k1w), (c2, cin2, k2, k2w) = shapes[0], shapes[2]
    h1, w1 = (h - k1 + 1) // 2, (w - k1 + 1) // 2
    lim = kernel.limits()
    f = lim.lanes * ((h1 - k2 + 1) // 2) * ((w1 - k2 + 1) // 2)
    if n < 1 or c != 1 or cin1 != 1:
        return "a batch of one-channel images [N,1,H,W] only"
    if not (k1 == k1w and k2 == k2w and c2 == lim.lanes and 1 <= cin2 == c1 <= lim.max_c1):
        return f"conv layers other than Net's (square kernels, {lim.lanes} channels out of conv2)"
    if not (1 <= k1 and 1 <= k2 <= lim.max_k2):
        return f"kernel sizes the kernel does not take (conv2's: 1 to {lim.max_k2})"
    side = lim.max_side
    if not (k1 + 1 <= min(h, w) and max(h, w) <= side and k2 + 1 <= min(h1, w1)):
        return f"{h}x{w} images (the kernel's buffers hold up to {side}x{side})"
    if w1 > lim.max_w1:
        return f"{h}x{w} images (conv1's pooled output is {w1} wide, over {lim.max_w1})"
    (o1, i1), (o2, i2), (o3, i3) = shapes[4], shapes[6], shapes[8]
    if [s[0] for s in shapes[1::2]] != [c1, c2, o1, o2, o3] or (i1, i2, i3) != (f, o1, o2):
        return f"dense layers that do not follow conv2's {f} outputs"
    for conv in (params[0], params[2]):  # read at their strides: dense, either layout
        if not (conv.is_contiguous() or conv.is_contiguous(memory_format=torch.channels_last)):
            return "conv weights that are neither contiguous nor channels_last"
    return None


def kept_specs(x_shape, params) -> list[tuple[tuple[int, ...], torch.dtype]]:
    """(shape, dtype) of what the forward keeps for the backward, for images of ``x_shape`` and
    Net's ten parameters: both blocks' outputs and argmaxes, the two hidden layers' activations
    (padded to whole vectors)."""
    n, _, h, w = x_shape
    c1, k1, k2 = params[0].shape[0], params[0].shape[-1], params[2].shape[-1]
    h1, w1 = (h - k1 + 1) // 2, (w - k1 + 1) // 2
    lanes = kernel.limits().lanes
    block1, block2 = (n, c1, h1, w1), (n, lanes * ((h1 - k2 + 1) // 2) * ((w1 - k2 + 1) // 2))
    hidden1, hidden2 = (
        (n, _whole_vectors(params[4].shape[0])),
        (n, _whole_vectors(params[6].shape[0])),
    )
    f32, u8 = torch.float32, torch.uint8
    return [(block1, f32), (block1, u8), (block2, f32), (block2, u8), (hidden1, f32),
            (hidden2, f32)]  # fmt: skip


def _whole_vectors(n: int) -> int:
    lanes = kernel.limits().lanes
    return -(-n // lanes) * lanes


def set_sizes(a: kernel.Args, shape, params) -> None:
    """The struct's sizes for batches of ``shape`` [N,1,H,W] and Net's ten parameters (their
    shapes, and the conv weights' strides, at which the kernel reads them)."""
    a.n, a.h, a.w = shape[0], shape[2], shape[3]
    a.c1, a.k1, a.k2 = params[0].shape[0], params[0].shape[-1], params[2].shape[-1]
    a.o1, a.o2, a.o3 = (params[i].shape[0] for i in (4, 6, 8))
    a.s1[:], a.s2[:] = params[0].stride(), params[2].stride()


def _args(x: torch.Tensor, params, checked: bool) -> tuple[kernel.Args, list[torch.Tensor]]:
    """The struct for images ``x`` [N,1,H,W] and Net's ten parameters (conv1, conv2, fc1, fc2,
    fc3; weight then bias), and the tensors it points into (alive until the call returns).
    ``checked``: the caller has just seen ``unfit`` return None for them."""
    reason = None if checked else unfit(x, params)
    if reason is not None:
        raise ValueError(f"the fused CPU kernel cannot run this: {reason}")
    n, _, h, w = x.shape
    x3 = x.reshape(n, h, w).contiguous()  # one channel: a view for NCHW and channels_last alike
    # the conv weights as they are (the kernel reads them at their strides), the rest contiguous
    held = [x3, *(p if i in (0, 2) else p.contiguous() for i, p in enumerate(params))]
    a = kernel.Args()
    set_sizes(a, x.shape, params)
    a.threads = max(1, min(torch.get_num_threads(), n))
    a.x = x3.data_ptr()
    a.prm[:] = [p.data_ptr() for p in held[1:]]
    return a, held


def _kernel_forward(x: torch.Tensor, params, keep: bool, checked=False) -> list[torch.Tensor]:
    """[scores, *kept]: Net's scores for ``x``, and with ``keep`` what ``_kernel_backward`` needs
    (else six empty tensors)."""
    a, held = _args(x, params, checked)
    scores = torch.empty((x.shape[0], a.o3))
    specs = kept_specs(x.shape, params)
    kept = [torch.empty(shape if keep else (0,), dtype=dtype) for shape, dtype in specs]
    a.scores = scores.data_ptr()
    if keep:
        a.out1, a.idx1, a.out2, a.idx2, a.a1, a.a2 = (t.data_ptr() for t in kept)
    kernel.call("lenet_forward", a)
    return [scores, *kept]


def grad_like(p: torch.Tensor, i: int) -> torch.Tensor:
    """An empty gradient for parameter ``i``: the conv weights' at their strides (as autograd
    would lay them out), the others contiguous (as the kernel writes them)."""
    return torch.empty_strided(p.shape, p.stride()) if i in (0, 2) else torch.empty(p.shape)


def _kernel_backward(x, params, gscores: torch.Tensor, kept, checked=False) -> list[torch.Tensor]:
    """The ten parameters' gradients from dLoss/dscores and what ``_kernel_forward`` kept."""
    a, held = _args(x, params, checked)
    gs = gscores.contiguous()
    grads = [grad_like(p, i) for i, p in enumerate(params)]
    got = None if checked else [(tuple(t.shape), t.dtype) for t in kept]
    if not checked and (
        gs.shape != (x.shape[0], a.o3)
        or gs.dtype != torch.float32
        or got != kept_specs(x.shape, params)
        or not all(t.is_contiguous() for t in kept)
    ):
        raise ValueError("lenet_backward needs the scores' gradient and what the forward kept")
    a.gscores = gs.data_ptr()
    a.out1, a.idx1, a.out2, a.idx2, a.a1, a.a2 = (t.data_ptr() for t in kept)
    a.grads[:] = [g.data_ptr() for g in grads]
    kernel.call("lenet_backward", a)
    return grads


# The ops' schemas: the parameters as ten Tensor arguments and the results as tuples, not
# Tensor[] lists (autograd wraps list arguments in pytree code that cost 40 us per step).
PARAMS = ", ".join(f"Tensor {layer}_{kind}" for layer in LAYERS for kind in ("weight", "bias"))
KEPT = "Tensor out1, Tensor idx1, Tensor out2, Tensor idx2, Tensor a1, Tensor a2"


def _results(n: int) -> str:
    return "(" + ", ".join(["Tensor"] * n) + ")"


@torch.library.custom_op(
    "lenet::net_forward",
    mutates_args=(),
    schema=f"(Tensor x, {PARAMS}, bool keep) -> {_results(7)}",
)
def net_forward(x: torch.Tensor, *params_keep) -> tuple[torch.Tensor, ...]:
    """(scores, *kept) for images ``x`` and Net's ten parameters (LAYERS order, weight then
    bias), then ``keep``; ``kept`` (six tensors) is what ``net_backward`` needs, empty unless
    ``keep``."""
    *params, keep = params_keep
    return tuple(_kernel_forward(x, params, keep))


@net_forward.register_fake
def _(x, *params_keep):
    *params, keep = params_keep
    specs = kept_specs(x.shape, params)
    kept = [x.new_empty(shape if keep else (0,), dtype=dtype) for shape, dtype in specs]
    return (x.new_empty((x.shape[0], params[8].shape[0])), *kept)


@torch.library.custom_op(
    "lenet::net_backward",
    mutates_args=(),
    schema=f"(Tensor x, {PARAMS}, Tensor gscores, {KEPT}) -> {_results(10)}",
)
def net_backward(x: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The ten parameters' gradients from the parameters, dLoss/dscores and ``net_forward``'s
    kept tensors."""
    return tuple(_kernel_backward(x, rest[:10], rest[10], rest[11:]))


@net_backward.register_fake
def _(x, *rest):
    return tuple(grad_like(p, i) for i, p in enumerate(rest[:10]))


def _setup_context(ctx, inputs, output) -> None:
    x, *params, keep = inputs
    ctx.keep = keep
    ctx.save_for_backward(x, *params, *output[1:])
    ctx.mark_non_differentiable(*output[1:])
    ctx.set_materialize_grads(False)  # no zero gradients allocated for the kept outputs


def _backward(ctx, gscores, *_kept_grads):
    if gscores is None:  # the scores were not used
        return (None,) * 12
    if not ctx.keep:
        raise RuntimeError("lenet::net_forward was called with keep=False: no backward")
    x, *rest = ctx.saved_tensors
    return None, *net_backward(x, *rest[:10], gscores, *rest[10:]), None


net_forward.register_autograd(_backward, setup_context=_setup_context)


class _Eager(torch.autograd.Function):
    """The same kernels as the ops, for eager runs: calling a ``custom_op`` goes through
    PyTorch's Python dispatcher, which costs about twice what an autograd.Function does per
    forward and backward: a few percent of a batch-64 step."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        scores, *kept = _kernel_forward(x, params, keep=True, checked=True)
        ctx.save_for_backward(x, *params, *kept)
        return scores

    @staticmethod
    @once_differentiable  # the kernel's gradients carry no graph of their own
    def backward(ctx, gscores: torch.Tensor):
        x, *rest = ctx.saved_tensors
        grads = _kernel_backward(x, rest[:10], gscores, rest[10:], checked=True)
        return None, *grads


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
        if unfit(x, params) is not None:  # a shape or type it does not take: PyTorch's ops
            return self.plain(x)
        keep = torch.is_grad_enabled() and any(p.requires_grad for p in params)
        if torch.compiler.is_compiling():  # export, compile: the op, which they can trace
            return net_forward(x, *params, keep)[0]
        if keep:
            return _Eager.apply(x, *params)
        return _kernel_forward(x, params, keep=False, checked=True)[0]
