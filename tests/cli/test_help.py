"""`--help` as a person reads it, at 80 columns, for every command and sub-command."""

from __future__ import annotations

import dataclasses
import re

import pytest
import typer
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.config import PANELS, TrainConfig, flag_name


def _commands(group=None, path=()):
    """(path, click command) of the root, every group and every command under them."""
    group = typer.main.get_command(app) if group is None else group
    found = [(path, group)]
    for name, command in getattr(group, "commands", {}).items():
        found += _commands(command, (*path, name)) if hasattr(command, "commands") else []
        if not hasattr(command, "commands"):
            found.append(((*path, name), command))
    return found


COMMANDS = _commands()


def _help(path, columns: int = 80) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


def _texts(command) -> list[str]:
    """The help texts ``command``'s --help draws: its own, its parameters', its sub-commands'."""
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    texts += [c.help or "" for c in getattr(command, "commands", {}).values()]
    return texts


def test_every_command_is_checked():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "train", "export", "runs", "runs diff", "data", "data download", "bench"} <= names


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "lenet" for p, _ in COMMANDS]
)
def test_help_fits_80_columns_without_bool_and_keeps_brackets(path, command):
    text = _help(path)
    assert "<bool>" not in text  # a switch takes no value
    assert "…" not in text  # nothing cut off to fit
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert not too_wide, too_wide
    # every [...] of a help text is shown as written (Rich markup would eat [onnx], [default: x])
    wide = " ".join(_help(path, columns=400).split())
    for help_text in _texts(command):
        for bracketed in re.findall(r"\[[^\]\n]*\]", help_text):
            assert " ".join(bracketed.split()) in wide, (path, bracketed)


def test_extras_keep_their_names_in_help():
    assert "pip install 'lenet-cli[tensorboard]'" in " ".join(_help(["train"], 400).split())
    assert "pip install 'lenet-cli[onnx]'" in " ".join(_help(["export"], 400).split())


def _panels(text: str) -> dict[str, str]:
    """Panel title -> the panel's text, from Rich's boxes (╭─ Title ───╮ ... ╰───╯)."""
    found = re.findall(r"^╭─ (.+?) ─+╮\n(.*?)^╰", text, flags=re.M | re.S)
    return {title: body for title, body in found}


def test_train_help_is_in_panels_of_at_most_4_lines_per_option():
    text = _help(["train"])
    panels = _panels(text)
    assert list(panels) == list(PANELS)  # each panel once, in their order
    command = dict(COMMANDS)[("train",)]
    options = [p for p in command.params if not getattr(p, "hidden", False)]
    assert len(options) >= 35
    lines_per_option = len(text.splitlines()) / (len(options) + 1)  # + --help
    assert lines_per_option <= 4, lines_per_option


def test_each_train_flag_is_in_its_fields_panel():
    panels = _panels(_help(["train"], columns=200))
    for f in dataclasses.fields(TrainConfig):
        panel = f.metadata["panel"]
        assert re.search(rf"^│ {flag_name(f.name)}\b", panels[panel], flags=re.M), f.name
    assert "--nproc" in panels["Scale-out"] and "--resume" in panels["Run directory"]


def test_switches_show_both_names_and_parse_as_switches():
    panels = _panels(_help(["train"]))
    assert re.search(r"^│ --compile\s.*\n│ --no-compile\s", panels["Speed"], flags=re.M)
    result = CliRunner().invoke(
        app, ["train", "--data", "random", "--no-compile", "--tensorboard", "--print-config"]
    )
    assert result.exit_code == 0, result.output
    assert "compile = false" in result.stdout and "tensorboard = true" in result.stdout


def test_a_field_panel_must_be_one_of_the_panels():
    from lenet_cli.config import opt

    with pytest.raises(ValueError, match="Speeed"):
        opt(1, "help", panel="Speeed")
