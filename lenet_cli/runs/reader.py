"""Run directories as the picture commands read them (stdlib only, nothing printed).

The picture commands read what `lenet train` wrote: ``metrics.jsonl`` (one JSON object per
epoch) and the checkpoints. They read the files through readback.py, which checks them as user
input: a run directory is something a user can point anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenet_cli.errors import CheckpointError, UsageError
from lenet_cli.runs.readback import ReadError, epoch_rows
from lenet_cli.runs.rundir import EPOCH_FILE

RUNS_ROOT = Path("runs")  # where `lenet train` writes by default (relative to the working dir)
CHECKPOINTS = ("best.pt", "last.pt")
# the files a run directory holds (rundir.py writes them); TensorBoard's start with this prefix
RUN_FILES = ("config.toml", "env.json", "metrics.jsonl", "metrics.csv", "last.pt", "best.pt")
LOCK = ".lock"
EVENTS_PREFIX = "events.out.tfevents."
SPLITS = ("train", "val", "test")

# What each data set's ten classes are called (the label index is the position).
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    # Kuzushiji-MNIST: the ten hiragana, romanised (the data set's own class map)
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
}


def class_names(data: str | None) -> list[str]:
    """The ten class names of a data set: its garment names, hiragana, or the digits 0-9."""
    return list(CLASS_NAMES.get(data or "", tuple(str(k) for k in range(10))))


def _newest(candidates: list[Path]) -> Path | None:
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


def newest_run(root: Path = RUNS_ROOT, need: str = "checkpoint") -> Path:
    """The most recently written run directory under ``root`` that holds ``need``.

    ``need`` is "checkpoint" (best.pt or last.pt) or "metrics" (metrics.jsonl); the newest is the
    one whose such file was written last.
    """
    names = CHECKPOINTS if need == "checkpoint" else ("metrics.jsonl",)
    files = [p / n for p in root.iterdir() if p.is_dir() for n in names] if root.is_dir() else []
    newest = _newest([f for f in files if f.is_file()])
    if newest is None:
        what = "a checkpoint" if need == "checkpoint" else "metrics.jsonl"
        raise UsageError(
            f"no run directory with {what} in {root}/",
            hint="train one with `lenet train`, or name a run directory or checkpoint",
        )
    return newest.parent


def run_file(path: str | Path) -> Path | None:
    """The file of a run directory that writing ``path`` would replace, or None.

    Followed through symbolic links (of the file, or of a directory on its way); a run directory
    is one that holds any of a run's files."""
    path = Path(path)
    for target in (path.parent.resolve() / path.name, path.resolve()):
        own = (
            target.name in (*RUN_FILES, LOCK)
            or target.name.startswith(EVENTS_PREFIX)
            or EPOCH_FILE.fullmatch(target.name) is not None  # --save-top-k's checkpoints
        )
        if own and any((target.parent / name).is_file() for name in RUN_FILES):
            return target
    return None


def _bad(path: Path, why: str) -> UsageError:
    return UsageError(
        f"{path} {why}", hint="name a run directory written by `lenet train` (runs/NAME)"
    )


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The epoch rows of a run's metrics.jsonl, every line checked (readback.metrics_row).

    Each row keeps ``epoch`` and ``step`` (ints), ``partial`` and, where the run logged them,
    ``lr``, ``seconds``, ``images_per_s`` and ``{train,val,test}_{loss,acc}`` as finite floats or
    None, and ``time`` (ISO 8601) as a string or None. A line that is not such a row is a
    UsageError naming it (exit 2).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise _bad(run_dir, "is not a directory")
    path = run_dir / "metrics.jsonl"
    try:
        rows = epoch_rows(path)
    except ReadError as e:
        raise UsageError(str(e), hint="fix or remove it, or name another run directory") from None
    if rows is None:
        raise _bad(run_dir, "has no metrics.jsonl (no epoch finished there yet?)")
    if not rows:
        raise _bad(path, "is empty (no epoch finished there yet?)")
    return rows


def checkpoint_or_newest(checkpoint: Path | None, root: Path = RUNS_ROOT) -> tuple[Path, str]:
    """The checkpoint (file or run directory) to use, and a note when it was picked by default."""
    if checkpoint is not None:
        if not checkpoint.exists():
            raise CheckpointError(f"checkpoint {checkpoint} does not exist", hint="check the path")
        return checkpoint, ""
    run = newest_run(root, "checkpoint")
    return run, f"using the newest run, {run} (name another with --checkpoint)"


def curves(run_dirs: list[Path]) -> list[dict[str, Any]]:
    """Per run: its name and, per epoch, the losses, accuracies and learning rate it logged."""
    names = [p.resolve().name for p in run_dirs]
    out = []
    for path, name in zip(run_dirs, names, strict=True):
        rows = read_metrics(path)
        curve: dict[str, Any] = {
            "run": str(path),
            "name": name if names.count(name) == 1 else str(path),
            "epoch": [r["epoch"] for r in rows],
            "partial": [r["partial"] for r in rows],
        }
        for key in ["lr"] + [f"{s}_{m}" for s in SPLITS for m in ("loss", "acc")]:
            curve[key] = [r[key] for r in rows]
        out.append(curve)
    return out
