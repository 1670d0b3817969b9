"""`lenet runs`: what each run directory holds, as plain data (stdlib only).

Reads what `lenet train` wrote (config.toml, metrics.jsonl, env.json, the checkpoints) directly,
as user input: unknown keys and fields are ignored (newer runs may carry more), a file that is
there but broken is an error naming it. The status is "running" while a live process holds the
run's lock (``lock.py``); otherwise it is what env.json's ``ended`` recorded
(``lenet train`` writes it when a session ends), else, for older runs or a process that was
killed, it is inferred from the files:
- finished: the last epoch row is complete and the run reached its epochs, its max_steps or
  its early stop;
- interrupted: it saved a checkpoint but did not get there (Ctrl-C, SIGTERM, a killed
  process, a NaN stop): ``lenet train --resume DIR`` continues it;
- failed: nothing was saved (no epoch row, no checkpoint): it stopped before its first epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenet_cli.config.choices import MONITORS
from lenet_cli.config.monitor import better
from lenet_cli.errors import UsageError
from lenet_cli.runs import lock, readback
from lenet_cli.runs.readback import ReadError
from lenet_cli.runs.reader import RUN_FILES
from lenet_cli.runs.rundir import EPOCH_FILE

# --sort: the column, and whether larger values come first
SORT_KEYS = {
    "started": False,
    "name": False,
    "data": False,
    "arch": False,
    "epochs": True,
    "best": True,
    "final": True,
    "wall": True,
    "speed": True,
    "status": False,
}
_FIELD = {"best": "best_acc", "final": "final_acc", "wall": "wall_s", "speed": "images_per_s"}
_KEYS = ("name", "path", "data", "arch", "epochs", "epochs_planned", "best_acc", "final_acc")
_KEYS += ("wall_s", "train_s", "images_per_s", "status", "reason", "started", "checkpoints")


def read_config(run_dir: Path) -> dict[str, Any]:
    """config.toml's keys as written (tables flattened, values JSON-safe); {} when there is
    none. A file that cannot be read is a ReadError."""
    doc = readback.read_toml(run_dir / "config.toml")
    flat: dict[str, Any] = {}
    for key, value in (doc or {}).items():
        flat.update(value if isinstance(value, dict) else {key: value})
    return flat


def read_env(run_dir: Path) -> dict[str, Any]:
    """env.json, its sessions checked: ``resumed`` a list of objects, ``ended`` an object."""
    path = run_dir / "env.json"
    doc = readback.read_json_object(path) or {}
    resumed = doc.get("resumed", [])
    if not isinstance(resumed, list) or not all(isinstance(s, dict) for s in resumed):
        raise ReadError(f"{path}: resumed is not a list of sessions")
    if doc.get("ended") is not None and not isinstance(doc["ended"], dict):
        raise ReadError(f"{path}: ended is not an object")
    return doc


def wall_seconds(env: dict[str, Any], rows: list[dict[str, Any]]) -> float | None:
    """The time the run's sessions took, added up: each from its start (env.json) to its last
    metrics row before the next session's start, the last one to its recorded end. The idle
    time between a run's stop and its resume is not in it. None when nothing says."""
    starts = [readback.timestamp(s.get("time")) for s in [env, *env.get("resumed", [])]]
    starts = sorted(t for t in starts if t is not None)
    times = [t for t in (readback.timestamp(r.get("time")) for r in rows) if t is not None]
    end = readback.timestamp((env.get("ended") or {}).get("time"))
    if not starts or not (times or end):
        return None
    total = 0.0
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else None
        inside = [t for t in times if t >= start and (stop is None or t < stop)]
        inside += [end] if stop is None and end is not None else []
        total += max([(t - start).total_seconds() for t in inside] + [0.0])
    return total


def _int(config: dict[str, Any], key: str) -> int | None:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _status(config: dict[str, Any], rows: list[dict], saved: bool) -> str:
    if not rows:
        return "interrupted" if saved else "failed"
    last = rows[-1]
    epochs, max_steps, patience = (_int(config, k) for k in ("epochs", "max_steps", "early_stop"))
    if epochs is not None and last["epoch"] >= epochs and not last["partial"]:
        return "finished"
    if max_steps is not None and last["step"] is not None and last["step"] >= max_steps:
        return "finished"  # a partial last row: max_steps ended the run mid-epoch
    if patience is not None and _since_best(config, rows) >= patience:
        return "finished"
    return "interrupted"


def _since_best(config: dict[str, Any], rows: list[dict]) -> int:
    """Epochs since the last that improved on the metric the run followed (config/monitor.py)."""
    metric = config.get("early_stop_metric")
    if metric not in MONITORS:
        metric = "val_acc" if any(r["val_acc"] is not None for r in rows) else "test_acc"
    delta = config.get("min_delta")
    delta = delta if isinstance(delta, (int, float)) and not isinstance(delta, bool) else 0.0
    best, since = None, 0
    for r in rows:
        if r[metric] is not None and better(r[metric], best, metric, delta):
            best, since = r[metric], 0
        else:
            since += 1
    return since


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    """The epoch rows, checked; none when metrics.jsonl is absent or empty (nothing logged)."""
    return readback.epoch_rows(run_dir / "metrics.jsonl") or []


def summarise(run_dir: Path) -> dict[str, Any]:
    """One row of `lenet runs`: what the run is, how far it got, how well and how fast. A run
    whose files cannot be read is a row of status "unreadable", the reason naming the file."""
    try:
        return _summary(run_dir)
    except ReadError as e:
        row: dict[str, Any] = dict.fromkeys(_KEYS)
        return {**row, "name": run_dir.name, "path": str(run_dir), "epochs": 0,
                "status": "unreadable", "reason": str(e), "checkpoints": []}  # fmt: skip


def _summary(run_dir: Path) -> dict[str, Any]:
    config, env = read_config(run_dir), read_env(run_dir)
    rows = _rows(run_dir)
    saved = any((run_dir / name).is_file() for name in ("last.pt", "best.pt"))
    accs = [r["test_acc"] for r in rows if r["test_acc"] is not None]
    seconds = sum(r["seconds"] or 0.0 for r in rows)
    images = sum((r["seconds"] or 0.0) * (r["images_per_s"] or 0.0) for r in rows)
    started = readback.timestamp(env.get("time"))
    record = env.get("ended")
    if record and record.get("status") not in ("finished", "interrupted", "failed"):
        record = None
    return {
        "name": run_dir.name,
        "path": str(run_dir),
        "data": config.get("data") if isinstance(config.get("data"), str) else None,
        "arch": config.get("arch") if isinstance(config.get("arch"), str) else None,
        "epochs": rows[-1]["epoch"] - int(rows[-1]["partial"]) if rows else 0,
        "epochs_planned": _int(config, "epochs"),
        "best_acc": max(accs) if accs else None,
        "final_acc": accs[-1] if accs else None,
        "wall_s": wall_seconds(env, rows),
        "train_s": seconds if rows else None,
        "images_per_s": images / seconds if seconds > 0 else None,
        "status": "running"
        if lock.in_use(run_dir)
        else (record["status"] if record else _status(config, rows, saved)),
        "reason": str(record.get("reason") or "") or None if record else None,
        "started": env.get("time") if started else None,
        "checkpoints": checkpoints(run_dir),
    }


def checkpoints(run_dir: Path) -> list[str]:
    """The checkpoints the run keeps: last.pt, best.pt and --save-top-k's epoch-NNN.pt."""
    names = [p.name for p in run_dir.glob("*.pt") if p.is_file()]
    return sorted(n for n in names if n in ("last.pt", "best.pt") or EPOCH_FILE.fullmatch(n))


def is_run(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in RUN_FILES)


def list_runs(root: Path, sort: str = "started", reverse: bool = False) -> list[dict[str, Any]]:
    """Every run directory in ``root`` (or ``root`` itself if it is one), summarised and sorted.

    A sub-directory holding none of a run's files (a run that died at once) is a failed run.
    """
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", hint="name a directory that holds runs")
    dirs = [root] if is_run(root) else sorted(p for p in root.iterdir() if p.is_dir())
    table = [summarise(d) for d in dirs]
    key = _FIELD.get(sort, sort)
    present = [r for r in table if r[key] is not None]
    present.sort(key=lambda r: r[key], reverse=SORT_KEYS[sort] != reverse)
    return present + [r for r in table if r[key] is None]  # unknown values last


def find_run(name: str | Path, root: Path) -> Path:
    """A run directory by path, or by name inside ``root``."""
    for path in (Path(name), root / str(name)):
        if path.is_dir():
            return path
    raise UsageError(
        f"run {name} not found (neither a directory nor a run in {root}/)",
        hint="`lenet runs` lists them",
    )


# options that change what a run prints, not what it computes or writes: listed apart
DISPLAY_KEYS = ("progress",)


def diff_runs(a: Path, b: Path) -> dict[str, Any]:
    """The config keys that differ between two runs (display settings apart), and their
    results side by side. A file of either run that cannot be read is a UsageError."""
    try:
        config_a, config_b = read_config(a), read_config(b)
        rows_a, rows_b = _rows(a), _rows(b)
    except ReadError as e:
        raise UsageError(str(e), hint="fix or remove that file") from None
    keys = [k for k in config_a if k in config_b] + [k for k in config_b if k not in config_a]
    keys += [k for k in config_a if k not in config_b]
    changed = [
        {"key": k, "a": config_a.get(k), "b": config_b.get(k)}
        for k in dict.fromkeys(keys)
        if config_a.get(k) != config_b.get(k) and k != "name"
    ]
    sa, sb = summarise(a), summarise(b)
    shown = ("status", "epochs", "final_acc", "best_acc", "wall_s", "train_s", "images_per_s")
    final_loss = [rows[-1]["test_loss"] if rows else None for rows in (rows_a, rows_b)]
    results = [{"key": k, "a": sa[k], "b": sb[k]} for k in shown]
    results.insert(3, {"key": "final_loss", "a": final_loss[0], "b": final_loss[1]})
    return {
        "a": str(a),
        "b": str(b),
        "config": [c for c in changed if c["key"] not in DISPLAY_KEYS],
        "display": [c for c in changed if c["key"] in DISPLAY_KEYS],
        "results": results,
    }
