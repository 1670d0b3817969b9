"""The run directory while a run trains in it: the one writer of its files.

- created only when training starts (exclusively: an existing directory is never reused for a
  new run), locked while a process trains in it (``.lock``: an flock held by the process, with
  its pid and host for the message; the kernel drops it when the process dies);
- ``config.toml``, ``env.json`` and the checkpoints written atomically (atomic.py); the metrics
  files appended one fsynced line at a time, after the epoch's checkpoint, and checked against
  the checkpoint on resume (``load_metrics``); with ``--log-every N`` metrics.jsonl also holds
  per-step rows, marked ``"kind": "step"``;
- a failure to write (no space, read-only, permission) is a WriteError (exit 11) that says what
  was kept. docs/runs.md describes the files.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lenet_cli.config import TrainConfig, to_toml
from lenet_cli.config.toml import GIVEN_ARCH_PREFIX, GIVEN_DATA
from lenet_cli.errors import OutputExistsError, UsageError, WriteError
from lenet_cli.files import atomic_write, json_safe
from lenet_cli.interrupts import TrainingInterrupted
from lenet_cli.runs import lock, readback
from lenet_cli.runs.metricsfile import csv_text, epoch_row, rows_on_resume
from lenet_cli.runs.readback import ReadError

EPOCH_FILE = re.compile(r"epoch-(\d{3,})\.pt")  # --save-top-k's checkpoints


def epoch_file(epoch: int) -> str:
    """The name of epoch ``epoch``'s checkpoint kept by --save-top-k: epoch-007.pt."""
    return f"epoch-{epoch:03d}.pt"


# errors of a full, read-only or forbidden place: the user's to fix, not a bug
WRITE_ERRNOS = {
    errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO, errno.EISDIR
}  # fmt: skip


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")  # as metrics.now (no torch)


class RunDir:
    """A run directory, opened (created or reopened, then locked) as a context manager.

    A new run that fails before it wrote anything (its config.toml) removes its directory, so
    that it does not block the next run of that name.

    ``writes=False`` is the directory as a data-parallel rank other than 0 sees it: rank 0
    writes it all. Every change to the file system goes through ``__enter__`` (create, lock),
    ``_remove_if_new``, ``write`` and ``append_line``, and each of them does nothing then, so a
    writer method added later cannot write from another rank either.
    """

    def __init__(self, path: Path, new: bool, writes: bool = True) -> None:
        self.path, self.new, self.writes = Path(path), new, writes
        self.kept = (
            "nothing: no checkpoint had been written yet"
            if new
            else "the run as it was before this session (its last.pt and metrics)"
        )
        self.notes: list[str] = []  # for the caller to show (stale lock, repaired metrics)
        self._lock: int | None = None

    def __enter__(self) -> RunDir:
        if not self.writes:
            return self
        try:
            self.path.mkdir(parents=True, exist_ok=not self.new)
        except FileExistsError:
            raise OutputExistsError(
                f"run directory {self.path} already exists",
                hint="choose another --name, or continue it with --resume",
            ) from None
        except OSError as e:  # --out is a file, or a place this user cannot write
            if e.errno in WRITE_ERRNOS:
                raise self._write_error(self.path, e) from None
            raise UsageError(
                f"cannot create run directory {self.path}: {e.strerror}",
                hint="choose a writable --out directory",
            ) from None
        try:
            self._take_lock()
        except BaseException:
            self._remove_if_new()
            raise
        return self

    def __exit__(self, kind: type | None, *exc: object) -> None:
        if kind is not None:
            self._remove_if_new()
        self._release_lock()

    def _remove_if_new(self) -> None:
        if not (self.new and self.writes):
            return
        self._release_lock()
        try:
            self.path.rmdir()
        except OSError:
            pass  # it holds the session's record (env.json says how it ended): keep it

    def _take_lock(self) -> None:
        self._lock, stale = lock.take(self.path, self._open)
        if stale:
            self.notes.append(f"took over the lock of {self.path} left by {stale}, which is gone")

    def _release_lock(self) -> None:
        if self._lock is not None:
            lock.release(self.path, self._lock)
            self._lock = None

    def _open(self, path: Path, flags: int) -> int:
        try:
            return os.open(path, flags, 0o644)
        except OSError as e:
            raise self._write_error(path, e) from None

    # -- writing -----------------------------------------------------------------------------

    def _write_error(self, path: Path, e: OSError) -> Exception:
        if e.errno not in WRITE_ERRNOS:
            return e
        fix = (
            "move that folder away" if e.errno == errno.EISDIR else "free space or fix permissions"
        )
        return WriteError(
            f"cannot write {path}: {e.strerror}",
            hint=f"kept: {self.kept}; {fix}, then `lenet train --resume {self.path}`"
            if (self.path / "last.pt").exists()
            else f"kept: {self.kept}; free space or choose a writable --out",
        )

    def write(self, name: str, data: bytes) -> None:
        """Replace ``name`` atomically; a write failure is a WriteError saying what was kept."""
        if not self.writes:
            return
        path = self.path / name
        try:
            with atomic_write(path) as f:
                f.write(data)
        except OSError as e:
            raise self._write_error(path, e) from None

    def save(self, name: str, payload: dict[str, Any]) -> Path:
        """A checkpoint (``last.pt``, ``best.pt``) of this run, written atomically."""
        from lenet_cli.runs.checkpoint import checkpoint_bytes  # torch: only while training

        self.write(name, checkpoint_bytes(self.path / name, payload))
        if name == "last.pt":
            self.kept = f"{self.path / name} (epoch {payload['epoch']}, step {payload['step']})"
        return self.path / name

    def remove(self, name: str) -> None:
        """Delete one of the run's files (a checkpoint --save-top-k no longer keeps)."""
        if not self.writes:
            return
        try:
            (self.path / name).unlink(missing_ok=True)
        except OSError as e:
            raise self._write_error(self.path / name, e) from None

    def epoch_files(self) -> list[str]:
        """The names of the epoch-NNN.pt checkpoints in the directory now."""
        return sorted(p.name for p in self.path.glob("epoch-*.pt") if EPOCH_FILE.fullmatch(p.name))

    def write_config(self, config: TrainConfig) -> None:
        again = "train again with: lenet train --config THIS-FILE"
        if config.data == GIVEN_DATA or config.arch.startswith(GIVEN_ARCH_PREFIX):
            again = (  # runs/given.py: `lenet train --config` refuses these values
                "its data or model were given in Python: train again with "
                "lenet_cli.train(data=..., model=..., OPTION=VALUE...)"
            )
        header = f"resolved config of the run in {self.path}\n{again}"
        text = to_toml(config, header, skip=("name",))
        self.write("config.toml", text.encode("utf-8"))

    def write_env(self, info: dict[str, Any]) -> None:
        """env.json: this session, after the earlier ones of a resumed run."""
        doc: dict[str, Any] = info
        try:
            old = readback.read_json_object(self.path / "env.json")
        except ReadError as e:
            old = None
            self.notes.append(f"{e}; env.json is written anew")
        if old is not None:  # keep the first session, list the later ones
            earlier = old.get("resumed") if isinstance(old.get("resumed"), list) else []
            doc = {**old, "resumed": [*earlier, info]}
            doc.pop("ended", None)  # the previous session's end: running again now
        self.write("env.json", (json.dumps(json_safe(doc), indent=2) + "\n").encode("utf-8"))

    @contextlib.contextmanager
    def recording_end(self) -> Iterator[None]:
        """Records in env.json how the session ended: ``"ended": {"status", "reason", "time"}``,
        status finished, interrupted (a signal) or failed (a NaN loss, an error): `lenet runs`."""
        try:
            yield
        except BaseException as e:
            stopped = isinstance(e, (TrainingInterrupted, KeyboardInterrupt))
            self._ended("interrupted" if stopped else "failed", str(e) or type(e).__name__)
            raise
        self._ended("finished", "")

    def _ended(self, status: str, reason: str) -> None:
        try:
            doc = readback.read_json_object(self.path / "env.json")
            if doc is None:
                return
            doc["ended"] = {"status": status, "reason": reason[:300], "time": _now()}
            self.write("env.json", (json.dumps(json_safe(doc), indent=2) + "\n").encode("utf-8"))
        except (ReadError, WriteError):
            pass  # the end is a courtesy for `lenet runs`: never mask why training stopped

    def append_step(self, row: dict[str, Any]) -> None:
        """A per-step row (--log-every): metrics.jsonl only, marked ``"kind": "step"``."""
        self.append_line("metrics.jsonl", json.dumps(json_safe({"kind": "step", **row})) + "\n")

    def append(self, row: dict[str, Any]) -> None:
        """Add an epoch's row to metrics.jsonl and metrics.csv."""
        row = epoch_row(row)
        self.append_line("metrics.jsonl", json.dumps(row) + "\n")
        csv_path = self.path / "metrics.csv"
        self.append_line("metrics.csv", csv_text([row], header=not csv_path.exists()))

    def append_line(self, name: str, text: str) -> None:
        """Append ``text`` in one write and fsync it. A crash can tear only this last line,
        which a resume drops (``load_metrics``)."""
        if not self.writes:
            return
        path = self.path / name
        fd = self._open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            data = text.encode("utf-8")
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        except OSError as e:
            raise self._write_error(path, e) from None
        finally:
            os.close(fd)

    def load_metrics(self, step: int, last_row: dict[str, Any] | None) -> None:
        """On resume: keep the metrics rows up to the checkpoint's ``step``.

        A torn or unreadable line (a crash while appending) and rows beyond the checkpoint (an
        older version wrote the row first) are dropped with a note; the row of the checkpoint's
        epoch, if lost (a crash between checkpoint and row), comes back from the checkpoint. Both
        files are then rewritten atomically from what remains.
        """
        path = self.path / "metrics.jsonl"
        try:
            rows, bad = readback.metrics_rows(path) or ([], [])
        except ReadError as e:  # not a regular file, or far too large: not ours to replace
            raise UsageError(str(e), hint=f"move it away, then resume {self.path}") from None
        kept, notes = rows_on_resume(rows, bad, step, last_row, path)
        self.notes += notes
        epochs = [r for r in kept if r.get("kind", "epoch") == "epoch"]
        self.write("metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept).encode("utf-8"))
        self.write("metrics.csv", csv_text(epochs, header=True).encode("utf-8"))
