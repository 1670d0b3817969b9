"""The run directory (layer 3): where a run goes, the rules of resuming one, its log files.

``plan_run`` turns the command line (config file, flags, ``--resume``) into a ``Plan``: the
resolved config, the directory, and the checkpoint to resume. ``RunDir`` creates the directory
and writes its files:

- ``config.toml``: the resolved config of what ran, usable again with ``--config``;
- ``metrics.jsonl`` and ``metrics.csv``: one complete row per epoch, the same columns in both;
  with ``--log-every N`` metrics.jsonl also holds per-step rows, marked ``"kind": "step"``;
- ``env.json``: versions, device, threads, seed and argv of each session (a resume appends);
- ``last.pt`` / ``best.pt`` (``RunDir.save``, through checkpoint.save_checkpoint).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lenet_cli.atomic import json_safe
from lenet_cli.config import TrainConfig, load_toml, resolve, to_toml, validate
from lenet_cli.errors import OutputExistsError, UsageError
from lenet_cli.interrupts import TrainingInterrupted

# Keys that a resumed run cannot change: the weights, optimizer state or data would not fit.
FIXED_ON_RESUME = ("data", "arch", "optimizer", "batch_size", "val_split", "seed")
COLUMNS: tuple[str, ...] = (
    "epoch",
    "step",
    "partial",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "lr",
    "images_per_s",
    "seconds",
    "time",
)


@dataclass(frozen=True)
class Plan:
    """What ``lenet train`` is asked to do: a resolved config, a directory, maybe a checkpoint."""

    config: TrainConfig
    run_dir: Path
    resume: dict[str, Any] | None = None  # a checkpoint loaded by load_for_resume
    sources: dict[str, str] = field(default_factory=dict)  # key -> "default" | file | "flag"

    @property
    def data_explicit(self) -> bool:
        """An explicit --data mnist never falls back to the sample, nor does a resumed run."""
        return self.resume is not None or self.sources.get("data", "default") != "default"

    def config_lines(self) -> list[tuple[str, str]]:
        """--print-config: one TOML line per key and where its value came from."""
        lines = to_toml(self.config).splitlines()  # one line per key, in field order
        keys = self.config.to_dict()
        return [(line, self.sources.get(k, "default")) for k, line in zip(keys, lines, strict=True)]


def plan_run(config_file: Path | None, flags: dict[str, Any], resume: Path | None = None) -> Plan:
    """defaults (or the resumed checkpoint's config) < config file < flags, and the run dir."""
    file_values = load_toml(config_file) if config_file is not None else None
    if resume is None:
        resolved = resolve(TrainConfig(), file_values, flags, file_name=str(config_file))
        cfg = resolved.config
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(cfg.out) / (cfg.name or f"{cfg.data}-{cfg.arch}-{stamp}")
        return Plan(cfg, run_dir, None, resolved.sources)
    from lenet_cli.checkpoint import load_for_resume  # torch: only when resuming

    payload = load_for_resume(resume)
    base = TrainConfig(**validate(payload["config"], f"{payload['path']} (config)"))
    resolved = resolve(
        base, file_values, flags, file_name=str(config_file), defaults_name="checkpoint"
    )
    changed = [k for k in FIXED_ON_RESUME if getattr(resolved.config, k) != getattr(base, k)]
    if changed:
        raise UsageError(
            f"--resume cannot change {', '.join(changed)}",
            hint="drop those options, or start a new run",
        )
    return Plan(resolved.config, resume_dir(Path(payload["path"])), payload, resolved.sources)


def resume_dir(checkpoint: Path) -> Path:
    """The run directory that resuming ``checkpoint`` continues in, if that overwrites nothing.

    Resuming writes last.pt, config.toml, env.json and the metrics next to the checkpoint: from an
    older checkpoint (best.pt) of a run that has a last.pt, that would overwrite later work; in a
    directory that is not a run directory, it could overwrite the user's own files.
    """
    run_dir = checkpoint.parent
    if checkpoint.name != "last.pt" and (run_dir / "last.pt").is_file():
        raise OutputExistsError(
            f"resuming from {checkpoint} would overwrite the run's later {run_dir / 'last.pt'}",
            hint=f"resume the run itself (--resume {run_dir}), or copy {checkpoint.name} into a "
            "new directory and resume it there",
        )
    foreign = [p.name for p in run_dir.iterdir() if p.suffix != ".pt"]
    if foreign and not (run_dir / "metrics.jsonl").is_file():
        raise OutputExistsError(
            f"{run_dir} is not a run directory of `lenet train` (it holds {', '.join(foreign[:3])})"
            "; resuming there would write config.toml, env.json and metrics beside them",
            hint="copy the checkpoint into an empty directory and resume it there",
        )
    return run_dir


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")  # as metrics.now (no torch)


class RunDir:
    """A run directory while a run trains in it: created (or reopened), then its log files.

    Used as a context manager: a new directory that is still empty when the run fails (bad data,
    say) is removed, so it does not block the next run.
    """

    def __init__(self, path: Path, new: bool) -> None:
        self.path, self.new = Path(path), new

    def __enter__(self) -> RunDir:
        try:
            self.path.mkdir(parents=True, exist_ok=not self.new)
        except FileExistsError:
            raise OutputExistsError(
                f"run directory {self.path} already exists",
                hint="choose another --name, or continue it with --resume",
            ) from None
        except OSError as e:  # --out is a file, or a place this user cannot write
            raise UsageError(
                f"cannot create run directory {self.path}: {e.strerror}",
                hint="choose a writable --out directory",
            ) from None
        return self

    def __exit__(self, kind: type | None, *exc: object) -> None:
        if kind is not None and self.new and not any(self.path.iterdir()):
            self.path.rmdir()  # failed before writing anything: leave no empty run

    def write_config(self, config: TrainConfig) -> None:
        text = to_toml(
            config,
            f"resolved config of the run in {self.path}\n"
            "train again with: lenet train --config THIS-FILE",
            skip=("name",),
        )
        (self.path / "config.toml").write_text(text, encoding="utf-8")

    def write_env(self, info: dict[str, Any]) -> None:
        path = self.path / "env.json"
        if path.exists():  # a resumed run: keep the first session, list the later ones
            doc = json.loads(path.read_text(encoding="utf-8"))
            doc.setdefault("resumed", []).append(info)
            doc.pop("ended", None)  # the previous session's end: running again now
        else:
            doc = info
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")

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
        path = self.path / "env.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            doc["ended"] = {"status": status, "reason": reason[:300], "time": _now()}
            path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        except (OSError, ValueError):
            pass  # the end is a courtesy for `lenet runs`: never mask why training stopped

    def append_step(self, row: dict[str, Any]) -> None:
        """A per-step row (--log-every): metrics.jsonl only, marked ``"kind": "step"``."""
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(json_safe({"kind": "step", **row})) + "\n")

    def save(self, name: str, payload: dict[str, Any]) -> Path:
        """A checkpoint (``last.pt``, ``best.pt``) of this run, written atomically."""
        from lenet_cli.checkpoint import save_checkpoint  # torch: only while training

        return save_checkpoint(self.path / name, payload)

    def append(self, row: dict[str, Any]) -> None:
        row = json_safe({k: row.get(k) for k in COLUMNS})
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        csv_path = self.path / "metrics.csv"
        line = io.StringIO()
        writer = csv.DictWriter(line, fieldnames=COLUMNS)
        if not csv_path.exists():
            writer.writeheader()
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
        with open(csv_path, "a", encoding="utf-8", newline="") as f:
            f.write(line.getvalue())


class QuietRunDir(RunDir):
    """The run directory as a data-parallel rank other than 0 sees it: rank 0 writes it all."""

    def __enter__(self) -> QuietRunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def write_config(self, config: TrainConfig) -> None:
        pass

    def write_env(self, info: dict[str, Any]) -> None:
        pass

    def _ended(self, status: str, reason: str) -> None:
        pass

    def append_step(self, row: dict[str, Any]) -> None:
        pass

    def append(self, row: dict[str, Any]) -> None:
        pass

    def save(self, name: str, payload: dict[str, Any]) -> Path:
        return self.path / name
