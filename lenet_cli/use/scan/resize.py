"""The one resize the scanner's steps use: a float picture brought to a given longer side."""

from __future__ import annotations

import numpy as np
from PIL import Image


def fit(img: np.ndarray, longest: int, resample: int | None = None) -> np.ndarray:
    """``img`` ([H, W], float) resized so that its longer side is ``longest`` pixels, the other
    in proportion (at least 1). By default reduced by area (box) and enlarged bilinearly."""
    h, w = img.shape
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if resample is None:
        resample = Image.BILINEAR if scale > 1 else Image.BOX
    return np.asarray(Image.fromarray(img.astype(np.float32), mode="F").resize(size, resample))
