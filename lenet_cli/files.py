"""Files written whole or not at all, files sealed with a checksum, and files opened only when
they are regular files (stdlib only).

Atomic writes: checkpoints, downloads, imported data files, PNGs and the decoded-tensor cache go
through ``atomic_write``: a temp file in the same directory, fsync, rename over the target, fsync
of the directory. A crash, SIGKILL or exception part-way leaves the previous file (or none) in
place and no partial file behind.

Sealed files: checkpoints and decoded-data cache entries end with
``\\nLENET-SHA256:<64 hex digits>\\n``. The seal is a checksum anyone can recompute, not a
signature: it catches truncation and bit flips, and the content checks after it catch the rest.
Reading one back is done in a fixed order, before anything parses the content: the size is
checked against a limit (from ``stat``, so a 10 GB file costs nothing), the trailer is read from
the end, then the body is read in blocks while it is hashed. Only bytes that match their hash
reach ``torch.load``.

Reading: ``open_regular`` opens a path only if it is a regular file, without waiting (a FIFO or a
device under a file's name is refused at once); sealed files and runs/readback.py go through it.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

_UMASK = os.umask(0o022)  # read once (umask can only be read by setting it), then put back
os.umask(_UMASK)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the platform lets a directory be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write; it replaces ``path`` only if the block ends without an error."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the file what open() would
            os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
        fsync_dir(path.parent)
    finally:
        Path(tmp).unlink(missing_ok=True)


def json_safe(value: Any) -> Any:
    """JSON has no NaN or Infinity: they become null (in every JSON file and document we write)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISSOCK: "a socket",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
}


class FileKindError(ValueError):
    """A path that is not a regular file, as a phrase: "is a FIFO, not a regular file"."""


def _not_regular(mode: int) -> FileKindError:
    kind = next((name for test, name in _KINDS.items() if test(mode)), "not a regular file")
    return FileKindError(f"is {kind}, not a regular file")


def open_regular(path: str | Path, flags: int = os.O_RDONLY) -> int | None:
    """A descriptor of the regular file ``path``, or None when there is none (OSError for the
    rest). Anything else is a FileKindError, found without waiting: the kind is checked before
    the open and again on what was opened (O_NONBLOCK: a FIFO swapped in between does not
    block the open)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(mode):
        raise _not_regular(mode)
    try:
        fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(mode)
    return fd


MAGIC = b"\nLENET-SHA256:"
TRAILER_LEN = len(MAGIC) + 64 + 1
_BLOCK = 1 << 20


class SealError(Exception):
    """Why a sealed file was refused, as a phrase: "is corrupt: its SHA-256 does not match"."""


def seal(data: bytes) -> bytes:
    """``data`` followed by its trailer."""
    return data + MAGIC + hashlib.sha256(data).hexdigest().encode("ascii") + b"\n"


def read_sealed(path: str | Path, limit: int) -> bytes:
    """The body of a sealed file, checked; raises SealError (a phrase) or OSError."""
    try:
        fd = open_regular(path)
    except FileKindError as e:
        raise SealError(str(e)) from None
    if fd is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise SealError(f"is {size:,} bytes, more than the {limit:,}-byte limit")
        if size <= TRAILER_LEN:
            raise SealError(f"is too short ({size:,} bytes) to hold a checksum trailer")
        f.seek(size - TRAILER_LEN)
        trailer = f.read(TRAILER_LEN)
        if not trailer.startswith(MAGIC) or not trailer.endswith(b"\n"):
            raise SealError("has no checksum trailer (it was not written by lenet)")
        f.seek(0)
        digest, body, left = hashlib.sha256(), bytearray(), size - TRAILER_LEN
        while left > 0:
            block = f.read(min(_BLOCK, left))
            if not block:
                raise SealError("changed while it was read")
            digest.update(block)
            body += block
            left -= len(block)
    if digest.hexdigest().encode("ascii") != trailer[len(MAGIC) : -1]:
        raise SealError("is corrupt: its SHA-256 does not match")
    return bytes(body)
