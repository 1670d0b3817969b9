"""The product speaks of itself, never of the machine it was built on or of when: no dates, clock
times or this-machine remarks in lenet_cli/ (code comments, docstrings, strings, C, texts), in
configs/*.toml or in any command's --help. Dates and machines belong to docs/benchmarks.md."""

from __future__ import annotations

import io
import re
import tokenize

import pytest
from conftest import REPO
from typer.testing import CliRunner

from lenet_cli.cli import app

DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
CLOCK = re.compile(r"(?<![+\-])\b(?:[01]\d|2[0-3]):[0-5]\d\b")  # not a UTC offset (+00:00)
MACHINE = re.compile(
    r"this \d+-core|\b\d+-core (?:cpu|machine)|\bon (?:the )?cpu here\b|measured here|"
    r"on this cpu|quiet machine|another engineer|\b1 run in \d+|core dump",
    re.IGNORECASE,
)


def _problems(text: str) -> list[str]:
    return [m.group(0) for pattern in (DATE, CLOCK, MACHINE) for m in pattern.finditer(text)]


def _prose_of_python(source: str) -> str:
    """The comments and string literals of a Python file (code such as ``x[2:30]`` left out)."""
    kinds = (tokenize.COMMENT, tokenize.STRING)
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return "\n".join(t.string for t in tokens if t.type in kinds)


PACKAGE = sorted(
    p for p in (REPO / "lenet_cli").rglob("*") if p.is_file() and "__pycache__" not in p.parts
)
TEXTS = [
    p
    for p in PACKAGE
    if p.suffix in (".py", ".c", ".h", ".txt", ".md", ".toml", ".js", ".css", ".html")
]


def test_the_package_has_files_to_check():
    assert any(p.name == "whole_net.c" for p in TEXTS) and len(TEXTS) > 50


@pytest.mark.parametrize("path", TEXTS + sorted((REPO / "configs").glob("*.toml")),
                         ids=lambda p: str(p.relative_to(REPO)))  # fmt: skip
def test_no_date_clock_time_or_machine_remark(path):
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        text = _prose_of_python(text)
    assert _problems(text) == [], path


def test_no_date_clock_time_or_machine_remark_in_any_help():
    import typer

    def walk(command, path=()):
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, (*path, name))

    paths = list(walk(typer.main.get_command(app)))
    assert ("train",) in paths and ("data", "download") in paths
    for path in paths:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400"})
        assert result.exit_code == 0, result.output
        assert _problems(result.stdout) == [], path


@pytest.mark.parametrize(
    "text",
    [
        "measured slower on this 2-core CPU",
        "slower than eager on CPU here",
        "1 run in 40 here; a core dump showed it",
        "configs re-measured 2026-12-01 21:12",
    ],
)
def test_the_check_finds_what_it_looks_for(text):
    assert _problems(text)
