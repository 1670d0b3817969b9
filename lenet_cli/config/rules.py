"""The rules a number or a name obeys: ranges, tests, and the one message a bad value gets.

Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lenet_cli.errors import UsageError

FLOAT32_MAX = 3.4028234663852886e38  # torch keeps lr & co. as float32 in its kernels
SEED_MAX = 2**63 - 1  # TOML integers are signed 64-bit; torch.manual_seed takes this range
NAME_MAX = 100  # characters of a run directory name (file systems allow 255 bytes)
EPOCHS_MAX = 1_000_000  # epochs of one run: far beyond any use, and its step counts fit int64
# a count's largest value: every whole number up to it is a float too, so a sweep sampling a
# range up to it (on a log scale too) gets a whole number that fits 64 bits
COUNT_MAX = 2**53


@dataclass(frozen=True)
class Range:
    """An interval of allowed numbers; ``problem(v)`` says what is wrong with ``v``, or None."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    cap: bool = False  # hi is only a limit far beyond use (a count's): messages name lo alone

    def problem(self, v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, float) and not (math.isfinite(v) and abs(v) <= FLOAT32_MAX):
            return "must be a finite number (at most 3.4e38, float32's largest)"
        below = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        above = self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi)
        if below and self.cap:  # a count below 1: its far upper bound would only distract
            return self.lower()
        return self.text() if below or above else None

    def lower(self) -> str:
        if self.lo == 0 and self.lo_open:
            return "must be positive"
        return f"must be {'above' if self.lo_open else 'at least'} {self.lo}"

    def text(self) -> str:
        if self.hi is None:
            return self.lower()
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f"must be in {left}{self.lo}, {self.hi}{right}"


@dataclass(frozen=True)
class Rule:
    """Any other test of a value: ``test(v)`` is True when ``v`` is fine."""

    test: Callable[[Any], bool]
    message: str

    def problem(self, v: Any) -> str | None:
        return None if v is None or self.test(v) else self.message


AT_LEAST_1 = Range(lo=1, hi=COUNT_MAX, cap=True)
EPOCHS = Range(lo=1, hi=EPOCHS_MAX, cap=True)
POSITIVE = Range(lo=0, lo_open=True)
NON_NEGATIVE = Range(lo=0)
FRACTION = Range(lo=0, hi=1, hi_open=True)
SEED = Range(lo=0, hi=SEED_MAX)
THREADS = Rule(lambda v: v == "auto" or v >= 1, "must be auto or at least 1")


def _plain_text(v: str) -> bool:
    return v.isprintable() and v == v.strip()


# a directory name inside --out: a path would escape it, and "" / "." / ".." are no new run
RUN_NAME = Rule(
    lambda v: (
        v not in ("", ".", "..")
        and "/" not in v
        and "\\" not in v
        and len(v) <= NAME_MAX
        and _plain_text(v)
    ),
    f"must be a plain directory name of at most {NAME_MAX} printable characters "
    "(no /, not empty, '.' or '..', no spaces at either end)",
)
PATH_TEXT = Rule(
    lambda v: v != "" and _plain_text(v),
    "must be a path of printable text, not empty (no newline or control character)",
)
MLFLOW_SCHEMES = ("sqlite:///", "file:", "http://", "https://")
MLFLOW_URI = Rule(
    lambda v: v == "local" or (_plain_text(v) and v.startswith(MLFLOW_SCHEMES) and len(v) > 7),
    "is not a tracking URI lenet writes to: use sqlite:///FILE.db, file:DIR, "
    "http://HOST:PORT, or local (sqlite:///mlflow.db)",
)


def check_value(label: str, value: Any, rule: Range | Rule) -> Any:
    """``value``, or a UsageError (exit 2) naming ``label`` (a flag) when ``rule`` refuses it."""
    problem = rule.problem(value)
    if problem:
        raise UsageError(f"{label} {problem}, got {value!r}")
    return value
