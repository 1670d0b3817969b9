"""The training engine: ``train(plan, ...)`` returns a summary and emits events.

``train`` is a short orchestration: load the data, build a ``Run`` (everything a checkpoint
carries, with ``payload()`` / ``restore()``), open the run directory, then iterate
``train_epochs``, a generator in the style of spaCy's ``train_while_improving`` that yields each
epoch's row once its checkpoint is saved.

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
import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from lenet_cli.config import TrainConfig
from lenet_cli.data import Dataset, batch_rows, batches, load_dataset, split_validation
from lenet_cli.errors import UsageError
from lenet_cli.fast import speed
from lenet_cli.fast.cpu import process_age
from lenet_cli.fast.fused_step import FusedStep, why_not
from lenet_cli.fast.threads import Choice, ThreadTuner, candidates
from lenet_cli.interrupts import Signals, raise_interrupted
from lenet_cli.losses import LossFn, build_loss
from lenet_cli.model import build_model
from lenet_cli.optim import adopt_layouts, build_optimizer, build_scheduler
from lenet_cli.runs.checkpoint import restore_rng, rng_states
from lenet_cli.runs.metrics import RunState, env_info, now
from lenet_cli.runs.rundir import QuietRunDir, RunDir
from lenet_cli.training import distributed
from lenet_cli.training.epoch import EpochSums, check_finite_eval
from lenet_cli.training.plan import Plan
from lenet_cli.training.tblog import require_tensorboard, tensorboard_log
from lenet_cli.use.evaluate import evaluate_tensors
from lenet_cli.use.weights import init_weights

Event = Callable[[dict], None]
SPAN_SCHEDULES = ("cosine", "onecycle")  # their curve spans the run's total steps


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step. Returns (loss, correct count) as device tensors: no sync here.

    ``precision`` other than fp32 runs the forward pass under autocast; ``scaler`` (fp16 on CUDA)
    scales the loss. With fp32 and no scaler this is the plain zero_grad/backward/step.
    ``weight`` scales the gradient only: a data-parallel rank's share of the global batch.
    """
    optimizer.zero_grad(set_to_none=True)
    with speed.autocast(x.device, precision):
        scores = model(x)
        # float() is a no-op in fp32; an empty share of a batch (data-parallel) has no loss but
        # still joins the backward, where the ranks' gradients are averaged
        loss = loss_fn(scores.float(), y) if y.numel() else scores.float().sum()
    scaled = loss if weight == 1.0 else loss * weight
    if scaler is not None and scaler.is_enabled():
        scaler.scale(scaled).backward()
        scaler.step(optimizer)  # skips the step when a gradient is inf/nan, without a sync
        scaler.update()
    else:
        scaled.backward()
        optimizer.step()
    return loss.detach(), (scores.detach().argmax(dim=1) == y).sum()


def _emitter(*listeners: Event | None) -> Callable[..., None]:
    def emit(**event: Any) -> None:
        for listener in listeners:
            if listener is not None:
                listener(event)

    return emit


def _layout(cfg: TrainConfig, device: torch.device) -> bool:
    return speed.channels_last_default(device) if cfg.channels_last is None else cfg.channels_last


@dataclasses.dataclass
class Splits:
    train: Dataset
    val: Dataset | None
    test: Dataset


def load_splits(cfg: TrainConfig, device: torch.device, explicit: bool, emit) -> Splits:
    """The training, validation and test sets on ``device``, in the layout the model runs in."""
    args = dict(data_dir=cfg.data_dir, device=device, seed=cfg.seed, on_event=lambda e: emit(**e))
    train_ds = load_dataset(cfg.data, "train", explicit=explicit, **args)
    test_ds = load_dataset(train_ds.name, "test", **args)  # from where the training split was
    train_ds, val_ds = split_validation(train_ds, cfg.val_split, seed=cfg.seed)
    emit(
        event="data",
        name=train_ds.name,
        source=train_ds.source,
        notice=train_ds.notice,
        train=len(train_ds),
        val=len(val_ds) if val_ds else 0,
        test=len(test_ds),
    )
    speed.configure_backends(device)
    layout = _layout(cfg, device)
    for ds in (train_ds, val_ds, test_ds):
        if ds is not None:  # stored once in the fast layout; batches keep it
            ds.images = speed.prepare_inputs(ds.images, layout)
    return Splits(train_ds, val_ds, test_ds)


class Run:
    """Everything a training run holds and a checkpoint carries.

    ``model`` is what is saved and restored; ``net`` is what runs (the fast CPU path or a
    compiled wrapper sharing ``model``'s parameters).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        device: torch.device,
        data: Splits,
        fused: bool,
        job: distributed.Dist | None = None,
    ) -> None:
        self.cfg, self.device, self.data, self.job = cfg, device, data, job
        torch.manual_seed(cfg.seed)  # the initial weights
        self.model = build_model(cfg.arch)
        # whether the C kernels run: wanted here, and a network they compute (not --arch classic)
        self.fused = fused and speed.fused_applies(self.model)
        self.net = speed.prepare_model(
            self.model,
            device,
            channels_last=_layout(cfg, device),
            compile=cfg.compile,
            fused=self.fused,
        )
        # what trains: DistributedDataParallel around it in a data-parallel job
        self.train_net = distributed.wrap(self.net, device) if job else self.net
        self.scaler = speed.grad_scaler(device, cfg.precision)
        self.loss_fn = build_loss(cfg.loss, cfg.label_smoothing)
        self.eval_loss = build_loss(cfg.loss)
        self.optimizer = build_optimizer(
            cfg.optimizer,
            self.model.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            lean=not cfg.compile,  # torch.compile needs torch._dynamo anyway
        )
        # the whole step as one C call where it applies (fused_step.py), else train_step
        self.fast_step = None
        if not why_not(self.net, self.optimizer, cfg.loss, precision=cfg.precision,
                       scaled=self.scaler.is_enabled(), compiled=cfg.compile,
                       data_parallel=job is not None):  # fmt: skip
            self.fast_step = FusedStep(self.net, self.optimizer, cfg.loss, cfg.label_smoothing)
        self.steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
        self.state = RunState()
        self.scheduler = self._scheduler()
        self.generator = torch.Generator().manual_seed(cfg.seed)  # data order, on the CPU
        self.tuner: ThreadTuner | None = None  # --threads auto (set by train)
        self.first_step_at: float | None = None  # seconds from process start (start-up cost)

    def total_steps(self, cfg: TrainConfig) -> int:
        total = cfg.epochs * self.steps_per_epoch
        return total if cfg.max_steps is None else min(total, cfg.max_steps)

    def _scheduler(self) -> torch.optim.lr_scheduler.LambdaLR:
        """The lr schedule from ``state.schedule_start`` on (its own step count starts there)."""
        cfg = self.cfg
        return build_scheduler(
            cfg.scheduler,
            self.optimizer,
            total_steps=self.total_steps(cfg) - self.state.schedule_start,
            steps_per_epoch=self.steps_per_epoch,
            step_size=cfg.step_size,
            gamma=cfg.gamma,
            warmup=cfg.warmup,
        )

    def payload(self, data_generator: torch.Tensor) -> dict[str, Any]:
        """The checkpoint; ``data_generator`` is the data order's state to resume from."""
        train = self.data.train
        return {
            "arch": self.cfg.arch,
            "config": self.cfg.to_dict(),
            "mean": train.mean,
            "std": train.std,
            "data": train.name,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),  # empty unless fp16 on CUDA
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.state.epoch,
            "step": self.state.step,
            "state": self.state.to_dict(),
            "rng": {**rng_states(), "data_generator": data_generator},
        }

    def restore(self, payload: dict[str, Any], restart_schedule: bool = False) -> None:
        """Continue from a checkpoint written by ``payload``, with this run's config applied.

        The options a resume may change (plan.py) take effect here: the lr, momentum and weight
        decay in the optimizer; a new total of steps only by a new schedule (``restart_schedule``).
        """
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        adopt_layouts(self.optimizer)  # --channels-last may differ from the checkpoint's run
        if payload.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(payload["scaler"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.state = RunState.from_dict(payload["state"])
        self.generator.set_state(payload["rng"]["data_generator"])
        restore_rng(payload["rng"])
        old, cfg = TrainConfig(**payload["config"]), self.cfg
        if restart_schedule:
            self.state.schedule_start = self.state.step
        elif cfg.scheduler in SPAN_SCHEDULES and self.total_steps(old) != self.total_steps(cfg):
            raise UsageError(
                f"--resume changes the {cfg.scheduler} schedule's length ({self.total_steps(old)} "
                f"steps in all, now {self.total_steps(cfg)}): it spans the whole run",
                hint="add --restart-schedule to start a new schedule over the remaining steps, "
                f"or keep --epochs {old.epochs}"
                + (f" --max-steps {old.max_steps}" if old.max_steps else ""),
            )
        hyper = ("lr", "momentum", "weight_decay")
        if restart_schedule or any(getattr(old, k) != getattr(cfg, k) for k in hyper):
            self._apply_hyperparameters(restart_schedule)

    def _apply_hyperparameters(self, restart_schedule: bool) -> None:
        cfg, groups = self.cfg, self.optimizer.param_groups
        for g in groups:
            g["initial_lr"] = cfg.lr  # the schedule's base
            if "weight_decay" in g:
                g["weight_decay"] = cfg.weight_decay
            if "momentum" in g:
                g["momentum"] = cfg.momentum
        if restart_schedule:  # a new LambdaLR: its count, and the lr, start again
            self.scheduler = self._scheduler()
            return
        self.scheduler.base_lrs = [cfg.lr] * len(groups)
        for g in groups:  # what LambdaLR would have set at this step with the new base
            g["lr"] = cfg.lr * self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)

    def evaluate(self, ds: Dataset) -> dict[str, Any]:
        """Loss and accuracy on ``ds`` (each rank of a job evaluates its share; summed)."""
        lo, hi = distributed.bounds(len(ds.labels), self.job)
        r = evaluate_tensors(
            self.net, ds.images[lo:hi], ds.labels[lo:hi], self.eval_loss, self.cfg.eval_batch_size
        )
        if self.job is None:
            return r
        n = r["count"]
        loss, hits, count = distributed.all_sum(
            [r["loss"] * n, round(r["accuracy"] * n), n], self.device
        )
        return {**r, "count": int(count), "loss": loss / count, "accuracy": hits / count}

    def stop_reason(self) -> str | None:
        """Why training is over, or None while it goes on."""
        cfg, s = self.cfg, self.state
        if cfg.max_steps is not None and s.step >= cfg.max_steps:
            return "max_steps"
        if cfg.early_stop and s.epochs_since_best >= cfg.early_stop:
            return "early_stop"
        return "epochs" if s.epoch >= cfg.epochs else None


def run_epoch(run: Run, rd: RunDir, signals: Signals, emit, progress_interval, check_every) -> bool:
    """Train the open epoch until its end, max_steps or a signal; True if it ended part-way."""
    cfg, s = run.cfg, run.state
    emit(event="epoch_start", epoch=s.epoch + 1, batches=run.steps_per_epoch, done=s.batch_in_epoch)
    sums = EpochSums(s, run.device, cfg.lr, rd.path)
    job = run.job
    if job is not None and not job.main:
        sums.clear()  # the sums so far are rank 0's (from the checkpoint): counted once
    train, fast = run.data.train, run.fast_step
    if fast is not None:  # the C step reads each batch's rows where they are
        order = batch_rows(len(train), cfg.batch_size, generator=run.generator)
    else:  # the same permutation, gathered (and shared out in a data-parallel job)
        order = distributed.shard(
            batches(train.images, train.labels, cfg.batch_size, generator=run.generator), job
        )
    for i, batch in enumerate(order):
        if i < sums.skip:  # resuming mid-epoch: the same permutation, minus what was done
            continue
        # every rank stops at the same step: on the agreed signal, never overwriting the local
        # one (a signal that lands during the all-reduce is agreed on at the next step)
        stop = distributed.agree_signal(signals.received, job, run.device)
        if stop is not None:
            signals.stopped = stop
            break
        if run.first_step_at is None:
            run.first_step_at = process_age()
        started = time.perf_counter()
        if fast is not None:
            loss, hits = fast.rows(train.images, train.labels, batch)
            n = int(batch.shape[0])
        else:
            x, y, weight = batch
            loss, hits = train_step(
                run.train_net,
                run.optimizer,
                run.loss_fn,
                x,
                y,
                precision=cfg.precision,
                scaler=run.scaler,
                weight=weight,
            )
            n = int(y.shape[0])
        if run.tuner is not None:  # CPU steps are synchronous: this is the step's own time
            run.tuner.record(time.perf_counter() - started, n)
        run.scheduler.step()
        sums.add(loss, hits, n)
        s.step += 1
        s.batch_in_epoch = i + 1
        if cfg.log_every and s.step % cfg.log_every == 0:
            log_step(run, rd, emit, loss)
        if progress_interval is not None and sums.due(progress_interval):
            report = sums.report()
            emit(
                event="progress",
                epoch=s.epoch + 1,
                batch=i + 1,
                batches=run.steps_per_epoch,
                **report,
            )
        elif s.step % check_every == 0:
            sums.sync()  # the periodic NaN check
        if cfg.max_steps is not None and s.step >= cfg.max_steps:
            break
    sums.sync()
    if job is not None:  # the epoch's sums over all ranks
        loss_sum, correct, seen = distributed.all_sum([s.loss_sum, s.correct, s.seen], run.device)
        s.loss_sum, s.correct, s.seen = loss_sum, int(correct), int(seen)
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
    """Evaluate, save the checkpoints and log the row of the epoch just trained."""
    s, data = run.state, run.data
    val = run.evaluate(data.val) if data.val is not None else None
    row = s.row(partial, run.optimizer.param_groups[0]["lr"], val, run.evaluate(data.test))
    check_finite_eval(row, s.epoch + 1, run.cfg.lr)  # finite weights, NaN outputs
    if not partial:
        s.next_epoch()
    improved = s.track_best(row, "val" if data.val is not None else "test")
    payload = run.payload(epoch_gen if partial else run.generator.get_state())
    rd.save("last.pt", payload)
    if improved:
        rd.save("best.pt", payload)
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
    if cfg.tensorboard:
        require_tensorboard()  # a missing extra is said before anything runs
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
) -> dict[str, Any]:
    """Train as ``plan`` says (a new run, or one resumed); returns the run's summary.

    ``job``: this process's rank in a data-parallel job (distributed.py), already joined."""
    cfg, emit, resume = plan.config, _emitter(on_event), plan.resume
    fused = _set_up(cfg, device, emit)
    init = init_weights(cfg.init, cfg.arch) if cfg.init and resume is None else None
    if init is not None:
        emit(event="fallback", notice=init[1])
    quiet = job is not None and not job.main  # rank 0 writes the run directory
    # A new run's directory is made once its data are loaded (a failure leaves none behind);
    # a resumed run's is locked first, so that a second --resume of a live run stops at once.
    data = load_splits(cfg, device, plan.data_explicit, emit) if resume is None else None
    with (QuietRunDir if quiet else RunDir)(plan.run_dir, new=resume is None) as rd:
        if resume is not None:
            plan.check_unchanged()
            data = load_splits(cfg, device, plan.data_explicit, emit)
        # the default mnist that fell back to the sample is recorded as what it is
        run = Run(dataclasses.replace(cfg, data=data.train.name), device, data, fused, job)
        run.tuner = thread_tuner(run.cfg, device, emit) if job is None else None  # ranks: fixed
        if resume is not None:
            run.restore(resume, plan.restart_schedule)
            rd.load_metrics(run.state.step, run.state.last_row)
        elif init is not None:  # in place: the fast path and the optimizer share these parameters
            run.model.load_state_dict(init[0])
        board_cfg = dataclasses.replace(run.cfg, tensorboard=False) if quiet else run.cfg
        with tensorboard_log(board_cfg, rd.path, run.state.step, data.test) as board:
            emit = _emitter(on_event, board)
            return _session(run, rd, emit, threads, progress_interval, check_every)


def _session(run: Run, rd: RunDir, emit, threads: int, *loop) -> dict[str, Any]:
    """Record the session (config.toml, env.json), then train; the run's summary."""
    # Signals are taken here, after the run is built (DDP and torch.distributed may install
    # handlers) and before "training on" is said (a signal after it saves last.pt)
    with rd.recording_end(), Signals() as signals:  # the end: in env.json, for `lenet runs`
        signals.escalate = run.job is None
        cfg, s = run.cfg, run.state
        rd.write_config(cfg)
        # "update": forward to the optimizer's update in one C call; "gradients": torch's step
        # follows it (optimizers the C update does not compute)
        one_call = run.fast_step and ("update" if run.fast_step.updates() else "gradients")
        env = env_info(run.device, threads, cfg.seed, cfg.deterministic, run.fused, one_call)
        rd.write_env({**env, "ranks": run.job.world} if run.job else env)
        for note in rd.notes:
            emit(event="notice", notice=note)
        emit(
            event="start",
            run_dir=str(rd.path),
            epochs=cfg.epochs,
            steps_per_epoch=run.steps_per_epoch,
            start_epoch=s.epoch,
            step=s.step,
            device=str(run.device),
            threads=threads,
            fused=run.fused,
            fused_step=one_call,
        )
        run.model.train()
        started = time.perf_counter()
        for row, improved in train_epochs(run, rd, signals, emit, *loop):
            emit(event="epoch_end", row=row, best=improved)
        wall = time.perf_counter() - started
    summary = run.state.summary(rd.path, cfg.data, cfg.arch, run.stop_reason(), wall)
    return {**summary, "first_step_after_s": run.first_step_at}  # process start -> first step
