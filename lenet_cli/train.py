"""The training engine (layer 4): ``train(config, ...)`` returns a summary and emits events.

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
import functools
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet_cli import speed
from lenet_cli.checkpoint import restore_rng, rng_states, save_checkpoint
from lenet_cli.config import TrainConfig, to_toml
from lenet_cli.data import batches, load_dataset, split_validation
from lenet_cli.epoch import EpochSums, check_finite_eval
from lenet_cli.evaluate import evaluate_tensors
from lenet_cli.interrupts import Signals, raise_interrupted
from lenet_cli.losses import LossFn, build_loss
from lenet_cli.metrics import RunLog, RunState, env_info
from lenet_cli.model import build_model
from lenet_cli.optim import build_optimizer, build_scheduler

Event = Callable[[dict], None]


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step. Returns (loss, correct count) as device tensors: no sync here.

    ``precision`` other than fp32 runs the forward pass under autocast; ``scaler`` (fp16 on CUDA)
    scales the loss. With fp32 and no scaler this is the plain zero_grad/backward/step.
    """
    optimizer.zero_grad(set_to_none=True)
    with speed.autocast(x.device, precision):
        scores = model(x)
        loss = loss_fn(scores.float(), y)  # float() is a no-op in fp32
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skips the step when a gradient is inf/nan, without a sync
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach(), (scores.detach().argmax(dim=1) == y).sum()


def _emit(on_event: Event | None, **event: Any) -> None:
    if on_event is not None:
        on_event(event)


def train(
    config: TrainConfig,
    run_dir: Path,
    *,
    device: torch.device,
    threads: int,
    data_explicit: bool = True,
    resume: dict[str, Any] | None = None,
    on_event: Event | None = None,
    progress_interval: float | None = None,
    check_every: int = 200,
) -> dict[str, Any]:
    """Train as ``config`` says, logging into ``run_dir``; ``resume`` is a loaded checkpoint."""
    cfg = config
    speed.check_precision(device, cfg.precision)  # before any data is loaded
    use_fused, fused_note = speed.fused_choice(device, cfg.fused, compile=cfg.compile)
    if fused_note:
        _emit(on_event, event="fallback", notice=fused_note)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=device.type != "cuda")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)

    def data_event(e: dict) -> None:
        _emit(on_event, **e)

    load = functools.partial(
        load_dataset, data_dir=cfg.data_dir, device=device, seed=cfg.seed, on_event=data_event
    )
    train_ds = load(cfg.data, "train", explicit=data_explicit)
    test_ds = load(train_ds.name, "test")  # from where the training split was found (fallback)
    train_ds, val_ds = split_validation(train_ds, cfg.val_split, seed=cfg.seed)
    _emit(
        on_event,
        event="data",
        name=train_ds.name,
        source=train_ds.source,
        notice=train_ds.notice,
        train=len(train_ds),
        val=len(val_ds) if val_ds else 0,
        test=len(test_ds),
    )

    speed.configure_backends(device)
    layout = speed.channels_last_default(device) if cfg.channels_last is None else cfg.channels_last
    for ds in (train_ds, val_ds, test_ds):
        if ds is not None:  # stored once in the fast layout; batches keep it
            ds.images = speed.prepare_inputs(ds.images, layout)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch)
    # `net` is what runs (maybe compiled); `model` is what is saved and restored.
    net = speed.prepare_model(
        model, device, channels_last=layout, compile=cfg.compile, fused=use_fused
    )
    scaler = speed.grad_scaler(device, cfg.precision)
    loss_fn = build_loss(cfg.loss, cfg.label_smoothing)
    eval_loss = build_loss(cfg.loss)
    optimizer = build_optimizer(
        cfg.optimizer,
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )
    steps_per_epoch = math.ceil(len(train_ds) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = build_scheduler(
        cfg.scheduler,
        optimizer,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        step_size=cfg.step_size,
        gamma=cfg.gamma,
        warmup=cfg.warmup,
    )
    generator = torch.Generator().manual_seed(cfg.seed)  # data order, on the CPU
    state = RunState()
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        if resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        scheduler.load_state_dict(resume["scheduler"])
        state = RunState.from_dict(resume["state"])
        generator.set_state(resume["rng"]["data_generator"])
        restore_rng(resume["rng"])
    if train_ds.name != cfg.data:  # the default mnist fell back to the sample: say so
        cfg = dataclasses.replace(cfg, data=train_ds.name)
    log = RunLog(run_dir)
    log.write_config(
        to_toml(
            cfg,
            f"resolved config of the run in {run_dir}\n"
            "train again with: lenet train --config THIS-FILE",
            skip=("name",),
        )
    )
    log.write_env(env_info(device, threads, cfg.seed, cfg.deterministic, use_fused))
    meta = {
        "arch": cfg.arch,
        "config": cfg.to_dict(),
        "mean": train_ds.mean,
        "std": train_ds.std,
        "data": train_ds.name,
    }

    def payload(epoch_start_gen: torch.Tensor) -> dict[str, Any]:
        return {
            **meta,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),  # empty unless fp16 on CUDA
            "scheduler": scheduler.state_dict(),
            "epoch": state.epoch,
            "step": state.step,
            "state": state.to_dict(),
            "rng": {**rng_states(), "data_generator": epoch_start_gen},
        }

    def evaluate(ds):
        return evaluate_tensors(net, ds.images, ds.labels, eval_loss, cfg.eval_batch_size)

    _emit(
        on_event,
        event="start",
        run_dir=str(run_dir),
        epochs=cfg.epochs,
        steps_per_epoch=steps_per_epoch,
        start_epoch=state.epoch,
        step=state.step,
        device=str(device),
        threads=threads,
        fused=use_fused,
    )
    model.train()
    started = time.perf_counter()
    stop_reason = "epochs"
    if cfg.max_steps is not None and state.step >= cfg.max_steps:
        stop_reason = "max_steps"
    with Signals() as signals:
        while state.epoch < cfg.epochs and stop_reason == "epochs":
            epoch_gen = generator.get_state()  # the permutation of this epoch comes from here
            _emit(
                on_event,
                event="epoch_start",
                epoch=state.epoch + 1,
                batches=steps_per_epoch,
                done=state.batch_in_epoch,
            )
            acc = EpochSums(state, device, cfg.lr, run_dir)
            order = batches(train_ds.images, train_ds.labels, cfg.batch_size, generator=generator)
            for i, (x, y) in enumerate(order):
                if i < acc.skip:  # resuming mid-epoch: the same permutation, minus what was done
                    continue
                if signals.received is not None:
                    break
                loss, hits = train_step(
                    net, optimizer, loss_fn, x, y, precision=cfg.precision, scaler=scaler
                )
                scheduler.step()
                acc.add(loss, hits, int(y.shape[0]))
                state.step += 1
                state.batch_in_epoch = i + 1
                if progress_interval is not None and acc.due(progress_interval):
                    _emit(
                        on_event,
                        event="progress",
                        epoch=state.epoch + 1,
                        batch=i + 1,
                        batches=steps_per_epoch,
                        **acc.report(),
                    )
                elif state.step % check_every == 0:
                    acc.sync()  # the periodic NaN check
                if cfg.max_steps is not None and state.step >= cfg.max_steps:
                    stop_reason = "max_steps"
                    break
            acc.sync()
            partial = state.batch_in_epoch < steps_per_epoch
            if signals.received is not None and partial:
                path = save_checkpoint(run_dir / "last.pt", payload(epoch_gen))
                raise_interrupted(signals.received, state.epoch + 1, state.step, path, run_dir)
            val = evaluate(val_ds) if val_ds is not None else None
            row = state.row(partial, optimizer.param_groups[0]["lr"], val, evaluate(test_ds))
            check_finite_eval(row, state.epoch + 1, cfg.lr)  # finite weights, NaN outputs
            if not partial:
                state.next_epoch()
            log.append(row)
            improved = state.track_best(row, "val" if val_ds is not None else "test")
            resume_gen = epoch_gen if partial else generator.get_state()
            save_checkpoint(run_dir / "last.pt", payload(resume_gen))
            if improved:
                save_checkpoint(run_dir / "best.pt", payload(resume_gen))
            _emit(on_event, event="epoch_end", row=row, best=improved)
            if signals.received is not None:
                raise_interrupted(
                    signals.received, state.epoch + 1, state.step, run_dir / "last.pt", run_dir
                )
            if cfg.early_stop and state.epochs_since_best >= cfg.early_stop:
                stop_reason = "early_stop"
    wall = time.perf_counter() - started
    return state.summary(run_dir, cfg.data, cfg.arch, stop_reason, wall)
