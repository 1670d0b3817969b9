"""An Optuna study as lenet keeps it: storage, settings, trial rows, best.toml.

Optuna is an optional extra (``lenet-cli[sweep]``) and imported here only, inside functions, so
nothing else pays for it. What a worker needs (the fixed config, the search space, the metric,
the trial budget) is stored in the study's user attributes: a worker on another machine, or a
resumed sweep, needs nothing but the storage URL and the study name.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lenet_cli.config import TrainConfig, to_toml, validate
from lenet_cli.errors import (
    ConfigError,
    LenetError,
    MissingExtraError,
    ServiceError,
    UsageError,
    WriteError,
)
from lenet_cli.files import atomic_write
from lenet_cli.scale.space import Space, from_dict

SQLITE_NAME = "study.db"
# Trials that count towards --trials: finished ones, and the running ones (being finished).
# An interrupted trial is FAIL with the attribute "interrupted" and is resumed, not counted.
COUNTED_FAIL = "nonfinite"


def optuna():
    """The optuna module, or exit 14 naming the extra."""
    try:
        import optuna as module
    except ImportError:
        raise MissingExtraError(
            "lenet sweep needs Optuna, which is not installed",
            hint="pip install 'lenet-cli[sweep]'",
        ) from None
    module.logging.set_verbosity(module.logging.WARNING)  # no INFO line per trial on stderr
    return module


def default_storage(sweep_dir: Path) -> str:
    return f"sqlite:///{sweep_dir.resolve() / SQLITE_NAME}"


def shown(url: str) -> str:
    """A storage URL as messages show it: without its password."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def open_storage(url: str):
    """An RDB storage for ``url``: SQLite waits for its lock (several workers write to it), a
    database server that does not answer is given up on after CONNECT_TIMEOUT_S."""
    opt = optuna()
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    if url.startswith(("postgresql://", "postgres://")):  # psycopg 3, whatever SQLAlchemy's default
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
        kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    try:
        return opt.storages.RDBStorage(url, engine_kwargs=kwargs)
    except ImportError:  # the database driver (psycopg for postgresql://)
        raise MissingExtraError(
            f"the storage {url.split(':', 1)[0]} needs a database driver that is not installed",
            hint="pip install 'lenet-cli[sweep]', which brings psycopg for PostgreSQL",
        ) from None
    except Exception as e:
        served = not url.startswith("sqlite")  # a SQLite file that cannot be opened: a bad path
        bad_url = any(c.__name__ == "ArgumentError" for c in type(e).__mro__)  # or no dialect
        if served and not bad_url and storage_failure(e) is not None:
            raise  # the database did not answer: a service failure (storage_guard)
        text = " ".join(str(e).split())[:300]  # a URL SQLAlchemy cannot parse, an unknown dialect
        raise UsageError(
            f"cannot open the study storage {shown(url)}: {text}",
            hint="check --storage: e.g. postgresql://USER@HOST/DB, or leave it out for SQLite",
        ) from None


CONNECT_TIMEOUT_S = 10
_DATABASE_MODULES = ("sqlalchemy", "psycopg", "sqlite3")


def storage_failure(e: BaseException) -> BaseException | None:
    """The database's own error behind ``e`` (the driver's, else SQLAlchemy's, else Optuna's
    StorageInternalError), or None when ``e`` is not a failure of the study storage."""
    found, seen = None, set()
    current: BaseException | None = e
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = type(current)
        if kind.__module__.split(".")[0] in _DATABASE_MODULES or kind.__name__ == (
            "StorageInternalError"
        ):
            found = getattr(current, "orig", None) or current  # SQLAlchemy keeps the driver's
        current = current.__cause__ or current.__context__
    return found


@contextmanager
def storage_guard(url: str | None, name: str | None, out: Path) -> Iterator[None]:
    """A failure of the study storage (unreachable, lost mid-sweep) as a ServiceError (exit 16)
    that names the storage and the database's own words, and how to resume."""
    try:
        yield
    except LenetError:
        raise
    except Exception as e:
        cause = storage_failure(e)
        if cause is None:
            raise
        words = " ".join(str(cause).split("\n")[0].split()) or type(cause).__name__
        where = shown(url) if url else "SQLite in the sweep directory"
        again = f"`lenet sweep --study {name} --out {out}`" if name else "the same `lenet sweep`"
        same = " with the same --storage" if url and not url.startswith("sqlite") else ""
        raise ServiceError(
            f"the study storage {where} failed: {words[:300]}",
            hint=f"once it answers again, rerun {again}{same}: the sweep resumes, and a "
            "trial it stopped continues from its last.pt",
        ) from None


def make_pruner(space: Space):
    opt = optuna()
    if space.pruner == "none":
        return opt.pruners.NopPruner()
    return opt.pruners.MedianPruner(n_startup_trials=space.startup_trials, n_warmup_steps=0)


def direction(metric: str) -> str:
    return "maximize" if metric.endswith("_acc") else "minimize"


def create(storage, name: str, settings: dict[str, Any]):
    """A new study holding ``settings`` (config, data_explicit, space, metric, trials, out)."""
    opt = optuna()
    space = from_dict(settings["space"], "stored space")
    try:
        study = opt.create_study(
            storage=storage,
            study_name=name,
            direction=direction(settings["metric"]),
            pruner=make_pruner(space),
        )
    except opt.exceptions.DuplicatedStudyError:
        raise UsageError(f"study {name!r} already exists in this storage") from None
    for key, value in settings.items():
        study.set_user_attr(key, value)
    return study


def load(storage, name: str, where: str = "this storage"):
    """(study, settings) of an existing study; the pruner comes from its stored space.
    ``where`` names the storage in the message of a missing study."""
    opt = optuna()
    if name not in opt.study.get_all_study_names(storage):  # a failure: storage_guard's
        raise UsageError(f"no study {name!r} in {where}", hint="check --study, --out, --storage")
    settings = opt.load_study(study_name=name, storage=storage).user_attrs
    if "space" not in settings or "config" not in settings:
        raise ConfigError(f"study {name!r} was not made by `lenet sweep` (no stored settings)")
    space = from_dict(settings["space"], f"study {name} (stored space)")
    study = opt.load_study(study_name=name, storage=storage, pruner=make_pruner(space))
    return study, settings


def counted(study) -> int:
    """Trials that use up the budget: complete, pruned, failed on NaN, and running ones."""
    state = optuna().trial.TrialState
    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (state.COMPLETE, state.PRUNED, state.RUNNING):
            n += 1
        elif t.state == state.FAIL and COUNTED_FAIL in t.user_attrs:
            n += 1
    return n


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def requeue_interrupted(study) -> int:
    """Queue again the trials that an interrupt (or a killed worker here) left unfinished.

    A RUNNING trial of a dead process on this host is marked failed first. Each queued trial
    carries its run directory, so it continues from that run's last.pt. Returns how many.
    """
    state = optuna().trial.TrialState
    trials = study.get_trials(deepcopy=False)
    host = socket.gethostname()
    storage = study._storage  # noqa: SLF001 - the public API cannot fail a trial of another process
    for t in trials:
        attrs = t.user_attrs
        if t.state == state.RUNNING and attrs.get("host") == host and not _alive(attrs.get("pid")):
            storage.set_trial_user_attr(t._trial_id, "interrupted", "worker died")  # noqa: SLF001
            storage.set_trial_state_values(t._trial_id, state.FAIL)  # noqa: SLF001
    trials = study.get_trials(deepcopy=False)
    taken = {t.user_attrs.get("resume_of") for t in trials}
    queued = 0
    for t in trials:
        if t.state == state.FAIL and "interrupted" in t.user_attrs and t.number not in taken:
            attrs = {"resume_of": t.number, "resume_dir": t.user_attrs.get("dir")}
            study.enqueue_trial(t.params, user_attrs=attrs)
            queued += 1
    return queued


def rows(study) -> list[dict[str, Any]]:
    """One plain dict per trial: number, state, value, epochs reported, params, dir, seconds."""
    out = []
    for t in study.get_trials(deepcopy=False):
        seconds = None
        if t.datetime_start and t.datetime_complete:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        out.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "epochs": len(t.intermediate_values),
                "params": dict(t.params),
                "dir": t.user_attrs.get("dir"),
                "note": t.user_attrs.get("interrupted") or t.user_attrs.get(COUNTED_FAIL),
                "seconds": seconds,
            }
        )
    return out


def best(study) -> dict[str, Any] | None:
    """The best complete trial's row, or None when no trial has completed."""
    state = optuna().trial.TrialState
    if not any(t.state == state.COMPLETE for t in study.get_trials(deepcopy=False)):
        return None
    number = study.best_trial.number
    return next(r for r in rows(study) if r["number"] == number)


def write_best(study, settings: dict[str, Any], sweep_dir: Path) -> Path | None:
    """best.toml: the best trial's config, as `lenet train --config best.toml` reads it."""
    top = best(study)
    if top is None:
        return None
    trial = study.best_trial
    values = validate({**trial.user_attrs["config"], "out": settings["out"]}, "best trial")
    fixed = settings["config"]  # the threads and progress the user gave, not a worker's
    cfg = TrainConfig(**{**values, "name": None, **{k: fixed[k] for k in ("progress", "threads")}})
    header = (
        f"best trial {top['number']} of study {study.study_name}: "
        f"{settings['metric']} = {top['value']:.6g} (run {top['dir']})\n"
        "train it with: lenet train --config best.toml"
    )
    path = sweep_dir / "best.toml"
    try:
        with atomic_write(path) as f:
            f.write(to_toml(cfg, header).encode("utf-8"))
    except OSError as e:
        raise WriteError(
            f"cannot write {path}: {e.strerror or e}",
            hint="the trials are kept in the study; `lenet sweep --show` lists them",
        ) from None
    return path
