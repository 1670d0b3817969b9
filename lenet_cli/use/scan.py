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
6. the digit's ink: the marks (ink within a stroke width or two of each other, grouped), specks
   dropped, long thin marks along the border dropped (the sheet's edge, a ruled line); the mark
   with the most ink, weighted towards the centre, is the digit, and nearby parts join it;
7. the stroke width: measured at a fixed size, compared with MNIST's spread and, when outside
   it, brought to MNIST's typical width (thin pens thickened, markers thinned).

A clean MNIST-like picture (one digit, flat paper or a flat black ground, MNIST's stroke width)
passes unchanged: the output is its ink as today's preparation reads it. Pure NumPy, Pillow
and SciPy's ndimage (labelling, distance transforms, running minimum and maximum).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

WORK = 512  # working size: the longer side, in pixels
MEASURE = 128  # the digit's longer side when its stroke width is measured and changed
# MNIST's stroke width over the digit's longer side, as ``stroke_ratio`` measures it on the
# training digits: 10th, 50th and 90th percentiles (``benchmarks/photolike.py --calibrate``).
MNIST_STROKE = (0.065, 0.11, 0.20)
EVEN = 0.12  # light is even when the brightest parts of 3x3 blocks differ by less than this
SPECK = 0.03  # a mark with less ink than this share of the largest is a speck
SIMILAR = 0.4  # another mark with this share of the digit's ink is "of similar size"


@dataclass
class Scan:
    """Each step's picture, and what was found. Arrays are float32 in [0, 1] unless said."""

    picture: np.ndarray  # [H, W] the picture in grey, at working size
    paper_removed: np.ndarray  # [H, W] the page with its paper made white: 1 - darkness
    mask: np.ndarray  # [H, W] 1 the digit's ink, 0.35 ink dropped (specks, edges), 0 none
    ink: np.ndarray  # [h, w] the digit's ink, light on dark, cropped: prepare_array's input
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


class NoInk(Exception):
    """Nothing in the picture stands out of the paper."""


def scan(picture: np.ndarray) -> Scan:
    """``picture``: [H, W] or [H, W, C] in [0, 1], any polarity. Raises NoInk when blank."""
    img = _working_size(np.asarray(picture, dtype=np.float32))
    grey = img.mean(axis=2)
    light_ink = _light_ink(grey)
    page = 1.0 - img if light_ink else img  # dark ink from here on
    signed, noise, stroke = _remove_paper(page)
    darkness = np.clip(signed, 0.0, 1.0)
    smooth = _smooth(signed, noise, stroke)
    ink_level, threshold = _threshold(smooth, stroke)
    found = smooth > threshold
    found, darkness = _fill_hollow(found, darkness, page.mean(axis=2), stroke)
    lines = _ruled_lines(found, stroke)
    kept, dropped, notes = _digit_marks(found & ~lines, stroke)
    warnings = list(notes)
    if _touches_border(kept):
        warnings.append("the ink touches the picture's edge: the digit may be cut off")
    low = min(0.5 * threshold, 3 * noise)  # the paper's grain beside the strokes goes
    soft = np.clip((darkness - low) / max(ink_level - low, 1e-6), 0, 1)
    reach = ndimage.binary_dilation(kept, iterations=max(1, round(stroke / 2)))
    soft = np.where(reach & ~(lines & ~kept), soft, 0.0).astype(np.float32)
    ink, stroke_info = _normalise_stroke(soft, reach)
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


# --- 1-2: size and polarity ---------------------------------------------------------------------


def _working_size(img: np.ndarray) -> np.ndarray:
    """[H, W, C] with at most WORK pixels on the longer side (reduced by area)."""
    if img.ndim == 2:
        img = img[..., None]
    h, w = img.shape[:2]
    if max(h, w) <= WORK:
        return img
    size = (max(1, round(w * WORK / max(h, w))), max(1, round(h * WORK / max(h, w))))
    channels = [
        np.asarray(Image.fromarray(img[..., c], mode="F").resize(size, Image.BOX))
        for c in range(img.shape[2])
    ]
    return np.stack(channels, axis=2)


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
    cut = max(4 * _noise(g), 0.04)
    votes = []
    for size in (max(3, min(h, w) // 24), max(5, min(h, w) // 8)):
        closed = ndimage.grey_closing(g, size=size, mode="nearest")
        opened = ndimage.grey_opening(g, size=size, mode="nearest")
        darker = float(np.clip(closed - g - cut, 0, None).sum())
        lighter = float(np.clip(g - opened - cut, 0, None).sum())
        votes.append(lighter > darker)
    return all(votes)  # ink on paper unless both scales say otherwise


def _blocks(img: np.ndarray, side: int, q: float) -> np.ndarray:
    """The q-th percentile of each ``side`` x ``side`` block (the last ones padded)."""
    h, w = img.shape
    gh, gw = -(-h // side), -(-w // side)
    padded = np.pad(img, ((0, gh * side - h), (0, gw * side - w)), mode="edge")
    cells = padded.reshape(gh, side, gw, side).transpose(0, 2, 1, 3).reshape(gh, gw, -1)
    return np.percentile(cells, q, axis=2).astype(np.float32)


def _lift_enclosed(paper: np.ndarray, level: float) -> np.ndarray:
    """``paper`` raised to the even ``level`` where it dips well below it away from the
    border: the inside of strokes wider than the closing. A dip that reaches the border (a desk, the
    room behind the sheet) is not paper and stays."""
    dips, _ = ndimage.label(paper < (1 - 2 * EVEN) * level)
    edge = np.unique(np.concatenate([dips[0], dips[-1], dips[:, 0], dips[:, -1]]))
    inside = (dips > 0) & ~np.isin(dips, edge)
    return np.where(inside, level, paper)


def _thirds(img: np.ndarray, q: float) -> np.ndarray:
    """The q-th percentile of each of the picture's 3x3 blocks."""
    return np.array(
        [
            [np.percentile(b, q) for b in np.array_split(r, 3, axis=1)]
            for r in np.array_split(img, 3, axis=0)
        ]  # fmt: skip
    )


def _upsample(grid: np.ndarray, shape: tuple[int, int], side: int) -> np.ndarray:
    """Bilinear values at each pixel of a grid of ``side``-pixel blocks' values (as at the
    blocks' centres), the outermost continued to the border."""

    def along(g: np.ndarray, n: int, axis: int) -> np.ndarray:
        at = np.clip((np.arange(n) + 0.5) / side - 0.5, 0, g.shape[axis] - 1)
        i = np.minimum(at.astype(int), g.shape[axis] - 2) if g.shape[axis] > 1 else at.astype(int)
        t = (at - i).astype(np.float32)
        lo = np.take(g, i, axis=axis)
        hi = np.take(g, np.minimum(i + 1, g.shape[axis] - 1), axis=axis)
        t = t[:, None] if axis == 0 else t[None, :]
        return lo * (1 - t) + hi * t

    return along(along(grid, shape[0], 0), shape[1], 1)


# --- 3-5: paper, channel, threshold --------------------------------------------------------------


def _remove_paper(page: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(darkness [H, W]: 0 paper, 1 black ink, negative where lighter than the paper; its
    pixel noise; the stroke width).

    The paper is the closing of the page (a running maximum, then minimum) by a square wider
    than the strokes: it fills the ink and follows the light (its edges are continued
    outwards, so the border is not taken for a valley to fill). A first pass with a square a
    twelfth of the picture wide finds the ink roughly and its stroke width (what belongs to
    the frame left out); the second uses a square four stroke widths and a bit wide. Where the
    light is even (the brightest parts of 3x3 blocks agree), the paper is raised to that even
    level where it dips below it away from the border, which keeps strokes wider than the
    square (a marker) whole."""
    h, w = page.shape[:2]
    channels = [page[..., c] for c in range(page.shape[2])]
    levels = [_thirds(c, 98) for c in channels]
    even = all(v.max() - v.min() <= EVEN * v.max() for v in levels)

    def paper(size: int) -> list[np.ndarray]:
        side = max(1, size // 6)  # worked on blocks: faster, and deaf to salt and pepper
        out = []
        for c, v in zip(channels, levels, strict=True):
            grid = _blocks(c, side, 75) if side > 1 else ndimage.gaussian_filter(c, 1.0)
            cells = max(3, -(-size // side))
            closed = ndimage.grey_closing(_continued(grid, cells), size=cells)
            closed = ndimage.gaussian_filter(closed, max(0.5, size / side / 8))
            closed = closed[cells:-cells, cells:-cells]
            if even:
                closed = _lift_enclosed(closed, float(np.median(v)))
            out.append(_upsample(closed, (h, w), side) if side > 1 else closed)
        return out

    first = max(7, min(h, w) // 12)
    rough = np.mean([_darkness(c, p) for c, p in zip(channels, paper(first), strict=True)], 0)
    stroke = 3.0
    smooth0 = _smooth(rough, _noise(rough), stroke)
    floor0 = _floor(smooth0)
    level0 = _ink_level(smooth0, floor0, stroke)
    seen = np.zeros(rough.shape, bool)
    if level0 is not None:
        seen = smooth0 > max(0.5 * level0, floor0)
        stroke = stroke_width(_inner_marks(seen, stroke)) or stroke
    size = int(np.clip(4 * stroke + 3, 7, max(7, min(h, w) // 2)))
    dark = [_darkness(c, p) for c, p in zip(channels, paper(size), strict=True)]
    if len(dark) > 1 and seen.any() and not seen.all():  # keep the channels the ink shows in
        contrast = [float(d[seen].mean() - d[~seen].mean()) for d in dark]
        best = max(contrast)
        dark = [d for d, c in zip(dark, contrast, strict=True) if c >= 0.6 * best] or dark
    darkness = np.mean(dark, axis=0).astype(np.float32)
    return darkness, _noise(darkness), stroke


def _inner_marks(mask: np.ndarray, stroke: float) -> np.ndarray:
    """The mask less what belongs to the picture's frame (``_frame``); all of it when nothing
    else is left."""
    inner = mask & ~_frame(mask, stroke)
    return inner if inner.any() else mask


def _frame(mask: np.ndarray, stroke: float) -> np.ndarray:
    """The ink of ``mask`` that belongs to the picture's frame, not to a digit: slivers along
    the border (a desk's corner, the dark band a rotation leaves: most of their ink lies close to
    the border, or much of it where they meet the border over a long stretch) and thin lines
    from one border to another (the sheet's edge, a shadow's rim, a ruled line). A digit
    cropped tightly touches the border too, but most of its ink lies inside and it is more
    than one line of ink."""
    parts, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask
    h, w = mask.shape
    band = max(2 * stroke, 0.06 * min(h, w))
    ys, xs = np.ogrid[0:h, 0:w]
    near = np.minimum(np.minimum(ys, h - 1 - ys), np.minimum(xs, w - 1 - xs)) < band
    areas = np.bincount(parts.ravel(), minlength=n + 1)
    close = np.bincount(parts[near], minlength=n + 1)
    sides = [set(parts[0].tolist()), set(parts[-1].tolist()),
             set(parts[:, 0].tolist()), set(parts[:, -1].tolist())]  # fmt: skip
    ring = np.concatenate([parts[0], parts[-1], parts[:, 0], parts[:, -1]])
    contact = np.bincount(ring, minlength=n + 1)
    frame = np.zeros(n + 1, bool)
    for k, box in enumerate(ndimage.find_objects(parts), start=1):
        touching = sum(k in side for side in sides)
        if touching == 0:
            continue
        diagonal = float(np.hypot(box[0].stop - box[0].start, box[1].stop - box[1].start))
        along = contact[k] > max(3 * stroke, 0.1 * min(h, w))
        sliver = close[k] >= (0.4 if along else 0.6) * areas[k] and areas[k] > 2 * stroke * band
        line = touching >= 2 and areas[k] <= 1.5 * max(stroke, 1.0) * diagonal
        frame[k] = sliver or line
    return mask & frame[parts]


def _continued(grid: np.ndarray, n: int) -> np.ndarray:
    """``grid`` padded by ``n`` on every side with its slope continued (an odd reflection
    about the edge), within its own range: light that falls off towards the border keeps
    falling, so a closing does not lift the paper there."""
    n0 = min(n, grid.shape[0] - 1)
    n1 = min(n, grid.shape[1] - 1)
    out = np.pad(grid, ((n0, n0), (n1, n1)), mode="reflect", reflect_type="odd")
    out = np.pad(out, ((n - n0, n - n0), (n - n1, n - n1)), mode="edge")
    return np.clip(out, grid.min(), grid.max())


def _darkness(channel: np.ndarray, paper: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - channel / np.maximum(paper, 1e-3), -1.0, 1.0)


def _noise(img: np.ndarray) -> float:
    """The paper's pixel noise: robust spread of each pixel around its 3x3 neighbours' mean
    (the ink's edges are too few to move the median)."""
    rest = img - ndimage.uniform_filter(img, size=3)
    return float(1.4826 * np.median(np.abs(rest)) / 0.943)


def _smooth(darkness: np.ndarray, noise: float, stroke: float) -> np.ndarray:
    """Darkness averaged over a quarter of a stroke width (at least half a pixel, more in a
    noisy picture): a matched filter that keeps thin strokes and fills a pencil's grain."""
    return ndimage.gaussian_filter(darkness, _sigma(noise, stroke))


def _sigma(noise: float, stroke: float) -> float:
    grain = 0.0 if noise <= 0.02 else 1.0 if noise <= 0.04 else 1.5 if noise <= 0.07 else 2.0
    return max(0.5, 0.25 * stroke, min(grain, 0.5 * stroke))


def _floor(smooth: np.ndarray) -> float:
    """What paper alone reaches: the paper's darkness plus five times its spread (its noise,
    JPEG's blocks, grain, what the paper estimate missed), at least 0.06. The paper's darkness
    is the histogram's peak below 0.5 (paper covers more of a picture than any one shade of
    ink, even in a tight crop), its spread is measured on the lighter side of the peak, where
    no ink is."""
    values = smooth[smooth < 0.5]
    if values.size < 16:
        return 0.06
    counts, edges = np.histogram(values, bins=200, range=(-0.5, 0.5))
    counts = ndimage.uniform_filter1d(counts.astype(np.float64), 3)
    peak = float(edges[np.argmax(counts)] + 0.0025)
    lighter = peak - values[values <= peak]
    spread = 1.4826 * float(np.median(lighter)) if lighter.size else 0.0
    return max(peak + 5 * spread, 0.06)


def _ink_level(smooth: np.ndarray, floor: float, stroke: float) -> float | None:
    """How dark the ink is: the 90th percentile of the larger marks that stand out of the
    paper, leaving out what belongs to the frame (a desk, a shadow's rim), None if nothing
    stands out. Marks are taken at the paper's floor and again at half the darkness found
    there (where a faint frame no longer joins the digit); the darker answer is kept."""
    candidates = smooth > floor
    if candidates.sum() < 6:
        return None
    everything = _large_level(smooth, candidates)
    strong = smooth > max(floor, 0.5 * everything)
    levels = [_large_level(smooth, m & ~_frame(m, stroke)) for m in (candidates, strong)]
    found = [v for v in levels if v is not None]
    return max(found) if found else everything


def _large_level(smooth: np.ndarray, mask: np.ndarray) -> float | None:
    """The 90th percentile of ``smooth`` over the marks of ``mask`` with at least a tenth of
    the largest one's pixels (None for an empty mask)."""
    if mask.sum() < 6:
        return None
    parts, _ = ndimage.label(mask, np.ones((3, 3)))
    areas = np.bincount(parts.ravel())
    areas[0] = 0
    large = areas >= 0.1 * areas.max()
    return float(np.percentile(smooth[large[parts]], 90))


def _threshold(smooth: np.ndarray, stroke: float) -> tuple[float, float]:
    """(ink level, threshold): half the ink's darkness, at least the paper's floor."""
    floor = _floor(smooth)
    level = _ink_level(smooth, floor, stroke)
    if level is None:
        raise NoInk
    return level, max(0.5 * level, floor)


def _fill_hollow(
    found: np.ndarray, darkness: np.ndarray, page: np.ndarray, stroke: float
) -> tuple[np.ndarray, np.ndarray]:
    """(ink mask, darkness) with the inside of strokes wider than the paper's closing filled:
    there the paper estimate fell to the ink's level and only the strokes' edges stood out.
    A hole in the ink that is as dark as the ink around it is ink (its darkness measured
    against the paper outside); one as light as that paper is a loop of the digit (a 0, a 6)
    and stays."""
    holes, n = ndimage.label(ndimage.binary_fill_holes(found) & ~found)
    if n == 0:
        return found, darkness
    reach = max(2, round(2 * stroke))
    darkness = darkness.copy()
    filled = found.copy()
    for k, box in enumerate(ndimage.find_objects(holes), start=1):
        grow = tuple(slice(max(0, b.start - reach), b.stop + reach) for b in box)
        hole = holes[grow] == k
        near = ndimage.binary_dilation(hole, iterations=reach)
        edge = near & found[grow]
        around = near & ~found[grow] & ~hole
        if not edge.any() or not around.any():
            continue
        ink, paper, inside = (float(np.median(page[grow][m])) for m in (edge, around, hole))
        if paper - ink > 0.1 and inside <= ink + 0.4 * (paper - ink):
            filled[grow] |= hole
            values = np.clip(1.0 - page[grow] / max(paper, 1e-3), 0.0, 1.0)
            darkness[grow] = np.where(hole, np.maximum(darkness[grow], values), darkness[grow])
    return filled, darkness


# --- 6: the digit's marks

SLOPES = np.linspace(-0.25, 0.25, 51)  # ruled lines up to 14 degrees off the axes


def _ruled_lines(mask: np.ndarray, stroke: float) -> np.ndarray:
    """The pixels of ruled (or squared) paper's lines: straight runs of ink across the whole
    picture, horizontal or vertical within 14 degrees, found by summing the mask along each
    slope; where a stroke of the digit crosses a line, the crossing is kept."""
    lines = np.zeros(mask.shape, bool)
    for turn in (False, True):
        m = mask.T if turn else mask
        h, w = m.shape
        parts, _ = ndimage.label(m, structure=np.ones((3, 3)))
        if not (set(parts[:, 0].tolist()) & set(parts[:, -1].tolist())) - {0}:
            continue  # nothing crosses from one side to the other
        pad = int(np.ceil(SLOPES.max() * w / 2)) + 1
        padded = np.pad(m, ((pad, pad), (0, 0)))
        xs = np.arange(w)
        every = xs[:: max(1, w // 128)]
        best, best_score = 0.0, -1.0
        for s in SLOPES:  # the slope at which the rows are most nearly all ink or none
            shift = np.round(s * (every - w / 2)).astype(int) + pad
            cover = padded[np.arange(h)[:, None] + shift[None, :], every].mean(axis=1)
            score = float((cover**2).sum())
            if score > best_score:
                best, best_score = s, score
        shift = np.round(best * (xs - w / 2)).astype(int) + pad
        rows = np.arange(h)[:, None] + shift[None, :]
        sheared = padded[rows, xs]
        cover = sheared.mean(axis=1)
        on = cover >= 0.6
        on |= (cover >= 0.3) & (np.roll(on, 1) | np.roll(on, -1))  # a line's thicker rows
        if not on.any():
            continue
        found = np.zeros_like(padded)
        found[rows[on], np.broadcast_to(xs, rows.shape)[on]] = sheared[on]
        found = found[pad : pad + h]
        thick = int(on.sum() / max(1, np.count_nonzero(np.diff(np.r_[0, on.astype(int)]) == 1)))
        if thick > max(3, 1.5 * stroke):
            continue  # a band wider than the pen's stroke: a desk or a shadow, not a ruling
        rest = m & ~found
        across = ndimage.binary_closing(rest, structure=np.ones((thick + 3, 1)))
        found &= ~across
        lines |= found.T if turn else found
    return lines


# --- the digit's marks -------------------------------------------------------------------------


def _digit_marks(mask: np.ndarray, stroke: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(the digit's ink, the ink dropped, warnings) from the ink mask."""
    parts, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        raise NoInk
    areas = np.bincount(parts.ravel())[1:]
    big = areas >= SPECK * areas.max()
    ink = mask & big[parts - 1] & (parts > 0)
    inner = _inner_marks(ink, stroke)
    if inner.any():
        ink = inner
    # marks: ink within about a stroke width of each other belongs together
    reach = max(1, round(stroke))
    marks, m = ndimage.label(
        ndimage.binary_dilation(ink, iterations=reach), structure=np.ones((3, 3))
    )
    marks = np.where(ink, marks, 0)
    h, w = mask.shape
    found = []
    for k, box in enumerate(ndimage.find_objects(marks), start=1):
        if box is None:
            continue
        here = marks[box] == k
        area = int(here.sum())
        y0, y1, x0, x1 = box[0].start, box[0].stop, box[1].start, box[1].stop
        border = y0 == 0 or x0 == 0 or y1 == h or x1 == w
        long_side = max((y1 - y0) / h, (x1 - x0) / w)
        thin = area < 0.25 * (y1 - y0) * (x1 - x0) or min(y1 - y0, x1 - x0) <= 2 * stroke
        edge = border and long_side > 0.6 and thin
        cy, cx = (y0 + y1) / 2 / h - 0.5, (x0 + x1) / 2 / w - 0.5
        weight = np.exp(-((cy**2 + cx**2) / 0.18))
        found.append({"k": k, "area": area, "box": (y0, x0, y1, x1), "edge": edge,
                      "border": border, "score": area * weight})  # fmt: skip
    if not found:
        raise NoInk
    candidates = [f for f in found if not f["edge"]] or found
    digit = max(candidates, key=lambda f: f["score"])
    keep = {digit["k"]}
    y0, x0, y1, x1 = digit["box"]
    grow = 0.4 * max(y1 - y0, x1 - x0)
    for f in candidates:  # parts of the same digit: smaller pieces near it, or mostly inside
        fy0, fx0, fy1, fx1 = f["box"]
        oy = min(fy1, y1 + grow) - max(fy0, y0 - grow)
        ox = min(fx1, x1 + grow) - max(fx0, x0 - grow)
        if oy <= 0 or ox <= 0 or (f["border"] and not digit["border"]):
            continue  # a piece of the frame beside the digit is not part of it
        inside = oy * ox / ((fy1 - fy0) * (fx1 - fx0))
        stacked = min(fx1, x1) - max(fx0, x0) >= 0.5 * min(fx1 - fx0, x1 - x0)
        small = 0.08 * digit["area"] <= f["area"] < 0.5 * digit["area"]
        if small or inside > 0.7 or stacked:
            keep.add(f["k"])
    kept = np.isin(marks, list(keep))
    dropped = mask & ~kept
    notes = []
    similar = [f for f in candidates if f["k"] not in keep and f["area"] >= SIMILAR * digit["area"]]
    if similar:
        notes.append(
            f"{len(similar) + 1} separate marks of similar size: "
            "the picture may hold more than one digit (the one nearest the centre was read)"
        )
    return kept, dropped, notes


def _touches_border(kept: np.ndarray) -> bool:
    edges = (kept[0], kept[-1], kept[:, 0], kept[:, -1])
    return bool(any(e.any() for e in edges))


# --- 7: stroke width ------------------------------------------------------------------------------


def stroke_width(mask: np.ndarray) -> float | None:
    """The typical stroke width of a binary shape in pixels: twice the median distance to the
    background along the strokes' centre lines (the distance transform's ridge), less one."""
    if not mask.any():
        return None
    dist = ndimage.distance_transform_edt(mask)
    ridge = mask & (dist >= ndimage.maximum_filter(dist, size=3))
    return float(2 * np.mean(dist[ridge]) - 1)


def stroke_ratio(ink: np.ndarray, threshold: float = 0.5) -> tuple[float, np.ndarray]:
    """(stroke width over the longer side, the ink resized to MEASURE on its longer side):
    ``ink`` is light on dark in [0, 1], cropped to the digit."""
    h, w = ink.shape
    scale = MEASURE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray(ink.astype(np.float32), mode="F")
    big = np.asarray(img.resize(size, Image.BILINEAR if scale > 1 else Image.BOX))
    big = np.pad(big, 8)
    width = stroke_width(big > threshold)
    return (width or 0.0) / MEASURE, big


def _normalise_stroke(soft: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
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
