"""Speed helpers the engines call (layer 2): threads, memory format, mixed precision, backends.

Imports torch, the standard library and lenet's config and fused kernels; prints nothing. Each
helper keeps results the same as the plain path unless its name says otherwise (mixed precision
changes the arithmetic; the fused kernels and channels_last change float rounding).
What was measured on a 2-core AMD EPYC (torch 2.13.0 CPU; docs/benchmarks.md has the figures):
- channels_last (data stored channels_last once, model converted once) trains 1.2-2x faster than
  NCHW at batch 64-1024 and infers 2-4x faster at batch 256-1024, so it is the default for
  training and batched inference. At batch 1 NCHW is faster (88 vs 139 us), so ``prepare_inputs``
  leaves single images alone when asked for ``"auto"``.
- torch.compile (inductor) trained SLOWER than eager here (5.2k vs 8.1k images/s at batch 256, one
  thread) after 40 s of compiling: LeNet's kernels are too small for fusion to pay. It is offered
  (``compile=True``) for GPUs, where launch overhead dominates, not recommended on the CPU.
- the fused kernels (``fused.py``, chosen by ``fused_choice``: the whole network as one C call
  forward and one backward) train the tutorial net about 4x faster than PyTorch's ops at batch
  64-1024 with 2 threads (benchmarks/fused.py, alternating in one process).
- channels_last differs from NCHW by float rounding only (oneDNN picks another convolution
  algorithm): tests/test_speed.py checks 1e-5 agreement, not bit identity.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from lenet_cli import fused
from lenet_cli.config import PRECISIONS
from lenet_cli.errors import UsageError

_AMP_DTYPES = {"bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}
# Below this many images per batch NCHW beats channels_last at inference (measured at batch 1).
CHANNELS_LAST_MIN_BATCH = 8


def default_threads() -> int:
    """The number of physical cores this process may run on (SMT siblings count once).

    Reads the (physical id, core id) pairs of /proc/cpuinfo for the CPUs in our affinity mask;
    where that is not available (not Linux, a container hiding it), the affinity count itself.
    """
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    cores: set[tuple[str, str]] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpu, phys = None, "0"
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    cpu, phys = int(value), "0"
                elif key == "physical id":
                    phys = value
                elif key == "core id" and cpu in allowed:
                    cores.add((phys, value))
    except (OSError, ValueError):
        cores = set()
    return max(1, min(len(cores) or len(allowed), len(allowed)))


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
    """Whether to run ``Net`` as the fused CPU kernels (fused.py), and a note.

    ``requested`` None (the default): on the CPU when the kernels build, and not with
    ``compile``; when they cannot be built the note says so (the run goes on with PyTorch's
    ops). True: the kernels or a UsageError saying why not. False: PyTorch's ops.
    """
    if requested is False:
        return False, None
    if device.type != "cpu" or compile:
        if requested:
            why = "--compile traces PyTorch's ops" if compile else f"this run is on {device.type}"
            raise UsageError(f"--fused is a CPU kernel for eager runs, but {why}; drop --fused")
        return False, None
    reason = fused.status()
    if reason is None:
        return True, None
    if requested:
        raise UsageError(
            f"--fused: the fused CPU kernels are not available: {reason}",
            hint="install a C compiler (gcc or clang), or use --no-fused",
        )
    return False, f"fused CPU kernels not available ({reason}); using PyTorch's ops"


def prepare_model(
    model: nn.Module,
    device: torch.device,
    *,
    channels_last: bool,
    compile: bool = False,
    fused: bool = False,
) -> nn.Module:
    """Move ``model`` to ``device`` (in place) in the chosen layout; optionally compile it.

    ``fused`` turns on the fused CPU kernels of ``Net`` (decide with ``fused_choice``).

    Returns the module to call. With ``compile`` that is a wrapper whose state_dict keys carry an
    ``_orig_mod.`` prefix: save and load ``unwrap(result)`` (or the model passed in) instead.
    """
    model.to(device)
    if hasattr(model, "fused"):
        model.fused = fused
    if channels_last:
        model.to(memory_format=torch.channels_last)  # only the 4-D conv weights change layout
    if compile:
        return torch.compile(model)  # type: ignore[return-value]
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module behind a ``torch.compile`` wrapper (itself when not compiled)."""
    return getattr(model, "_orig_mod", model)


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
