"""Sealed files: the bytes the tool wrote, then a SHA-256 trailer over them (layer 0, stdlib).

Checkpoints and decoded-data cache entries end with ``\\nLENET-SHA256:<64 hex digits>\\n``.
Reading one back is done in a fixed order, before anything parses the content: the size is
checked against a limit (from ``stat``, so a 10 GB file costs nothing), the trailer is read
from the end, then the body is read in blocks while it is hashed. Only bytes that match their
hash reach ``torch.load``; a flipped bit anywhere, a truncated file or a foreign one is refused.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

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
    with open(path, "rb") as f:
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
