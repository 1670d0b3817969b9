"""The data a run trains on: the training, validation and test sets, loaded (or given) and
stored on the device in the layout the model runs in."""

from __future__ import annotations

import dataclasses

import torch

from lenet_cli.config import TrainConfig
from lenet_cli.data import Dataset, load_dataset, split_validation
from lenet_cli.fast import speed
from lenet_cli.runs.given import Given


def layout_of(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether images are stored channels-last: --channels-last, else the device's default."""
    return speed.channels_last_default(device) if cfg.channels_last is None else cfg.channels_last


@dataclasses.dataclass
class Splits:
    """The three sets of a run; ``val`` is None without --val-split."""

    train: Dataset
    val: Dataset | None
    test: Dataset


def load_splits(
    cfg: TrainConfig, device: torch.device, explicit: bool, emit, given: Given | None = None
) -> Splits:
    """The training, validation and test sets on ``device``, in the layout the model runs in
    (``given``: the data sets handed to lenet_cli.train, else the config's)."""
    args = dict(data_dir=cfg.data_dir, device=device, seed=cfg.seed, on_event=lambda e: emit(**e))
    if given is not None and given.train is not None:
        train_ds, test_ds = given.on(device)
    else:
        train_ds = load_dataset(cfg.data, "train", explicit=explicit, **args)
        test_ds = load_dataset(train_ds.name, "test", **args)  # from where the training split was
    train_ds, val_ds = split_validation(train_ds, cfg.val_split, seed=cfg.seed)
    emit(
        event="data",
        name=train_ds.name,
        source=train_ds.source,
        notice=train_ds.notice,
        train=len(train_ds),
        val=len(val_ds) if val_ds else 0,
        test=len(test_ds),
    )
    speed.configure_backends(device)
    layout = layout_of(cfg, device)
    for ds in (train_ds, val_ds, test_ds):
        if ds is not None:  # stored once in the fast layout; batches keep it
            ds.images = speed.prepare_inputs(ds.images, layout)
    return Splits(train_ds, val_ds, test_ds)
