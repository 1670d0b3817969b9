"""A photo of a handwritten digit made into what a scanner gives: the digit's ink alone, on
nothing, as MNIST's preparation (``predict.prepare_array``) expects it.

The steps, in order (``scan`` runs them and keeps each picture for ``--preview``):

1. working size: a large photo is reduced (by area) to at most ``WORK`` pixels a side;
2. which way round: dark ink on light paper, or light ink on a dark ground (MNIST's own files),
   from the side that stands out of the local background; a light-on-dark picture is inverted,
   so every later step sees dark ink;
3. the paper: its brightness at each point, estimated per colour channel by a morphological
   closing (a running maximum, then minimum) wider than the strokes, which fills the ink in and
   follows gradients, shadows and tinted paper; each channel is divided by it, so the paper
   becomes 1 and the ink's darkness is measured against the paper beside it;
4. the ink's channel: a colour photo keeps the channels in which the ink stands out (red ink
   shows in green and blue, not in red), averaged;
5. the ink threshold, from the picture: half the ink's own darkness, never under five times the
   paper's noise (a picture with nothing above that is blank);
6. the digit's ink: what is not the digit's left out (ruled and squared paper's lines; the
   picture's frame: a desk, the sheet's edge, slivers along the border; a box or circle drawn
   round the digit; specks), the rest grouped into marks (ink within a stroke width of each
   other); the mark with the most ink, weighted towards the centre, is the digit, and nearby
   parts join it (not blots such as punch holes, nor a box's sides); too little ink is blank;
7. the stroke width: measured at a fixed size, compared with MNIST's spread and, when outside
   it, brought to MNIST's typical width (thin pens thickened, markers thinned).

The steps live in ``paper.py`` (3-4), ``threshold.py`` (5), ``marks.py`` and ``lines.py``
(6) and ``stroke.py`` (7); ``scan`` runs them in order. ``resize.py`` is the one resize they
use.

A clean MNIST-like picture (one digit, flat paper or a flat black ground, MNIST's stroke width)
passes unchanged: the output is its ink as MNIST's preparation reads it. Pure NumPy, Pillow
and SciPy's ndimage (labelling, distance transforms, running minimum and maximum).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from lenet_cli.use.scan.lines import ruled_lines
from lenet_cli.use.scan.marks import NoInk, digit_marks, touches_border
from lenet_cli.use.scan.paper import remove_paper
from lenet_cli.use.scan.resize import fit
from lenet_cli.use.scan.stroke import normalise_stroke
from lenet_cli.use.scan.threshold import fill_hollow, ink_threshold, paper_noise, smoothest

__all__ = ["NoInk", "Scan", "scan"]

WORK = 512  # working size: the longer side, in pixels


@dataclass
class Scan:
    """Each step's picture, and what was found. Arrays are float32 in [0, 1] unless said."""

    picture: np.ndarray  # [H, W] the picture in grey, at working size
    paper_removed: np.ndarray  # [H, W] the page with its paper made white: 1 - darkness
    mask: np.ndarray  # [H, W] 1 the digit's ink, 0.35 ink dropped (specks, edges), 0 none
    ink: np.ndarray  # [h, w] the digit's ink, light on dark, cropped: prepare_array's input
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def scan(picture: np.ndarray) -> Scan:
    """``picture``: [H, W] or [H, W, C] in [0, 1], any polarity. Raises NoInk when blank."""
    img = _working_size(np.asarray(picture, dtype=np.float32))
    grey = img.mean(axis=2)
    light_ink = _light_ink(grey)
    page = 1.0 - img if light_ink else img  # dark ink from here on
    signed, noise, stroke = remove_paper(page)
    darkness = np.clip(signed, 0.0, 1.0)
    smooth = smoothest(signed, noise, stroke)
    level, threshold = ink_threshold(smooth, stroke)
    found = smooth > threshold
    found, darkness = fill_hollow(found, darkness, page.mean(axis=2), stroke)
    lines = ruled_lines(found, stroke)
    kept, notes = digit_marks(found & ~lines, stroke)
    warnings = list(notes)
    if touches_border(kept):
        warnings.append("the ink touches the picture's edge: the digit may be cut off")
    low = min(0.5 * threshold, 3 * noise)  # the paper's grain beside the strokes goes
    soft = np.clip((darkness - low) / max(level - low, 1e-6), 0, 1)
    reach = ndimage.binary_dilation(kept, iterations=max(1, round(stroke / 2)))
    soft = np.where(reach & ~(lines & ~kept), soft, 0.0).astype(np.float32)
    ink, stroke_info = normalise_stroke(soft, reach)
    return Scan(
        picture=grey.astype(np.float32),
        paper_removed=(1.0 - darkness).astype(np.float32),
        mask=np.where(kept, 1.0, np.where(found, 0.35, 0.0)).astype(np.float32),
        ink=ink,
        warnings=warnings,
        info={
            "ink": "light on dark" if light_ink else "dark on light",
            "threshold": round(float(threshold), 4),
            "noise": round(float(noise), 4),
            "ruled_lines": bool(lines.any()),
            **stroke_info,
        },
    )


def _working_size(img: np.ndarray) -> np.ndarray:
    """[H, W, C] with at most WORK pixels on the longer side (reduced by area)."""
    if img.ndim == 2:
        img = img[..., None]
    if max(img.shape[:2]) <= WORK:
        return img
    return np.stack([fit(img[..., c], WORK) for c in range(img.shape[2])], axis=2)


def _light_ink(grey: np.ndarray) -> bool:
    """Whether what stands out of the ground is lighter than it (MNIST's white digits on
    black) rather than darker (ink on paper). Where the picture's border is even, the border is
    the ground. Where it is not (a gradient, a shadow, a desk, ruled paper), what stands out is
    what a closing (dark) or an opening (light) removes, a 24th and an eighth of the picture
    wide: thin marks, not the light's slow changes nor a shadow's edge. Ink on paper is by far
    the commoner, so light ink needs both widths to agree."""
    h, w = grey.shape
    band = max(1, min(h, w) // 50)
    ring = np.concatenate([grey[:band].ravel(), grey[-band:].ravel(),
                           grey[:, :band].ravel(), grey[:, -band:].ravel()])  # fmt: skip
    low, high = np.percentile(ring, [10, 90])
    if high - low < 0.1:
        rest = grey - float(np.median(ring))
        lighter = float(np.clip(rest - 0.1, 0, None).sum())
        darker = float(np.clip(-rest - 0.1, 0, None).sum())
        return lighter > darker
    g = ndimage.gaussian_filter(grey, 1.0)
    cut = max(4 * paper_noise(g), 0.04)
    votes = []
    for size in (max(3, min(h, w) // 24), max(5, min(h, w) // 8)):
        closed = ndimage.grey_closing(g, size=size, mode="nearest")
        opened = ndimage.grey_opening(g, size=size, mode="nearest")
        darker = float(np.clip(closed - g - cut, 0, None).sum())
        lighter = float(np.clip(g - opened - cut, 0, None).sum())
        votes.append(lighter > darker)
    # ink on paper unless both scales say otherwise, and what stands out of the local median
    # agrees (a broad bright patch, a lens's vignetting, is the median there, not a mark)
    return all(votes) and _light_of_median(g, cut)


def _light_of_median(g: np.ndarray, cut: float) -> bool:
    """Whether more stands out lighter than darker from the local median: the median of
    each region a third of the picture wide, worked on a copy at most 96 pixels a side."""
    h, w = g.shape
    small = fit(g, min(96, max(h, w)), Image.BOX)
    median = ndimage.median_filter(small, size=max(3, min(small.shape) // 3), mode="nearest")
    ground = np.asarray(Image.fromarray(median, mode="F").resize((w, h), Image.BILINEAR))
    lighter = float(np.clip(g - ground - cut, 0, None).sum())
    darker = float(np.clip(ground - g - cut, 0, None).sum())
    return lighter > darker
