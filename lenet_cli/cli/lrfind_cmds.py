"""`lenet lr-find`: the learning-rate range test, with `lenet train`'s options.

Its training options are train's generated flags (one per TrainConfig field), less those that
mean nothing for a short test that saves nothing (epochs, schedule, run directory, logging).
torch and the engine are imported inside the command body only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lenet_cli import ui
from lenet_cli.cli.app import JsonOpt, app, setup_device
from lenet_cli.cli.train_cmds import ConfigOpt, config_flags
from lenet_cli.cli.viz_cmds import ForceOpt, png_target
from lenet_cli.config import POSITIVE, Range, TrainConfig, check_value, load_toml, resolve
from lenet_cli.config.monitor import check_options

# train's options that a range test does not use: it sets the lr itself, step by step, runs
# --steps batches, and writes nothing but the PNG
UNUSED = (
    "lr",
    "scheduler",
    "step_size",
    "gamma",
    "warmup",
    "epochs",
    "max_steps",
    "eval_batch_size",
    "out",
    "name",
    "early_stop",
    "early_stop_metric",
    "min_delta",
    "restore_best",
    "ema",
    "save_top_k",
    "progress",
    "log_every",
    "tensorboard",
    "mlflow",
)


@app.command("lr-find")
@config_flags(skip=UNUSED, panel="Training options (as lenet train's)")
def lr_find_cmd(
    config: ConfigOpt = None,
    start_lr: Annotated[
        float, typer.Option("--start-lr", help="The rate of the first step.")
    ] = 1e-7,
    end_lr: Annotated[
        float, typer.Option("--end-lr", help="The rate of the last step (if it gets there).")
    ] = 10.0,
    steps: Annotated[
        int, typer.Option("--steps", help="Steps (batches) from --start-lr to --end-lr.")
    ] = 100,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also draw the curve into this PNG file (or directory)."),
    ] = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
    *,
    flags: dict[str, Any],
) -> None:
    """Find a learning rate: train briefly with a rising rate and watch the loss (Smith 2015).

    The rate rises exponentially, one batch per step; the test stops when the loss diverges.
    Saves nothing but the --out picture."""
    for flag, value in (("--start-lr", start_lr), ("--end-lr", end_lr)):
        check_value(flag, value, POSITIVE)
    check_value("--steps", steps, Range(lo=5, hi=100_000))
    file_values = load_toml(config) if config is not None else None
    resolved = resolve(TrainConfig(), file_values, flags, file_name=str(config))
    cfg = resolved.config
    check_options(cfg)
    target = png_target(out, "lr-find.png", force)
    dev, _ = setup_device(cfg.device, cfg.threads)
    from lenet_cli.training.lrfind import find_lr
    from lenet_cli.ui.lrfind import lr_find_listener, lr_find_png, render_lr_find

    progress = ui.TrainProgress("none" if json_out else "plain")
    result = find_lr(
        cfg,
        dev,
        start_lr=start_lr,
        end_lr=end_lr,
        steps=steps,
        data_explicit=resolved.explicit("data"),
        on_event=lr_find_listener(progress),
    )
    if target is not None:
        result["png"] = str(lr_find_png(result, target))
    if json_out:
        ui.print_json(result)
    else:
        render_lr_find(result)
        if target is not None:
            ui.note(f"wrote {target}")
