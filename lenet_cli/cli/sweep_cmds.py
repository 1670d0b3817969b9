"""`lenet sweep`: hyper-parameter search on Optuna, every trial a `lenet train` run.

The fixed part of each trial takes every `lenet train` option (generated from TrainConfig, as
train's are, under their own heading of --help) except those the sweep sets for each trial.
Optuna, torch and the engines are imported inside the command bodies only.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from lenet_cli import ui
from lenet_cli.cli.app import JsonOpt, app, setup_device
from lenet_cli.cli.train_cmds import config_flags
from lenet_cli.config import TrainConfig
from lenet_cli.errors import ConfigError, OutputExistsError, UsageError

# train options that a sweep sets for each trial: where it goes, what it prints
SWEEP_SETS = ("out", "name", "progress")


def _settings(space_path: Path | None, config: Path | None, flags: dict, trials: int) -> dict:
    """What a new study stores: the fixed config, the space, the metric, the budget."""
    from lenet_cli.config import load_toml, resolve
    from lenet_cli.scale.space import load_space

    if space_path is None:
        raise UsageError("a new sweep needs --space FILE", hint="e.g. configs/mnist-sweep.toml")
    space = load_space(space_path)
    file_values = load_toml(config) if config is not None else None
    resolved = resolve(TrainConfig(), file_values, flags, file_name=str(config))
    cfg = resolved.config
    metric = space.metric or ("val_acc" if cfg.val_split > 0 else "test_acc")
    searched = {p.name for p in space.params}
    if metric.startswith("val_") and cfg.val_split == 0 and "val_split" not in searched:
        raise ConfigError(f"{space_path}: metric {metric} needs a validation split (--val-split)")
    if metric.startswith("test_"):
        ui.note(f"trials are compared on {metric}: optimistic; --val-split picks honestly")
    return {
        "config": cfg.to_dict(),
        "data_explicit": resolved.explicit("data"),
        "space": space.to_dict(),
        "metric": metric,
        "trials": trials,
        "out": cfg.out,
    }


def _open(storage: str | None, sweep_dir: Path):
    from lenet_cli.scale import study as studies

    url = storage or studies.default_storage(sweep_dir)
    return url, studies.open_storage(url)


SpaceOpt = Annotated[
    Path | None, typer.Option("--space", help="Search space TOML (configs/mnist-sweep.toml).")
]
TrialsOpt = Annotated[
    int | None, typer.Option("--trials", min=1, help="Trials in all. Default: 20.")
]
WorkersOpt = Annotated[
    int, typer.Option("--workers", min=1, help="Worker processes sharing the study.")
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Study storage URL, e.g. postgresql://USER@HOST/DB for workers on many "
        "machines. Default: SQLite in the sweep directory.",
    ),
]
StudyOpt = Annotated[
    str | None,
    typer.Option(
        "--study", help="Study name: a new one, or one to resume or join. Default: sweep-DATE."
    ),
]
SweepOutOpt = Annotated[
    Path, typer.Option("--out", help="Parent of sweep directories (OUT/STUDY).")
]
ShowOpt = Annotated[
    bool, typer.Option("--show", help="Print the study's trials and best, then exit.")
]
FixedConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML file of train options (fixed part).")
]


@app.command("sweep")
@config_flags(skip=SWEEP_SETS, panel="Train options (the fixed part of every trial)")
def sweep_cmd(
    space: SpaceOpt = None,
    trials: TrialsOpt = None,
    workers: WorkersOpt = 1,
    storage: StorageOpt = None,
    study: StudyOpt = None,
    out: SweepOutOpt = Path("sweeps"),
    show: ShowOpt = False,
    config: FixedConfigOpt = None,
    json_out: JsonOpt = False,
    *,
    flags: dict[str, Any],
) -> None:
    """Search hyper-parameters with Optuna; each trial is a `lenet train` run in OUT/STUDY."""
    from lenet_cli.scale.study import storage_guard

    given = {k: v for k, v in flags.items() if v is not None}
    name = study or datetime.now().strftime("sweep-%Y%m%d-%H%M%S")
    with storage_guard(storage, study, out):  # an unreachable or lost storage: exit 16
        if show:
            return _show(storage, study, out, json_out)
        sweep_dir = out / name
        fresh = given or config is not None or space is not None
        url, found, settings = _open_study(
            storage, name, sweep_dir, trials, fresh, space, config, given
        )
        _run(url, found, settings, sweep_dir, workers, json_out)


def _where(storage: str | None, sweep_dir: Path) -> str:
    """The study's storage as a message names it."""
    from lenet_cli.scale import study as studies

    return (
        f"--storage {studies.shown(storage)}" if storage else str(sweep_dir / studies.SQLITE_NAME)
    )


def _show(storage: str | None, study: str | None, out: Path, json_out: bool) -> None:
    """`--show`: print an existing study's trials and best, running and creating nothing."""
    from lenet_cli.scale import study as studies

    if study is None:
        raise UsageError("--show needs --study NAME")
    sweep_dir = out / study
    if storage is None and not (sweep_dir / studies.SQLITE_NAME).is_file():
        raise UsageError(
            f"no study {study!r} in {out}: {sweep_dir / studies.SQLITE_NAME} does not exist",
            hint="check --study and --out",
        )
    _, store = _open(storage, sweep_dir)
    found, settings = studies.load(store, study, _where(storage, sweep_dir))
    _report(found, settings, sweep_dir, None, json_out, table=True)


def _open_study(storage, name, sweep_dir, trials, fresh, space, config, given):
    """Resume the study ``name`` if it exists, else check the settings and create it.

    ``fresh`` says the user gave a space, a config or train options: refused for an existing
    study, which keeps its own. Returns the storage URL, the Optuna study and its settings.
    """
    from lenet_cli.scale import study as studies

    url, store, exists = storage, None, False
    if storage is not None or (sweep_dir / studies.SQLITE_NAME).is_file():
        url, store = _open(storage, sweep_dir)  # SQLite: only a file that is there is opened
        exists = name in studies.optuna().study.get_all_study_names(store)
    if exists:
        if fresh:
            raise UsageError(
                f"study {name!r} exists: it keeps its search space and options",
                hint="drop --space, --config and train options to resume it, or name a new --study",
            )
    else:
        settings = _settings(space, config, given, trials or 20)  # checked before any file
        if storage is None and sweep_dir.exists() and store is None:
            raise OutputExistsError(
                f"sweep directory {sweep_dir} already exists", hint="choose another --study"
            )
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if store is None:
        url, store = _open(storage, sweep_dir)
    if not exists:
        return url, studies.create(store, name, settings), settings
    found, settings = studies.load(store, name, _where(storage, sweep_dir))
    if trials is not None:
        found.set_user_attr("trials", trials)
        settings["trials"] = trials
    queued = studies.requeue_interrupted(found)
    ui.note(f"resuming study {name}: {queued} interrupted trial(s) queued again")
    return url, found, settings


def _run(url, found, settings, sweep_dir: Path, workers: int, json_out: bool) -> None:
    """Run the workers to the trial budget, write the best config, report the study."""
    import time

    from lenet_cli.fast.speed import default_threads
    from lenet_cli.scale import study as studies
    from lenet_cli.scale.sweep import run_workers

    name = found.study_name
    fixed = settings["config"]["threads"]  # a number as given; else the cores shared out
    threads = fixed if isinstance(fixed, int) else max(1, default_threads() // workers)
    ui.note(
        f"sweep {name}: {settings['trials']} trials, {workers} worker(s) x {threads} thread(s), "
        f"{settings['metric']} ({studies.direction(settings['metric'])}); directory {sweep_dir}"
    )
    render = ui.SweepProgress(ui.progress_mode("auto"), settings["metric"])
    started = time.perf_counter()
    try:
        run_workers(url, name, sweep_dir, workers, threads, render)
    finally:
        render.close()
    best_toml = studies.write_best(found, settings, sweep_dir)
    wall = time.perf_counter() - started
    _report(found, settings, sweep_dir, best_toml, json_out, table=False, wall=wall)


def _report(found, settings, sweep_dir, best_toml, json_out, *, table, wall=None) -> None:
    from lenet_cli.scale import study as studies

    doc = {
        "study": found.study_name,
        "dir": str(sweep_dir),
        "metric": settings["metric"],
        "direction": studies.direction(settings["metric"]),
        "trials_wanted": settings["trials"],
        "trials": studies.rows(found),
        "best": studies.best(found),
        "best_toml": str(best_toml) if best_toml else None,
        "seconds": wall,
    }
    if json_out:
        ui.print_json(doc)
    else:
        ui.render_sweep(doc, table)


@app.command("sweep-worker", hidden=True)
def sweep_worker_cmd(
    study: Annotated[str, typer.Option("--study", help="Study name.")],
    sweep_dir: Annotated[Path, typer.Option("--dir", help="Sweep directory.")],
    threads: Annotated[int, typer.Option("--threads", min=1, help="CPU threads.")],
) -> None:
    """One worker of `lenet sweep` (started by it; the storage URL comes in the environment)."""
    from lenet_cli.scale import study as studies
    from lenet_cli.scale.sweep import STORAGE_ENV, work

    url = os.environ.get(STORAGE_ENV)
    if not url:
        raise UsageError(f"sweep-worker is started by `lenet sweep` (no {STORAGE_ENV})")
    with studies.storage_guard(url, study, sweep_dir.parent):
        _, settings = studies.load(studies.open_storage(url), study)
        device, n = setup_device(settings["config"]["device"], threads)
        work(url, study, sweep_dir, device, n, relay=ui.worker_notice)
