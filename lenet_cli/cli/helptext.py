"""How `--help` reads: every command and group of `lenet` is drawn through these classes.

Typer draws help with Rich, whose markup takes ``[word]`` for a style: "pip install
'lenet-cli[onnx]'" or "[default: X]" in a help text would lose the brackets. Typer's Rich panels
also print ``<bool>`` after every switch, which reads as if the switch took a value (users typed
``--preview true``). Both are fixed here, for the time help is drawn only: help texts stay as
written, and parsing is untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption


def escape(text: str | None) -> str | None:
    """``text`` with each ``[`` that Rich would read as markup escaped (shown as written)."""
    if not text:
        return text
    from rich.markup import escape as rich_escape

    return rich_escape(text)


@contextlib.contextmanager
def _readable(command: Any, ctx: typer.Context) -> Iterator[None]:
    """While ``command``'s help is drawn: its texts (and its sub-commands' in a group) escaped,
    switches without a type. Everything is put back afterwards, so drawing twice is the same."""
    saved: list[tuple[Any, str, Any]] = []

    def swap(obj: Any, attr: str, value: Any) -> None:
        saved.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    try:
        for obj in [command, *_subcommands(command, ctx)]:
            swap(obj, "help", escape(obj.help))
            swap(obj, "short_help", escape(obj.short_help))
        for param in command.get_params(ctx):
            swap(param, "help", escape(getattr(param, "help", None)))
            if isinstance(param, TyperOption):
                _narrow(param, ctx, swap)
        yield
    finally:
        for obj, attr, value in reversed(saved):
            setattr(obj, attr, value)


TYPE_WIDTH = 14  # the type column's widest line; the help column gets the rest of the width


def _narrow(param: TyperOption, ctx: typer.Context, swap: Any) -> None:
    """A narrow row for ``param``: its names in one column (a switch's two on two lines), no
    type for a switch, ``<int>`` for a ranged int (the range follows it), and a list of choices
    broken after a ``|`` to fit TYPE_WIDTH."""
    short = [o for o in param.opts if not o.startswith("--")]
    if short:  # `-h, --help` in the first column: the column of short names stays empty
        swap(param, "opts", [", ".join(short + [o for o in param.opts if o not in short])])
    if param.is_flag:
        if param.metavar is None:
            swap(param, "metavar", "")  # Typer's panel shows the metavar instead of <bool>
        if param.secondary_opts:
            swap(param, "opts", ["\n".join([*param.opts, *param.secondary_opts])])
            swap(param, "secondary_opts", [])
        return
    shown = param.display_type_rich(ctx=ctx)
    if shown and shown.endswith(" range>"):
        swap(param, "metavar", shown.removesuffix(" range>") + ">")
    elif shown and len(shown) > TYPE_WIDTH and "|" in shown:
        lines = [""]
        for word in shown.replace("|", "| ").split(" "):
            if lines[-1] and len(lines[-1]) + len(word) > TYPE_WIDTH:
                lines.append("")
            lines[-1] += word
        swap(param, "metavar", "\n".join(lines))


def _subcommands(command: Any, ctx: typer.Context) -> list[Any]:
    if not isinstance(command, TyperGroup):
        return []
    found = (command.get_command(ctx, name) for name in command.list_commands(ctx))
    return [c for c in found if c is not None]


class HelpCommand(TyperCommand):
    """A command whose --help shows brackets as written and switches without ``<bool>``."""

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        with _readable(self, ctx):
            super().format_help(ctx, formatter)


class HelpGroup(TyperGroup):
    """A group whose --help shows brackets as written and switches without ``<bool>``."""

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        with _readable(self, ctx):
            super().format_help(ctx, formatter)


class HelpTyper(typer.Typer):
    """A Typer app whose commands are ``HelpCommand``s unless a command names its own class."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or HelpCommand, **kwargs)
