"""LeNet on the CPU as C kernels: the whole tutorial network in one call forward and one
backward, or its two conv -> 2x2 max-pool -> ReLU blocks one call each (layer 2).

Why: on the CPU, LeNet's first block (one input channel, six output channels) is where training
spent about half its time: oneDNN's convolution is inefficient with so few channels, and
PyTorch's channels_last max-pool takes a scalar path for six channels and writes int64 argmax
indices that backward scatters into a zeroed full-size gradient. ``kernels/conv_pool_relu.c``
does the first block per image in cache: for each pooled row, the two conv rows' 32 columns
are four vector accumulators in registers (no conv output is stored), pooled by splitting even
and odd columns, with a one-byte argmax; backward rebuilds the conv output's gradient the same
way and goes straight to the weight and bias gradients. Its output is NCHW, which the second
block (16 output channels, ``conv_pool_relu16``) reads; that one holds a position's 16
channels in one vector, and its backward also gives the input gradient that the first block's
backward needs. For the tutorial's network (``plan``), ``lenet`` runs both blocks and the
three dense layers in one C call (per image, the dense layers four images at a time) and its
backward in one more, which leaves autograd one node instead of about twenty and PyTorch's
small matrix products out (docs/benchmarks.md has the figures). Other shapes fall back to the
blocks (``applies``, ``applies2``), anything else to PyTorch's ops.

How: the C file is compiled on first use with the system C compiler (``$CC``, else ``cc``) into
the user cache (``$LENET_KERNEL_DIR``, else ``$XDG_CACHE_HOME/lenet/kernels``), named by a hash
of the source, the compiler, the flags and this CPU's feature flags (it is built with
``-march=native``), and loaded with ctypes after torch, so its OpenMP calls run on PyTorch's own
threads (the same libgomp). ``status()`` says whether it is usable and why not; nothing here
prints.

Numbers: the same operations as ``relu(max_pool2d(conv2d(x)))``: the first maximum of each
window (NaN wins) and ReLU's gradient mask, as PyTorch defines them. The convolution sums its
terms in another order than oneDNN, and the dense layers in another order than PyTorch's
matrix products, so values differ by float rounding (about 1e-7 relative), as channels_last's
do. The convolutions' gradient sums run per thread in double; the dense layers' over the
images in order.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch
from torch.autograd.function import once_differentiable

SOURCE = Path(__file__).with_name("kernels") / "conv_pool_relu.c"
FLAGS = ("-O3", "-march=native", "-fno-trapping-math", "-fopenmp", "-shared", "-fPIC")
_P, _I = ctypes.c_void_p, ctypes.c_int
# Below this many images PyTorch's ops are faster than the per-block kernels (a single image:
# 100 us against 155 us, the ctypes call and the OpenMP region cost more than the work). The
# whole-network path is faster at any batch (a training step at batch 1: 431-456 us against
# 652-667 us), so it has no minimum.
MIN_BATCH = 8

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_reason: str | None = None  # why the kernel is not usable, once tried
_limits = (0, 0)  # (most channels, largest image side)


def kernel_dir() -> Path:
    """Where built kernels are kept."""
    if os.environ.get("LENET_KERNEL_DIR"):
        return Path(os.environ["LENET_KERNEL_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lenet" / "kernels"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build() -> Path:
    """The compiled library's path, compiling it when this cache has none (raises OSError)."""
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        raise OSError(f"no C compiler ({cc!r} not found; set CC or install gcc)")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), cc, version.stdout, " ".join(FLAGS), _cpu_flags()):
        key.update(part if isinstance(part, bytes) else part.encode())
    target = kernel_dir() / f"conv_pool_relu-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".build-", suffix=".so")
    os.close(fd)
    try:
        done = subprocess.run(
            [cc, *FLAGS, "-o", tmp, str(SOURCE)], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise OSError(f"{cc} could not build {SOURCE.name}: {last}")
        os.replace(tmp, target)  # atomic: a concurrent build leaves one complete file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def status() -> str | None:
    """None when the kernel is usable; otherwise why not (built and loaded once per process)."""
    global _lib, _reason, _limits
    if _lib is not None:  # the common case, every forward: no lock
        return None
    with _lock:
        if _lib is None and _reason is None:
            try:
                lib = ctypes.CDLL(str(_build()))
                lib.cpr_forward.argtypes = [_P, _P, _P, _P, _P, _I, _I, _I, _I, _I, _I]
                lib.cpr_backward.argtypes = [_P] * 6 + [_I] * 9
                lib.cpr16_forward.argtypes = [_P] * 5 + [_I] * 6
                lib.cpr16_backward.argtypes = [_P] * 8 + [_I] * 10
                lib.lenet_forward.argtypes = [_P] * 10
                lib.lenet_backward.argtypes = [_P] * 11
                channels, side = ctypes.c_int(), ctypes.c_int()
                lib.cpr_limits(ctypes.byref(channels), ctypes.byref(side))
                _lib, _limits = lib, (channels.value, side.value)
            except (OSError, subprocess.SubprocessError, AttributeError) as e:
                _reason = str(e) or type(e).__name__
        return _reason


def _cpu_float(x: torch.Tensor) -> bool:
    """A float32 CPU batch of images, no autocast, and the kernels built."""
    return (
        x.dim() == 4
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and status() is None
    )


def _weight_bias(module: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A layer's weight and bias, read from its parameter dict (``module.weight`` goes through
    nn.Module.__getattr__, about 0.6 us a time here, and a forward checks twenty)."""
    params = module._parameters
    return params["weight"], params.get("bias")


def _conv_fits(shape, conv: torch.nn.Conv2d, w: torch.Tensor, b: torch.Tensor | None) -> bool:
    """A square, stride-1, unpadded, biased float32 CPU conv (weight w, bias b) whose windows
    fit images of ``shape`` (N, C, H, W) and the kernels' buffers (after ``status()``)."""
    return (
        b is not None
        and shape[1] == w.shape[1]
        and w.dtype == torch.float32
        and b.dtype == torch.float32
        and w.is_cpu
        and b.is_cpu
        and b.is_contiguous()
        and conv.stride == (1, 1)
        and conv.padding == (0, 0)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and w.shape[-1] == w.shape[-2]
        and w.shape[-1] + 1 <= min(shape[-2], shape[-1])
        and max(shape[-2], shape[-1]) <= _limits[1]  # the kernels' buffers
    )


def _block1(shape, conv: torch.nn.Conv2d, w: torch.Tensor, b: torch.Tensor | None) -> bool:
    """The first block's kernel: one input channel."""
    return w.shape[1] == 1 and w.shape[0] <= _limits[0] and _conv_fits(shape, conv, w, b)


def _block2(shape, conv: torch.nn.Conv2d, w: torch.Tensor, b: torch.Tensor | None) -> bool:
    """The second block's kernel: 16 output channels, at most 16 input channels (MAXCIN in the
    kernel), input rows of at most 16 columns (the backward holds one in a 16-lane vector)."""
    return (
        w.shape[0] == 16 and w.shape[1] <= 16 and shape[-1] <= 16 and _conv_fits(shape, conv, w, b)
    )


def applies(x: torch.Tensor, conv: torch.nn.Conv2d) -> bool:
    """Whether ``conv_pool_relu`` can stand in for relu(max_pool2d(conv(x), 2)) here: the
    first block, a batch of MIN_BATCH or more, no input gradient wanted (the kernel gives
    none)."""
    return (
        x.dim() == 4
        and x.shape[0] >= MIN_BATCH  # first: the cheapest test, and the one tiny batches fail
        and not x.requires_grad
        and _cpu_float(x)
        and _block1(x.shape, conv, *_weight_bias(conv))
    )


def applies2(x: torch.Tensor, conv: torch.nn.Conv2d) -> bool:
    """Whether ``conv_pool_relu16`` can stand in for relu(max_pool2d(conv(x), 2)) here: the
    second block, a batch of MIN_BATCH or more, any input gradient wanted."""
    return (
        x.dim() == 4
        and x.shape[0] >= MIN_BATCH
        and _cpu_float(x)
        and _block2(x.shape, conv, *_weight_bias(conv))
    )


LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")

Plan = tuple[tuple[torch.Tensor, ...], tuple[int, ...]]


def plan(x: torch.Tensor, net: torch.nn.Module) -> Plan | None:
    """What ``lenet`` needs to run the whole of ``net`` (model.Net) on ``x``: its ten parameters
    in LAYERS order and the sizes the C functions take; None where it does not apply. Any
    batch but an empty one; no input gradient (the backward gives none)."""
    if x.requires_grad or not _cpu_float(x) or x.shape[0] == 0:
        return None
    mods = net._modules
    params = tuple(t for name in LAYERS for t in _weight_bias(mods[name]))
    w1, b1, w2, b2, *dense = params
    n, _, h, w = x.shape
    k1 = w1.shape[-1]
    s1 = (n, w1.shape[0], (h - k1 + 1) // 2, (w - k1 + 1) // 2)
    if not (_block1(x.shape, mods["conv1"], w1, b1) and _block2(s1, mods["conv2"], w2, b2)):
        return None
    k2 = w2.shape[-1]
    v1, _, v2, _, v3, _ = dense
    if not (
        all(t is not None and t.dtype == torch.float32 and t.is_cpu for t in dense)
        and all(t.is_contiguous() for t in dense)
        and v1.shape[1] == 16 * ((s1[2] - k2 + 1) // 2) * ((s1[3] - k2 + 1) // 2)
        and v2.shape[1] == v1.shape[0]
        and v3.shape[1] == v2.shape[0]
    ):
        return None
    sizes = (
        n, h, w, s1[1], k1, k2, v1.shape[0], v2.shape[0], v3.shape[0],
        min(torch.get_num_threads(), n), *w1.stride(), *w2.stride(),
    )  # fmt: skip
    return params, sizes


def _run(name: str, *args: torch.Tensor | int) -> None:
    """Call the kernel ``name`` with tensors passed as data pointers; a non-zero result means
    it could not allocate its scratch memory (the per-thread sums, the backward's buffers)."""
    assert _lib is not None
    ptrs = [a.data_ptr() if isinstance(a, torch.Tensor) else a for a in args]
    if getattr(_lib, name)(*ptrs):
        raise MemoryError("the fused CPU kernels ran out of memory")


def _grad_like(t: torch.Tensor) -> torch.Tensor:
    """An empty gradient for parameter ``t`` with its strides (as autograd would lay it out)."""
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype)


class _ConvPoolReLU16(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, cin, h, w = x.shape
        k = weight.shape[-1]
        y = x.detach().contiguous()  # NCHW: as the first block's kernel writes it
        wt = weight.detach().permute(2, 3, 1, 0).contiguous()  # [K,K,Cin,16]
        ho, wo = (h - k + 1) // 2, (w - k + 1) // 2
        out = torch.empty((n, 16, ho, wo))  # NCHW: flattening it for fc1 is a view
        idx = torch.empty((n, ho, wo, 16), dtype=torch.uint8)
        b = bias.detach().contiguous()
        _run("cpr16_forward", y, wt, b, out, idx, n, h, w, cin, k, torch.get_num_threads())
        ctx.save_for_backward(y, wt, out, idx, weight, bias)
        return out

    @staticmethod
    @once_differentiable  # the kernels' gradients carry no graph of their own
    def backward(ctx, grad: torch.Tensor):
        y, wt, out, idx, weight, bias = ctx.saved_tensors
        n, cin, h, w = y.shape
        k = wt.shape[0]
        gy, gw, gb = torch.empty((n, cin, h, w)), _grad_like(weight), _grad_like(bias)
        _run("cpr16_backward", y, wt, grad.contiguous(), out, idx, gy, gw, gb, n, h, w, cin, k,
             *gw.stride(), torch.get_num_threads())  # fmt: skip
        return gy, gw, gb


class _ConvPoolReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        c, k = weight.shape[0], weight.shape[-1]
        x3 = x.detach().reshape(n, h, w).contiguous()
        wk = weight.detach().reshape(c, k, k).contiguous()
        b = bias.detach().contiguous()
        ho, wo = (h - k + 1) // 2, (w - k + 1) // 2
        out = torch.empty((n, c, ho, wo))
        idx = torch.empty((n, c, ho, wo), dtype=torch.uint8)
        _run("cpr_forward", x3, wk, b, out, idx, n, h, w, c, k, torch.get_num_threads())
        ctx.save_for_backward(x3, out, idx, weight, bias)
        return out

    @staticmethod
    @once_differentiable  # the kernels' gradients carry no graph of their own
    def backward(ctx, grad: torch.Tensor):
        x3, out, idx, weight, bias = ctx.saved_tensors
        n, h, w = x3.shape
        c, k = out.shape[1], weight.shape[-1]
        gw, gb = _grad_like(weight), _grad_like(bias)
        s0, _, s2, s3 = gw.stride()
        _run("cpr_backward", x3, grad.contiguous(), out, idx, gw, gb, n, h, w, c, k, s0, s2, s3,
             torch.get_num_threads())  # fmt: skip
        return None, gw, gb


def _apply(fn: type[torch.autograd.Function], x: torch.Tensor, conv: torch.nn.Conv2d):
    reason = status()
    if reason is not None:
        raise RuntimeError(f"the fused CPU kernels are not available: {reason}")
    return fn.apply(x, conv.weight, conv.bias)


def conv_pool_relu16(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """relu(max_pool2d(conv(x), 2)) for conv's 16 output channels, input gradient included;
    check ``applies2`` first. Contiguous (NCHW) out."""
    return _apply(_ConvPoolReLU16, x, conv)


def conv_pool_relu(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """relu(max_pool2d(conv(x), 2)) in one kernel, contiguous (NCHW) out, the layout the second
    block's kernel reads; check ``applies`` first."""
    return _apply(_ConvPoolReLU, x, conv)


def _pointers(tensors) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*(t.data_ptr() for t in tensors))


def _forward(x: torch.Tensor, params, sizes: ctypes.Array, keep: bool):
    """``lenet_forward``: (the images as [N,H,W], the scores, and with ``keep`` what the
    backward needs: both blocks' outputs and argmaxes, the two hidden layers' activations)."""
    n, h, w, c1, k1, k2, o1, o2, o3 = sizes[:9]
    x3 = x.detach().reshape(n, h, w).contiguous()  # a view for one channel
    kept: tuple[torch.Tensor | None, ...] = (None,) * 6
    if keep:
        h1, w1 = (h - k1 + 1) // 2, (w - k1 + 1) // 2
        f = 16 * ((h1 - k2 + 1) // 2) * ((w1 - k2 + 1) // 2)
        kept = (
            torch.empty((n, c1, h1, w1)),
            torch.empty((n, c1, h1, w1), dtype=torch.uint8),
            torch.empty((n, f)),
            torch.empty((n, f), dtype=torch.uint8),
            torch.empty((n, -(-o1 // 16) * 16)),  # padded to whole vectors
            torch.empty((n, -(-o2 // 16) * 16)),
        )
    scores = torch.empty((n, o3))
    _run("lenet_forward", x3, _pointers(params), sizes, scores, *kept)
    return x3, scores, kept


class _LeNet(torch.autograd.Function):
    """The whole network's forward and backward, one C call each."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: ctypes.Array, *params: torch.Tensor):
        x3, scores, kept = _forward(x, params, sizes, keep=True)
        ctx.save_for_backward(x3, *kept, *params)
        ctx.sizes = sizes
        return scores

    @staticmethod
    @once_differentiable  # the kernels' gradients carry no graph of their own
    def backward(ctx, gs: torch.Tensor):
        x3, *kept_and_params = ctx.saved_tensors
        kept, params = kept_and_params[:6], kept_and_params[6:]
        grads = [_grad_like(p) for p in params]
        _run("lenet_backward", x3, _pointers(params), ctx.sizes, gs.contiguous(), *kept,
             _pointers(grads))  # fmt: skip
        return (None, None, *grads)


def lenet(x: torch.Tensor, params: tuple[torch.Tensor, ...], sizes: tuple[int, ...]):
    """The whole network's scores for ``x`` from one C call (and one for the backward, when
    autograd wants it), with ``plan``'s parameters and sizes. Values differ from PyTorch's
    ops by float rounding only."""
    dims = (ctypes.c_int * len(sizes))(*sizes)
    if torch.is_grad_enabled():
        return _LeNet.apply(x, dims, *params)
    return _forward(x, params, dims, keep=False)[1]
