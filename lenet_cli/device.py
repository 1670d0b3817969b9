"""Choosing the device (and CPU threads) that a command runs on.

``auto`` picks CUDA, then MPS, else the CPU, and says which it picked. A device that was asked for
by name and is not available is an error (DeviceError), never a silent fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from lenet_cli.config import AT_LEAST_1, check_value
from lenet_cli.errors import DeviceError, UsageError

_SPEC = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")
DEVICE_HELP = "auto (CUDA, then MPS, else CPU), cpu, cuda, cuda:N or mps"


@dataclass(frozen=True)
class Chosen:
    device: torch.device
    note: str | None  # set when `auto` chose, so the CLI can say what it picked

    @property
    def type(self) -> str:
        return self.device.type


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(spec: str = "auto") -> Chosen:
    """Turn a --device string into a torch.device that exists here."""
    match = _SPEC.match(spec.strip().lower())
    if not match or (match.group(2) is not None and match.group(1) != "cuda"):
        raise UsageError(f"unknown device {spec!r}", f"use {DEVICE_HELP}")
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            return Chosen(torch.device("cuda:0"), f"device auto: using cuda:0 ({name})")
        if _mps_available():
            return Chosen(torch.device("mps"), "device auto: using mps")
        return Chosen(torch.device("cpu"), "device auto: no CUDA or MPS here, using the CPU")
    if kind == "cpu":
        return Chosen(torch.device("cpu"), None)
    if kind == "mps":
        if not _mps_available():
            raise DeviceError(
                "device 'mps' is not available on this machine", "use --device cpu or auto"
            )
        return Chosen(torch.device("mps"), None)
    if not torch.cuda.is_available():
        why = (
            "this PyTorch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU found"
        )
        raise DeviceError(f"device {spec!r} is not available: {why}", "use --device cpu or auto")
    count = torch.cuda.device_count()
    i = int(index) if index is not None else 0
    if i >= count:
        raise DeviceError(
            f"device {spec!r} is not available: this machine has {count} CUDA device(s)",
            f"use cuda:0 .. cuda:{count - 1}",
        )
    return Chosen(torch.device(f"cuda:{i}"), None)


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (None keeps torch's default). Returns the count in use."""
    if threads is not None:
        torch.set_num_threads(check_value("--threads", threads, AT_LEAST_1))
    return torch.get_num_threads()


def sum_dtype(device: torch.device) -> torch.dtype:
    """The dtype for running loss sums on ``device``: float64, except on MPS, which has none."""
    return torch.float32 if device.type == "mps" else torch.float64


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (timing needs it); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
