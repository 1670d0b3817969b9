"""The ink told from the paper (step 5 of ``scan``): the paper's noise and floor, the ink's own
darkness, the threshold between them, and strokes wider than the paper's closing filled in."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lenet_cli.use.scan.marks import NoInk, frame_ink


def paper_noise(img: np.ndarray) -> float:
    """The paper's pixel noise: robust spread of each pixel around its 3x3 neighbours' mean
    (the ink's edges are too few to move the median)."""
    rest = img - ndimage.uniform_filter(img, size=3)
    return float(1.4826 * np.median(np.abs(rest)) / 0.943)


def smoothed(darkness: np.ndarray, noise: float, stroke: float) -> np.ndarray:
    """Darkness averaged over a quarter of a stroke width (at least half a pixel, more in a
    noisy picture): a matched filter that keeps thin strokes and fills a pencil's grain."""
    return ndimage.gaussian_filter(darkness, _sigma(noise, stroke))


def smoothest(darkness: np.ndarray, noise: float, stroke: float) -> np.ndarray:
    """``smoothed``'s darkness, or more smoothed where that lifts the ink further out of the
    paper's noise: the darkest thousandth of the picture over the paper's floor, tried at
    1, 1.6 and 2.5 times the first width (a faint pencil in a noisy photo needs a wider
    average than its stroke measured in that noise suggests)."""
    first = _sigma(noise, stroke)
    best, best_score = None, -1.0
    for k in (1.0, 1.6, 2.5):
        sigma = first * k
        if k > 1 and sigma > max(first, min(4.0, min(darkness.shape) / 30)):
            break
        smooth = ndimage.gaussian_filter(darkness, sigma)
        score = float(np.percentile(smooth, 99.9)) / paper_floor(smooth)
        if score > best_score * 1.05:  # wider only when clearly better
            best, best_score = smooth, score
    return best


def _sigma(noise: float, stroke: float) -> float:
    grain = 0.0 if noise <= 0.02 else 1.0 if noise <= 0.04 else 1.5 if noise <= 0.07 else 2.0
    return max(0.5, 0.25 * stroke, min(grain, 0.5 * stroke))


def paper_floor(smooth: np.ndarray) -> float:
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


def ink_level(smooth: np.ndarray, floor: float, stroke: float) -> float | None:
    """How dark the ink is: the 90th percentile of the larger marks that stand out of the
    paper, leaving out what belongs to the frame (a desk, a shadow's rim), None if nothing
    stands out. Marks are taken at the paper's floor and again at half the darkness found
    there (where a faint frame no longer joins the digit); the darker answer is kept."""
    candidates = smooth > floor
    if candidates.sum() < 6:
        return None
    everything = _large_level(smooth, candidates)
    strong = smooth > max(floor, 0.5 * everything)
    levels = [_large_level(smooth, m & ~frame_ink(m, stroke)) for m in (candidates, strong)]
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


def ink_threshold(smooth: np.ndarray, stroke: float) -> tuple[float, float]:
    """(ink level, threshold): half the ink's darkness, at least the paper's floor."""
    floor = paper_floor(smooth)
    level = ink_level(smooth, floor, stroke)
    if level is None:
        raise NoInk
    return level, max(0.5 * level, floor)


def fill_hollow(
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
