"""The Typer app, its root options, and the one place where domain errors become exit codes.

Command modules (``*_cmds.py``) register their commands on ``app``. They import torch and the
engines inside command bodies only, so `lenet --help` and completion stay instant.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from lenet_cli import __version__
from lenet_cli.cli.helptext import HelpGroup, HelpTyper
from lenet_cli.config import Arch
from lenet_cli.errors import EXIT_SIGINT, DistributedError, LenetError, other_rank
from lenet_cli.scale.launch import say_to_launcher

_state = {"debug": False}
# Typer's (vendored click's) UsageError, reached through Typer's public BadParameter: a bad
# option or argument that Typer found while parsing.
_ParseError = typer.BadParameter.__base__


def _debug() -> bool:
    return _state["debug"] or os.environ.get("LENET_DEBUG", "") not in ("", "0")


# The order `lenet --help` lists commands in: the tutorial's steps first, then training.
COMMAND_ORDER = (
    "inspect-params",
    "forward",
    "step",
    "train",
    "lr-find",
    "evaluate",
    "predict",
    "serve",
    "plot",
    "activations",
    "filters",
    "autograd",
    "tutorial",
    "export",
    "runs",
    "sweep",
    "data",
    "bench",
)


def _parse_error_exit(e: Exception) -> typer.Exit:
    """Typer's usage error as one line on stderr (not a boxed panel), and its exit code 2."""
    from lenet_cli import ui

    ctx = getattr(e, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    ui.error_line(" ".join(e.format_message().split()) + hint)
    return typer.Exit(getattr(e, "exit_code", 2))


def _lenet_error_exit(e: LenetError) -> typer.Exit:
    """A domain error as one line on stderr, and its exit code."""
    from lenet_cli import ui

    said = say_to_launcher(str(e))  # under --nproc, the launcher says it once
    if not said and (not other_rank() or isinstance(e, DistributedError)):
        ui.error_line(str(e))
    return typer.Exit(e.exit_code)


def _interrupted_exit() -> typer.Exit:
    """A Ctrl-C as one line on stderr, and exit 130."""
    from lenet_cli import ui

    if not say_to_launcher("interrupted") and not other_rank():
        ui.error_line("interrupted")
    return typer.Exit(EXIT_SIGINT)


class LenetGroup(HelpGroup):
    """Catches LenetError once, at the edge: one line on stderr, the error's exit code.

    Typer's own usage errors (a bad choice, a missing argument...) become one line there too.
    """

    def make_context(self, info_name, args, parent=None, **extra):  # noqa: ANN001, ANN201
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _ParseError as e:  # the root's own options (`lenet --bogus`)
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `lenet`: the help, as Typer does
                raise
            raise _parse_error_exit(e) from None
        except LenetError as e:  # `lenet --help` or `--version` with stdout closed
            if _debug():
                raise
            raise _lenet_error_exit(e) from None
        except KeyboardInterrupt:  # while the root's options are read (Typer imports pydantic)
            if _debug():
                raise
            raise _interrupted_exit() from None

    def list_commands(self, ctx: typer.Context) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))

    def invoke(self, ctx: typer.Context) -> Any:
        from lenet_cli import ui

        try:
            return super().invoke(ctx)
        except LenetError as e:
            if _debug():
                raise
            raise _lenet_error_exit(e) from None
        except KeyboardInterrupt:
            if _debug():
                raise
            raise _interrupted_exit() from None
        except _ParseError as e:  # a subcommand's options and arguments
            if type(e).__name__ == "NoArgsIsHelpError" or _debug():
                raise
            raise _parse_error_exit(e) from None
        except (typer.Exit, typer.Abort, BrokenPipeError):
            raise  # BrokenPipeError (`lenet ... | head`): Typer's main ends quietly, exit 1
        except Exception as e:  # a bug: still no traceback unless asked for
            if _debug() or type(e).__module__.startswith(("click", "typer")):
                raise
            line = (
                f"internal error: {type(e).__name__}: {e} "
                "(rerun with --debug or LENET_DEBUG=1 for the traceback, and please report it)"
            )
            if not say_to_launcher(line):
                ui.error_line(line)
            raise typer.Exit(1) from None


app = HelpTyper(
    cls=LenetGroup,
    name="lenet",
    help="The PyTorch tutorial's LeNet as a command-line tool: inspect it, step through it, "
    "and train it on MNIST, on CPU or CUDA.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lenet {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show tracebacks for errors (same as LENET_DEBUG=1)."),
    ] = False,
) -> None:
    """The PyTorch tutorial's LeNet as a command-line tool."""
    _state["debug"] = debug


# Options shared by several commands. Help strings name the default (Typer shows it too).
ArchOpt = Annotated[
    Arch,
    typer.Option(
        "--arch",
        help="Network: tutorial (3x3 kernels, 81,194 params), lenet5 (5x5, 61,706), "
        "classic (LeNet-5 1998: tanh, average pooling).",
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        help="Where to run: auto (CUDA, then MPS, else CPU), cpu, cuda, "
        "cuda:N or mps. A named device that is missing is an error.",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def setup_device(spec: str, threads: int | str | None = None, quiet: bool = False):
    """The torch.device for --device (saying what `auto` chose) and the CPU threads in use.

    ``threads`` None or "auto" starts at the physical cores (training's auto then tunes it)."""
    from lenet_cli.device import resolve_device, set_threads
    from lenet_cli.fast.speed import default_threads

    chosen = resolve_device(spec)
    if chosen.note and not quiet:  # quiet: a data-parallel rank other than 0
        from lenet_cli import ui

        ui.note(chosen.note)
    start = default_threads() if threads in (None, "auto") else threads
    return chosen.device, set_threads(start)
