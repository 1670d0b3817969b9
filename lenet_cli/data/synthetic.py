"""The ``random`` source: the tutorial's ``torch.randn`` input, with random labels 0-9.

For smoke runs and benchmarks: no files, deterministic from the seed. The images are already
standard normal, so they are recorded with mean 0 and std 1 and used as they are.
"""

from __future__ import annotations

import torch

from lenet_cli.data.tensors import SIZE, Dataset
from lenet_cli.errors import UsageError

DEFAULT_SIZES = {"train": 1024, "test": 256}
_SPLIT_OFFSET = {"train": 0, "test": 1}


def random_dataset(
    split: str, *, seed: int = 0, size: int | None = None, device: str | torch.device = "cpu"
) -> Dataset:
    """``size`` (default 1,024 train / 256 test) images [N,1,32,32] and labels from ``seed``.

    Drawn on the CPU from a generator seeded with (seed, split), then moved: the same seed
    gives the same data on every device, and train and test never coincide.
    """
    n = DEFAULT_SIZES[split] if size is None else size
    if n < 1:
        raise UsageError(f"random data size must be at least 1, got {n}")
    gen = torch.Generator().manual_seed(seed * 2 + _SPLIT_OFFSET[split])
    images = torch.randn((n, 1, SIZE, SIZE), generator=gen)
    labels = torch.randint(0, 10, (n,), generator=gen)
    return Dataset(
        name="random",
        split=split,
        images=images.to(device),
        labels=labels.to(device),
        mean=0.0,
        std=1.0,
        source=f"random (seed {seed})",
    )
