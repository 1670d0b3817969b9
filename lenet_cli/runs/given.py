"""What a run got from Python rather than from its config: its data, its model.

``lenet_cli.train(data=(images, labels), model=MyNet())`` trains on tensors and a network that
no config names. The run says so everywhere it is read back:
- config.toml and the summary: ``data = "python"``, ``arch = "python:MyNet"`` (values that
  ``lenet train --config`` refuses with a message saying why);
- env.json and every checkpoint: ``"given_in_python": {"data": "...", "model": "module.MyNet"}``;
  the checkpoint's own ``arch``, ``data`` and config keys are left empty, not guessed.
A `lenet` command refuses a checkpoint whose model was given in Python (exit 6): it cannot
rebuild the class. ``lenet_cli.load(run, model=MyNet())`` loads it into an instance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from lenet_cli.config.toml import GIVEN_ARCH_PREFIX as ARCH_PREFIX
from lenet_cli.config.toml import GIVEN_DATA as DATA  # noqa: F401  (the data's name here too)
from lenet_cli.errors import CheckpointError

if TYPE_CHECKING:
    from torch import nn

    from lenet_cli.data import Dataset

KEY = "given_in_python"
KINDS = ("data", "model")


def arch_of(model: nn.Module) -> str:
    return ARCH_PREFIX + type(model).__name__


@dataclass(frozen=True)
class Given:
    """What ``lenet_cli.train`` was handed: data sets (on the CPU) and a model, or neither."""

    train: Dataset | None = None
    test: Dataset | None = None
    data_text: str = ""  # what the data are, in one phrase
    model: nn.Module | None = None

    def on(self, device: Any) -> tuple[Dataset, Dataset]:
        """The given training and test sets on ``device``."""
        return tuple(  # type: ignore[return-value]
            replace(ds, images=ds.images.to(device), labels=ds.labels.to(device))
            for ds in (self.train, self.test)
        )

    def record(self) -> dict[str, str]:
        """{"data": what they are, "model": module.Class} for what was given."""
        out = {}
        if self.train is not None:
            out["data"] = self.data_text
        if self.model is not None:
            kind = type(self.model)
            out["model"] = f"{kind.__module__}.{kind.__qualname__}"
        return out

    def mark(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint's payload with what was given recorded, not named as a config value."""
        record = self.record()
        if not record:
            return payload
        config = dict(payload["config"])
        if "data" in record:
            config.pop("data", None)
            payload["data"] = None
        if "model" in record:
            config.pop("arch", None)
            payload["arch"] = None
        return {**payload, "config": config, KEY: record}


def record_of(payload: dict[str, Any], where: str) -> dict[str, str]:
    """A checkpoint's record of what was given in Python ({} when nothing), checked."""
    record = payload.get(KEY)
    if record is None:
        return {}
    if not (
        isinstance(record, dict)
        and record
        and all(k in KINDS and isinstance(v, str) for k, v in record.items())
    ):
        raise CheckpointError(
            f"refusing checkpoint {where}: {KEY} is not a table of data / model descriptions"
        )
    return record


def refuse_model(where: str, record: dict[str, str]) -> CheckpointError:
    """The error for a `lenet` command (or a load without ``model=``) meeting a given model."""
    name = record["model"].rsplit(".", 1)[-1]
    return CheckpointError(
        f"{where} holds the weights of a model given in Python ({record['model']}), which "
        "`lenet` cannot rebuild",
        hint=f"use it from Python: lenet_cli.load(PATH, model={name}()), or "
        f"lenet_cli.train(resume=PATH, model={name}(), ...) to train on (docs/api.md)",
    )


def check_resumable(where: str, record: dict[str, str], given: frozenset[str]) -> None:
    """A resumed run gets the same kinds of things from Python as it did when it started."""
    missing = [k for k in KINDS if k in record and k not in given]
    if missing:
        what = " and ".join(missing)
        raise CheckpointError(
            f"checkpoint {where} cannot be resumed without its {what}: given in Python "
            f"({'; '.join(record[k] for k in missing)})",
            hint="resume it in Python: lenet_cli.train(resume=RUN, "
            + ", ".join(f"{k}=..." for k in missing)
            + ") (docs/api.md)",
        )
    extra = [k for k in given if k not in record]
    if extra:
        raise CheckpointError(
            f"checkpoint {where} was not trained on a {' or '.join(extra)} given in Python",
            hint="resume it without " + ", ".join(f"{k}=" for k in extra),
        )
