"""The sweep engine: each Optuna trial is a normal training run in the sweep directory.

- A trial resolves its config as ``lenet train`` would (the sweep's fixed options, then the
  trial's parameters), trains in ``SWEEP_DIR/trial-NNN`` with the training engine in-process,
  and reports the metric after every epoch; when Optuna's pruner says so, the event callback
  raises TrialPruned after that epoch's checkpoint is written, and the trial ends as PRUNED.
- Workers are processes that share one storage. ``ask`` happens under a file lock with a count
  of the trials already finished or running, so local workers never overshoot ``--trials``.
- A trial stopped by SIGINT/SIGTERM is marked FAIL with ``interrupted``; running the sweep again
  queues it once more with its run directory, and it continues from that run's last.pt.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lenet_cli.config import TrainConfig, validate
from lenet_cli.errors import LenetError, NonFiniteLossError
from lenet_cli.interrupts import Signals, TrainingInterrupted
from lenet_cli.runs.checkpoint import load_for_resume
from lenet_cli.runs.reader import read_metrics
from lenet_cli.scale import study as studies
from lenet_cli.scale.space import Space, from_dict
from lenet_cli.training.plan import Plan

if TYPE_CHECKING:
    import torch

Event = Callable[[dict], None]
STORAGE_ENV = "LENET_SWEEP_STORAGE"  # the URL goes to workers here, not in `ps` output


def suggest(trial, space: Space) -> dict[str, Any]:
    """The trial's values of the searched options (or the queued ones of a resumed trial)."""
    values: dict[str, Any] = {}
    for p in space.params:
        if p.kind == "float":
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        elif p.kind == "int":
            values[p.name] = trial.suggest_int(p.name, p.low, p.high, step=p.step, log=p.log)
        else:
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
    return values


def _trial_run(trial, settings: dict[str, Any], sweep_dir: Path, threads: int):
    """(config, run dir, checkpoint to resume or None) of a trial."""
    params = suggest(trial, from_dict(settings["space"], "stored space"))
    resume_dir = trial.user_attrs.get("resume_dir")
    if resume_dir and (sweep_dir / resume_dir / "last.pt").is_file():
        payload = load_for_resume(sweep_dir / resume_dir)
        config = validate(payload["config"], f"{payload['path']} (config)")
        return TrainConfig(**config), sweep_dir / resume_dir, payload
    values = {
        **settings["config"],
        **params,
        "out": str(sweep_dir),
        "name": f"trial-{trial.number:03d}",
        "progress": "none",
        "threads": threads,
    }
    cfg = TrainConfig(**validate(values, f"trial {trial.number}"))
    return cfg, sweep_dir / cfg.name, None  # a new trial number: a new directory


def run_trial(
    trial,
    settings: dict[str, Any],
    sweep_dir: Path,
    device: torch.device,
    threads: int,
    relay: Event | None = None,
) -> float:
    """Train one trial; returns its best epoch's metric. Raises TrialPruned when pruned.

    ``relay`` gets the training engine's other events (notices of fallbacks, data...)."""
    from lenet_cli.training.loop import train

    opt = studies.optuna()
    cfg, run_dir, payload = _trial_run(trial, settings, sweep_dir, threads)
    trial.set_user_attr("dir", run_dir.name)
    trial.set_user_attr("config", cfg.to_dict())
    metric = settings["metric"]
    better = max if studies.direction(metric) == "maximize" else min
    seen: dict[int, float] = {}

    def report(row: dict[str, Any]) -> None:
        value = row.get(metric)
        if value is None:
            raise LenetError(f"trial {trial.number}: no {metric} (set --val-split for val_*)")
        if row["epoch"] not in seen:  # a resumed epoch is reported once
            seen[row["epoch"]] = value
            trial.report(value, row["epoch"])

    def on_event(e: dict) -> None:
        if relay is not None and e.get("event") != "epoch_end":
            relay(e)
        if e.get("event") == "epoch_end":
            row = e["row"]
            report(row)
            # pruning stops a trial that would go on: after its final epoch it has completed
            last = row["epoch"] >= cfg.epochs or (
                cfg.max_steps is not None and row["step"] >= cfg.max_steps
            )
            if not last and trial.should_prune():  # after this epoch's checkpoint and metrics
                raise opt.TrialPruned(f"pruned after epoch {row['epoch']}")

    if payload is not None and (run_dir / "metrics.jsonl").is_file():
        for row in read_metrics(run_dir):  # the epochs before the interrupt, for the pruner
            report(row)
    sources = {"data": "flag"} if settings["data_explicit"] else {}
    plan = Plan(cfg, run_dir, payload, sources)
    train(plan, device=device, threads=threads, on_event=on_event)
    return better(seen.values())


@contextmanager
def _ask_lock(study, sweep_dir: Path):
    """One worker at a time counts the trials and asks for the next: a file lock in the sweep
    directory, and on PostgreSQL an advisory lock too (workers on other machines)."""
    with open(sweep_dir / ".ask.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            engine = getattr(study._storage, "engine", None)  # noqa: SLF001 - RDBStorage's engine
            if engine is None or engine.dialect.name != "postgresql":
                yield
                return
            from sqlalchemy import text

            key = zlib.crc32(f"lenet-sweep:{study.study_name}".encode())
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def work(
    url: str,
    name: str,
    sweep_dir: Path,
    device: torch.device,
    threads: int,
    relay: Event | None = None,
) -> int:
    """A worker: run trials of study ``name`` until the budget is used. Returns trials run."""
    opt = studies.optuna()
    state = opt.trial.TrialState
    study, settings = studies.load(studies.open_storage(url), name)
    ran = 0
    with Signals() as signals:
        while signals.received is None:
            with _ask_lock(study, sweep_dir):
                if studies.counted(study) >= settings["trials"]:
                    break
                trial = study.ask()
            trial.set_user_attr("host", socket.gethostname())
            trial.set_user_attr("pid", os.getpid())
            ran += 1
            try:
                value = run_trial(trial, settings, sweep_dir, device, threads, relay)
            except opt.TrialPruned:
                study.tell(trial, state=state.PRUNED)
            except NonFiniteLossError as e:  # a poor lr: a result of the search, not an error
                trial.set_user_attr(studies.COUNTED_FAIL, e.message)
                study.tell(trial, state=state.FAIL)
            except BaseException as e:
                if studies.storage_failure(e) is not None:
                    raise  # the storage cannot record it: the trial stays RUNNING, a rerun resumes
                if isinstance(e, (TrainingInterrupted, KeyboardInterrupt)):
                    trial.set_user_attr("interrupted", "signal")
                else:
                    trial.set_user_attr("error", str(e)[:300])
                study.tell(trial, state=state.FAIL)
                raise
            else:
                study.tell(trial, value)
    if signals.received is not None:
        raise TrainingInterrupted(signals.received, "sweep worker stopped between trials")
    return ran


class WorkerFailed(LenetError):
    """A worker process exited with an error; carries its exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = code


class _Notes:
    """New lines of the workers' logs, each distinct one once (a fallback notice, say)."""

    def __init__(self, logs: list[Path]) -> None:
        self.logs, self.offsets, self.seen = logs, [0] * len(logs), set()

    def new(self) -> list[str]:
        lines = []
        for i, log in enumerate(self.logs):
            with open(log, "rb") as f:
                f.seek(self.offsets[i])
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1  # whole lines only
            self.offsets[i] += end
            for line in chunk[:end].decode(errors="replace").splitlines():
                if line.strip() and not line.startswith("error:") and line not in self.seen:
                    self.seen.add(line)
                    lines.append(line)
        return lines


def _last_error(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines or ["no message"])[-1].removeprefix("error: ")


def run_workers(
    url: str, name: str, sweep_dir: Path, workers: int, threads: int, on_event: Event
) -> None:
    """Start ``workers`` processes on the study and report its trials until they all exit.

    Workers get their own session, so a Ctrl-C reaches this process only and is forwarded once:
    each worker then stops its trial cleanly (last.pt written) and the sweep exits 130.
    """
    env = {**os.environ, STORAGE_ENV: url}
    cmd = [sys.executable, "-m", "lenet_cli", "sweep-worker", "--study", name]
    cmd += ["--dir", str(sweep_dir), "--threads", str(threads)]
    logs = [sweep_dir / f"worker-{i}.log" for i in range(workers)]
    procs = []
    for log in logs:
        with open(log, "ab") as f:
            procs.append(
                subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=f, env=env,
                    start_new_session=True,
                )
            )  # fmt: skip
    study, _ = studies.load(studies.open_storage(url), name)
    notes = _Notes(logs)
    forwarded = False
    try:
        with Signals() as signals:
            while any(p.poll() is None for p in procs):
                if signals.received is not None and not forwarded:
                    forwarded = True
                    for p in procs:
                        if p.poll() is None:
                            p.send_signal(signals.received)
                for line in notes.new():
                    on_event({"event": "note", "line": line})
                on_event({"event": "trials", "rows": studies.rows(study)})
                time.sleep(0.5)
    finally:
        for p in procs:  # a second Ctrl-C: stop the workers now, never leave them behind
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
    on_event({"event": "trials", "rows": studies.rows(study)})
    if signals.received is not None:
        raise TrainingInterrupted(
            signals.received,
            f"sweep {name} interrupted; running trials saved their last.pt",
            hint=f"resume with `lenet sweep --study {name} --out {sweep_dir.parent}`"
            " (and the same --storage)",
        )
    for i, p in enumerate(procs):
        if p.returncode != 0:
            raise WorkerFailed(p.returncode, f"sweep worker {i}: {_last_error(logs[i])}")
