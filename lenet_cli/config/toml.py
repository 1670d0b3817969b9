"""Config files and flags resolved into one ``TrainConfig``: defaults < file < flags.

Standard library only (tomli on Python 3.10). Every resolved value remembers where it came from,
so ``--print-config`` can say so and the CLI can tell an explicit ``--data mnist`` from the
default one.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

try:  # tomllib is standard from Python 3.11; tomli is the same parser as a package for 3.10
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from lenet_cli.config.fields import FIELDS, HINTS, RULES, TrainConfig, flag_name
from lenet_cli.config.rules import check_value
from lenet_cli.errors import ConfigError, UsageError


def _check_type(key: str, value: Any, where: str) -> Any:
    """``value`` converted to the field's type, or a ConfigError naming the key and ``where``."""
    hint = HINTS[key]
    if value is None and type(None) in get_args(hint):
        return None
    options = [a for a in get_args(hint) if a is not type(None)] if get_args(hint) else [hint]
    if typing.get_origin(hint) is Literal:
        if value not in options:
            raise ConfigError(f"{where}: {key} = {value!r} is not one of " + ", ".join(options))
        return value
    for t in options:
        if typing.get_origin(t) is Literal:
            if value in get_args(t):
                return value
            raise ConfigError(f"{where}: {key} = {value!r} is not one of " + ", ".join(get_args(t)))
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, t) and not (t is int and isinstance(value, bool)):
            return value
    names = " or ".join(getattr(t, "__name__", str(t)) for t in options)
    raise ConfigError(
        f"{where}: {key} must be {names}, got {type(value).__name__} {value!r}",
        hint="fix the value (TOML: strings in quotes, numbers without)",
    )


def _from_flag(key: str, value: Any) -> Any:
    """A flag that takes a number or a word (``--threads 2`` / ``auto``) arrives as text."""
    hint = HINTS[key]
    if not isinstance(value, str) or int not in get_args(hint):
        return value
    words = [w for t in get_args(hint) if typing.get_origin(t) is Literal for w in get_args(t)]
    if value in words:
        return value
    try:
        return int(value)
    except ValueError:
        choices = " or ".join(words)
        raise UsageError(
            f"{flag_name(key)} must be {choices} or a whole number, got {value!r}"
        ) from None


# A run of lenet_cli.train on data or a model given in Python records them as these values of
# data and arch (python, python:CLASS): no config can bring them back, so they are refused.
GIVEN_DATA, GIVEN_ARCH_PREFIX = "python", "python:"


def _given_in_python(key: str, value: Any, where: str) -> None:
    if key == "data" and value == GIVEN_DATA:
        what = "its data were given in Python"
    elif key == "arch" and isinstance(value, str) and value.startswith(GIVEN_ARCH_PREFIX):
        what = f"its model ({value.removeprefix(GIVEN_ARCH_PREFIX)}) was given in Python"
    else:
        return
    raise ConfigError(
        f"{where}: {key} = {value!r}: {what} (lenet_cli.train), and no config brings that back",
        hint="train it again in Python, passing the same data= / model= (docs/api.md)",
    )


def validate(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check keys and types of a partial config; keys may use dashes. Returns clean values.

    ``where`` names the source; "flag" means command-line flags, whose bad values are usage
    errors (exit 2) naming the --flag, where a file's are config errors (exit 7) naming the key.
    """
    clean: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(FIELDS)
            raise ConfigError(f"{where}: unknown key {raw_key!r}", hint=hint)
        if where == "flag":
            value = _from_flag(key, value)
        _given_in_python(key, value, where)
        value = _check_type(key, value, where)
        if where == "flag":
            check_value(flag_name(key), value, RULES[key])
        elif problem := RULES[key].problem(value):
            raise ConfigError(f"{where}: {key} = {value!r} {problem}")
        clean[key] = value
    return clean


def read_toml(path: Path, what: str = "config file", hint: str = "check the path") -> dict:
    """A TOML document, or one ConfigError line naming ``what`` it is and the file."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist", hint=hint) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {what} {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what} {path} is not valid TOML: {e}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """A config file's values, checked. Tables ([data], [run]...) only group keys."""
    path = Path(path)
    doc = read_toml(path)
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for k, v in items:
            if k in flat:
                raise ConfigError(f"{path}: key {k!r} is set twice")
            flat[k] = v
    return validate(flat, str(path))


@dataclass(frozen=True)
class Resolved:
    config: TrainConfig
    sources: dict[str, str] = field(default_factory=dict)  # key -> "default" | file | "flag"

    def explicit(self, key: str) -> bool:
        """Whether ``key`` was set by a file or a flag rather than left at its default."""
        return self.sources.get(key, "default") != "default"


def resolve(
    defaults: TrainConfig,
    file: Mapping[str, Any] | None,
    flags: Mapping[str, Any],
    *,
    file_name: str = "config file",
    defaults_name: str = "default",
) -> Resolved:
    """defaults < file < flags. Flags set to None were not given. Everything is validated."""
    values = defaults.to_dict()
    sources = dict.fromkeys(values, defaults_name)
    given = {k: v for k, v in flags.items() if v is not None}
    layers = ((validate(file or {}, file_name), file_name), (validate(given, "flag"), "flag"))
    for clean, name in layers:
        for key, value in clean.items():
            values[key] = value
            sources[key] = name
    return Resolved(TrainConfig(**values), sources)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def to_toml(config: TrainConfig, header: str = "", skip: tuple[str, ...] = ()) -> str:
    """The config as TOML that ``load_toml`` reads back (None values are left out)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for key, value in config.to_dict().items():
        if key in skip:
            lines.append(f"# {key} = {_toml_value(value)}  (left out: a rerun makes a new run)")
        elif value is None:
            lines.append(f"# {key} is not set")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
