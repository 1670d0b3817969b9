"""Writing a file so that it is either wholly the new content or untouched (layer 0, stdlib).

Checkpoints, downloads, imported data files and the decoded-tensor cache all go through
``atomic_write``: a temp file in the same directory, fsync, rename over the target, fsync of the
directory. A crash, SIGKILL or exception part-way leaves the previous file (or none) in place and
no partial file behind.
"""

from __future__ import annotations

import math
import os
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
