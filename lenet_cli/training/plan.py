"""What ``lenet train`` is asked to do: the resolved config, the run directory, and,
for ``--resume``, the checkpoint and the rules of what a resumed run may change.

defaults (or the resumed checkpoint's config) < ``--config FILE`` < flags. docs/runs.md lists the
rules; ``FIXED_ON_RESUME`` and ``SCHEDULE_KEYS`` are them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lenet_cli.config import TrainConfig, flag_name, load_toml, resolve, to_toml, validate
from lenet_cli.config.monitor import check_options, monitored
from lenet_cli.errors import OutputExistsError, UsageError

# What the weights, optimizer state, data order or logged metrics were built on. Besides
# these, the metric the run follows (--early-stop-metric, as resolved) and whether --ema is on
# are fixed (check_resume); every other option may change.
FIXED_ON_RESUME = (
    "data",
    "val_split",
    "arch",
    "init",
    "loss",
    "label_smoothing",
    "optimizer",
    "batch_size",
    "seed",
)
# The shape of the lr schedule: changed only by starting a new one (--restart-schedule).
SCHEDULE_KEYS = ("scheduler", "step_size", "gamma", "warmup")
# A resumed run stays in its directory.
PLACE_KEYS = ("out", "name")
# Files `lenet train` writes in a run directory (temp files of atomic writes start with '.').
RUN_FILES = frozenset(
    {"config.toml", "env.json", "metrics.jsonl", "metrics.csv", "last.pt", "best.pt", ".lock"}
)
CONFIG_HEADER = "# resolved config of the run in "


@dataclass(frozen=True)
class Plan:
    """A resolved config, a directory, and maybe a checkpoint to resume."""

    config: TrainConfig
    run_dir: Path
    resume: dict[str, Any] | None = None  # a checkpoint loaded by load_for_resume
    sources: dict[str, str] = field(default_factory=dict)  # key -> "default" | file | "flag"
    restart_schedule: bool = False
    checkpoint_stat: tuple[int, int, int] | None = None  # to see it change before the lock
    given: Any = None  # runs/given.py Given: data and model handed to lenet_cli.train

    @property
    def data_explicit(self) -> bool:
        """An explicit --data mnist never falls back to the sample, nor does a resumed run."""
        return self.resume is not None or self.sources.get("data", "default") != "default"

    def check_unchanged(self) -> None:
        """After the run's lock is taken: the checkpoint is still the one this plan read."""
        path = Path(self.resume["path"]) if self.resume else None
        if path is None or self.checkpoint_stat is None:
            return
        try:
            st = os.stat(path)
            now = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            now = None
        if now != self.checkpoint_stat:
            raise OutputExistsError(
                f"{path} was rewritten by another process while this one started",
                hint="run the command again to resume from the newer checkpoint",
            )

    def config_lines(self) -> list[tuple[str, str]]:
        """--print-config: one TOML line per key and where its value came from."""
        lines = to_toml(self.config).splitlines()  # one line per key, in field order
        keys = self.config.to_dict()
        return [(line, self.sources.get(k, "default")) for k, line in zip(keys, lines, strict=True)]


def plan_run(
    config_file: Path | None,
    flags: dict[str, Any],
    resume: Path | None = None,
    restart_schedule: bool = False,
    *,
    model: Any = None,
    given: frozenset[str] = frozenset(),
) -> Plan:
    """The plan of a new run, or of resuming ``resume`` (its rules checked)."""
    file_values = load_toml(config_file) if config_file is not None else None
    if resume is None:
        if restart_schedule:
            raise UsageError("--restart-schedule only applies with --resume")
        resolved = resolve(TrainConfig(), file_values, flags, file_name=str(config_file))
        cfg = resolved.config
        check_options(cfg)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(cfg.out) / (
            cfg.name or free_name(Path(cfg.out), f"{cfg.data}-{cfg.arch}-{stamp}")
        )
        if run_dir.exists():  # before any data is loaded (RunDir checks again, atomically)
            raise OutputExistsError(
                f"run directory {run_dir} already exists",
                hint="choose another --name, or continue it with --resume",
            )
        return Plan(cfg, run_dir, None, resolved.sources)
    from lenet_cli.runs.checkpoint import load_for_resume  # torch: only when resuming

    # ``model`` and ``given``: a run of lenet_cli.train(model=..., data=...) resumed in Python
    payload = load_for_resume(resume, model=model, given=given)
    path = Path(payload["path"])
    base = TrainConfig(**validate(payload["config"], f"{path} (config)"))
    resolved = resolve(
        base, file_values, flags, file_name=str(config_file), defaults_name="checkpoint"
    )
    check_options(resolved.config)
    check_resume(base, resolved.config, restart_schedule)
    st = os.stat(path)
    return Plan(
        resolved.config,
        resume_dir(path),
        payload,
        resolved.sources,
        restart_schedule,
        (st.st_ino, st.st_size, st.st_mtime_ns),
    )


def free_name(out: Path, name: str) -> str:
    """A run named by the clock gets -2, -3... when another started in the same second (a
    loop of short runs in Python); a name given with --name is never changed."""
    chosen, n = name, 1
    while (out / chosen).exists():
        n += 1
        chosen = f"{name}-{n}"
    return chosen


def check_resume(old: TrainConfig, new: TrainConfig, restart: bool) -> None:
    """Refuse what a resumed run cannot change (docs/runs.md)."""

    def changed(keys: tuple[str, ...]) -> list[str]:
        return [flag_name(k) for k in keys if getattr(new, k) != getattr(old, k)]

    fixed = changed(FIXED_ON_RESUME + PLACE_KEYS)
    if fixed:
        raise UsageError(
            f"--resume cannot change {', '.join(fixed)}",
            hint="drop those options (a resumed run keeps them and its directory), "
            "or start a new run",
        )
    follows = (monitored(old), monitored(new))
    if follows[0] != follows[1]:
        raise UsageError(
            f"--resume cannot change the metric the run follows ({follows[0]}, now {follows[1]})",
            hint="best.pt and the early-stopping count were built on it; drop "
            "--early-stop-metric, or start a new run",
        )
    if (old.ema is None) != (new.ema is None):
        raise UsageError(
            "--resume cannot turn --ema " + ("on" if old.ema is None else "off"),
            hint="the rows and best.pt were evaluated on "
            + ("the raw weights" if old.ema is None else "the average")
            + "; its decay may change, or start a new run",
        )
    schedule = changed(SCHEDULE_KEYS)
    if schedule and not restart:
        raise UsageError(
            f"--resume changes the lr schedule ({', '.join(schedule)})",
            hint="add --restart-schedule to start the new schedule at the current step",
        )


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
    foreign = [p.name for p in run_dir.iterdir() if not _ours(p)]
    if foreign:
        raise OutputExistsError(
            f"{run_dir} is not a run directory of `lenet train` (it holds {', '.join(foreign[:3])})"
            "; resuming there would write config.toml, env.json and metrics beside them",
            hint="copy the checkpoint into an empty directory and resume it there",
        )
    return run_dir


def _ours(path: Path) -> bool:
    """A file that `lenet train` writes in a run directory (config.toml: by its header)."""
    if path.name.endswith(".part") and path.name.startswith("."):
        return True  # an atomic write's temp file (a crash while saving)
    if path.suffix == ".pt":
        return True
    if path.name not in RUN_FILES:
        return False
    if path.name == "config.toml":
        try:
            with path.open(encoding="utf-8") as f:
                return f.readline().startswith(CONFIG_HEADER)
        except (OSError, UnicodeDecodeError):
            return False
    return True
