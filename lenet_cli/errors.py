"""Domain errors. Each carries the process exit code that the CLI edge turns it into.

Layers below the CLI raise these; ``lenet_cli.cli`` catches them once, prints one line on
stderr (the message, then a hint on how to fix it) and exits with ``exit_code``.
The codes are documented in README.md; keep the two in step.
"""

from __future__ import annotations

import os


class LenetError(Exception):
    """Base class: a problem the user can act on. Never a bug."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(LenetError):
    """An option or argument that cannot work (Typer's own usage errors also exit 2)."""

    exit_code = 2


class DeviceError(LenetError):
    """The requested device does not exist on this machine."""

    exit_code = 3


class DataNotFoundError(LenetError):
    """The requested data set is nowhere to be found and could not be fetched."""

    exit_code = 4


class DataError(LenetError):
    """A data file exists but is malformed (bad magic, wrong size, bad labels, not gzip...)."""

    exit_code = 5


class CheckpointError(LenetError):
    """A checkpoint is missing, corrupt, unsafe or of another format."""

    exit_code = 6


class ConfigError(LenetError):
    """A config file is unreadable, or has an unknown key or a wrong type."""

    exit_code = 7


class ImageError(LenetError):
    """An input image cannot be read (not an image, empty, decompression bomb)."""

    exit_code = 8


class NoInkError(ImageError):
    """An image holds no ink at all (blank paper): exit 8 like any image that cannot be read;
    `lenet serve` answers it with 422 where an undecodable body is 400."""


class NonFiniteLossError(LenetError):
    """Training produced a NaN or Inf loss and was stopped."""

    exit_code = 9


class OutputExistsError(LenetError):
    """Writing would overwrite something already saved."""

    exit_code = 10


class WriteError(LenetError):
    """A file could not be written (no space left, read-only, permission); says what was kept."""

    exit_code = 11


class RunLockedError(LenetError):
    """The run directory is in use by another live process (its lock file names the pid)."""

    exit_code = 12


class ExportMismatchError(LenetError):
    """An exported model does not reproduce the checkpoint's scores or accuracy (``--verify``)."""

    exit_code = 13


class MissingExtraError(LenetError):
    """A feature needs an optional extra that is not installed (the message names the extra)."""

    exit_code = 14


class DistributedError(LenetError):
    """A distributed (multi-process) run failed: a rank died, timed out or could not connect."""

    exit_code = 15


class ServiceError(LenetError):
    """A service lenet uses or provides failed (`lenet serve`: the port cannot be listened on;
    `lenet sweep`: its study storage is unreachable or was lost)."""

    exit_code = 16


# Exit codes for signals follow the shell convention 128 + signal number.
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


def other_rank() -> bool:
    """This process is a data-parallel rank other than rank 0 (torchrun sets RANK and
    WORLD_SIZE). Rank 0 reports what every rank meets alike (a bad option, a missing device, a
    Ctrl-C), so the others say only what is theirs: that they lost their peers."""
    return "WORLD_SIZE" in os.environ and os.environ.get("RANK", "0") != "0"
