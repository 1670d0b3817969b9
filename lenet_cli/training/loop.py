"""The training engine: ``train(plan, ...)`` returns a summary and emits events.

``train`` is a short orchestration: load the data, build a ``Run`` (run.py: everything a
checkpoint carries, with ``payload()`` / ``restore()``, and the training step chosen once), open
the run directory, then iterate ``train_epochs``, a generator in the style of spaCy's
``train_while_improving`` that yields each epoch's row once its checkpoint is saved.
``run_epoch`` is the loop itself: a batch, a step, the schedule, the sums.

Design notes (the *why*):
- Data are in-memory tensors; batches are slices of one ``randperm`` per epoch drawn from a CPU
  generator whose state is checkpointed, so the data order resumes exactly on any device.
- No per-step ``.item()``: loss sums and correct counts accumulate as tensors on the device and
  are read (a sync) only for progress, the periodic NaN check, and at the end of an epoch.
- Resume is exact, also mid-epoch: a checkpoint stores the data generator's state *at the start
  of the epoch* plus how many batches of it were done, so resume redraws the same permutation and
  skips those batches. With the same config and threads, an interrupted run and an uninterrupted
  one give bit-identical weights on the CPU.
- SIGINT / SIGTERM only set a flag; at the next step boundary last.pt is written and
  ``TrainingInterrupted`` (exit 130 / 143) is raised. A second signal stops at once.
- Nothing non-finite is ever saved (checkpoint.save_checkpoint refuses it too).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from lenet_cli.config import TrainConfig
from lenet_cli.fast import speed
from lenet_cli.fast.cpu import process_age
from lenet_cli.fast.threads import Choice, ThreadTuner, candidates
from lenet_cli.interrupts import Signals, raise_interrupted
from lenet_cli.runs.metrics import now
from lenet_cli.runs.rundir import RunDir
from lenet_cli.training import distributed, session, topk
from lenet_cli.training.callbacks import Callbacks
from lenet_cli.training.epoch import EpochSums, check_finite_eval
from lenet_cli.training.mlflowlog import check_mlflow, mlflow_log
from lenet_cli.training.plan import Plan
from lenet_cli.training.run import Run
from lenet_cli.training.splits import load_splits
from lenet_cli.training.tblog import require_tensorboard, tensorboard_log
from lenet_cli.use.weights import init_weights

Event = Callable[[dict], None]


def _emitter(*listeners: Event | None) -> Callable[..., None]:
    def emit(**event: Any) -> None:
        for listener in listeners:
            if listener is not None:
                listener(event)

    return emit


def run_epoch(run: Run, rd: RunDir, signals: Signals, emit, progress_interval, check_every) -> bool:
    """Train the open epoch until its end, max_steps or a signal; True if it ended part-way."""
    cfg, s = run.cfg, run.state
    emit(event="epoch_start", epoch=s.epoch + 1, batches=run.steps_per_epoch, done=s.batch_in_epoch)
    sums = EpochSums(s, run.device, cfg.lr, rd.path)
    if run.job is not None and not run.job.main:
        sums.clear()  # the sums so far are rank 0's (from the checkpoint): counted once
    for i, batch in enumerate(run.steps.batches(run.generator)):
        if i < sums.skip:  # resuming mid-epoch: the same permutation, minus what was done
            continue
        # every rank stops at the same step: on the agreed signal, never overwriting the local
        # one (a signal that lands during the all-reduce is agreed on at the next step)
        stop = distributed.agree_signal(signals.received, run.job, run.device)
        if stop is not None:
            signals.stopped = stop
            break
        if run.first_step_at is None:
            run.first_step_at = process_age()
        started = time.perf_counter()
        loss, hits, n = run.steps.step(batch)
        if run.ema is not None:  # --ema: right after the update, the fused step's too
            run.ema.update()
        if run.tuner is not None:  # CPU steps are synchronous: this is the step's own time
            run.tuner.record(time.perf_counter() - started, n)
        run.scheduler.step()
        sums.add(loss, hits, n)
        s.step += 1
        s.batch_in_epoch = i + 1
        if run.after_step is not None and run.after_step(s.step, loss):  # a callback's "stop"
            break
        if cfg.log_every and s.step % cfg.log_every == 0:
            log_step(run, rd, emit, loss)
        if progress_interval is not None and sums.due(progress_interval):
            emit(event="progress", epoch=s.epoch + 1, batch=i + 1, batches=run.steps_per_epoch,
                 **sums.report())  # fmt: skip
        elif s.step % check_every == 0:
            sums.sync()  # the periodic NaN check
        if cfg.max_steps is not None and s.step >= cfg.max_steps:
            break
    sums.sync()
    if run.job is not None:  # the epoch's sums over all ranks
        totals = distributed.all_sum([s.loss_sum, s.correct, s.seen], run.device)
        s.loss_sum, s.correct, s.seen = totals[0], int(totals[1]), int(totals[2])
    return s.batch_in_epoch < run.steps_per_epoch


def log_step(run: Run, rd: RunDir, emit, loss: torch.Tensor | float) -> None:
    """A per-step row (--log-every): the batch's loss (a sync, for a device tensor) and the
    learning rate."""
    s = run.state
    lr = run.optimizer.param_groups[0]["lr"]
    row = {"epoch": s.epoch + 1, "step": s.step, "loss": float(loss), "lr": lr, "time": now()}
    rd.append_step(row)
    emit(event="step", **row)


def end_epoch(run: Run, rd: RunDir, epoch_gen: torch.Tensor, partial: bool) -> tuple[dict, bool]:
    """Evaluate, save the checkpoints and log the row of the epoch just trained.

    With --ema the row's val and test metrics are the average's (what the run evaluates)."""
    s, data, cfg = run.state, run.data, run.cfg
    with run.evaluated_weights():
        val = run.evaluate(data.val) if data.val is not None else None
        test = run.evaluate(data.test)
    row = s.row(partial, run.optimizer.param_groups[0]["lr"], val, test)
    check_finite_eval(row, s.epoch + 1, cfg.lr)  # finite weights, NaN outputs
    if not partial:
        s.next_epoch()
    improved = s.track_best(row, run.monitor, cfg.min_delta)
    kept = topk.rank(s, row, run.monitor, cfg.save_top_k)
    payload = run.payload(epoch_gen if partial else run.generator.get_state())
    if kept:  # before last.pt lists it (topk.py)
        topk.save(rd, row["epoch"], payload)
    rd.save("last.pt", payload)
    if improved:
        rd.save("best.pt", payload)
        run.keep_best(payload)
    topk.prune(rd, s, cfg.save_top_k)
    rd.append(row)  # after the checkpoint: no row without one (a resume restores a lost row)
    return row, improved


def train_epochs(
    run: Run, rd: RunDir, signals: Signals, emit, progress_interval: float | None, check_every: int
) -> Iterator[tuple[dict, bool]]:
    """Train epoch after epoch; yield (row, improved) after each epoch's checkpoint is saved.

    A signal ends it with last.pt saved and TrainingInterrupted raised (exit 130 / 143).
    """
    while run.stop_reason() is None:
        epoch_gen = run.generator.get_state()  # the permutation of this epoch comes from here
        partial = run_epoch(run, rd, signals, emit, progress_interval, check_every)
        s = run.state
        if signals.stopped is not None and partial:
            path = rd.save("last.pt", run.payload(epoch_gen))
            raise_interrupted(signals.stopped, s.epoch + 1, s.step, path, rd.path)
        yield end_epoch(run, rd, epoch_gen, partial)
        stop = distributed.agree_signal(signals.received, run.job, run.device)  # all ranks alike
        if stop is not None:
            raise_interrupted(stop, s.epoch + 1, s.step, rd.path / "last.pt", rd.path)


def _set_up(cfg: TrainConfig, device: torch.device, emit) -> bool:
    """Checks and global settings before any data is loaded; whether the fused kernels run."""
    speed.check_precision(device, cfg.precision)
    slower = speed.precision_note(device, cfg.precision)
    if slower:
        emit(event="notice", notice=slower)
    if cfg.tensorboard:
        require_tensorboard()  # a missing extra is said before anything runs
    if cfg.mlflow is not None:
        check_mlflow(cfg.mlflow)  # and a tracking server that does not answer
    fused, fused_note = speed.fused_choice(device, cfg.fused, compile=cfg.compile)
    if fused_note:
        emit(event="fallback", notice=fused_note)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=device.type != "cuda")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    return fused


def thread_tuner(cfg: TrainConfig, device: torch.device, emit) -> ThreadTuner | None:
    """``--threads auto`` on the CPU: a tuner that reports each choice as a "threads" event."""
    cands = candidates(speed.default_threads())
    if cfg.threads != "auto" or device.type != "cpu" or len(cands) < 2:
        return None

    def report(choice: Choice) -> None:
        emit(event="threads", threads=choice.threads, reason=choice.reason,
             us_per_image=choice.us_per_image)  # fmt: skip

    return ThreadTuner(cands, torch.set_num_threads, on_choice=report)


def train(
    plan: Plan,
    *,
    device: torch.device,
    threads: int,
    on_event: Event | None = None,
    progress_interval: float | None = None,
    check_every: int = 200,
    job: distributed.Dist | None = None,
    callbacks: Callbacks | None = None,
) -> dict[str, Any]:
    """Train as ``plan`` says (a new run, or one resumed); returns the run's summary.

    ``job``: this process's rank in a data-parallel job (distributed.py), already joined.
    ``callbacks``: lenet_cli.train's (callbacks.py), attached to the run once it is built."""
    cfg, emit, resume = plan.config, _emitter(on_event), plan.resume
    fused = _set_up(cfg, device, emit)
    init = init_weights(cfg.init, cfg.arch) if cfg.init and resume is None else None
    if init is not None:
        emit(event="fallback", notice=init[1])
    quiet = job is not None and not job.main  # rank 0 writes the run directory
    # A new run's directory is made once its data are loaded (a failure leaves none behind);
    # a resumed run's is locked first, so that a second --resume of a live run stops at once.
    given = plan.given  # data and model handed to lenet_cli.train (runs/given.py), or None
    data = load_splits(cfg, device, plan.data_explicit, emit, given) if resume is None else None
    with RunDir(plan.run_dir, new=resume is None, writes=not quiet) as rd:
        if resume is not None:
            plan.check_unchanged()
            data = load_splits(cfg, device, plan.data_explicit, emit, given)
        # the default mnist that fell back to the sample is recorded as what it is
        run = Run(dataclasses.replace(cfg, data=data.train.name), device, data, fused, job, given)
        run.tuner = thread_tuner(run.cfg, device, emit) if job is None else None  # ranks: fixed
        if callbacks is not None:
            callbacks.attach(run, rd.path)
        if resume is not None:
            run.restore(resume, plan.restart_schedule)
            rd.load_metrics(run.state.step, run.state.last_row)
        elif init is not None:  # in place: the fast path and the optimizer share these parameters
            run.model.load_state_dict(init[0])
        board_cfg = (
            dataclasses.replace(run.cfg, tensorboard=False, mlflow=None) if quiet else run.cfg
        )
        with (
            tensorboard_log(board_cfg, rd.path, run.state.step, data.test) as board,
            mlflow_log(board_cfg, rd.path, _notice(on_event)) as flow,
        ):
            emit = _emitter(on_event, board, flow)
            return _session(run, rd, emit, threads, progress_interval, check_every)


def _notice(on_event: Event | None) -> Callable[[str], None]:
    return lambda text: on_event({"event": "notice", "notice": text}) if on_event else None


def _session(run: Run, rd: RunDir, emit, threads: int, *loop) -> dict[str, Any]:
    """Record the session (config.toml, env.json), then train; the run's summary."""
    # Signals are taken here, after the run is built (DDP and torch.distributed may install
    # handlers) and before "training on" is said (a signal after it saves last.pt)
    with rd.recording_end(), Signals() as signals:  # the end: in env.json, for `lenet runs`
        signals.escalate = run.job is None
        session.record_start(run, rd, emit, threads)
        run.model.train()
        started = time.perf_counter()
        for row, improved in train_epochs(run, rd, signals, emit, *loop):
            emit(event="epoch_end", row=row, best=improved)
        wall = time.perf_counter() - started
        restored = session.restore_best(run, rd, emit)
    return session.summary(run, rd, wall, restored)
