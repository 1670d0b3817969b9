"""A closed stdout or stderr (`>&-`, `2>&-`, a service started without them), made safe before a
command runs.

Descriptors 1 and 2 are held open on the null device, so that no file this process opens later
takes their number (a C library's warning, or a child's output, would be written into it).
Then a closed stdout refuses data: a command whose answer went nowhere is a WriteError (exit
11), not a success. A closed stderr only drops messages and progress: the work goes on.
"""

from __future__ import annotations

import io
import os
import sys

from lenet_cli.errors import WriteError


class ClosedStdout(io.TextIOBase):
    """``sys.stdout`` when descriptor 1 was closed: any text written to it is a WriteError."""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not text:
            return 0
        raise WriteError(
            "cannot print the output: stdout is closed",
            hint="run the command with stdout open; send it to /dev/null to discard it",
        )


def _writable(fd: int) -> bool:
    """Descriptor ``fd`` is open for writing (a launcher may leave a stray read-only file on a
    closed one's number)."""
    try:
        import fcntl
    except ImportError:  # Windows: open is all it can tell
        fcntl = None
    try:
        if fcntl is None:
            os.fstat(fd)
            return True
        return (fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)
    except OSError:
        return False


def _hold(fd: int) -> None:
    """Descriptor ``fd`` open on the null device."""
    null = os.open(os.devnull, os.O_RDWR)
    if null != fd:
        os.dup2(null, fd)
        os.close(null)


def guard_streams() -> None:
    """Python leaves ``sys.stdout`` / ``sys.stderr`` None when descriptor 1 / 2 was closed."""
    if sys.stdout is None or not _writable(1):
        _hold(1)
        sys.stdout = ClosedStdout()
    if sys.stderr is None or not _writable(2):
        _hold(2)
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115  (for the process)
