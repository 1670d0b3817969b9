"""The paper found and removed (steps 3-4 of ``scan``): its brightness at each point estimated
by a morphological closing wider than the strokes, each channel divided by it, and the channels
the ink shows in kept."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lenet_cli.use.scan.marks import inner_marks
from lenet_cli.use.scan.stroke import stroke_width
from lenet_cli.use.scan.threshold import ink_level, paper_floor, paper_noise, smoothed

EVEN = 0.12  # light is even when the brightest parts of 3x3 blocks differ by less than this


def remove_paper(page: np.ndarray) -> tuple[np.ndarray, float, float]:
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
    smooth0 = smoothed(rough, paper_noise(rough), stroke)
    floor0 = paper_floor(smooth0)
    level0 = ink_level(smooth0, floor0, stroke)
    seen = np.zeros(rough.shape, bool)
    if level0 is not None:
        seen = smooth0 > max(0.5 * level0, floor0)
        stroke = stroke_width(inner_marks(seen, stroke)) or stroke
    size = int(np.clip(4 * stroke + 3, 7, max(7, min(h, w) // 2)))
    dark = [_darkness(c, p) for c, p in zip(channels, paper(size), strict=True)]
    if len(dark) > 1 and seen.any() and not seen.all():  # keep the channels the ink shows in
        contrast = [float(d[seen].mean() - d[~seen].mean()) for d in dark]
        best = max(contrast)
        dark = [d for d, c in zip(dark, contrast, strict=True) if c >= 0.6 * best] or dark
    darkness = np.mean(dark, axis=0).astype(np.float32)
    return darkness, paper_noise(darkness), stroke


def _blocks(img: np.ndarray, side: int, q: float) -> np.ndarray:
    """The q-th percentile of each ``side`` x ``side`` block (the last ones padded)."""
    h, w = img.shape
    gh, gw = -(-h // side), -(-w // side)
    padded = np.pad(img, ((0, gh * side - h), (0, gw * side - w)), mode="edge")
    cells = padded.reshape(gh, side, gw, side).transpose(0, 2, 1, 3).reshape(gh, gw, -1)
    return np.percentile(cells, q, axis=2).astype(np.float32)


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


def _continued(grid: np.ndarray, n: int) -> np.ndarray:
    """``grid`` padded by ``n`` on every side with its slope continued (an odd reflection
    about the edge), within its own range: light that falls off towards the border keeps
    falling, so a closing does not lift the paper there."""
    n0 = min(n, grid.shape[0] - 1)
    n1 = min(n, grid.shape[1] - 1)
    out = np.pad(grid, ((n0, n0), (n1, n1)), mode="reflect", reflect_type="odd")
    out = np.pad(out, ((n - n0, n - n0), (n - n1, n - n1)), mode="edge")
    return np.clip(out, grid.min(), grid.max())


def _lift_enclosed(paper: np.ndarray, level: float) -> np.ndarray:
    """``paper`` raised to the even ``level`` where it dips well below it away from the
    border: the inside of strokes wider than the closing. A dip that reaches the border (a desk, the
    room behind the sheet) is not paper and stays."""
    dips, _ = ndimage.label(paper < (1 - 2 * EVEN) * level)
    edge = np.unique(np.concatenate([dips[0], dips[-1], dips[:, 0], dips[:, -1]]))
    inside = (dips > 0) & ~np.isin(dips, edge)
    return np.where(inside, level, paper)


def _darkness(channel: np.ndarray, paper: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - channel / np.maximum(paper, 1e-3), -1.0, 1.0)
