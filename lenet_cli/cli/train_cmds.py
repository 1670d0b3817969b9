"""The command that trains a model: train.

Its config flags are generated from ``TrainConfig``'s fields (type, default, help and range are
declared once, in config.py); the command resolves the config, calls the engine, renders.
torch and the engines are imported inside the command body only (`lenet --help` stays instant).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from lenet_cli import ui
from lenet_cli.cli.app import JsonOpt, app, setup_device
from lenet_cli.config import GENERAL, HINTS, PANELS, TrainConfig, flag_name


def _flag(f: dataclasses.Field, panel: str | None = None) -> inspect.Parameter:
    """The generated ``--flag`` of one config field: optional (None = not given), never defaulted.

    The default is shown in the help text rather than by Typer, because an absent flag must stay
    None for the precedence defaults < file < flags.
    """
    hint = HINTS[f.name]
    base = [a for a in typing_args(hint) if a is not type(None)] or [hint]
    if len(base) > 1:  # a number or a word (--threads 2 / auto): text, converted by config.py
        base = [str]
    name = flag_name(f.name)
    decl = f"{name}/--no-{name[2:]}" if base[0] is bool else name
    shown = f" Default: {f.default}." if f.default is not None else ""
    option = typer.Option(
        decl,
        help=f.metadata["help"] + shown,
        show_default=False,
        rich_help_panel=panel or f.metadata["panel"],
    )
    return inspect.Parameter(
        f.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[base[0] | None, option],
    )


def typing_args(hint: Any) -> tuple:
    import typing

    return typing.get_args(hint) if typing.get_origin(hint) is not typing.Literal else ()


def config_flags(
    command: Callable[..., None] | None = None,
    *,
    skip: tuple[str, ...] = (),
    panel: str | None = None,
) -> Any:
    """Adds one flag per TrainConfig field before ``command``'s ``json_out``; the command gets
    them as ``flags`` (a dict of the values given, None for the others).

    ``config_flags(skip=..., panel=...)`` leaves out the fields a command sets itself (`lenet
    sweep`) and lists the others under one heading of ``--help`` instead of their fields' panels.
    ``--help`` shows the panels in the order of PANELS.
    """
    if command is None:
        return functools.partial(config_flags, skip=skip, panel=panel)
    fields = [f for f in dataclasses.fields(TrainConfig) if f.name not in skip]
    names = [f.name for f in fields]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        flags = {k: kwargs.pop(k) for k in names}
        command(**kwargs, flags=flags)

    kw = inspect.Parameter.KEYWORD_ONLY
    own = inspect.signature(command, eval_str=True).parameters.values()
    own = [p.replace(kind=kw) for p in own if p.name != "flags"]
    at = next(i for i, p in enumerate(own) if p.name == "json_out")
    params = own[:at] + [_flag(f, panel) for f in fields] + own[at:]
    params.sort(key=_panel_rank)  # stable: within a panel, the order of declaration
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def _panel_rank(p: inspect.Parameter) -> int:
    """Where ``p``'s panel comes in PANELS (a panel of another name: after them)."""
    info = [m for m in getattr(p.annotation, "__metadata__", ()) if hasattr(m, "rich_help_panel")]
    panel = (info[0].rich_help_panel if info else None) or GENERAL
    return PANELS.index(panel) if panel in PANELS else len(PANELS)


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="TOML file of options (defaults < file < flags), e.g. configs/mnist.toml."
    ),
]
PrintConfigOpt = Annotated[
    bool,
    typer.Option(
        "--print-config", help="Print the resolved options and where each came from, then exit."
    ),
]
ResumeOpt = Annotated[
    Path | None,
    typer.Option(
        "--resume",
        help="Continue a run: its directory or a checkpoint. Raise --epochs to train longer.",
        rich_help_panel="Run directory",
    ),
]
NprocOpt = Annotated[
    int | None,
    typer.Option(
        "--nproc",
        min=1,
        help="Data-parallel processes on this machine, started by torchrun (gloo on the CPU, "
        "nccl on CUDA); --batch-size is the global batch. See docs/scale-out.md.",
        rich_help_panel="Scale-out",
    ),
]
RestartScheduleOpt = Annotated[
    bool,
    typer.Option(
        "--restart-schedule",
        help="With --resume: a new lr schedule over the steps that remain (to change the "
        "length or options of a cosine or onecycle schedule). See docs/runs.md.",
        rich_help_panel="Run directory",
    ),
]


@app.command("train")
@config_flags
def train_cmd(
    config: ConfigOpt = None,
    print_config: PrintConfigOpt = False,
    resume: ResumeOpt = None,
    nproc: NprocOpt = None,
    restart_schedule: RestartScheduleOpt = False,
    json_out: JsonOpt = False,
    *,
    flags: dict[str, Any],
) -> None:
    """Train the network; logs, config and checkpoints go to a run directory."""
    import os

    from lenet_cli.training.plan import plan_run

    # options, config and resume rules are checked here, before `--nproc` starts any rank: a
    # mistake is one message from this process, not one per rank and torchrun's traceback
    plan = plan_run(config, flags, resume, restart_schedule)
    if print_config:
        ui.render_config(plan.config_lines())
        return
    if nproc is not None and "WORLD_SIZE" not in os.environ:
        from lenet_cli.scale.launch import launch

        code, message = launch(nproc)
        if message:  # the failing rank's line, said once for the job
            ui.error_line(message)
        raise typer.Exit(code)
    from lenet_cli.training import distributed
    from lenet_cli.training.loop import train

    job = distributed.from_env()  # a rank of torchrun's job, or None
    quiet = job is not None and not job.main  # only rank 0 prints
    dev, n_threads = _device(plan.config, job, quiet)
    render = ui.TrainProgress("none" if quiet else ui.progress_mode(plan.config.progress))
    try:
        summary = train(
            plan,
            device=dev,
            threads=n_threads,
            on_event=None if quiet else render,
            progress_interval=0.2 if render.mode == "rich" else None,
            job=job,
        )
    except RuntimeError as e:  # in a job: a rank that died takes this one down (exit 15)
        failure = distributed.peer_failure(e) if job is not None else None
        if failure is None:
            raise
        raise failure from None
    finally:
        render.close()
        distributed.close()
    if quiet:
        return
    if json_out:
        ui.print_json(summary)
    else:
        ui.render_train_summary(summary)


def _device(cfg, job, quiet: bool):  # noqa: ANN001, ANN202 (torch types: imported lazily)
    """The device and threads of this process (a data-parallel rank: its share of the cores)."""
    from lenet_cli.training import distributed

    threads = cfg.threads
    if job is not None and threads == "auto":  # each rank its share of the cores, fixed
        from lenet_cli.fast.speed import default_threads

        threads = max(1, default_threads() // job.local_world)
    dev, n_threads = setup_device(cfg.device, threads, quiet=quiet)
    if job is not None:
        dev = distributed.init(job, dev)
    return dev, n_threads
