"""Run logs (layer 3): the files of a run directory other than the checkpoints.

- ``config.toml``: the resolved config, usable again with ``--config``;
- ``metrics.jsonl`` and ``metrics.csv``: one complete row per epoch, the same columns in both;
- ``env.json``: versions, device, threads, seed and argv of each session (a resume appends).
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from lenet_cli import __version__
from lenet_cli.errors import OutputExistsError

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


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def env_info(
    device: torch.device, threads: int, seed: int, deterministic: bool, fused: bool = False
) -> dict[str, Any]:
    """Where and with what a session ran."""
    info: dict[str, Any] = {
        "time": now(),
        "argv": list(sys.argv),
        "lenet_cli": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "threads": threads,
        "threads_note": "default --threads is the physical cores (speed.default_threads)",
        "fused_kernels": fused,  # the CPU kernels of fused.py (float rounding differs)
        "cpu_count": os.cpu_count(),
        "seed": seed,
        "deterministic": deterministic,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def _json_number(value: Any) -> Any:
    """JSON has no NaN/Inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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


class RunLog:
    """Appends to the log files of one run directory."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def write_config(self, toml_text: str) -> None:
        (self.directory / "config.toml").write_text(toml_text, encoding="utf-8")

    def write_env(self, info: dict[str, Any]) -> None:
        path = self.directory / "env.json"
        if path.exists():  # a resumed run: keep the first session, list the later ones
            doc = json.loads(path.read_text(encoding="utf-8"))
            doc.setdefault("resumed", []).append(info)
        else:
            doc = info
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")

    def append(self, row: dict[str, Any]) -> None:
        row = {k: _json_number(row.get(k)) for k in COLUMNS}
        with open(self.directory / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        csv_path = self.directory / "metrics.csv"
        new = not csv_path.exists()
        with open(csv_path, "a", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def read_rows(directory: str | Path) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl (empty when there is none yet)."""
    path = Path(directory) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class RunState:
    """Counters of a run that a checkpoint carries: where it is, the open epoch's sums, the best.

    ``epoch`` counts completed epochs; ``batch_in_epoch`` the batches done of the open one.
    """

    FIELDS = (
        "epoch",
        "step",
        "batch_in_epoch",
        "loss_sum",
        "correct",
        "seen",
        "seconds",
        "total_seconds",
        "total_images",
        "best",
        "epochs_since_best",
        "last_row",
    )

    def __init__(self) -> None:
        self.epoch = self.step = self.batch_in_epoch = 0
        self.loss_sum, self.correct, self.seen, self.seconds = 0.0, 0, 0, 0.0
        self.total_seconds, self.total_images = 0.0, 0
        self.best: dict[str, Any] | None = None
        self.epochs_since_best = 0
        self.last_row: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunState:
        state = cls()
        for k in cls.FIELDS:
            if k in d:
                setattr(state, k, d[k])
        return state

    def next_epoch(self) -> None:
        self.total_seconds += self.seconds
        self.total_images += self.seen
        self.epoch += 1
        self.batch_in_epoch = self.seen = self.correct = 0
        self.loss_sum = self.seconds = 0.0

    def track_best(self, row: dict[str, Any], on: str) -> bool:
        """Record ``row`` as the latest; True when its ``on`` accuracy is the best so far."""
        self.last_row = row
        value = row[f"{on}_acc"]
        if self.best is None or value > self.best["value"]:
            self.best = {
                "selected_on": on,
                "value": value,
                "epoch": row["epoch"],
                "step": row["step"],
                "test_loss": row["test_loss"],
                "test_acc": row["test_acc"],
            }
            self.epochs_since_best = 0
            return True
        self.epochs_since_best += 1
        return False

    def row(self, partial: bool, lr: float, val: dict | None, test: dict) -> dict[str, Any]:
        """The metrics row of the epoch just trained (``val``/``test``: evaluation results)."""
        seen = max(1, self.seen)
        return {
            "epoch": self.epoch + 1,
            "step": self.step,
            "partial": partial,
            "train_loss": self.loss_sum / seen,
            "train_acc": self.correct / seen,
            "val_loss": val["loss"] if val else None,
            "val_acc": val["accuracy"] if val else None,
            "test_loss": test["loss"],
            "test_acc": test["accuracy"],
            "lr": lr,
            "images_per_s": self.seen / max(1e-9, self.seconds),
            "seconds": self.seconds,
            "time": now(),
        }

    def summary(self, run_dir: Path, data: str, arch: str, reason: str, wall: float) -> dict:
        """The run's result: final and best test metrics, time and speed (``--json``)."""
        last = self.last_row or {}
        seconds = self.total_seconds + self.seconds
        return {
            "run_dir": str(run_dir),
            "data": data,
            "arch": arch,
            "stopped": reason,
            "epochs": self.epoch,
            "steps": self.step,
            "final": {k: last.get(k) for k in ("test_loss", "test_acc", "val_loss", "val_acc")},
            "best": dict(self.best) if self.best else None,
            "seconds": wall,
            "train_seconds": seconds,
            "images_per_s": (self.total_images + self.seen) / max(1e-9, seconds),
        }
