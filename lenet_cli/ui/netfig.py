"""PNG pictures of what the network holds: activations of one input, and filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenet_cli.ui import png


def _maps(subfig: Any, maps: Any, columns: int, title: str, cmap: str = "viridis") -> None:
    """Maps [N, H, W] in a grid on one colour scale, with the colour bar beside them."""
    import numpy as np

    rows = -(-maps.shape[0] // columns)
    axes = np.atleast_1d(subfig.subplots(rows, columns)).ravel()
    lo, hi = float(maps.min()), float(maps.max())
    image = None
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < maps.shape[0]:
            image = ax.imshow(maps[i], cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1)
            ax.set_title(f"#{i}", fontsize=7, pad=2)
        else:
            ax.axis("off")
    subfig.colorbar(image, ax=list(axes), shrink=0.9, pad=0.01, aspect=12 * rows)
    subfig.suptitle(title, fontsize=10)


def activations_png(doc: dict[str, Any], values: dict[str, Any], names: list[str], path: Path):
    """The input, both blocks' maps before and after pooling, the dense layers and softmax."""
    plt = png.pyplot()
    act = "tanh" if doc["arch"] == "classic" else "ReLU"
    pool = "2x2 average pool" if doc["arch"] == "classic" else "2x2 max pool"
    fig = plt.figure(figsize=(13, 21))
    top, conv1, pool1, conv2, pool2, dense = fig.subfigures(
        6, 1, height_ratios=[3.2, 2.0, 2.0, 3.4, 3.4, 2.6]
    )
    left, right = top.subfigures(1, 2, width_ratios=[1, 1.6])
    ax = left.subplots()
    image = ax.imshow(values["input"], cmap="gray")
    left.colorbar(image, ax=ax, label="normalised pixel value")
    ax.set_title("input, padded to 32x32 and normalised", fontsize=10)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    _probabilities(right.subplots(), values, names)
    shape = "x".join(str(s) for s in values["conv1"].shape[1:])
    _maps(conv1, values["conv1"], 6, f"conv1: {len(values['conv1'])} maps of {shape}, after {act}")
    shape = "x".join(str(s) for s in values["pool1"].shape[1:])
    _maps(pool1, values["pool1"], 6, f"after the {pool}: {shape} (what conv2 reads)")
    shape = "x".join(str(s) for s in values["conv2"].shape[1:])
    _maps(conv2, values["conv2"], 8, f"conv2: {len(values['conv2'])} maps of {shape}, after {act}")
    shape = "x".join(str(s) for s in values["pool2"].shape[1:])
    _maps(pool2, values["pool2"], 8, f"after the {pool}: {shape} each, flattened into fc1")
    for ax, key in zip(dense.subplots(1, 2), ("fc1", "fc2"), strict=True):
        ax.bar(range(values[key].size), values[key], width=1.0, color="tab:blue")
        ax.set_title(f"{key}: {values[key].size} outputs after {act}", fontsize=10)
        ax.set_xlabel("unit")
        ax.set_ylabel("activation")
    label = f" (true class: {names[doc['label']]})" if doc.get("label") is not None else ""
    fig.suptitle(f"{doc['arch']} net on {doc['source']}{label}", fontsize=13, y=1.01)
    return png.save(fig, path)


def _probabilities(ax: Any, values: dict[str, Any], names: list[str]) -> None:
    probs = values["softmax"]
    best = int(probs.argmax())
    colours = ["tab:orange" if k == best else "tab:blue" for k in range(len(probs))]
    ax.barh(range(len(probs)), probs, color=colours)
    ax.set_yticks(range(len(probs)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.3)  # room for the labels right of the bars
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    for k, (p, s) in enumerate(zip(probs, values["scores"], strict=True)):
        ax.text(float(p) + 0.01, k, f"{p:.3f} (score {s:+.2f})", va="center", fontsize=8)
    ax.set_xlabel("softmax probability")
    ax.set_title(f"fc3 scores -> softmax: predicted {names[best]}", fontsize=10)
