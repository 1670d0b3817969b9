"""Every file lenet reads back, read as user input (standard library only).

A run or sweep directory, a lock or a weights file is something a user can point anywhere,
edit or replace, so what lenet wrote itself is checked as strictly as what a user typed:
- kinds: only regular files are opened, and never in a way that waits (a FIFO, a device or a
  directory under a run file's name is refused at once);
- sizes: bounded before anything is read;
- JSON: strict: no NaN or Infinity, integers that fit 64 bits, finite floats;
- TOML: values made JSON-safe (a date or time becomes its ISO 8601 text);
- numbers in their ranges, timestamps with or without a UTC offset (none means UTC);
- metrics.jsonl: one reader, ``metrics_rows``, for the pictures, the runs table, sweeps, serve
  and resume.
Each problem is a ReadError, one phrase that names the file (and line); the caller makes it an
exit code, or, in the runs table, the reason of that run's row.
"""

from __future__ import annotations

import json
import math
import os
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

from lenet_cli import files
from lenet_cli.config import tomllib
from lenet_cli.config.rules import EPOCHS_MAX
from lenet_cli.files import FileKindError

INT_MAX = 2**63 - 1  # torch's counters, and TOML's integers, are signed 64-bit
TEXT_LIMIT = 16 << 20  # env.json, config.toml, a lock: far larger is not lenet's
METRICS_LIMIT = 512 << 20  # metrics.jsonl with --log-every 1 over a long run


class ReadError(Exception):
    """What is wrong with a file read back, as one phrase naming it."""


def open_regular(path: str | Path, flags: int = os.O_RDONLY) -> int | None:
    """A descriptor of the regular file ``path``, or None when there is none; anything else (a
    FIFO, a device, a directory) is a ReadError, found without waiting (files.open_regular)."""
    try:
        return files.open_regular(path, flags)
    except FileKindError as e:
        raise ReadError(f"{path} {e}") from None
    except OSError as e:
        raise ReadError(f"{path} cannot be read: {e.strerror or e}") from None


def read_bytes(path: str | Path, limit: int = TEXT_LIMIT) -> bytes | None:
    """The bytes of the regular file ``path`` (at most ``limit``), or None when there is none."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise ReadError(f"{path} is {size:,} bytes, more than the {limit:,} read back")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as e:
        raise ReadError(f"{path} cannot be read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # it grew while it was read
        raise ReadError(f"{path} is more than the {limit:,} bytes read back")
    return data


def read_text(path: str | Path, limit: int = TEXT_LIMIT) -> str | None:
    data = read_bytes(path, limit)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ReadError(f"{path} is not UTF-8 text (byte {e.start})") from None


# -- JSON and TOML ----------------------------------------------------------------------------


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > 19 or not -INT_MAX - 1 <= int(text) <= INT_MAX:
        raise ValueError(f"a {digits}-digit integer does not fit 64 bits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of a float's range")
    return value


def loads(text: str) -> Any:
    """Strict JSON: NaN, Infinity, integers beyond 64 bits and floats that overflow are errors
    (ValueError), so that nothing read back holds a number no computation can take."""
    return json.loads(text, parse_constant=_constant, parse_int=_int, parse_float=_float)


def _why(e: ValueError) -> str:
    return " ".join(str(e).split())[:200]


def read_json_object(path: str | Path, limit: int = TEXT_LIMIT) -> dict[str, Any] | None:
    """A JSON file holding one object (strict JSON), or None when there is no file."""
    text = read_text(path, limit)
    if text is None:
        return None
    try:
        doc = loads(text)
    except ValueError as e:
        raise ReadError(f"{path} is not valid JSON: {_why(e)}") from None
    except RecursionError:
        raise ReadError(f"{path} is nested too deep") from None
    if not isinstance(doc, dict):
        raise ReadError(f"{path} holds a JSON {type(doc).__name__}, not an object")
    return doc


def json_safe_toml(value: Any) -> Any:
    """A TOML value with dates and times as their ISO 8601 text (JSON has no such type)."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: json_safe_toml(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe_toml(v) for v in value]
    return value


def read_toml(path: str | Path, limit: int = TEXT_LIMIT) -> dict[str, Any] | None:
    """A TOML file's document with JSON-safe values, or None when there is no file."""
    text = read_text(path, limit)
    if text is None:
        return None
    try:
        return json_safe_toml(tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        raise ReadError(f"{path} is not valid TOML: {e}") from None
    except RecursionError:
        raise ReadError(f"{path} is nested too deep") from None


# -- values -----------------------------------------------------------------------------------


def timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware datetime (no offset: UTC), or None if ``value`` is none."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def whole(value: Any, name: str, low: int = 0, high: int = INT_MAX) -> int:
    """``value`` as a whole number in [low, high] (ValueError naming ``name`` otherwise)."""
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{name} = {shown(value)} is not a whole number in [{low:,}, {high:,}]")
    return value


def real(value: Any, name: str, low: float = -math.inf, high: float = math.inf) -> float | None:
    """``value`` (a JSON number or null) as a finite float in [low, high], or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} = {shown(value)} is not a number")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{name} = {shown(value)} is not a number in [{low:g}, {high:g}]")
    return number


def shown(value: Any) -> str:
    """A value as a message quotes it: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- metrics.jsonl ----------------------------------------------------------------------------

SPLITS = ("train", "val", "test")
# each number of an epoch row and its range: losses, accuracies (fractions), lr, speed, time
_EPOCH_NUMBERS: dict[str, tuple[float, float]] = {
    **{f"{s}_loss": (0.0, math.inf) for s in SPLITS},
    **{f"{s}_acc": (0.0, 1.0) for s in SPLITS},
    "lr": (0.0, math.inf),
    "images_per_s": (0.0, math.inf),
    "seconds": (0.0, math.inf),
}
_STEP_NUMBERS: dict[str, tuple[float, float]] = {"loss": (0.0, math.inf), "lr": (0.0, math.inf)}


def metrics_row(raw: Any) -> dict[str, Any]:
    """One metrics.jsonl row, checked: an epoch row (``kind`` absent or "epoch") or a per-step
    row (``"kind": "step"``). The row keeps its keys (others are left as they are); epoch and
    step are whole numbers, the numbers finite floats in range or None, ``partial`` a bool,
    ``time`` text or None. Raises ValueError with the phrase of the first problem."""
    if not isinstance(raw, dict):
        raise ValueError(f"a JSON {type(raw).__name__}, not an object")
    kind = raw.get("kind", "epoch")
    if kind not in ("epoch", "step"):
        raise ValueError(f"kind = {shown(kind)} is neither epoch nor step")
    row = dict(raw)
    row["epoch"] = whole(raw.get("epoch"), "epoch", 1, EPOCHS_MAX)
    row["step"] = whole(raw.get("step"), "step")
    numbers = _EPOCH_NUMBERS if kind == "epoch" else _STEP_NUMBERS
    for key, (low, high) in numbers.items():
        row[key] = real(raw.get(key), key, low, high)
    if kind == "epoch":
        partial = raw.get("partial", False)
        if not isinstance(partial, bool):
            raise ValueError(f"partial = {shown(partial)} is not true or false")
        row["partial"] = partial
    if raw.get("time") is not None and not isinstance(raw["time"], str):
        raise ValueError(f"time = {shown(raw['time'])} is not text")
    row["time"] = raw.get("time")
    return row


def metrics_rows(path: str | Path) -> tuple[list[dict[str, Any]], list[str]] | None:
    """The rows of a metrics.jsonl in order (epoch and step rows, each checked by
    ``metrics_row``), and one phrase per line that is not a row ("line 3: epoch = ...").
    None when there is no file. Blank lines are skipped."""
    text = read_bytes(path, METRICS_LIMIT)
    if text is None:
        return None
    rows, bad = [], []
    for n, line in enumerate(text.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(metrics_row(loads(line)))
        except (ValueError, RecursionError) as e:
            bad.append(f"line {n}: {_why(e) if isinstance(e, ValueError) else 'nested too deep'}")
    return rows, bad


def epoch_rows(path: str | Path) -> list[dict[str, Any]] | None:
    """The epoch rows of a metrics.jsonl, every line checked: a line that is not a row of
    `lenet train` is a ReadError naming it. None when there is no file."""
    found = metrics_rows(path)
    if found is None:
        return None
    rows, bad = found
    if bad:
        raise ReadError(f"{path} {bad[0]}: not a metrics row of `lenet train`")
    return [r for r in rows if r.get("kind", "epoch") == "epoch"]
