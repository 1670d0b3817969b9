"""In-memory data sets: one tensor on the training device, padded and normalised once.

Batches are index slices of one seeded ``randperm`` per epoch -- no DataLoader, no per-sample
Python (see airbench / tinygrad's MNIST): for a data set this small, the copy a DataLoader
makes of every sample costs more than the model's forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from lenet_cli.config import AT_LEAST_1, FRACTION, check_value
from lenet_cli.errors import UsageError

PAD = 2  # 28 -> 32, LeNet's input size
SIZE = 32


@dataclass
class Dataset:
    """Images [N,1,32,32] float32 normalised with the training set's mean/std, labels int64 [N].

    ``mean``/``std`` are the training set's pixel statistics on the [0, 1] scale of the 28x28
    images, kept so that prediction normalises new images the same way.
    """

    name: str
    split: str  # "train", "test" or "val"
    images: torch.Tensor
    labels: torch.Tensor
    mean: float
    std: float
    source: str  # a directory, "bundled sample", "random (seed S)"
    notice: str | None = None  # set when a fallback happened; the CLI shows it

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def to_model_input(
    images: torch.Tensor, mean: float, std: float, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """uint8 [N,28,28] -> float32 [N,1,32,32] on ``device``: padded with black, then normalised.

    The uint8 tensor moves to the device first (4x fewer bytes than float), then one zeros
    tensor is filled by slice assignment and normalised in place: no per-sample work and no
    temporary copies of the float data.
    """
    images = images.to(device)
    n = images.shape[0]
    out = torch.zeros((n, 1, SIZE, SIZE), dtype=torch.float32, device=images.device)
    out[:, 0, PAD : PAD + images.shape[1], PAD : PAD + images.shape[2]] = images
    # (x / 255 - mean) / std, as one multiply and one add over the whole tensor
    out.mul_(1.0 / (255.0 * std)).add_(-mean / std)
    return out


def batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x, y) batches covering every example once; the last batch may be smaller.

    With ``shuffle``, the order is ONE ``torch.randperm`` drawn from ``generator`` (so the same
    generator state gives the same order on every device: the permutation is drawn on the
    generator's device and moved to the data's). Without it, batches are views in order.
    """
    n = int(labels.shape[0])
    if int(images.shape[0]) != n:
        raise UsageError(f"{images.shape[0]} images but {n} labels")
    if not shuffle:
        check_value("batch size", batch_size, AT_LEAST_1)
        for start in range(0, n, batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]
        return
    for index in batch_rows(n, batch_size, generator=generator, device=images.device):
        yield images.index_select(0, index), labels.index_select(0, index)


def batch_rows(
    n: int,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> Iterator[torch.Tensor]:
    """The rows of each shuffled batch of ``batches`` (the same draw from ``generator``): int64
    index slices of one permutation, on ``device``, for a consumer that reads the rows where
    they are (the CPU training step) instead of gathering them."""
    check_value("batch size", batch_size, AT_LEAST_1)
    gen_device = generator.device if generator is not None else device or torch.device("cpu")
    order = torch.randperm(n, generator=generator, device=gen_device)
    if device is not None:
        order = order.to(device)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def split_validation(ds: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset | None]:
    """Split off a seeded random ``fraction`` of ``ds`` as a validation set.

    Returns (train, val); ``fraction == 0`` returns (ds, None). The same seed always picks the
    same examples; both parts keep ``ds``'s mean/std (the statistics of the full training set).
    """
    check_value("validation fraction", fraction, FRACTION)
    if fraction == 0.0:
        return ds, None
    n = len(ds)
    n_val = max(1, round(n * fraction))
    if n_val >= n:
        raise UsageError(
            f"a validation fraction of {fraction} leaves no training data ({n} examples)"
        )
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen).to(ds.images.device)
    val_idx, train_idx = order[:n_val], order[n_val:]

    def part(index: torch.Tensor, split: str) -> Dataset:
        return replace(
            ds,
            split=split,
            images=ds.images.index_select(0, index),
            labels=ds.labels.index_select(0, index),
        )

    return part(train_idx, "train"), part(val_idx, "val")
