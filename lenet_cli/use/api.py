"""``lenet_cli.load``, ``.evaluate``, ``.predict`` and ``.export``: a model in memory used as the
commands use a checkpoint, through the same engines.

A model that ``load`` or ``lenet_cli.train`` returns carries ``lenet_meta``: the mean and std
its training images were normalised with (new images are normalised alike), the data set it
was trained on, its loss, where it came from. Any other ``nn.Module`` is taken as trained on
MNIST's normalisation, and a notice says so.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lenet_cli.config import AT_LEAST_1, check_value
from lenet_cli.data import arrays
from lenet_cli.errors import ImageError, UsageError
from lenet_cli.losses import build_loss
from lenet_cli.use.evaluate import evaluate_tensors, model_data
from lenet_cli.use.predict import Upload, predict_images
from lenet_cli.use.weights import MNIST_MEAN, MNIST_STD, load_model

META = "lenet_meta"  # the attribute of a model that load and train return
WEIGHTS = (None, "raw", "ema")
Event = Callable[[dict], None] | None


def _notice(on_event: Event, text: str) -> None:
    if on_event is not None:
        on_event({"event": "notice", "notice": text})


def load(
    path: str | os.PathLike,
    *,
    model: nn.Module | None = None,
    weights: str | None = None,
    device: str = "cpu",
    on_event: Event = None,
) -> nn.Module:
    """A checkpoint, run directory, state_dict or .safetensors file as a model in eval mode."""
    from lenet_cli.device import resolve_device

    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(
            f"load takes a path (a run directory, checkpoint or weights file), "
            f"got {type(path).__name__}"
        )
    if weights not in WEIGHTS:
        raise UsageError(f"weights={weights!r} is none of 'ema', 'raw' or None")
    if model is not None and not isinstance(model, nn.Module):
        raise UsageError(f"model= takes a torch.nn.Module, got {type(model).__name__}")
    net, meta = load_model(Path(path), resolve_device(device).device, weights, model)
    if meta.get("notice"):
        _notice(on_event, meta["notice"])
    config = meta.get("config") or {}
    return describe(
        net,
        arch=meta.get("arch") or type(net).__name__,
        mean=meta["mean"],
        std=meta["std"],
        data=meta.get("data"),
        data_given=(meta.get("given_in_python") or {}).get("data"),
        loss=config.get("loss", "cross-entropy"),
        path=meta["path"],
        weights=meta.get("weights"),
    )


def describe(net: nn.Module, *, mean: float, std: float, **facts: Any) -> nn.Module:
    """``net`` with its ``lenet_meta``: ``mean`` and ``std`` (what new images are normalised
    with) and ``facts``: arch, data (a data set's name, or None), data_given (what data given in
    Python were, or None), loss, path (its run or file), weights."""
    setattr(net, META, {"mean": float(mean), "std": float(std), **facts})
    return net


def meta_of(net: Any, on_event: Event = None) -> dict[str, Any]:
    """``net``'s lenet_meta, or MNIST's normalisation for a model without one (said)."""
    if not isinstance(net, nn.Module):
        raise UsageError(
            f"expected a torch.nn.Module, got {type(net).__name__}",
            hint="pass lenet_cli.load(PATH) or a TrainResult's .model",
        )
    meta = getattr(net, META, None)
    if isinstance(meta, dict):
        return meta
    _notice(
        on_event,
        f"{type(net).__name__} carries no lenet_meta: inputs normalised with MNIST's mean/std "
        f"({MNIST_MEAN}, {MNIST_STD})",
    )
    return {"arch": type(net).__name__, "mean": MNIST_MEAN, "std": MNIST_STD, "data": None,
            "loss": "cross-entropy", "path": None}  # fmt: skip


def _device(net: nn.Module, device: str | None) -> torch.device:
    """``device`` (the model moves there), else where the model's parameters are."""
    if device is not None:
        from lenet_cli.device import resolve_device

        dev = resolve_device(device).device
        net.to(dev)
        return dev
    first = next(net.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def evaluate(
    net: nn.Module,
    data: Any = None,
    data_dir: str | os.PathLike | None = None,
    *,
    split: str = "test",
    batch_size: int = 1000,
    device: str | None = None,
    on_event: Event = None,
) -> dict[str, Any]:
    """Loss, accuracy (a fraction), per-class accuracy and the confusion matrix of ``net``."""
    if split not in ("train", "test"):
        raise UsageError(f"split={split!r} is neither 'train' nor 'test'")
    check_value("batch_size", batch_size, AT_LEAST_1)
    meta = meta_of(net, on_event)
    dev = _device(net, device)
    if data is None or isinstance(data, str):
        if data is None and meta.get("data_given"):
            raise UsageError(
                f"{meta['path']} was trained on data given in Python ({meta['data_given']})",
                hint="pass data=(images, labels), or a data set's name",
            )
        ds, images = model_data(
            {**meta, "config": {}},
            data=data,
            split=split,
            data_dir=os.fspath(data_dir) if data_dir is not None else None,
            device=dev,
            on_event=on_event,
        )
        labels, name, source, notice = ds.labels, ds.name, ds.source, ds.notice
    else:
        if data_dir is not None:
            raise UsageError("data_dir= reads IDX files; data= gave tensors: pass one of them")
        pictures, labels = arrays.pair(data, "data=")
        ds = arrays.dataset(pictures, labels, meta["mean"], meta["std"], split)
        images, labels = ds.images.to(dev), labels.to(dev)
        name, source, notice = ds.name, ds.source, None
    loss_name = meta.get("loss", "cross-entropy")
    result = evaluate_tensors(
        net, images, labels, build_loss(loss_name), batch_size, confusion=True
    )
    result.update(data=name, split=split, source=source, loss_name=loss_name)
    if notice:
        result["notice"] = notice
    return result


def _png(array: Any, name: str) -> Upload:
    """A grey [H, W] or colour [H, W, 3|4] array (uint8 0..255, or floats 0..1) as a PNG."""
    from PIL import Image

    a = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]  # [1, H, W]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or 0 in a.shape:
        raise ImageError(f"{name} has shape {list(a.shape)}: not a picture [H, W] or [H, W, 3]")
    if a.dtype != np.uint8:
        if a.dtype.kind != "f":
            raise ImageError(
                f"{name} is {a.dtype}: expected uint8 (0..255) or floats (0..1)",
                hint="convert it: array.astype('uint8')",
            )
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ImageError(f"{name} holds values outside 0..1 (or NaN)")
        a = np.round(a * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, format="PNG")
    return Upload(name, buffer.getvalue())


def _one(item: Any, name: str) -> Path | Upload:
    from PIL import Image

    if isinstance(item, (str, os.PathLike)):
        return Path(item)
    if isinstance(item, Image.Image):
        buffer = io.BytesIO()
        item.save(buffer, format="PNG")
        return Upload(name, buffer.getvalue())
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return _png(item, name)
    raise UsageError(
        f"{name} is a {type(item).__name__}",
        hint="pass image paths, PIL images or arrays [H, W]",
    )


def pictures(images: Any) -> list[Path | Upload]:
    """``images`` as predict's inputs: a path, PIL image or array, or a list of them; an array
    [N, H, W] (or [N, 1, H, W]) is N grey pictures, [H, W, 3|4] one colour picture."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        shape = tuple(images.shape)
        if len(shape) == 4 or (len(shape) == 3 and shape[2] not in (3, 4)):
            return [_one(images[i], f"images[{i}]") for i in range(shape[0])]
        return [_one(images, "images")]
    if isinstance(images, (list, tuple)):
        if not images:
            raise UsageError("images= is empty", hint="pass at least one picture")
        return [_one(item, f"images[{i}]") for i, item in enumerate(images)]
    return [_one(images, "images")]


def predict(
    net: nn.Module,
    images: Any,
    *,
    device: str | None = None,
    preview: bool = False,
    on_event: Event = None,
) -> list[dict[str, Any]]:
    """Each picture's predicted class and ten probabilities, prepared as `lenet predict`
    prepares a file (``preview``: also the 32x32 input the network saw, as "input")."""
    meta = meta_of(net, on_event)
    items = pictures(images)
    dev = _device(net, device)
    was_training = net.training
    net.eval()
    try:
        results, failures = predict_images(items, net, meta, dev)
    finally:
        net.train(was_training)
    if failures:
        more = f" ({len(failures)} of {len(items)} pictures failed)" if len(items) > 1 else ""
        raise ImageError(failures[0]["error"] + more)
    if not preview:
        for r in results:
            r.pop("input", None)
    return results


def export(
    run_or_path: Any,
    *,
    format: str,  # noqa: A002  (`lenet export --format`)
    out: str | os.PathLike | None = None,
    verify: bool = False,
    data: str | None = None,
    data_dir: str | os.PathLike | None = None,
    force: bool = False,
    weights: str | None = None,
    on_event: Event = None,
) -> dict[str, Any]:
    """`lenet export` of a run directory or checkpoint (or a TrainResult's run)."""
    from lenet_cli.use.export import FORMATS, export_checkpoint

    if format not in FORMATS:
        raise UsageError(f"format={format!r} is none of " + ", ".join(FORMATS))
    if weights not in WEIGHTS:
        raise UsageError(f"weights={weights!r} is none of 'ema', 'raw' or None")
    source = getattr(run_or_path, "run_dir", run_or_path)  # a TrainResult: its run
    if not isinstance(source, (str, os.PathLike)):
        raise UsageError(
            f"export takes a run directory or checkpoint path, got {type(source).__name__}"
        )
    return export_checkpoint(
        Path(source),
        format,
        out=Path(out) if out is not None else None,
        force=force,
        verify=verify,
        data=data,
        data_dir=os.fspath(data_dir) if data_dir is not None else None,
        on_event=on_event,
        weights=weights,
    )
