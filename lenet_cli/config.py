"""Choices shared by flags and config files. Standard library only (layer 1)."""

from __future__ import annotations

from typing import Literal, get_args

Arch = Literal["tutorial", "lenet5", "classic"]
LossName = Literal["cross-entropy", "mse"]

ARCHES: tuple[str, ...] = get_args(Arch)
LOSSES: tuple[str, ...] = get_args(LossName)
