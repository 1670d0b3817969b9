"""Which data set decoded arrays really are: fingerprints of the known ones.

The IDX format says nothing about content: Fashion-MNIST's files are valid "MNIST" files. So the
decoded contents are identified. A fingerprint is the SHA-256 of the decoded images' bytes
followed by the labels' bytes (uint8, as read; so .gz or raw, re-compressed or not, all agree).

What is known, and how (see docs/data.md for the commands that produced these values):
- the MNIST test set (10,000 digits; the bundled sample's test set is the same), Fashion-MNIST's
  training and test sets and the bundled sample's 5,000 training digits: exact fingerprints,
  computed here from the files;
- the full MNIST training set (60,000) is not available here to hash: its class histogram, as
  published and reproduced by every ``bincount`` of it, is checked instead;
- KMNIST: balanced classes (6,000 / 1,000 of each), as published.
Decoded arrays that are a known set under another name are refused, naming what they are; a
split of the canonical size that does not match its set is refused. Other sizes (a subset, test
fixtures) are only checked not to be another known set.
"""

from __future__ import annotations

import hashlib

import torch

from lenet_cli.errors import DataError

# fingerprint -> (data set, split, description)
KNOWN: dict[str, tuple[str, str, str]] = {
    "c3f9adf9c66efb572b1f9326c3a511b45910c7173b97be66ceceeeeaef6b802b": (
        "mnist",
        "test",
        "the MNIST test set",
    ),
    "809ec085d551285cf9efad12c42a6aead98c62f96eb9936cc5b778870773e50d": (
        "mnist-sample",
        "train",
        "the bundled 5,000-digit MNIST sample",
    ),
    "16d82e2b505296aa2b78bd5ea0992634f30419a4c97def7c907d154a35ac6157": (
        "fashion-mnist",
        "train",
        "Fashion-MNIST's training set (clothes, not digits)",
    ),
    "9f1ec356a747bfe4ebab3cfb722d3694c9ca737e2570f6f90cf31d7b6fd689d4": (
        "fashion-mnist",
        "test",
        "Fashion-MNIST's test set (clothes, not digits)",
    ),
}
MNIST_TRAIN_HISTOGRAM = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
# The names whose KNOWN entries a name accepts as its own (the sample is MNIST's digits).
_SAME = {"mnist": {"mnist", "mnist-sample"}, "mnist-sample": {"mnist", "mnist-sample"}}


def fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    digest = hashlib.sha256(images.contiguous().numpy())  # the buffer itself: no copy
    digest.update(labels.contiguous().numpy())
    return digest.hexdigest()


def histogram(labels: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(c) for c in torch.bincount(labels.to(torch.int64), minlength=10)[:10])


def _expected(name: str, split: str, n: int, fp: str, hist: tuple[int, ...]) -> str | None:
    """What ``name``'s ``split`` of size ``n`` should be but is not, or None when it fits."""
    known = KNOWN.get(fp, ("",))[0]
    if name in ("mnist", "mnist-sample") and split == "test" and n == 10_000:
        return None if known == "mnist" else "the MNIST test set"
    if name == "mnist" and split == "train" and n == 60_000:
        return None if hist == MNIST_TRAIN_HISTOGRAM else "MNIST's training set"
    if name == "mnist-sample" and split == "train":
        return None if known == "mnist-sample" else "the bundled sample"
    if name == "fashion-mnist" and n == {"train": 60_000, "test": 10_000}[split]:
        return None if known == "fashion-mnist" else f"Fashion-MNIST's {split} set"
    if name == "kmnist" and n in (60_000, 10_000):
        return None if len(set(hist)) == 1 else f"KMNIST's {split} set"
    return None


def describe(n: int, fp: str, hist: tuple[int, ...]) -> str:
    """What the arrays look like, for the error message."""
    if fp in KNOWN:
        return KNOWN[fp][2]
    if hist == MNIST_TRAIN_HISTOGRAM:
        return "MNIST's training set (by its class histogram)"
    if len(set(hist)) == 1:
        return (
            f"{n:,} examples, {hist[0]:,} of each class: a balanced set like Fashion-MNIST or "
            "KMNIST, not MNIST"
        )
    return f"{n:,} examples with class counts {list(hist)}"


def check_identity(name: str, split: str, fp: str, labels: torch.Tensor, where: str) -> None:
    """Refuse decoded arrays (fingerprint ``fp``) that are not ``name``'s ``split``."""
    n = int(labels.shape[0])
    hist = histogram(labels)
    known = KNOWN.get(fp)
    if known is not None and known[0] not in _SAME.get(name, {name}):
        raise DataError(
            f"{where}: the {split} files hold {known[2]}, not {name}",
            hint=f"import or name them as {known[0]}"
            if known[0] != "mnist-sample"
            else "they are the bundled sample: use --data mnist-sample",
        )
    should = _expected(name, split, n, fp, hist)
    if should is not None:
        raise DataError(
            f"{where}: the {split} files are not {should}: they hold {describe(n, fp, hist)}",
            hint=f"check which data set the files are; genuine {name} files are accepted",
        )
