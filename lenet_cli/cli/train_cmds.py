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
from lenet_cli.config import HINTS, TrainConfig, flag_name


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
        decl, help=f.metadata["help"] + shown, show_default=False, rich_help_panel=panel
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
    sweep`) and lists the others under their own heading of ``--help``.
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
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


@app.command("train")
@config_flags
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
    json_out: JsonOpt = False,
    *,
    flags: dict[str, Any],
) -> None:
    """Train the network; logs, config and checkpoints go to a run directory."""
    from lenet_cli.rundir import plan_run

    plan = plan_run(config, flags, resume)
    if print_config:
        ui.render_config(plan.config_lines())
        return
    dev, n_threads = setup_device(plan.config.device, plan.config.threads)
    from lenet_cli.train import train

    render = ui.TrainProgress(ui.progress_mode(plan.config.progress))
    try:
        summary = train(
            plan,
            device=dev,
            threads=n_threads,
            on_event=render,
            progress_interval=0.2 if render.mode == "rich" else None,
        )
    finally:
        render.close()
    if json_out:
        ui.print_json(summary)
    else:
        ui.render_train_summary(summary)
