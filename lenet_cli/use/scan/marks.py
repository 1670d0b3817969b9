"""The digit's own ink (step 6 of ``scan``): the marks grouped, specks, the picture's frame
(a desk, the sheet's edge, slivers along the border) and ruled paper's lines left out, and the
mark nearest the centre with the most ink taken as the digit, with its nearby parts."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SPECK = 0.03  # a mark with less ink than this share of the largest is a speck


SIMILAR = 0.4  # another mark with this share of the digit's ink is "of similar size"
# the least a digit is: this many pixels of ink, this tall or wide (at working size); less is
# the paper's grain or a speck of dust on blank paper
LEAST_INK, LEAST_SPAN = 24, 8


class NoInk(Exception):
    """Nothing in the picture stands out of the paper."""


def inner_marks(mask: np.ndarray, stroke: float) -> np.ndarray:
    """The mask less what belongs to the picture's frame (``frame_ink``); all of it when nothing
    else is left."""
    inner = mask & ~frame_ink(mask, stroke)
    return inner if inner.any() else mask


def frame_ink(mask: np.ndarray, stroke: float) -> np.ndarray:
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
    # ink along more than half of one side: a desk, the room, a shadow's mass, not a digit
    wide = np.zeros(n + 1, bool)
    for side in (parts[0], parts[-1], parts[:, 0], parts[:, -1]):
        wide |= np.bincount(side, minlength=n + 1) > 0.5 * side.size
    frame = np.zeros(n + 1, bool)
    for k, box in enumerate(ndimage.find_objects(parts), start=1):
        touching = sum(k in side for side in sides)
        if touching == 0:
            continue
        diagonal = float(np.hypot(box[0].stop - box[0].start, box[1].stop - box[1].start))
        along = contact[k] > max(3 * stroke, 0.1 * min(h, w))
        sliver = close[k] >= (0.4 if along else 0.6) * areas[k] and areas[k] > 2 * stroke * band
        line = touching >= 2 and areas[k] <= 1.5 * max(stroke, 1.0) * diagonal
        frame[k] = sliver or line or wide[k]
    return mask & frame[parts]


SLOPES = np.linspace(-0.25, 0.25, 51)  # ruled lines up to 14 degrees off the axes


def ruled_lines(mask: np.ndarray, stroke: float) -> np.ndarray:
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
        runs = max(1, np.count_nonzero(np.diff(np.r_[0, on.astype(int)]) == 1))
        thick = int(on.sum() / runs)
        ruling = runs >= 3 and thick <= 0.35 * h / runs  # parallel lines, well apart
        if thick > max(3, 1.5 * stroke) and not ruling:
            continue  # a band wider than the pen's stroke: a desk or a shadow, not a ruling
        rest = m & ~found
        across = ndimage.binary_closing(rest, structure=np.ones((thick + 3, 1)))
        found &= ~across
        lines |= found.T if turn else found
    return lines


def digit_marks(mask: np.ndarray, stroke: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(the digit's ink, the ink dropped, warnings) from the ink mask."""
    parts, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        raise NoInk
    areas = np.bincount(parts.ravel())[1:]
    big = areas >= SPECK * areas.max()
    ink = mask & big[parts - 1] & (parts > 0)
    inner = inner_marks(ink, stroke)
    if inner.any():
        ink = inner
    ink = _without_enclosures(ink)
    # marks: ink within about a stroke width of each other belongs together
    reach = max(1, round(stroke))
    marks, _ = ndimage.label(
        ndimage.binary_dilation(ink, iterations=reach), structure=np.ones((3, 3))
    )
    marks = np.where(ink, marks, 0)
    found = _describe(marks, stroke)
    if not found:
        raise NoInk
    _mark_enclosures(found)
    candidates = [f for f in found if not (f["edge"] or f["encloses"])] or found
    digit = max(candidates, key=lambda f: f["score"])
    keep = _parts_of(digit, candidates)
    kept = np.isin(marks, list(keep))
    _check_enough(kept)
    notes = []
    similar = [f for f in candidates if f["k"] not in keep and f["area"] >= SIMILAR * digit["area"]]
    if similar:
        notes.append(
            f"{len(similar) + 1} separate marks of similar size: "
            "the picture may hold more than one digit (the one nearest the centre was read)"
        )
    return kept, mask & ~kept, notes


def _check_enough(kept: np.ndarray) -> None:
    """Raise NoInk when the digit's ink is too little to be one: fewer than ``LEAST_INK``
    pixels or less than ``LEAST_SPAN`` tall and wide (less in a small picture)."""
    h, w = kept.shape
    rows, cols = np.nonzero(kept)
    span = max(np.ptp(rows), np.ptp(cols)) + 1 if rows.size else 0
    if rows.size < min(LEAST_INK, 0.01 * h * w) or span < min(LEAST_SPAN, 0.2 * max(h, w)):
        raise NoInk


def _describe(marks: np.ndarray, stroke: float) -> list[dict]:
    """Each mark's number, ink, box, whether it lies along the border as a long thin line (the
    sheet's edge, a ruled line: ``edge``) and its score: its ink, weighted towards the centre."""
    h, w = marks.shape
    found = []
    for k, box in enumerate(ndimage.find_objects(marks), start=1):
        if box is None:
            continue
        here = marks[box] == k
        area = int(here.sum())
        y0, y1, x0, x1 = box[0].start, box[0].stop, box[1].start, box[1].stop
        border = y0 == 0 or x0 == 0 or y1 == h or x1 == w
        long_side = max((y1 - y0) / h, (x1 - x0) / w)
        thin = min(y1 - y0, x1 - x0) <= 2 * stroke or (
            long_side > 0.9 and area < 0.25 * (y1 - y0) * (x1 - x0)
        )
        cy, cx = (y0 + y1) / 2 / h - 0.5, (x0 + x1) / 2 / w - 0.5
        weight = np.exp(-((cy**2 + cx**2) / 0.18))
        # a solid blot (a punch hole, a smudge) is wider than three strokes everywhere inside
        thickness = 2 * float(ndimage.distance_transform_edt(np.pad(here, 1)).max())
        found.append({"k": k, "area": area, "box": (y0, x0, y1, x1), "border": border,
                      "edge": border and long_side > 0.6 and thin, "encloses": False,
                      "blot": thickness > 3 * max(stroke, 1.0) + 2,
                      "score": area * weight})  # fmt: skip
    return found


def _without_enclosures(ink: np.ndarray) -> np.ndarray:
    """``ink`` less the pieces of ink that enclose another (``_mark_enclosures``), found
    before nearby pieces are grouped: a circle drawn close round a digit is not joined to it."""
    parts, _ = ndimage.label(ink, structure=np.ones((3, 3)))
    pieces = [
        {
            "k": k,
            "box": (b[0].start, b[1].start, b[0].stop, b[1].stop),
            "area": int((parts[b] == k).sum()),
            "encloses": False,
        }  # fmt: skip
        for k, b in enumerate(ndimage.find_objects(parts), start=1)
        if b is not None
    ]
    _mark_enclosures(pieces)
    frames = [f["k"] for f in pieces if f["encloses"]]
    return ink & ~np.isin(parts, frames) if frames else ink


def _mark_enclosures(found: list[dict]) -> None:
    """Set ``encloses`` on each mark whose box holds another substantial mark well inside
    it: a box printed around the digit, a circle drawn round it. A digit's own loop is joined
    to it, and a speck inside a 0 has far less ink than the 0."""
    for outer in found:
        oy0, ox0, oy1, ox1 = outer["box"]
        for inner in found:
            iy0, ix0, iy1, ix1 = inner["box"]
            inside = oy0 < iy0 and ox0 < ix0 and iy1 < oy1 and ix1 < ox1
            if (
                inner is not outer
                and inside
                and inner["area"] >= 0.15 * outer["area"]
                and iy1 - iy0 >= 0.3 * (oy1 - oy0)
            ):
                outer["encloses"] = True
                break


def _parts_of(digit: dict, candidates: list[dict]) -> set[int]:
    """The marks that belong to ``digit``: smaller pieces near it, or mostly inside its box, or
    stacked above or below it; never a piece of the frame beside a digit that is not."""
    keep = {digit["k"]}
    y0, x0, y1, x1 = digit["box"]
    grow = 0.4 * max(y1 - y0, x1 - x0)
    for f in candidates:
        fy0, fx0, fy1, fx1 = f["box"]
        oy = min(fy1, y1 + grow) - max(fy0, y0 - grow)
        ox = min(fx1, x1 + grow) - max(fx0, x0 - grow)
        if oy <= 0 or ox <= 0 or (f["border"] and not digit["border"]):
            continue
        if f["blot"] and not digit["blot"]:
            continue  # a punch hole or a smudge beside the digit is not part of it
        inside = oy * ox / ((fy1 - fy0) * (fx1 - fx0))
        stacked = min(fx1, x1) - max(fx0, x0) >= 0.5 * min(fx1 - fx0, x1 - x0)
        small = 0.08 * digit["area"] <= f["area"] < 0.5 * digit["area"]
        if small or inside > 0.7 or stacked:
            keep.add(f["k"])
    return keep


def touches_border(kept: np.ndarray) -> bool:
    edges = (kept[0], kept[-1], kept[:, 0], kept[:, -1])
    return bool(any(e.any() for e in edges))
