"""Callbacks of ``lenet_cli.train``: plain objects whose methods the training loop calls.

A callback defines any of these (each is optional):

- ``on_train_start(run)``: once the run directory is set up, before the first step;
- ``on_step_end(run, step, loss)``: after each optimisation step (``loss``: the batch's mean
  loss as a float; reading it is a device sync on a GPU);
- ``on_epoch_end(run, row)``: after each epoch's checkpoint is saved (``row``: the
  metrics.jsonl row, accuracies as fractions);
- ``on_train_end(run, summary)``: once training is over (``summary``: the run's summary).

``run`` is a ``RunView``: ``config`` (a dict), ``run_dir``, ``model``, ``optimizer``, ``epoch``
(epochs finished) and ``step`` (steps taken). Returning ``"stop"`` from ``on_train_start``,
``on_step_end`` or ``on_epoch_end`` ends training as ``--max-steps`` does: the epoch so far is
evaluated and saved (last.pt, and best.pt if it is the best), and the summary's ``stopped`` is
``"callback"`` with ``stopped_by`` naming the method.

The loop knows only two things of this module: ``Run.after_step``, set when some callback
defines ``on_step_end`` (None otherwise, so a run without one does no work per step), and
``Run.stop_requested``; the other hooks listen to the loop's events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lenet_cli.errors import UsageError
from lenet_cli.runs.metricsfile import COLUMNS

HOOKS = ("on_train_start", "on_step_end", "on_epoch_end", "on_train_end")
STOP = "stop"
REASON = "callback"  # the summary's "stopped" when a callback ended training


class RunView:
    """What a callback sees of the run: read these, don't replace them."""

    def __init__(self, run: Any, run_dir: Path) -> None:
        self._run, self.run_dir = run, Path(run_dir)

    @property
    def config(self) -> dict[str, Any]:
        return self._run.cfg.to_dict()

    @property
    def model(self) -> Any:
        """The network being trained (its parameters are the ones the optimizer updates)."""
        return self._run.model

    @property
    def optimizer(self) -> Any:
        return self._run.optimizer

    @property
    def epoch(self) -> int:
        """Epochs finished (an epoch cut short by --max-steps or a stop is not counted)."""
        return self._run.state.epoch

    @property
    def step(self) -> int:
        return self._run.state.step

    def __repr__(self) -> str:
        return f"RunView(run_dir={str(self.run_dir)!r}, epoch={self.epoch}, step={self.step})"


def _name(hook: Callable[..., Any]) -> str:
    owner = getattr(hook, "__self__", None)
    return f"{type(owner).__name__}.{hook.__name__}" if owner is not None else hook.__name__


class Callbacks:
    """The callbacks of one training run: their hooks, and who asked to stop."""

    def __init__(self, objects: Iterable[Any]) -> None:
        if objects is None or isinstance(objects, (str, bytes)) or not hasattr(objects, "__iter__"):
            objects = [objects]  # one callback given on its own
        self.hooks: dict[str, list[Callable[..., Any]]] = {h: [] for h in HOOKS}
        for i, obj in enumerate(objects):
            found = [h for h in HOOKS if callable(getattr(obj, h, None))]
            if not found:
                raise UsageError(
                    f"callbacks[{i}] ({type(obj).__name__}) has none of the methods "
                    + ", ".join(HOOKS),
                    hint="define at least one of them (docs/api.md)",
                )
            for h in found:
                self.hooks[h].append(getattr(obj, h))
        self.view: RunView | None = None
        self.run: Any = None
        self.stopped_by: str | None = None

    def attach(self, run: Any, run_dir: Path) -> None:
        """Called by the loop once the run is built and its directory open."""
        self.run, self.view = run, RunView(run, run_dir)
        if self.hooks["on_step_end"]:
            run.after_step = self._after_step

    def _ask(self, hook: Callable[..., Any], *args: Any) -> bool:
        """Call ``hook``; True when it asked to stop (it is recorded as the one that did)."""
        answer = hook(self.view, *args)
        if answer is None:
            return False
        if answer != STOP:
            raise UsageError(
                f"{_name(hook)} returned {answer!r}",
                hint=f'return "{STOP}" to end training, or None to go on',
            )
        if self.stopped_by is None:
            where = f"step {self.view.step}" if self.view is not None else "the start"
            self.stopped_by = f"{_name(hook)} at {where}"
            self.run.stop_requested = REASON
        return True

    def _after_step(self, step: int, loss: Any) -> bool:
        value = float(loss)
        stop = [self._ask(h, step, value) for h in self.hooks["on_step_end"]]
        return any(stop)

    def event(self, e: dict[str, Any]) -> None:
        """The loop's events: "start" and "epoch_end" call their hooks."""
        kind = e.get("event")
        if kind == "start":
            for h in self.hooks["on_train_start"]:
                self._ask(h)
        elif kind == "epoch_end":
            row = {k: e["row"].get(k) for k in COLUMNS}
            for h in self.hooks["on_epoch_end"]:
                self._ask(h, row)

    def end(self, summary: dict[str, Any]) -> None:
        for h in self.hooks["on_train_end"]:
            h(self.view, summary)
