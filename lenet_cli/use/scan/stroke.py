"""The stroke width (step 7 of ``scan``): measured at a fixed size and, when outside MNIST's
spread, redrawn at MNIST's typical width (thin pens thickened, markers thinned)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from lenet_cli.use.scan.resize import fit

MEASURE = 128  # the digit's longer side when its stroke width is measured and changed


# The stroke widths (over the digit's longer side) left as they are, and the one a stroke
# outside them is redrawn at: MNIST's training digits measure 0.067 at the 2nd percentile,
# 0.108 at the median and 0.182 at the 98th (``python benchmarks/photolike.py --calibrate``);
# the upper bound sits above that, so MNIST's own thick digits are not thinned.
MNIST_STROKE = (0.065, 0.11, 0.20)


def stroke_width(mask: np.ndarray) -> float | None:
    """The typical stroke width of a binary shape in pixels: twice the mean distance to the
    background along the strokes' centre lines (the distance transform's ridge), less one."""
    if not mask.any():
        return None
    dist = ndimage.distance_transform_edt(mask)
    ridge = mask & (dist >= ndimage.maximum_filter(dist, size=3))
    return float(2 * np.mean(dist[ridge]) - 1)


def stroke_ratio(ink: np.ndarray, threshold: float = 0.5) -> tuple[float, np.ndarray]:
    """(stroke width over the longer side, the ink resized to MEASURE on its longer side):
    ``ink`` is light on dark in [0, 1], cropped to the digit."""
    big = np.pad(fit(ink, MEASURE), 8)
    width = stroke_width(big > threshold)
    return (width or 0.0) / MEASURE, big


def normalise_stroke(soft: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """(the digit's ink cropped, what was measured): a stroke outside MNIST's spread is
    redrawn at MNIST's typical width; one inside it is left as it is."""
    rows, cols = np.nonzero(kept)
    crop = soft[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    ratio, big = stroke_ratio(crop, threshold=0.5)
    low, typical, high = MNIST_STROKE
    info = {"stroke": round(ratio, 3)}
    if low <= ratio <= high or ratio == 0.0:
        return crop, info
    shape = big > 0.5
    change = (typical - ratio) * MEASURE / 2  # pixels to add (or take) on each side
    if change > 0:
        redrawn = ndimage.distance_transform_edt(~shape) <= change
    else:
        inner = ndimage.distance_transform_edt(shape)
        redrawn = inner > -change
        if redrawn.sum() < 0.3 * shape.sum():  # thinning would erase it: keep what is there
            return crop, info
    info["stroke_redrawn"] = round(typical, 3)
    return ndimage.gaussian_filter(redrawn.astype(np.float32), 0.7), info
