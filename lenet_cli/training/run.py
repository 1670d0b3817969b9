"""A training run as it is built and checkpointed: its model, optimizer, schedule, training step
and counters (``Run``: ``payload()`` / ``restore()``), over the data splits of splits.py.

The training step is chosen here, once (step.py): the fused step where it applies, else
PyTorch's; the loop never asks which one runs.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from lenet_cli.config import TrainConfig
from lenet_cli.config.monitor import monitored
from lenet_cli.data import Dataset
from lenet_cli.errors import UsageError
from lenet_cli.fast import speed
from lenet_cli.fast.threads import ThreadTuner
from lenet_cli.losses import build_loss
from lenet_cli.model import build_model
from lenet_cli.optim import adopt_layouts, build_optimizer, build_scheduler
from lenet_cli.runs.checkpoint import restore_rng, rng_states
from lenet_cli.runs.given import Given
from lenet_cli.runs.metrics import RunState
from lenet_cli.training import augment, distributed, step
from lenet_cli.training.dropout import DropoutNet
from lenet_cli.training.ema import Ema
from lenet_cli.training.splits import Splits, layout_of
from lenet_cli.use.evaluate import evaluate_tensors

SPAN_SCHEDULES = ("cosine", "onecycle")  # their curve spans the run's total steps


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
        given: Given | None = None,
    ) -> None:
        self.cfg, self.device, self.data, self.job = cfg, device, data, job
        self.given = given  # data and model handed to lenet_cli.train (runs/given.py)
        torch.manual_seed(cfg.seed)  # the initial weights
        own = given.model if given is not None else None
        self.model = build_model(cfg.arch) if own is None else own
        # whether the C kernels run: wanted here, and a network they compute (not --arch classic)
        self.fused = fused and speed.fused_applies(self.model)
        self.net = speed.prepare_model(
            self.model,
            device,
            channels_last=layout_of(cfg, device),
            compile=cfg.compile,
            fused=self.fused,
        )
        self.scaler = speed.grad_scaler(device, cfg.precision)
        self.eval_loss = build_loss(cfg.loss)
        self.optimizer = build_optimizer(
            cfg.optimizer,
            self.model.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            lean=not cfg.compile,  # torch.compile needs torch._dynamo anyway
        )
        # --augment's draws, carried by the checkpoint (augment.py)
        self.augment_generator = augment.generator_for(cfg.seed)
        self.steps = self._choose_steps(data.train, job)
        self.monitor = monitored(cfg)  # the metric of --early-stop, best.pt and --save-top-k
        self.ema = Ema(self.model, cfg.ema) if cfg.ema is not None else None
        self.best_weights: dict[str, Any] | None = None  # --restore-best: best.pt's, in memory
        self.steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
        self.state = RunState()
        self.scheduler = self._scheduler()
        self.generator = torch.Generator().manual_seed(cfg.seed)  # data order, on the CPU
        self.tuner: ThreadTuner | None = None  # --threads auto (set by train)
        self.first_step_at: float | None = None  # seconds from process start (start-up cost)
        # callbacks of lenet_cli.train (callbacks.py): called after each step when one wants it
        self.after_step: Callable[[int, Any], bool] | None = None
        self.stop_requested: str | None = None

    def _choose_steps(
        self, train: Dataset, job: distributed.Dist | None
    ) -> step.TorchSteps | step.FusedSteps:
        """The training step, chosen once: the fused step where it applies, else train_step
        (through --dropout's net when asked)."""
        cfg, trainer = self.cfg, self._dropout_net()
        return step.choose(
            self.net,
            self.optimizer,
            cfg.loss,
            cfg.label_smoothing,
            train.images,
            train.labels,
            cfg.batch_size,
            precision=cfg.precision,
            scaler=self.scaler,
            compiled=cfg.compile,
            job=job,
            # what trains: DistributedDataParallel around the model in a data-parallel job
            train_net=distributed.wrap(trainer or self.net, self.device) if job else trainer,
            clip=step.Clip.of(cfg.clip_grad_norm, cfg.clip_grad_value),
            augment=self._augment(),
            dropout=trainer is not None,
        )

    def _augment(self) -> augment.Augment | None:
        """--augment: each batch redrawn by the config's strengths, around the data's paper."""
        if not self.cfg.augment:
            return None
        train = self.data.train
        background = -train.mean / train.std  # a blank pixel, normalised
        return augment.Augment(augment.Strengths.of(self.cfg), background, self.augment_generator)

    def _dropout_net(self) -> DropoutNet | None:
        """--dropout: the model's layers with dropout after fc1 and fc2 (PyTorch's ops)."""
        if not self.cfg.dropout:
            return None
        net = DropoutNet(self.model, self.cfg.dropout)
        if self.cfg.compile:
            net.compile()
        return net

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
        payload = {
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
            "rng": {
                **rng_states(),
                "data_generator": data_generator,
                "augment_generator": self.augment_generator.get_state(),
            },
            **self._ema_payload(),
        }
        return payload if self.given is None else self.given.mark(payload)

    def _ema_payload(self) -> dict[str, Any]:
        if self.ema is None:
            return {}
        return {"ema": self.ema.state_dict(), "ema_updates": self.ema.updates}

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
        if self.ema is not None and payload.get("ema") is not None:
            self.ema.load_state_dict(payload["ema"], payload.get("ema_updates", 0))
        self.state = RunState.from_dict(payload["state"])
        self.generator.set_state(payload["rng"]["data_generator"])
        if "augment_generator" in payload["rng"]:  # else the draws of a new run's start
            self.augment_generator.set_state(payload["rng"]["augment_generator"])
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

    @contextlib.contextmanager
    def evaluated_weights(self) -> Iterator[None]:
        """The weights the run evaluates after each epoch: the average with --ema, else the
        raw weights."""
        with self.ema.swapped() if self.ema is not None else contextlib.nullcontext():
            yield

    def keep_best(self, payload: dict[str, Any]) -> None:
        """--restore-best: a copy of the best epoch's weights (and average), to end with."""
        if self.cfg.restore_best:
            keys = ("model", "ema", "ema_updates")
            self.best_weights = {
                k: {n: t.detach().clone() for n, t in v.items()} if isinstance(v, dict) else v
                for k, v in payload.items()
                if k in keys
            }

    def restore_best(self, best: dict[str, Any]) -> None:
        """End with ``best``'s weights (a checkpoint's model, and its average with --ema)."""
        self.model.load_state_dict(best["model"])
        if self.ema is not None and best.get("ema") is not None:
            self.ema.load_state_dict(best["ema"], best.get("ema_updates", 0))

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
        """Why training is over, or None while it goes on. The limits come first: a run that
        trained every epoch ended by its epochs, whatever the early-stopping count says."""
        cfg, s = self.cfg, self.state
        if cfg.max_steps is not None and s.step >= cfg.max_steps:
            return "max_steps"
        if s.epoch >= cfg.epochs:
            return "epochs"
        if cfg.early_stop and s.epochs_since_best >= cfg.early_stop:
            return "early_stop"
        return self.stop_requested  # a callback's "stop" (callbacks.py), else None
