"""A training session's record around the loop: at its start config.toml and env.json written,
the notes and the "start" event said; at its end --restore-best's weights put back and the
run's summary made.

A run resumed has a session per process that trained it: env.json keeps the first and lists
the later ones under "resumed".
"""

from __future__ import annotations

from typing import Any

from lenet_cli.runs.metrics import env_info
from lenet_cli.runs.rundir import RunDir
from lenet_cli.training.run import Run


def record_start(run: Run, rd: RunDir, emit, threads: int) -> None:
    """Write config.toml and env.json, then say the run directory's notes and "start"."""
    cfg, s = run.cfg, run.state
    rd.write_config(cfg)
    mode = run.steps.mode  # the fused step: "update" or "gradients"; None for PyTorch's
    env = env_info(run.device, threads, cfg.seed, cfg.deterministic, run.fused, mode)
    if run.given is not None:  # what lenet_cli.train was handed (runs/given.py)
        env["given_in_python"] = run.given.record()
    # where the fused kernels run but the fused step does not: why (--dropout: no dropout)
    env["fused_step_why_not"] = why_not = run.steps.why_not_fused
    rd.write_env({**env, "ranks": run.job.world} if run.job else env)
    for note in rd.notes:
        emit(event="notice", notice=note)
    if run.ema is not None:
        emit(event="notice", notice=f"--ema {cfg.ema}: the val and test metrics of each "
             "epoch, and best.pt's pick, are those of the weights' moving average")  # fmt: skip
    emit(
        event="start",
        run_dir=str(rd.path),
        arch=cfg.arch,
        epochs=cfg.epochs,
        steps_per_epoch=run.steps_per_epoch,
        start_epoch=s.epoch,
        step=s.step,
        device=str(run.device),
        threads=threads,
        fused=run.fused,
        fused_step=mode,
        label_smoothing=cfg.label_smoothing,
        fused_step_why_not=why_not,
        augment=cfg.augment,
        dropout=cfg.dropout,
    )


def summary(run: Run, rd: RunDir, wall: float, restored: dict[str, Any] | None) -> dict[str, Any]:
    """What `lenet train --json` prints: the run's state, the metric it followed and, after
    --restore-best, the best epoch's metrics as the final ones."""
    cfg = run.cfg
    out = run.state.summary(rd.path, cfg.data, cfg.arch, run.stop_reason(), wall)
    out["monitor"] = {
        "metric": run.monitor,
        "min_delta": cfg.min_delta,
        "patience": cfg.early_stop,
    }
    if restored is not None:  # the final model is the best epoch's: its metrics are final's
        out["final"] = {k: restored.get(k) for k in out["final"]}
        out["restored_best"] = restored["epoch"]
    return {**out, "first_step_after_s": run.first_step_at}  # process start -> first step


def restore_best(run: Run, rd: RunDir, emit) -> dict[str, Any] | None:
    """--restore-best: end with best.pt's weights (kept in memory when this session saved it,
    else read from best.pt); the best epoch's record, or None."""
    best = run.state.best
    if not run.cfg.restore_best or best is None:
        return None
    weights = run.best_weights
    if weights is None:  # the best epoch was in an earlier session of a resumed run
        from lenet_cli.runs.checkpoint import load_checkpoint

        own = run.given.model if run.given is not None else None  # a model given in Python
        weights = load_checkpoint(rd.path / "best.pt", map_location=run.device, model=own)
    run.restore_best(weights)
    emit(event="restored_best", epoch=best["epoch"], metric=best.get("metric"),
         value=best["value"])  # fmt: skip
    return best
