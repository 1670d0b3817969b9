"""The lock of a run directory: ``.lock``, an flock held by the process that trains there.

The file holds the owner's pid and host, for the message a second process gets; the kernel
drops the flock when its process dies, so a lock left by a dead process is taken over (and said
so). Standard library only.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from lenet_cli.errors import RunLockedError, UsageError
from lenet_cli.runs.readback import open_regular

LOCK = ".lock"


def take(run_dir: Path, open_file: Callable[[Path, int], int]) -> tuple[int | None, str]:
    """Lock ``run_dir``: (the lock's descriptor, the dead owner it took over from, or "").

    ``open_file`` opens the lock file (the run directory's own, which turns a full disk into
    its WriteError). Raises RunLockedError naming the live owner. No flock (Windows): (None, "").
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; runs are not locked there (docs/runs.md)
        return None, ""
    path = run_dir / LOCK
    while True:
        fd = open_file(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NONBLOCK", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO: its read below would wait forever
            os.close(fd)
            raise UsageError(
                f"{path} is not a regular file", hint="remove it: lenet keeps the run's lock there"
            )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunLockedError(
                f"run directory {run_dir} is in use by {owner}",
                hint="wait for it to finish (or stop it), then resume",
            ) from None
        try:  # the file we locked is still the one at `path` (its owner may have removed it)
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = os.read(fd, 200).decode("utf-8", "replace").strip()
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd, stale


def in_use(run_dir: Path) -> bool:
    """Whether a live process holds ``run_dir``'s lock now (it is training there). A lock that
    is not a regular file (a FIFO would block the open) is a readback.ReadError."""
    try:
        import fcntl
    except ImportError:  # no flock here: nobody is seen training
        return False
    fd = open_regular(run_dir / LOCK)
    if fd is None:  # no lock file: nobody trains there
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we took
    return False


def release(run_dir: Path, fd: int) -> None:
    (run_dir / LOCK).unlink(missing_ok=True)  # while still holding it
    os.close(fd)
