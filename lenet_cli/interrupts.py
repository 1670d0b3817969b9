"""SIGINT and SIGTERM during training: a flag, checked between steps, then a clean exit.

The handler only records the signal; the training loop saves ``last.pt`` at the next step
boundary and raises TrainingInterrupted, which the CLI turns into exit 130 (SIGINT) or 143
(SIGTERM). A second signal stops at once.

Outside training, Ctrl-C raises KeyboardInterrupt (exit 130), except where it would be caught:
while torch imports (some of its imports catch it: the Ctrl-C was lost and training ran to the
end; or they are left half-done: the next import fails) and while pydantic builds a validator
(Typer's option parsing, FastAPI's models: its core turns it into a SchemaError, an internal
error). There it is delivered again a moment later, once that is over.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from lenet_cli.errors import EXIT_SIGINT, EXIT_SIGTERM, LenetError


class TrainingInterrupted(LenetError):
    """SIGINT or SIGTERM arrived; last.pt was saved first. Exit 130 / 143."""

    def __init__(self, signum: int, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.exit_code = EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM


class Signals:
    """Turns SIGINT/SIGTERM into a flag while training (main thread only)."""

    def __init__(self) -> None:
        self.received: int | None = None  # set by the handler, in this process
        self.stopped: int | None = None  # the signal training stopped on (all ranks agreed)
        # a data-parallel rank gets a signal twice (the terminal's and torchrun's forwarded one)
        # and must stop at the step all ranks agreed on: it does not escalate
        self.escalate = True
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and self.escalate:  # a second signal: stop now
            self.restore()
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> Signals:
        try:
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    def restore(self) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old.clear()

    def __exit__(self, *exc: object) -> None:
        # A data-parallel rank keeps signals as flags until it leaves the job: torchrun sends
        # SIGTERM to every rank once one fails, and a rank on its way out with its own error
        # (it lost its peers) must live to say so and write its exit code for `--nproc`.
        if self.escalate:
            self.restore()


def _would_be_caught(frame: Any) -> bool:
    importing = in_torch = in_pydantic = False
    while frame is not None:
        importing = importing or frame.f_code.co_filename.startswith("<frozen importlib")
        package = frame.f_globals.get("__name__", "").split(".")[0]
        in_torch = in_torch or package == "torch"
        in_pydantic = in_pydantic or package in ("pydantic", "pydantic_core")
        frame = frame.f_back
    return (importing and in_torch) or in_pydantic


def _sigint_outside_imports(signum: int, frame: Any) -> None:
    if _would_be_caught(frame):  # again in 50 ms, until it lands where it stops the command
        again = threading.Timer(0.05, os.kill, (os.getpid(), signum))
        again.daemon = True
        again.start()
        return
    raise KeyboardInterrupt


def sigint_outside_imports() -> None:
    """Ctrl-C as KeyboardInterrupt, except where it would be caught (see above); main thread
    only."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _sigint_outside_imports)


def raise_interrupted(signum: int, epoch: int, step: int, path: Path, run_dir: Path) -> None:
    name = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
    raise TrainingInterrupted(
        signum,
        f"interrupted by {name} in epoch {epoch} after step {step}; saved {path}",
        hint=f"continue with `lenet train --resume {run_dir}`",
    )
