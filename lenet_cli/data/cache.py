"""The decoded-tensor cache: uint8 images and labels saved once, so a second run starts fast.

Entries live in ``<cache root>/decoded/<name>-<split>-<key>.pt`` where the key hashes each source
file's resolved path, size and modification time: changed files get a new key, and the stale
entry is removed when the new one is written. An entry is read back like user input: it is a
sealed file (lenet_cli.files: size limit and SHA-256 trailer checked before parsing), loaded
with ``weights_only=True``, then every field is checked -- uint8 images [N, 28, 28], N uint8
labels all 0-9, finite statistics -- and its recorded fingerprint must still name the data set
it is used as (data.identity). A bad entry is never used: it is rebuilt from the source files,
and ``on_event`` gets a notice saying why. A cache that cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable
from pathlib import Path

import torch

from lenet_cli.data.identity import check_identity, fingerprint
from lenet_cli.data.idx import MAX_PAYLOAD, NUM_CLASSES, ROWS, read_idx_pair
from lenet_cli.data.sources import Located, cache_root
from lenet_cli.files import SealError, atomic_write, read_sealed, seal

FORMAT = 2  # bump when the entry layout changes (2: sealed, with a fingerprint)
_LIMIT = 2 * MAX_PAYLOAD  # images + labels + container, never more


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


def _read(path: Path) -> dict:
    """A sealed, weights-only dict; raises SealError/OSError/any unpickling error."""
    entry = torch.load(io.BytesIO(read_sealed(path, _LIMIT)), map_location="cpu", weights_only=True)
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        raise ValueError("of another format")
    return entry


def _check(entry: dict) -> str | None:
    """What is wrong with a decoded entry's fields, or None."""
    images, labels = entry.get("images"), entry.get("labels")
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        return "images or labels are not tensors"
    if images.dtype != torch.uint8 or images.dim() != 3 or tuple(images.shape[1:]) != (ROWS, ROWS):
        return f"images are {images.dtype} {tuple(images.shape)}, not uint8 [N, 28, 28]"
    if labels.dtype != torch.uint8 or tuple(labels.shape) != (images.shape[0],):
        return f"labels are {labels.dtype} {tuple(labels.shape)}, not uint8 [{images.shape[0]}]"
    if labels.numel() and int(labels.max()) >= NUM_CLASSES:
        return f"a label is {int(labels.max())}, not a digit 0-9"
    stats = (entry.get("mean"), entry.get("std"))
    if not all(isinstance(v, float) and math.isfinite(v) and 0 <= v <= 1 for v in stats):
        return "its pixel statistics are not numbers in [0, 1]"
    if not isinstance(entry.get("fingerprint"), str):
        return "it has no fingerprint"
    if fingerprint(images, labels) != entry["fingerprint"]:  # e.g. a label changed, re-sealed
        return "its arrays do not match their recorded SHA-256"
    return None


def _load(path: Path, note: Callable[[str], None]) -> dict | None:
    try:
        entry = _read(path)
        problem = _check(entry)
    except FileNotFoundError:
        return None
    except SealError as e:
        problem = f"it {e}"
    except Exception as e:  # noqa: BLE001 - any unreadable entry is rebuilt, never fatal
        problem = f"unreadable ({type(e).__name__})"
    if problem is None:
        return entry
    note(f"decoded-data cache entry {path} not used ({problem}): rebuilt from the source files")
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # a directory in its place: the new entry will not be written either
    return None


def _save(path: Path, entry: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, **entry}, buffer)
        with atomic_write(path) as out:
            out.write(seal(buffer.getvalue()))
        # Drop entries for the same name and split built from older files: same prefix, same
        # suffix, another key (keys are 20 hex digits).
        prefix, rest = path.name.rsplit("-", 1)
        suffix = rest[20:]
        for stale in path.parent.glob(f"{prefix}-*{suffix}"):
            if stale != path and len(stale.name) == len(path.name) and stale.name.endswith(suffix):
                stale.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only or full cache only costs speed


def load_split(
    located: Located,
    split: str,
    *,
    use_cache: bool = True,
    on_event: Callable[[dict], None] | None = None,
) -> dict:
    """{"images": uint8 [N,28,28], "labels": uint8 [N], "mean", "std", "cached": bool}.

    ``mean``/``std`` are this split's own pixel statistics (callers use the train split's).
    Raises DataError when the files (or a cached entry of them) are not ``located.name``.
    """

    def note(text: str) -> None:
        if on_event:
            on_event({"event": "fallback", "notice": text})

    path = _entry_path(located, split)
    entry = _load(path, note) if use_cache else None
    where = str(located.directory)
    if entry is not None:
        check_identity(located.name, split, entry["fingerprint"], entry["labels"], where)
        return {**{k: entry[k] for k in ("images", "labels", "mean", "std")}, "cached": True}
    images, labels = read_idx_pair(*located.files[split])
    fp = fingerprint(images, labels)
    check_identity(located.name, split, fp, labels, where)
    mean, std = pixel_stats(images)
    entry = {"images": images, "labels": labels, "mean": mean, "std": std, "fingerprint": fp}
    if use_cache:
        _save(path, entry)
    return {**{k: entry[k] for k in ("images", "labels", "mean", "std")}, "cached": False}


def train_stats(located: Located, on_event: Callable[[dict], None] | None = None):
    """The train split's pixel mean/std (a float pair), from a tiny sealed side file."""
    stats = _entry_path(located, "train").with_suffix(".stats.pt")
    try:
        saved = _read(stats)
        mean, std = saved["mean"], saved["std"]
        if all(isinstance(v, float) and math.isfinite(v) and 0 <= v <= 1 for v in (mean, std)):
            return mean, std
    except Exception:  # noqa: BLE001 - missing or bad: recompute
        pass
    entry = load_split(located, "train", on_event=on_event)
    _save(stats, {"mean": entry["mean"], "std": entry["std"]})
    return entry["mean"], entry["std"]
