"""Ruled and squared paper's lines found (part of step 6 of ``scan``): straight runs of ink
across the picture, left out of the digit's ink except where a stroke crosses them."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SLOPES = np.linspace(-0.25, 0.25, 51)  # ruled lines up to 14 degrees off the axes


def _best_slope(sampled: np.ndarray, offsets: np.ndarray, pad: int) -> float:
    """The slope at which the rows of ``sampled`` (some columns of the mask, each at its
    offset from the middle) are most nearly all ink or none: the sum of each sheared row's
    squared share of ink, counted from the ink pixels alone (a picture is mostly paper)."""
    h, n = sampled.shape
    ys, cols = np.nonzero(sampled)
    best, best_score = 0.0, -1.0
    for s in SLOPES:
        rows = ys + pad - (np.round(s * offsets).astype(int) + pad)[cols]
        inside = (rows >= 0) & (rows < h)
        cover = np.bincount(rows[inside], minlength=h) / n
        score = float((cover**2).sum())
        if score > best_score:
            best, best_score = s, score
    return best


def _rows_on(cover: np.ndarray, least: float) -> np.ndarray:
    """The rows at least ``least`` ink, and their neighbours at least half that (a line's
    thicker rows)."""
    on = cover >= least
    return on | ((cover >= least / 2) & (np.roll(on, 1) | np.roll(on, -1)))


def _evenly_spaced(starts: np.ndarray) -> bool:
    """Whether runs starting at ``starts`` follow each other at nearly one spacing (a
    ruling's)."""
    gaps = np.diff(starts)
    return gaps.size >= 2 and gaps.max() <= 1.6 * gaps.min()


def ruled_lines(mask: np.ndarray, stroke: float) -> np.ndarray:
    """The pixels of ruled (or squared) paper's lines: straight runs of ink across the
    picture, horizontal or vertical within 14 degrees, found by summing the mask along each
    slope; one line must cross from side to side, four or more parallel ones well apart and
    evenly spaced may be broken (a faint ruling). Where a stroke of the digit crosses a line,
    the crossing is kept."""
    lines = np.zeros(mask.shape, bool)
    for turn in (False, True):
        m = mask.T if turn else mask
        h, w = m.shape
        parts, _ = ndimage.label(m, structure=np.ones((3, 3)))
        crosses = bool((set(parts[:, 0].tolist()) & set(parts[:, -1].tolist())) - {0})
        if not crosses and m.sum() < 4 * 0.45 * w:
            continue  # too little ink for the four broken lines a ruling needs then
        pad = int(np.ceil(SLOPES.max() * w / 2)) + 1
        padded = np.pad(m, ((pad, pad), (0, 0)))
        xs = np.arange(w)
        every = xs[:: max(1, w // 128)]
        best = _best_slope(m[:, every], every - w / 2, pad)
        shift = np.round(best * (xs - w / 2)).astype(int) + pad
        rows = np.arange(h)[:, None] + shift[None, :]
        sheared = padded[rows, xs]
        cover = sheared.mean(axis=1)
        # rows mostly ink; a faint ruling broken up is only half ink, and is taken as one only
        # when it looks like one (below)
        on = _rows_on(cover, 0.6 if crosses else 0.45)
        if not on.any():
            continue
        found = np.zeros_like(padded)
        found[rows[on], np.broadcast_to(xs, rows.shape)[on]] = sheared[on]
        found = found[pad : pad + h]
        starts = np.flatnonzero(np.diff(np.r_[0, on.astype(int)]) == 1)
        runs = max(1, starts.size)
        thick = int(on.sum() / runs)
        ruling = runs >= 3 and thick <= 0.35 * h / runs  # parallel lines, well apart
        if thick > max(3, 1.5 * stroke) and not ruling:
            continue  # a band wider than the pen's stroke: a desk or a shadow, not a ruling
        if not crosses and not (ruling and runs >= 4 and _evenly_spaced(starts)):
            continue  # lines that stop short are a ruling only when many and evenly spaced
        rest = m & ~found
        across = ndimage.binary_closing(rest, structure=np.ones((thick + 3, 1)))
        found &= ~across
        lines |= found.T if turn else found
    return lines
