"""Data-parallel training with torch.distributed: what each rank does differently.

A rank is one process started by ``torchrun`` (or ``lenet train --nproc N``, which runs torchrun's
launcher on this machine); ``from_env`` reads the variables torchrun sets. The design:

- Every rank holds the whole data set in memory and draws the same per-epoch permutation (same
  seed, same generator), so every rank knows each global batch; it trains on its contiguous
  share of it (``share``; with ``--augment`` the whole batch is augmented first, alike on every
  rank). ``--batch-size`` stays the *global* batch, and each rank's loss is weighted by its
  share (``weight``), so DistributedDataParallel's gradient average is the mean over the
  global batch: a 2-process run takes the steps of a 1-process run at the same batch,
  up to float rounding.
- Evaluation is sharded the same way and its sums all-reduced; epoch sums of the training loss
  and accuracy are all-reduced at the end of each epoch.
- Only rank 0 prints, writes the run directory and checkpoints.
- A signal is agreed on at every step (an all-reduce of one integer), so all ranks stop at the
  same step; the collective timeout (``LENET_DIST_TIMEOUT``, default 60 s) turns a lost peer
  into a DistributedError (exit 15), never a hang.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from lenet_cli.errors import DistributedError, UsageError

TIMEOUT_ENV = "LENET_DIST_TIMEOUT"
joined = False  # this process joined a process group (read by cli.main, see leave())


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (torchrun's RANK, WORLD_SIZE, LOCAL_*)."""

    rank: int
    world: int
    local_rank: int
    local_world: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist | None:
    """The job torchrun started this process in (also of one rank), or None for a plain run."""
    env = os.environ
    if "WORLD_SIZE" not in env:
        return None
    try:
        return Dist(
            rank=int(env["RANK"]),
            world=int(env["WORLD_SIZE"]),
            local_rank=int(env["LOCAL_RANK"]),
            local_world=int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])),
        )
    except (KeyError, ValueError) as e:
        raise DistributedError(
            f"WORLD_SIZE is set but the rank variables are not ({e})",
            hint="start data-parallel runs with torchrun or `lenet train --nproc N`",
        ) from None


def timeout_s() -> float:
    text = os.environ.get(TIMEOUT_ENV, "60")
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds < math.inf):
        raise UsageError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return seconds


def init(d: Dist, device: torch.device) -> torch.device:
    """Join the process group: gloo on the CPU, nccl on CUDA (one GPU per local rank)."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        if d.local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"local rank {d.local_rank} has no GPU ({torch.cuda.device_count()} here)",
                hint="start at most one process per GPU (--nproc-per-node)",
            )
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    global joined
    timeout = timedelta(seconds=timeout_s())  # a bad value: said as such, not "could not join"
    try:
        dist.init_process_group(backend, timeout=timeout)
        joined = True
    except Exception as e:  # noqa: BLE001 - a rendezvous that failed or timed out
        raise DistributedError(f"rank {d.rank} could not join the process group: {e}") from None
    return device


def close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def leave(code: int) -> None:
    """End a process that joined a group with ``code``, skipping the interpreter's finalization.

    gloo's worker threads outlive ``destroy_process_group`` (DDP's reducer still holds the group)
    and release their last collective after it has completed; when that lands while the
    interpreter finalizes, the release needs the GIL, the thread is made to exit and the C++
    runtime aborts the rank ("terminate called without an active exception", SIGABRT:
    ``ProcessGroupGloo::runLoop`` freeing an ``AsyncAllreduceWork`` during ``Py_FinalizeEx``).
    Everything the rank writes is saved and closed before this point, so it flushes its streams
    and exits at once.
    """
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:  # None: started with that stream closed (`>&-`)
                stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more to say there
            pass
    os._exit(code)


def wrap(net: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around the prepared model (the fast CPU path included)."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=ids)


def bounds(n: int, d: Dist | None) -> tuple[int, int]:
    """This rank's contiguous share [lo, hi) of n items (all of them without a job)."""
    if d is None:
        return 0, n
    return n * d.rank // d.world, n * (d.rank + 1) // d.world


def share(
    x: torch.Tensor, y: torch.Tensor, d: Dist | None
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(x, y, loss weight) of this rank's share of the global batch (x, y).

    The weight (share * ranks / batch) makes the ranks' averaged gradients the global batch's
    mean; a rank whose share is empty (a last batch smaller than the job) weighs 0.
    """
    if d is None:
        return x, y, 1.0
    n = int(y.shape[0])
    lo, hi = bounds(n, d)
    return x[lo:hi], y[lo:hi], (hi - lo) * d.world / n


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum over ranks (float64, on the device the backend works on)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    _collective(dist.all_reduce, t)
    return t.tolist()


def agree_signal(received: int | None, d: Dist | None, device: torch.device) -> int | None:
    """The signal any rank received (so all ranks stop at the same step), or None."""
    if d is None:
        return received
    t = torch.tensor([received or 0], dtype=torch.int64, device=device)
    _collective(dist.all_reduce, t, op=dist.ReduceOp.MAX)
    return int(t.item()) or None


_PEER_WORDS = ("gloo", "nccl", "connection", "timed out", "timeout", "peer")


def peer_failure(e: BaseException) -> DistributedError | None:
    """A collective's error (in an all-reduce here or in DDP's backward) as exit 15, or None
    when ``e`` is not about the other ranks."""
    text = " ".join(str(e).split())
    if not isinstance(e, RuntimeError) or not any(w in text.lower() for w in _PEER_WORDS):
        return None
    rank = dist.get_rank() if dist.is_initialized() else "?"
    return DistributedError(
        f"rank {rank} lost its peers ({text[:200]})",
        hint="another rank failed or was stopped; see its message above",
    )


def _collective(fn, *args, **kw) -> None:
    try:
        fn(*args, **kw)
    except RuntimeError as e:  # a peer died or timed out
        raise (peer_failure(e) or e) from None
