"""Speed helpers the engines call: threads, memory format, mixed precision, backends,
and the fused CPU kernel.

Imports torch, the standard library and lenet's config, cpu and fused modules; prints nothing.
Each helper keeps results the same as the plain path unless its name says otherwise (mixed
precision changes the arithmetic; the fused kernel and channels_last change float rounding).
Why each default (docs/kernels.md and docs/benchmarks.md have the figures and commands):
- channels_last (data stored channels_last once, model converted once) is faster than NCHW for
  PyTorch's CPU ops from batch 8; at batch 1 NCHW is faster, so ``prepare_inputs`` leaves single
  images alone when asked for ``"auto"``. It differs from NCHW by float rounding only (oneDNN
  picks another convolution algorithm).
- the fused kernel (``fused.FusedNet``, chosen by ``fused_choice``) runs the tutorial's Net as
  one C call forward and one backward: several times as fast as PyTorch's ops.
- torch.compile (inductor) trains LeNet on a CPU slower than eager (its kernels are too small
  for fusion to pay): it is offered for GPUs, not the default anywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from lenet_cli.config import PRECISIONS
from lenet_cli.errors import UsageError
from lenet_cli.fast import cpu, kernel
from lenet_cli.fast import fused as _fused  # `fused` is the flag's name below

_AMP_DTYPES = {"bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}
# Below this many images per batch NCHW beats channels_last at inference (measured at batch 1).
CHANNELS_LAST_MIN_BATCH = 8


def default_threads() -> int:
    """The number of physical cores this process may run on (SMT siblings count once)."""
    return cpu.physical_cores()


def channels_last_default(device: torch.device) -> bool:
    """Whether channels_last is the faster layout for training on ``device``.

    CPU: measured (oneDNN's NHWC convolutions and pooling). CUDA: cuDNN's NHWC kernels are the
    fast ones with tensor cores (mixed precision); fp32 is about even, so one default serves.
    MPS: no (its NHWC support is partial).
    """
    return device.type in ("cpu", "cuda")


def configure_backends(device: torch.device, *, tf32: bool = False) -> dict[str, Any]:
    """Backend switches for speed; returns what was set (for notes and the bench JSON).

    CUDA: ``cudnn.benchmark`` (LeNet's shapes are fixed, so the autotuning is paid once; the last
    smaller batch of an epoch tunes once more). TF32 only when asked: it changes fp32 results.
    CPU: oneDNN (mkldnn) is on by default in torch's CPU builds; nothing to switch.
    """
    settings: dict[str, Any] = {}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        settings.update(cudnn_benchmark=True, tf32=tf32)
    elif device.type == "cpu":
        settings.update(mkldnn=bool(torch.backends.mkldnn.is_available()))
    return settings


def fused_choice(
    device: torch.device, requested: bool | None, *, compile: bool = False
) -> tuple[bool, str | None]:
    """Whether to run ``Net`` as the fused CPU kernel (fused.py), and a note.

    ``requested`` None (the default): on the CPU when the kernel builds, and not with
    ``compile`` (which asks for inductor's code of PyTorch's ops); when it cannot be built the
    note says so (the run goes on with PyTorch's ops). True: the kernel (compiled too with
    ``compile``) or a UsageError saying why not. False: PyTorch's ops.
    """
    if requested is False or (requested is None and compile):
        return False, None
    if device.type != "cpu":
        if requested:
            raise UsageError(
                f"--fused is a CPU kernel, but this run is on {device.type}; drop --fused"
            )
        return False, None
    reason = kernel.status()
    if reason is None:
        return True, None
    if requested:
        raise UsageError(
            f"--fused: the fused CPU kernel is not available: {reason}",
            hint="mend what it names (a C compiler: gcc or clang; a writable LENET_KERNEL_DIR), "
            "or use --no-fused",
        )
    return False, f"fused CPU kernel not available ({reason}); using PyTorch's ops"


def fused_applies(model: nn.Module) -> bool:
    """Whether ``prepare_model(..., fused=True)`` runs ``model`` on the C kernels."""
    return _fused.supports(model)


def prepare_model(
    model: nn.Module,
    device: torch.device,
    *,
    channels_last: bool,
    compile: bool = False,
    fused: bool = False,
) -> nn.Module:
    """The module to call for ``model``: moved to ``device`` (in place) in the chosen layout,
    wrapped in ``fused.FusedNet`` with ``fused`` (decide with ``fused_choice``; a network the
    kernel does not compute stays as it is), compiled in place with ``compile``.

    The result shares ``model``'s parameters and has its ``state_dict`` keys: save, load and
    optimize either one.
    """
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # only the 4-D conv weights change layout
    run = _fused.FusedNet(model) if fused and fused_applies(model) else model
    if compile:
        run.compile()  # in place: unlike torch.compile(run), no `_orig_mod.` key prefix
    return run


def prepare_inputs(x: torch.Tensor, channels_last: bool | str) -> torch.Tensor:
    """``x`` [N,C,H,W] in the chosen layout (one copy, or none when it already is).

    ``channels_last="auto"`` converts batches of at least CHANNELS_LAST_MIN_BATCH images only.
    Store a data set converted once: index_select and slicing keep the layout, so its batches
    need no further copy.
    """
    if channels_last == "auto":
        channels_last = x.dim() == 4 and x.shape[0] >= CHANNELS_LAST_MIN_BATCH
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse (UsageError, exit 2) a precision this device cannot run."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose " + ", ".join(PRECISIONS))
    if precision == "fp16-mixed" and device.type not in ("cuda", "mps"):
        raise UsageError(
            "fp16-mixed needs a GPU (on the CPU, float16 matmuls are slow and unscaled fp16 "
            "gradients underflow); use bf16-mixed or fp32 there"
        )


def precision_note(device: torch.device, precision: str) -> str | None:
    """What a person should know before training at ``precision`` on ``device``, or None."""
    if precision == "bf16-mixed" and device.type == "cpu":
        return (
            "bf16-mixed on the CPU runs PyTorch's ops under autocast instead of the fused fp32 "
            "step: usually several times slower than fp32 there, not faster (--precision fp32)"
        )
    return None


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """The forward pass's precision: ``fp32`` does nothing; the others run under torch.autocast.

    Put the forward and the loss inside; backward may run outside (it follows the forward's dtypes).
    """
    check_precision(device, precision)
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=_AMP_DTYPES[precision]):
        yield


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16-mixed on CUDA (fp16 gradients underflow unscaled).

    Disabled, ``scale(loss)`` returns the loss and ``step(opt)`` just steps, so one training step
    serves every precision. The scaler checks for inf/nan on the device: no host sync per step.
    """
    enabled = precision == "fp16-mixed" and device.type == "cuda"
    return torch.amp.GradScaler(device.type if enabled else "cpu", enabled=enabled)
