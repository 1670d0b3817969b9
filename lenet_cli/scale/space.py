"""A sweep's search space and settings, read from TOML and checked like a config.

Standard library only. The file has a ``[space]`` table, one entry per train option to search,
and an optional ``[sweep]`` table::

    [sweep]
    metric = "val_acc"        # val_acc, test_acc, val_loss or test_loss (the best epoch's)
    pruner = "median"         # or "none"
    startup_trials = 3        # trials the median pruner lets finish before it prunes

    [space]
    lr = { type = "float", low = 3e-4, high = 1e-2, log = true }
    epochs = { type = "int", low = 2, high = 6 }
    batch_size = { type = "categorical", choices = [32, 64, 128] }

Every bound and choice is checked as the option's own value would be (``config.validate``), so
a search space can never hand a trial a value that ``lenet train`` would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from lenet_cli.config import FIELDS, HINTS, read_toml, validate
from lenet_cli.errors import ConfigError

Metric = Literal["val_acc", "test_acc", "val_loss", "test_loss"]
METRICS: tuple[str, ...] = get_args(Metric)
PRUNERS = ("median", "none")
# Options a sweep owns: where trials go, what they print, how many threads each worker gets.
NOT_SEARCHABLE = ("out", "name", "progress", "threads", "device")
_KEYS = {
    "float": {"type", "low", "high", "log"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


@dataclass(frozen=True)
class Param:
    """One searched option: a float or int range (log or linear), or a list of choices."""

    name: str
    kind: str  # float | int | categorical
    low: Any = None
    high: Any = None
    log: bool = False
    step: int = 1
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind}
        if self.kind == "categorical":
            d["choices"] = list(self.choices)
        else:
            d.update(low=self.low, high=self.high, log=self.log)
            if self.kind == "int":
                d["step"] = self.step
        return d


@dataclass(frozen=True)
class Space:
    params: tuple[Param, ...]
    metric: str | None = None  # None: val_acc with a validation split, else test_acc
    pruner: str = "median"
    startup_trials: int = 3
    source: str = "search space"

    def to_dict(self) -> dict[str, Any]:
        """What ``from_dict`` reads back (stored with the study, so a resume needs no file)."""
        return {
            "sweep": {
                "metric": self.metric,
                "pruner": self.pruner,
                "startup_trials": self.startup_trials,
            },
            "space": {p.name: p.to_dict() for p in self.params},
        }


def _numeric(name: str) -> str | None:
    """float or int for a numeric option (None allowed or not), else None."""
    hint = HINTS[name]
    args = [a for a in get_args(hint) if a is not type(None)] or [hint]
    return "float" if float in args else "int" if int in args else None


def _param(name: str, spec: Any, where: str) -> Param:
    name = name.replace("-", "_")
    at = f"{where}: space.{name}"
    if name not in FIELDS:
        validate({name: None}, where)  # raises the unknown-key error with its "did you mean"
    if name in NOT_SEARCHABLE:
        raise ConfigError(f"{at}: {name} cannot be searched (the sweep sets it for each trial)")
    if not isinstance(spec, dict) or spec.get("type") not in _KEYS:
        raise ConfigError(
            f'{at} must be a table with type = "float", "int" or "categorical"',
            hint='e.g. lr = { type = "float", low = 1e-4, high = 1e-2, log = true }',
        )
    kind = spec["type"]
    unknown = sorted(set(spec) - _KEYS[kind])
    if unknown:
        raise ConfigError(f"{at}: unknown key {unknown[0]!r} for a {kind} range")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{at}: choices must be a non-empty list")
        return Param(name, kind, choices=tuple(validate({name: c}, at)[name] for c in choices))
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{at}: a {kind} range needs low and high")
    numeric = _numeric(name)
    if numeric != kind:
        what = f"a {numeric} option" if numeric else "not a number (use categorical choices)"
        raise ConfigError(f"{at}: {name} is {what}, so it cannot take a {kind} range")
    low, high = (validate({name: spec[k]}, f"{at}.{k}")[name] for k in ("low", "high"))
    if kind == "int" and not all(type(spec[k]) is int for k in ("low", "high")):
        raise ConfigError(f"{at}: an int range needs whole numbers for low and high")
    log = spec.get("log", False)
    step = spec.get("step", 1)
    if not isinstance(log, bool) or type(step) is not int or step < 1:
        raise ConfigError(f"{at}: log must be true or false, step a whole number >= 1")
    if low > high or (kind == "float" and low == high):
        raise ConfigError(f"{at}: empty range: low {low!r} must be below high {high!r}")
    if log and step != 1:
        raise ConfigError(f"{at}: a log range cannot have a step")
    if log and low <= 0:
        raise ConfigError(f"{at}: a log range needs low > 0, got {low!r}")
    return Param(name, kind, low=low, high=high, log=log, step=step)


def from_dict(doc: dict[str, Any], where: str) -> Space:
    """A Space from a parsed TOML document (or what ``Space.to_dict`` wrote)."""
    unknown = sorted(set(doc) - {"space", "sweep"})
    if unknown:
        raise ConfigError(f"{where}: unknown table {unknown[0]!r} (only [space] and [sweep])")
    table = doc.get("space")
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: no [space] table with at least one option to search")
    params = tuple(_param(name, spec, where) for name, spec in table.items())
    sweep = doc.get("sweep", {})
    if not isinstance(sweep, dict):
        raise ConfigError(f"{where}: sweep must be a table")
    bad = sorted(set(sweep) - {"metric", "pruner", "startup_trials"})
    if bad:
        raise ConfigError(
            f"{where}: unknown key {bad[0]!r} in [sweep] (known: metric, pruner, startup_trials)"
        )
    metric = sweep.get("metric")
    if metric is not None and metric not in METRICS:
        known = ", ".join(METRICS)
        raise ConfigError(f"{where}: sweep.metric = {metric!r} is not one of {known}")
    pruner = sweep.get("pruner", "median")
    if pruner not in PRUNERS:
        raise ConfigError(f"{where}: sweep.pruner = {pruner!r} is not one of median, none")
    startup = sweep.get("startup_trials", 3)
    if type(startup) is not int or startup < 0:
        raise ConfigError(f"{where}: sweep.startup_trials must be a whole number >= 0")
    return Space(params, metric, pruner, startup, where)


def load_space(path: str | Path) -> Space:
    """The search space file at ``path``, checked; every problem is one ConfigError line."""
    path = Path(path)
    return from_dict(read_toml(path, "search space", hint="check --space"), str(path))
