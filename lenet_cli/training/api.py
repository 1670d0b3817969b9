"""``lenet_cli.train`` from Python: the options of `lenet train` as keywords, the data and the
model as objects, callbacks, and a result with the trained model.

Two steps, so that the caller (``lenet_cli/__init__.py``) can pick the progress display from the
resolved config between them: ``prepare`` checks everything (options as `lenet train` checks
its flags, data, model, callbacks, the plan) and writes nothing; ``run`` trains and returns a
``TrainResult``. ``run`` leaves the process as it found it: signal handlers, torch's thread
count, the global RNGs (torch, CUDA, Python's, NumPy's), deterministic mode and the cuDNN
switches are put back, so a notebook can train again, or do anything else, afterwards.
A Ctrl-C (SIGINT) saves last.pt, as in `lenet train`, then raises KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet_cli.data import arrays
from lenet_cli.errors import EXIT_SIGINT, UsageError
from lenet_cli.interrupts import TrainingInterrupted
from lenet_cli.runs import given as given_
from lenet_cli.runs.readback import ReadError, epoch_rows
from lenet_cli.training.callbacks import REASON, Callbacks
from lenet_cli.training.keywords import check_model, conflicts, flags_of
from lenet_cli.training.plan import Plan, free_name, plan_run
from lenet_cli.use.api import describe


@dataclass
class TrainResult:
    """What ``lenet_cli.train`` returns.

    ``model`` is the trained network (the plain ``nn.Module``, in eval mode, on the device it
    trained on); ``metrics`` the epoch rows of metrics.jsonl (all sessions of a resumed run);
    ``summary`` what ``lenet train --json`` prints.
    """

    run_dir: Path
    metrics: list[dict[str, Any]]
    model: nn.Module
    summary: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        final = self.summary.get("final", {}).get("test_acc")
        acc = "-" if final is None else f"{final:.4f}"
        return (
            f"TrainResult(run_dir={str(self.run_dir)!r}, epochs={self.summary.get('epochs')}, "
            f"test_acc={acc}, stopped={self.summary.get('stopped')!r})"
        )


@dataclass
class Prepared:
    """A checked request to train: nothing is written until ``run``."""

    plan: Plan
    callbacks: Callbacks
    given: given_.Given | None


def prepare(
    config: str | os.PathLike | None = None,
    *,
    data: Any = None,
    test_data: Any = None,
    model: nn.Module | None = None,
    callbacks: Any = (),
    resume: str | os.PathLike | None = None,
    restart_schedule: bool = False,
    nproc: int | None = None,
    options: dict[str, Any],
) -> Prepared:
    """Everything checked and planned, nothing written (see ``lenet_cli.train``)."""
    if nproc is not None:
        raise UsageError(
            "nproc=: data-parallel training runs as several processes",
            hint="start it from a shell: lenet train --nproc N (docs/scale-out.md)",
        )
    flags = flags_of(options)
    hooks = Callbacks(callbacks)  # checked before anything is read
    if isinstance(data, (str, os.PathLike)):
        flags.update(flags_of({"data": os.fspath(data)}))
    conflicts(flags, data, test_data, model)
    if model is not None:
        check_model(model)
    kinds = frozenset(
        k for k, v in (("data", data if not isinstance(data, str) else None), ("model", model))
        if v is not None
    )  # fmt: skip
    plan = plan_run(
        Path(config) if config is not None else None,
        flags,
        Path(resume) if resume is not None else None,
        restart_schedule,
        model=model,
        given=kinds,
    )
    given = None
    if kinds:
        cfg = plan.config
        train_ds = test_ds = None
        text = ""
        if "data" in kinds:
            train_ds, test_ds, text = arrays.splits(data, test_data, cfg.seed)
        given = given_.Given(train_ds, test_ds, text, model)
        if model is not None:
            cfg = dataclasses.replace(cfg, arch=given_.arch_of(model))
        run_dir = plan.run_dir
        if plan.resume is None and plan.sources.get("name", "default") == "default":
            named = f"{plan.config.data}-{plan.config.arch}-"  # plan_run's name: NAME-STAMP[-N]
            stamp = run_dir.name.removeprefix(named)[: len("YYYYmmdd-HHMMSS")]
            shown = given_.DATA if "data" in kinds else cfg.data
            name = f"{shown}-{cfg.arch.removeprefix('python:')}-{stamp}"
            run_dir = run_dir.parent / free_name(run_dir.parent, name)
        plan = dataclasses.replace(plan, config=cfg, run_dir=run_dir, given=given)
    return Prepared(plan, hooks, given)


@contextlib.contextmanager
def process_state() -> Iterator[None]:
    """Put back what training changes in the process: signal handlers, threads, RNGs,
    deterministic mode, cuDNN switches."""
    import numpy as np

    main = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    threads = torch.get_num_threads()
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn = torch.backends.cudnn
    switches = (cudnn.benchmark, cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        yield
    finally:
        for s, h in handlers.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        torch.set_num_threads(threads)
        torch.set_rng_state(rng[0])
        random.setstate(rng[1])
        np.random.set_state(rng[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        cudnn.benchmark, cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = switches


def _device(cfg: Any, emit: Callable[..., None]) -> tuple[torch.device, int]:
    """The device and threads (as `lenet train` picks them; what `auto` chose is a notice)."""
    from lenet_cli.device import resolve_device, set_threads
    from lenet_cli.fast.speed import default_threads

    chosen = resolve_device(cfg.device)
    if chosen.note:
        emit({"event": "notice", "notice": chosen.note})
    start = default_threads() if cfg.threads == "auto" else cfg.threads
    return chosen.device, set_threads(start)


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return epoch_rows(run_dir / "metrics.jsonl") or []
    except ReadError as e:
        raise UsageError(str(e)) from None


def run(
    prepared: Prepared,
    *,
    on_event: Callable[[dict], None] | None = None,
    progress_interval: float | None = None,
) -> TrainResult:
    """Train as prepared; the result. Errors are LenetErrors, as `lenet train`'s."""
    from lenet_cli.training.loop import train

    plan, callbacks = prepared.plan, prepared.callbacks

    def emit(e: dict) -> None:
        if on_event is not None:
            on_event(e)
        callbacks.event(e)

    with process_state():
        device, threads = _device(plan.config, emit)
        try:
            summary = train(
                plan,
                device=device,
                threads=threads,
                on_event=emit,
                progress_interval=progress_interval,
                callbacks=callbacks,
            )
        except TrainingInterrupted as e:
            if e.exit_code == EXIT_SIGINT:  # Ctrl-C in a notebook: last.pt saved first
                raise KeyboardInterrupt(str(e)) from e
            raise
    if summary.get("stopped") == REASON:
        summary["stopped_by"] = callbacks.stopped_by
    trained = callbacks.run
    cfg, train_ds = trained.cfg, trained.data.train
    given = plan.given.record() if plan.given is not None else {}
    ema = getattr(trained, "ema", None)
    if ema is not None:  # the weights the run evaluated, as `--weights` defaults to
        trained.model.load_state_dict(ema.state_dict())
    model = describe(  # what lenet_cli.evaluate and .predict normalise new images with
        trained.model.eval(),
        mean=train_ds.mean,
        std=train_ds.std,
        arch=cfg.arch,
        data=None if "data" in given else cfg.data,
        data_given=given.get("data"),
        loss=cfg.loss,
        path=str(plan.run_dir),
        weights="raw" if ema is None else "ema",
    )
    callbacks.end(summary)
    return TrainResult(plan.run_dir, _rows(plan.run_dir), model, summary, cfg.to_dict())
