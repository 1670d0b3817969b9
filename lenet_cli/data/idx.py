"""IDX files (the MNIST format), read and validated with a bounded amount of memory.

An IDX file is a big-endian header -- magic ``0x0000080N`` (N = number of dimensions), then N
uint32 sizes -- followed by exactly prod(sizes) bytes. We read 28x28 uint8 images
(``0x00000803``) and uint8 labels (``0x00000801``), raw or gzip-compressed.

Everything is checked and reported as ``DataError`` naming the file (never ``assert``): the
magic, the dimensions, the exact payload size, labels in 0-9. A gzip file is decompressed in
chunks up to the size the header promises plus one byte, so a gzip bomb or a header claiming
2^31 images cannot make us allocate gigabytes.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from lenet_cli.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
ROWS = COLS = 28
NUM_CLASSES = 10
# Largest payload we accept: 2^28 bytes is ~342,000 28x28 images (MNIST's 60,000 are 47 MB).
MAX_PAYLOAD = 1 << 28
_CHUNK = 1 << 22  # decompress 4 MiB at a time
_GZIP_MAGIC = b"\x1f\x8b"


def _bad(path: Path, what: str) -> DataError:
    return DataError(
        f"{path}: {what}",
        hint="the file is not valid IDX data; delete it and run `lenet data verify`, "
        "or get a fresh copy with `lenet data download` / `lenet data import`",
    )


def _open(path: Path):
    """Open raw or gzip, deciding by the first two bytes (a ``.gz`` name must be gzip)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - returned to the caller, closed there
    except FileNotFoundError:
        raise _bad(path, "file not found") from None
    except OSError as exc:
        raise _bad(path, f"cannot be read ({exc.strerror or exc})") from None
    head = handle.read(2)
    handle.seek(0)
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=handle, mode="rb"), handle, True
    if path.name.endswith(".gz"):
        handle.close()
        raise _bad(path, "not a gzip file (the name ends in .gz but the bytes do not start 1f 8b)")
    return handle, handle, False


def _read_exact(stream, path: Path, size: int, what: str) -> bytes:
    try:
        data = stream.read(size)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise _bad(
            path, f"corrupt or truncated gzip data while reading the {what} ({exc})"
        ) from None
    if len(data) != size:
        raise _bad(path, f"file ends inside the {what} ({len(data)} of {size} bytes)")
    return data


def _read_payload(stream, path: Path, size: int) -> bytearray:
    """Read exactly ``size`` bytes and prove there is nothing after them.

    Memory grows with what is actually decompressed (at most ``size + 1`` bytes), never with
    what a header claims, so a tiny file promising gigabytes costs nothing.
    """
    buf = bytearray()
    limit = size + 1  # one byte more than promised reveals extra data
    try:
        while len(buf) < limit:
            chunk = stream.read(min(_CHUNK, limit - len(buf)))
            if not chunk:
                break
            buf += chunk
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise _bad(path, f"corrupt or truncated gzip data ({exc})") from None
    if len(buf) < size:
        raise _bad(path, f"payload is short: {len(buf):,} bytes where the header promises {size:,}")
    if len(buf) > size:
        raise _bad(path, f"payload is longer than the header promises ({size:,} bytes)")
    return buf


def read_header(path: str | Path) -> tuple[int, tuple[int, ...]]:
    """Return (magic, dims) of an IDX file without reading its payload."""
    path = Path(path)
    stream, handle, _ = _open(path)
    try:
        return _parse_header(stream, path)
    finally:
        stream.close()
        handle.close()


def _parse_header(stream, path: Path) -> tuple[int, tuple[int, ...]]:
    raw = _read_exact(stream, path, 4, "header")
    (magic,) = struct.unpack(">I", raw)
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise _bad(
            path,
            f"bad magic number 0x{magic:08x} (expected 0x{IMAGES_MAGIC:08x} for images "
            f"or 0x{LABELS_MAGIC:08x} for labels)",
        )
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", _read_exact(stream, path, 4 * ndim, "header"))
    return magic, dims


def _read(path: str | Path, magic_wanted: int, kind: str) -> tuple[np.ndarray, tuple[int, ...]]:
    path = Path(path)
    stream, handle, gz = _open(path)
    try:
        magic, dims = _parse_header(stream, path)
        if magic != magic_wanted:
            other = "labels" if magic == LABELS_MAGIC else "images"
            raise _bad(path, f"holds {other} (magic 0x{magic:08x}), expected {kind}")
        if kind == "images" and dims[1:] != (ROWS, COLS):
            raise _bad(path, f"images are {dims[1]}x{dims[2]}, expected {ROWS}x{COLS}")
        size = 1
        for d in dims:
            size *= d
        if size > MAX_PAYLOAD:
            raise _bad(
                path,
                f"header claims {dims[0]:,} {kind} ({size:,} bytes), more than the "
                f"{MAX_PAYLOAD:,}-byte limit",
            )
        if not gz:
            actual = path.stat().st_size - 4 - 4 * len(dims)
            if actual != size:  # checked before reading anything large
                word = "short" if actual < size else "longer than the header promises"
                raise _bad(path, f"payload is {word}: {actual:,} bytes, header says {size:,}")
        buf = _read_payload(stream, path, size)
    finally:
        stream.close()
        handle.close()
    return np.frombuffer(buf, dtype=np.uint8), dims


def read_idx_images(path: str | Path) -> torch.Tensor:
    """Read an IDX image file into a uint8 tensor [N, 28, 28] (N from the header)."""
    flat, dims = _read(path, IMAGES_MAGIC, "images")
    return torch.from_numpy(flat).view(dims[0], ROWS, COLS)


def read_idx_labels(path: str | Path) -> torch.Tensor:
    """Read an IDX label file into a uint8 tensor [N], every label checked to be 0-9."""
    flat, dims = _read(path, LABELS_MAGIC, "labels")
    if len(dims) != 1:
        raise _bad(Path(path), f"label file has {len(dims)} dimensions, expected 1")
    if flat.size and int(flat.max()) >= NUM_CLASSES:
        bad = int(np.argmax(flat >= NUM_CLASSES))
        raise _bad(Path(path), f"label {int(flat[bad])} at index {bad} is not a digit 0-9")
    return torch.from_numpy(flat)


def read_idx_pair(images_path: str | Path, labels_path: str | Path):
    """Read images and labels and check that they hold the same number of examples."""
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise _bad(
            Path(labels_path),
            f"{labels.shape[0]:,} labels but {Path(images_path).name} has "
            f"{images.shape[0]:,} images",
        )
    return images, labels
