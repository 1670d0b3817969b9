"""Images and labels given in Python (``lenet_cli.train(data=(images, labels))``) as Datasets.

What is taken: images [N, 28, 28], [N, 32, 32] or the same with a channel axis [N, 1, H, W],
as uint8 in 0..255 or floats in 0..1 (NumPy arrays, torch tensors or nested lists); labels [N]
of whole numbers 0..9. Everything is checked before anything is trained, and each problem is one
message naming the argument (``data=``, ``test_data=``) and what to change. The images become
what a named data set gives: float32 [N, 1, 32, 32], 28x28 padded with black, normalised with
the training images' mean and std.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lenet_cli.config.toml import GIVEN_DATA as NAME  # config.toml and `lenet runs` show it
from lenet_cli.data.tensors import PAD, SIZE, Dataset
from lenet_cli.errors import DataError, UsageError
from lenet_cli.model import NUM_CLASSES

SOURCE = "given in Python"
HELD_OUT = 0.1  # the share of data= held out as the test set when no test_data= is given
SIDES = (28, 28), (SIZE, SIZE)


def _tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.is_meta or value.layout != torch.strided:
            where = "on the meta device" if value.is_meta else f"of layout {value.layout}"
            raise DataError(
                f"{what} are a tensor {where}: expected a dense tensor holding the values",
                hint="pass a NumPy array or a dense torch tensor with the data",
            )
        return value.detach().cpu()
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        value = value.copy()  # torch warns of read-only arrays (np.frombuffer gives them)
    try:
        return torch.as_tensor(value).cpu()  # NumPy arrays without a copy; nested lists
    except (TypeError, ValueError, RuntimeError) as e:
        raise DataError(
            f"{what} is a {type(value).__name__}, not an array: {str(e).splitlines()[0][:120]}",
            hint="pass a NumPy array or a torch tensor",
        ) from None


def images_01(value: Any, what: str) -> torch.Tensor:
    """Images checked and scaled to float32 [N, H, W] in 0..1."""
    x = _tensor(value, what)
    shape = list(x.shape)
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 3 or tuple(x.shape[1:]) not in SIDES:
        raise DataError(
            f"{what} have shape {shape}: expected [N, 28, 28] or [N, 32, 32] "
            "(or [N, 1, 28, 28], [N, 1, 32, 32])",
            hint="one grey 28x28 or 32x32 picture per example; reshape or crop them",
        )
    if x.shape[0] == 0:
        raise DataError(f"{what} hold no images (shape {shape})")
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise DataError(
            f"{what} are {str(x.dtype).removeprefix('torch.')}: expected uint8 (0..255) or "
            "floats (0..1)",
            hint="convert them: images.astype('uint8') for 0..255, or images / 255.0",
        )
    x = x.float()
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).flatten(1).any(dim=1).nonzero()[0])
        raise DataError(f"{what} hold NaN or Inf (the first in image {bad})")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise DataError(
            f"{what} are floats in [{lo:g}, {hi:g}]: expected 0..1",
            hint="divide 0..255 pixels by 255, or pass them as uint8",
        )
    return x


def labels_of(value: Any, n: int, what: str) -> torch.Tensor:
    """Labels checked: [n] whole numbers 0..9, as int64."""
    y = _tensor(value, what)
    if y.dim() != 1:
        raise DataError(f"{what} have shape {list(y.shape)}: expected [N], one class per image")
    if y.shape[0] != n:
        raise DataError(f"{what.split(' ')[0]} has {n:,} images but {y.shape[0]:,} labels")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise DataError(
            f"{what} are {str(y.dtype).removeprefix('torch.')}: expected whole numbers 0..9",
            hint="convert them: labels.astype('int64')",
        )
    y = y.long()
    outside = (y < 0) | (y >= NUM_CLASSES)
    if bool(outside.any()):
        i = int(outside.nonzero()[0])
        raise DataError(f"{what} hold {int(y[i])} (at {i}): the classes are 0..{NUM_CLASSES - 1}")
    return y


def pair(value: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` checked: float32 images [N, H, W] in 0..1, int64 labels [N]."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise UsageError(
            f"{what} takes a data set's name or a pair (images, labels), "
            f"got {type(value).__name__}",
            hint="e.g. data=(train_images, train_labels), test_data=(test_images, test_labels)",
        )
    images = images_01(value[0], f"{what} images")
    return images, labels_of(value[1], int(images.shape[0]), f"{what} labels")


def dataset(images: torch.Tensor, labels: torch.Tensor, mean: float, std: float, split: str):
    """Checked images (``images_01``) as a Dataset: padded to 32x32, normalised."""
    n, h, w = images.shape
    out = torch.zeros((n, 1, SIZE, SIZE), dtype=torch.float32)
    top = PAD if h < SIZE else 0
    out[:, 0, top : top + h, top : top + w] = images
    out.sub_(mean).div_(std)
    return Dataset(NAME, split, out, labels, mean, std, SOURCE)


def stats(images: torch.Tensor, what: str) -> tuple[float, float]:
    """The pixel mean and std of training images in 0..1 (what new images are normalised by)."""
    mean, std = float(images.mean()), float(images.std())
    if not std > 0.0:
        raise DataError(f"{what} images are all one value ({mean:g}): nothing to learn from")
    return mean, std


def splits(data: Any, test_data: Any, seed: int) -> tuple[Dataset, Dataset, str]:
    """(training set, test set, what they are, said in one phrase) of ``data=``/``test_data=``.

    Without ``test_data=``, a seeded random tenth of ``data=`` is the test set (the same seed
    picks the same images); the training set's mean and std normalise both.
    """
    images, labels = pair(data, "data=")
    if test_data is not None:
        test_images, test_labels = pair(test_data, "test_data=")
        how = "test_data="
    else:
        n = int(labels.shape[0])
        n_test = max(1, round(n * HELD_OUT))
        if n_test >= n:
            raise DataError(
                f"data= has {n} image(s): too few to hold a tenth out as the test set",
                hint="pass more images, or a test set as test_data=(images, labels)",
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        test, train = order[:n_test], order[n_test:]
        test_images, test_labels = images[test], labels[test]
        images, labels = images[train], labels[train]
        how = f"a seeded tenth of data= (seed {seed}), as no test_data= was given"
    mean, std = stats(images, "data=")
    side = f"{images.shape[1]}x{images.shape[2]}"
    text = (
        f"{len(labels):,} training images ({side}) from data=, {len(test_labels):,} test from {how}"
    )
    train_ds = dataset(images, labels, mean, std, "train")
    return train_ds, dataset(test_images, test_labels, mean, std, "test"), text
