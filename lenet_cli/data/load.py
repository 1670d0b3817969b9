"""``load_dataset``: find (or fetch) a source, decode it once, hand back tensors on the device.

Order: files on disk (sources.locate), then a verified download into the cache, then -- only for
the default data (``mnist`` with ``explicit=False``) -- the bundled sample with a notice.
Events sent to ``on_event`` (plain dicts, for the CLI to render and tests to collect):
``{"event": "found", "where", "path"}``, ``{"event": "download", "file", "url"}``,
``{"event": "download_progress", "file", "done", "total"}``, ``{"event": "download_failed", ...}``,
``{"event": "fallback", "notice"}``, ``{"event": "decoded", "split", "count", "cached"}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from lenet_cli.data import fetch as _download
from lenet_cli.data import reach
from lenet_cli.data.cache import load_split, train_stats
from lenet_cli.data.sources import BUNDLED_DIR, SOURCES, SPECS, SPLITS, Located, locate
from lenet_cli.data.synthetic import random_dataset
from lenet_cli.data.tensors import Dataset, to_model_input
from lenet_cli.errors import DataError, DataNotFoundError, UsageError

Event = Callable[[dict], None]


def fixes(name: str) -> str:
    return (
        f"fix: `lenet data download {name}`, `lenet data import {name} DIR` (copy local IDX "
        f"files into the cache), `--data-dir DIR` (read them where they are), or `--data random` "
        f"(no data needed)"
    )


def _skip_reason(name: str, explicit: bool) -> tuple[list[str] | None, str | None]:
    """(the mirrors to download from (None: all, in turn), why the network is not tried now).

    Explicit requests try every mirror; the default data tries the mirrors that answered a
    probe, all asked at once under one short deadline, and none while a failure is remembered."""
    if _download.offline():
        return None, "skipped, LENET_OFFLINE is set"
    if explicit:
        return None, None
    failed = reach.remembered_failure(name)
    if failed is not None:
        at = time.strftime("%Y-%m-%d %H:%M", time.localtime(failed["time"]))
        return None, (
            f"skipped, the mirrors failed at {at} ({failed['reason']}); retried "
            f"{reach.RETRY_AFTER_S // 3600} h later, or now with `lenet data download {name}`"
        )
    first_file = next(iter(SPECS[name].md5))
    ready, unreachable = reach.probe(_download.mirrors_for(name), first_file)
    if unreachable is not None:
        reach.remember_failure(name, unreachable)
        return None, f"skipped, no mirror answered ({unreachable})"
    return ready, None


def _fetch(name: str, explicit: bool, on_event: Event | None, tried: list[str]) -> Located | None:
    mirrors, skip = _skip_reason(name, explicit)
    if skip is not None:
        tried.append(f"download: {skip}")
        return None

    current = {"file": ""}

    def event(e: dict) -> None:
        if e.get("event") == "download":
            current["file"] = e["file"]
        if on_event:
            on_event(e)

    def progress(done: int, total: int | None) -> None:
        if on_event:
            on_event(
                {
                    "event": "download_progress",
                    "file": current["file"],
                    "done": done,
                    "total": total,
                }
            )

    try:
        timeout = None if explicit else reach.connect_timeout()  # the default never waits long
        return _download.download(
            name, mirrors=mirrors, on_progress=progress, on_event=event, timeout=timeout
        )
    except DataNotFoundError as exc:
        tried.append(f"download: {exc.message}")
        return None


def resolve_source(
    name: str,
    *,
    data_dir: str | Path | None = None,
    explicit: bool = True,
    download: bool = True,
    on_event: Event | None = None,
) -> tuple[Located, str | None]:
    """Locate the files of ``name``: (located, notice or None). Raises DataNotFoundError."""
    found, tried = locate(name, data_dir)
    if found is None and download and data_dir is None and name != "mnist-sample":
        found = _fetch(name, explicit, on_event, tried)
    if found is not None:
        if on_event:
            on_event({"event": "found", "where": found.where, "path": str(found.directory)})
        return found, None
    if name == "mnist" and not explicit and data_dir is None:
        sample, _ = locate("mnist-sample")
        if sample is not None:
            download = next((t for t in tried if t.startswith("download")), "")
            notice = (
                f"full MNIST was not found or fetched{f' ({download})' if download else ''}, so "
                "the bundled sample (5,000 real training "
                "digits, the full 10,000-digit test set) is used; get all 60,000 with "
                "`lenet data download mnist` or `lenet data import mnist DIR`"
            )
            if on_event:
                on_event({"event": "fallback", "notice": notice, "tried": tried})
            return sample, notice
    raise DataNotFoundError(f"no {name} data found; tried: " + "; ".join(tried), hint=fixes(name))


def _check_request(name: str, split: str, data_dir: str | Path | None) -> None:
    """The source, split and data directory asked for, checked before anything is read."""
    if name not in SOURCES:
        raise UsageError(
            f"unknown data source {name!r}", hint="choose one of " + ", ".join(SOURCES)
        )
    if split not in SPLITS:
        raise UsageError(
            f"unknown split {split!r}", hint="use train or test (split_validation() makes val)"
        )
    if name == "random" and data_dir is not None:  # it would be silently ignored
        raise UsageError(
            f"--data-dir {data_dir} has no effect with --data random",
            hint="drop --data-dir, or name the data set it holds with --data",
        )


def load_dataset(
    name: str,
    split: str,
    *,
    data_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    explicit: bool = True,
    download: bool = True,
    seed: int = 0,
    random_size: int | None = None,
    on_event: Event | None = None,
) -> Dataset:
    """Load ``split`` ("train" or "test") of ``name`` as a ``Dataset`` on ``device``.

    Both splits are normalised with the TRAIN split's mean/std. ``explicit=False`` marks the
    default data: for ``mnist`` it allows falling back to the bundled sample (with ``notice``
    set); an explicitly named source never falls back. ``data_dir`` searches only that
    directory and never downloads. ``seed``/``random_size`` only matter for ``random``.
    """
    _check_request(name, split, data_dir)
    if name == "random":
        return random_dataset(split, seed=seed, size=random_size, device=device)
    located, notice = resolve_source(
        name, data_dir=data_dir, explicit=explicit, download=download, on_event=on_event
    )
    raw = load_split(located, split, on_event=on_event)
    if raw["labels"].shape[0] == 0:  # nothing to train on, or to judge by
        raise DataError(
            f"the {split} split of {located.name} in {located.directory} holds 0 images",
            hint="replace those files, or point --data-dir at files that hold images",
        )
    if on_event:
        on_event(
            {
                "event": "decoded",
                "split": split,
                "count": int(raw["labels"].shape[0]),
                "cached": raw["cached"],
            }
        )
    mean, std = (raw["mean"], raw["std"]) if split == "train" else train_stats(located, on_event)
    if std <= 0:
        std = 1.0  # an all-black training set: avoid dividing by zero
    source = "bundled sample" if located.directory == BUNDLED_DIR else str(located.directory)
    return Dataset(
        name=located.name,
        split=split,
        images=to_model_input(raw["images"], mean, std, device),
        labels=raw["labels"].to(device=device, dtype=torch.int64),
        mean=mean,
        std=std,
        source=source,
        notice=notice,
    )
