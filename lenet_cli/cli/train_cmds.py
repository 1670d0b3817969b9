"""The command that trains a model: train.

Thin wrappers: resolve the config, pick the device, call an engine, render its result. torch and
the engines are imported inside the command bodies only (`lenet --help` stays instant).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from lenet_cli import ui
from lenet_cli.cli.app import JsonOpt, app, setup_device
from lenet_cli.config import (
    Arch,
    DataName,
    LossName,
    OptimizerName,
    Precision,
    ProgressMode,
    SchedulerName,
    TrainConfig,
)
from lenet_cli.errors import OutputExistsError, UsageError

D = TrainConfig()
# Keys that a resumed run cannot change: the weights, optimizer state or data would not fit.
FIXED_ON_RESUME = ("data", "arch", "optimizer", "batch_size", "val_split", "seed")


def _opt(flag: str, help: str, key: str | None = None, **kw):  # noqa: A002 (help as in Typer)
    default = getattr(D, key or flag.lstrip("-").replace("-", "_"), None)
    shown = f" Default: {default}." if default is not None else ""
    return typer.Option(flag, help=help + shown, show_default=False, **kw)


@app.command("train")
def train_cmd(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML file of options (defaults < file < flags), e.g. configs/mnist.toml.",
        ),
    ] = None,
    print_config: Annotated[
        bool,
        typer.Option(
            "--print-config", help="Print the resolved options and where each came from, then exit."
        ),
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Continue a run: its directory or a checkpoint. Raise --epochs to train longer.",
        ),
    ] = None,
    data: Annotated[
        DataName | None,
        _opt(
            "--data",
            "Data set. The default mnist falls back to "
            "the bundled 5,000-digit sample (with a notice) when full MNIST is absent; "
            "an explicit --data mnist never does.",
        ),
    ] = None,
    data_dir: Annotated[
        str | None, _opt("--data-dir", "Read the IDX files from this directory (no download).")
    ] = None,
    val_split: Annotated[
        float | None,
        _opt(
            "--val-split",
            "Fraction of the training set held "
            "out for validation (then best.pt is picked on it, not on test).",
        ),
    ] = None,
    arch: Annotated[
        Arch | None,
        _opt("--arch", "Network: tutorial (3x3), lenet5 (5x5), classic (LeNet-5 1998)."),
    ] = None,
    loss: Annotated[
        LossName | None,
        _opt(
            "--loss",
            "cross-entropy, or mse: the tutorial's "
            "MSELoss between the raw scores (no softmax) and one-hot targets.",
        ),
    ] = None,
    label_smoothing: Annotated[
        float | None, _opt("--label-smoothing", "Label smoothing (either loss).")
    ] = None,
    optimizer: Annotated[
        OptimizerName | None,
        _opt(
            "--optimizer",
            "manual-sgd is the tutorial's w -= lr * grad; the others are torch.optim's.",
        ),
    ] = None,
    lr: Annotated[float | None, _opt("--lr", "Learning rate (the peak, for onecycle).")] = None,
    momentum: Annotated[float | None, _opt("--momentum", "Momentum (sgd, rmsprop).")] = None,
    weight_decay: Annotated[float | None, _opt("--weight-decay", "Weight decay.")] = None,
    scheduler: Annotated[
        SchedulerName | None, _opt("--scheduler", "Learning-rate schedule, stepped every batch.")
    ] = None,
    step_size: Annotated[int | None, _opt("--step-size", "step: epochs between decays.")] = None,
    gamma: Annotated[float | None, _opt("--gamma", "step: lr factor at each decay.")] = None,
    warmup: Annotated[
        float | None, _opt("--warmup", "onecycle: fraction of steps spent warming up.")
    ] = None,
    epochs: Annotated[
        int | None, _opt("--epochs", "Epochs in all (with --resume: the new total).")
    ] = None,
    max_steps: Annotated[
        int | None, _opt("--max-steps", "Stop after this many steps in all.")
    ] = None,
    batch_size: Annotated[int | None, _opt("--batch-size", "Training batch size.")] = None,
    seed: Annotated[
        int | None, _opt("--seed", "Seed of the initial weights, split and data order.")
    ] = None,
    deterministic: Annotated[
        bool | None,
        _opt(
            "--deterministic/--no-deterministic",
            "Deterministic algorithms only (needed for exact GPU reruns).",
            key="deterministic",
        ),
    ] = None,
    device: Annotated[
        str | None, _opt("--device", "auto (CUDA, then MPS, else CPU), cpu, cuda, cuda:N or mps.")
    ] = None,
    threads: Annotated[
        int | None, _opt("--threads", "CPU threads. Default: the physical cores.")
    ] = None,
    out: Annotated[str | None, _opt("--out", "Parent directory of run directories.")] = None,
    name: Annotated[
        str | None,
        _opt(
            "--name", "Run directory name (default DATA-ARCH-YYYYmmdd-HHMMSS); never overwritten."
        ),
    ] = None,
    early_stop: Annotated[
        int | None,
        _opt(
            "--early-stop", "Stop after N epochs without a better validation (else test) accuracy."
        ),
    ] = None,
    precision: Annotated[
        Precision | None,
        _opt(
            "--precision",
            "fp32, or bf16-mixed / fp16-mixed autocast (fp16 needs a GPU; mixed precision "
            "changes the arithmetic, so results differ slightly from fp32).",
        ),
    ] = None,
    channels_last: Annotated[
        bool | None,
        typer.Option(
            "--channels-last/--no-channels-last",
            help="Memory layout of images and conv weights. Default: channels_last on CPU and "
            "CUDA (measured faster), NCHW on MPS.",
            show_default=False,
        ),
    ] = None,
    compile_model: Annotated[
        bool | None,
        _opt(
            "--compile/--no-compile",
            "torch.compile the model (pays on GPUs; measured slower on this 2-core CPU).",
            key="compile",
        ),
    ] = None,
    fused: Annotated[
        bool | None,
        _opt(
            "--fused/--no-fused",
            "Run LeNet as C kernels: the whole network, or each conv -> pool -> ReLU block (CPU; "
            "built on first use with the C compiler). Default: on the CPU when they build, else "
            "PyTorch's ops with a note.",
            key="fused",
        ),
    ] = None,
    progress: Annotated[
        ProgressMode | None,
        _opt("--progress", "auto: Rich bars on a terminal, one plain line per epoch otherwise."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Train the network; logs, config and checkpoints go to a run directory."""
    from lenet_cli.config import load_toml, resolve, to_toml, validate

    flags = {k: v for k, v in locals().items() if k in TrainConfig.__dataclass_fields__}
    flags["compile"] = compile_model
    file_values = load_toml(config) if config is not None else None
    base, base_name, payload = D, "default", None
    if resume is not None:
        from lenet_cli.checkpoint import load_for_resume

        payload = load_for_resume(resume)
        base = TrainConfig(**validate(payload["config"], f"{payload['path']} (config)"))
        base_name = "checkpoint"
    resolved = resolve(base, file_values, flags, file_name=str(config), defaults_name=base_name)
    cfg = resolved.config
    if print_config:
        lines = to_toml(cfg).splitlines()  # one line per key, in field order
        ui.render_config(
            [(line, resolved.sources[k]) for k, line in zip(cfg.to_dict(), lines, strict=True)]
        )
        return
    if payload is not None:
        changed = [k for k in FIXED_ON_RESUME if getattr(cfg, k) != payload["config"][k]]
        if changed:
            raise UsageError(
                f"--resume cannot change {', '.join(changed)}",
                hint="drop those options, or start a new run",
            )
        from lenet_cli.metrics import resume_dir

        run_dir = resume_dir(Path(payload["path"]))
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(cfg.out) / (cfg.name or f"{cfg.data}-{cfg.arch}-{stamp}")
        if run_dir.exists():
            raise OutputExistsError(
                f"run directory {run_dir} already exists",
                hint="choose another --name, or continue it with --resume",
            )
    dev, n_threads = setup_device(cfg.device, cfg.threads)
    from lenet_cli.train import train

    try:
        run_dir.mkdir(parents=True, exist_ok=payload is not None)
    except FileExistsError:
        raise OutputExistsError(
            f"run directory {run_dir} already exists", hint="choose another --name"
        ) from None
    except OSError as e:  # --out is a file, or a place this user cannot write
        raise UsageError(
            f"cannot create run directory {run_dir}: {e.strerror}",
            hint="choose a writable --out directory",
        ) from None
    render = ui.TrainProgress(ui.progress_mode(cfg.progress))
    try:
        summary = train(
            cfg,
            run_dir,
            device=dev,
            threads=n_threads,
            resume=payload,
            data_explicit=payload is not None or resolved.explicit("data"),
            on_event=render,
            progress_interval=0.2 if render.mode == "rich" else None,
        )
    except BaseException:
        if payload is None and not any(run_dir.iterdir()):
            run_dir.rmdir()  # failed before writing anything (bad data, say): leave no empty run
        raise
    finally:
        render.close()
    if json_out:
        ui.print_json(summary)
    else:
        ui.render_train_summary(summary)
