"""The decoded-tensor cache: uint8 images and labels saved once, so a second run starts fast.

Entries live in ``<cache root>/decoded/<name>-<split>-<key>.pt`` where the key hashes each source
file's resolved path, size and modification time: changed files get a new key, and the stale
entry is removed when the new one is written. Entries hold tensors and plain numbers only, are
written atomically (temp file, fsync, rename) and loaded with ``weights_only=True``. A corrupt or
unreadable entry is rebuilt from the source files; a cache that cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from lenet_cli.atomic import atomic_write
from lenet_cli.data.idx import ROWS, read_idx_pair
from lenet_cli.data.sources import Located, cache_root

FORMAT = 1  # bump when the entry layout changes


def decoded_dir() -> Path:
    return cache_root() / "decoded"


def file_key(paths: list[Path]) -> str:
    digest = hashlib.sha256(f"lenet-decoded-v{FORMAT}".encode())
    for path in paths:
        st = path.stat()
        digest.update(f"|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """Mean and std of the pixels on the [0, 1] scale, exact, from a 256-bin histogram.

    (No float copy of the images: a histogram of 47 million bytes is one fast pass.)
    """
    counts = torch.bincount(images.reshape(-1), minlength=256).to(torch.float64)
    values = torch.arange(256, dtype=torch.float64, device=counts.device) / 255.0
    n = counts.sum()
    if n == 0:
        return 0.0, 1.0
    mean = (counts * values).sum() / n
    var = (counts * (values - mean) ** 2).sum() / n
    return float(mean), float(var.sqrt())


def _entry_path(located: Located, split: str) -> Path:
    images, labels = located.files[split]
    return decoded_dir() / f"{located.name}-{split}-{file_key([images, labels])}.pt"


def _load(path: Path) -> dict | None:
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        images, labels = entry["images"], entry["labels"]
        ok = (
            images.dtype == torch.uint8
            and images.dim() == 3
            and tuple(images.shape[1:]) == (ROWS, ROWS)
            and labels.dtype == torch.uint8
            and labels.shape == (images.shape[0],)
        )
        if not ok:
            raise ValueError("unexpected layout")
        return {
            "images": images,
            "labels": labels,
            "mean": float(entry["mean"]),
            "std": float(entry["std"]),
        }
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - any unreadable entry is rebuilt, never fatal
        path.unlink(missing_ok=True)
        return None


def _save(path: Path, entry: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as out:
            torch.save(entry, out)
        # Drop entries for the same name and split built from older files: same prefix, same
        # suffix, another key (keys are 20 hex digits).
        prefix, rest = path.name.rsplit("-", 1)
        suffix = rest[20:]
        for stale in path.parent.glob(f"{prefix}-*{suffix}"):
            if stale != path and len(stale.name) == len(path.name) and stale.name.endswith(suffix):
                stale.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only or full cache only costs speed


def load_split(located: Located, split: str, *, use_cache: bool = True) -> dict:
    """{"images": uint8 [N,28,28], "labels": uint8 [N], "mean", "std", "cached": bool}.

    ``mean``/``std`` are this split's own pixel statistics (callers use the train split's).
    """
    path = _entry_path(located, split)
    if use_cache:
        entry = _load(path)
        if entry is not None:
            return {**entry, "cached": True}
    images, labels = read_idx_pair(*located.files[split])
    mean, std = pixel_stats(images)
    entry = {"images": images, "labels": labels, "mean": mean, "std": std}
    if use_cache:
        _save(path, entry)
    return {**entry, "cached": False}


def train_stats(located: Located) -> tuple[float, float]:
    """The train split's pixel mean/std, from a tiny side file when the entry was built."""
    stats = _entry_path(located, "train").with_suffix(".stats.pt")
    try:
        saved = torch.load(stats, map_location="cpu", weights_only=True)
        return float(saved["mean"]), float(saved["std"])
    except Exception:  # noqa: BLE001 - missing or bad: recompute
        pass
    entry = load_split(located, "train")
    _save(stats, {"mean": entry["mean"], "std": entry["std"]})
    return entry["mean"], entry["std"]
