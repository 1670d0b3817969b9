"""Evaluation: loss, accuracy, per-class accuracy and the confusion matrix.

Runs under ``torch.inference_mode()`` in large batches, accumulating on the device; the only
device syncs are at the end. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet_cli.device import sum_dtype
from lenet_cli.errors import UsageError
from lenet_cli.fast import speed
from lenet_cli.losses import LossFn, build_loss
from lenet_cli.model import NUM_CLASSES


@torch.inference_mode()
def evaluate_tensors(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: LossFn,
    batch_size: int = 1000,
    confusion: bool = False,
    keep_probs: bool = False,
) -> dict[str, Any]:
    """Loss averaged per sample and accuracy over the whole set (and optionally the matrix).

    ``keep_probs`` adds "probs": every sample's softmax probabilities, a float32 CPU tensor.
    """
    was_training = model.training
    model.eval()
    n = int(labels.shape[0])
    loss_sum = torch.zeros((), dtype=sum_dtype(images.device), device=images.device)
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    matrix = torch.zeros((NUM_CLASSES, NUM_CLASSES), dtype=torch.int64, device=images.device)
    probs = []
    for start in range(0, n, batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        scores = model(x)
        loss_sum += loss_fn(scores, y).to(loss_sum.dtype) * y.shape[0]  # a batch's mean, weighted
        predicted = scores.argmax(dim=1)
        if keep_probs:
            probs.append(torch.softmax(scores.float(), dim=1))
        correct += (predicted == y).sum()
        if confusion:
            matrix += torch.bincount(y * NUM_CLASSES + predicted, minlength=NUM_CLASSES**2).view(
                NUM_CLASSES, NUM_CLASSES
            )
    model.train(was_training)
    result: dict[str, Any] = {
        "count": n,
        "loss": loss_sum.item() / max(1, n),
        "accuracy": correct.item() / max(1, n),
    }
    if keep_probs:
        result["probs"] = torch.cat(probs).cpu() if probs else torch.zeros(0, NUM_CLASSES)
    if confusion:
        rows = matrix.cpu()
        totals = rows.sum(dim=1)
        result["confusion"] = rows.tolist()  # [true class][predicted class]
        result["per_class"] = [
            {
                "class": k,
                "count": int(totals[k]),
                "accuracy": (int(rows[k, k]) / int(totals[k])) if totals[k] else None,
            }
            for k in range(NUM_CLASSES)
        ]
    return result


def renormalise(images: torch.Tensor, have: tuple[float, float], want: tuple[float, float]):
    """Images normalised with ``have`` (mean, std) re-expressed as if normalised with ``want``."""
    if have == want:
        return images
    (m0, s0), (m1, s1) = have, want
    return images * (s0 / s1) + (m0 - m1) / s1


def model_data(
    meta: dict[str, Any],
    *,
    data: str | None,
    split: str,
    data_dir: str | None,
    device: torch.device,
    on_event: Callable[[dict], None] | None = None,
):
    """(dataset, its images normalised with the model's mean/std) that a loaded model is judged on.

    Default: the data it was trained on, read from where it was read; plain weights (no data
    named) get mnist, which may fall back to the bundled sample with a notice.
    """
    from lenet_cli.data import load_dataset

    config = meta.get("config") or {}
    given = (meta.get("given_in_python") or {}).get("data")
    if data is None and given is not None:  # no data set to default to (runs/given.py)
        raise UsageError(
            f"{meta['path']} was trained on data given in Python ({given})",
            hint="name the data set to judge it on with --data",
        )
    name = data or meta.get("data") or "mnist"
    if data is None and data_dir is None:
        data_dir = config.get("data_dir")
    ds = load_dataset(
        name,
        split,
        data_dir=data_dir,
        device=device,
        explicit=data is not None or meta.get("data") is not None,
        seed=int(config.get("seed", 0)),
        on_event=on_event,
    )
    return ds, renormalise(ds.images, (ds.mean, ds.std), (meta["mean"], meta["std"]))


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    data: str | None,
    split: str,
    data_dir: str | None,
    device: torch.device,
    batch_size: int = 1000,
    on_event: Callable[[dict], None] | None = None,
    samples: bool = False,
    weights: str | None = None,
) -> dict[str, Any]:
    """Evaluate a trained model on ``split`` of ``data`` (default: the data it was trained on).

    The images are normalised with the checkpoint's mean/std, as they were in training.
    ``weights``: "ema", "raw" or None, the weights the run evaluated (checkpoint.load_model).
    ``samples`` adds "predictions" (each sample's label, prediction and probabilities) and
    "mistakes" (the most confident wrong predictions, with their 28x28 pictures).
    """
    from lenet_cli.use.weights import load_model

    model, meta = load_model(checkpoint, device, weights)  # also a plain state_dict
    if meta.get("notice") and on_event is not None:
        on_event({"event": "fallback", "notice": meta["notice"]})
    config = meta.get("config") or {}
    ds, images = model_data(
        meta, data=data, split=split, data_dir=data_dir, device=device, on_event=on_event
    )
    layout = speed.channels_last_default(device)  # as in training: the faster layout here
    use_fused, note = speed.fused_choice(device, None)  # and the same kernels
    if note and on_event is not None:
        on_event({"event": "fallback", "notice": note})
    model = speed.prepare_model(model, device, channels_last=layout, fused=use_fused)
    images = speed.prepare_inputs(images, layout)
    loss_fn = build_loss(config.get("loss", "cross-entropy"))
    result = evaluate_tensors(
        model, images, ds.labels, loss_fn, batch_size, confusion=True, keep_probs=samples
    )
    if samples:
        probs = result.pop("probs")
        result["predictions"] = predictions(probs, ds.labels.cpu())
        result["mistakes"] = confident_mistakes(probs, ds.labels.cpu(), ds.images, ds.mean, ds.std)
    result.update(
        checkpoint=meta["path"],
        arch=meta["arch"],
        data=ds.name,
        split=split,
        source=ds.source,
        loss_name=config.get("loss", "cross-entropy"),
        epoch=meta.get("epoch"),
        weights=meta.get("weights", "raw"),
        device=str(device),
    )
    if ds.notice:
        result["notice"] = ds.notice
    return result


def predictions(probs: torch.Tensor, labels: torch.Tensor) -> list[dict[str, Any]]:
    """Each sample's index, true label, predicted class and ten probabilities (4 decimals)."""
    predicted = probs.argmax(dim=1).tolist()
    rounded = (probs * 10_000).round().div(10_000).tolist()
    return [
        {"index": i, "label": y, "predicted": p, "probabilities": r}
        for i, (y, p, r) in enumerate(zip(labels.tolist(), predicted, rounded, strict=True))
    ]


def confident_mistakes(
    probs: torch.Tensor,
    labels: torch.Tensor,
    images: torch.Tensor,
    mean: float,
    std: float,
    top: int = 24,
) -> list[dict[str, Any]]:
    """The ``top`` wrong predictions made with the highest probability, most confident first,
    each with its picture as 28x28 grey levels in [0, 1] (the padding and normalising undone)."""
    confidence, predicted = probs.max(dim=1)
    wrong = (predicted != labels).nonzero().flatten()
    order = wrong[confidence[wrong].argsort(descending=True)][:top]
    pad = (images.shape[-1] - 28) // 2
    pictures = images[order.to(images.device), 0, pad : pad + 28, pad : pad + 28].float().cpu()
    pictures = (pictures * std + mean).clamp(0, 1)
    return [
        {
            "index": int(i),
            "label": int(labels[i]),
            "predicted": int(predicted[i]),
            "probability": float(confidence[i]),
            "image": pic.tolist(),
        }
        for i, pic in zip(order.tolist(), pictures, strict=True)
    ]
