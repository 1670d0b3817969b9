"""The digit's own ink (step 6 of ``scan``): specks, the picture's frame (a desk, the sheet's
edge, slivers along the border) and a box or circle drawn round the digit left out, the rest
grouped into marks, and the mark nearest the centre with the most ink taken as the digit, with
its nearby parts (not blots such as punch holes, nor a box's sides). Ruled paper's lines are
left out before (``lines.py``)."""

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


def _straight(piece: np.ndarray, stroke: float) -> bool:
    """Whether ``piece`` lies along one straight line: its pixels spread across their main
    direction by no more than a stroke or two (a sheet's edge does; a large digit reaching two
    sides of the picture curves away from any line)."""
    ys, xs = np.nonzero(piece)
    if ys.size < 3:
        return True
    across = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(np.float64)))[0]
    return float(np.sqrt(max(across, 0.0))) <= max(1.5 * stroke, 0.02 * np.hypot(*piece.shape))


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
    edges = (parts[0], parts[-1], parts[:, 0], parts[:, -1])
    sides = [set(e.tolist()) for e in edges]
    contact = np.bincount(np.concatenate(edges), minlength=n + 1)
    # ink along more than half of one side: a desk, the room, a shadow's mass, not a digit
    wide = np.zeros(n + 1, bool)
    for e in edges:
        wide |= np.bincount(e, minlength=n + 1) > 0.5 * e.size
    frame = np.zeros(n + 1, bool)
    for k, box in enumerate(ndimage.find_objects(parts), start=1):
        touching = sum(k in side for side in sides)
        if touching == 0:
            continue
        diagonal = float(np.hypot(box[0].stop - box[0].start, box[1].stop - box[1].start))
        along = contact[k] > max(3 * stroke, 0.1 * min(h, w))
        sliver = close[k] >= (0.4 if along else 0.6) * areas[k] and areas[k] > 2 * stroke * band
        line = (
            touching >= 2
            and areas[k] <= 1.5 * max(stroke, 1.0) * diagonal
            and _straight(parts[box] == k, stroke)
        )
        frame[k] = sliver or line or wide[k]
    return mask & frame[parts]


def digit_marks(mask: np.ndarray, stroke: float) -> tuple[np.ndarray, list[str]]:
    """(the digit's ink, warnings) from the ink mask."""
    parts, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        raise NoInk
    areas = np.bincount(parts.ravel())[1:]
    big = areas >= SPECK * areas.max()
    ink = mask & big[parts - 1] & (parts > 0)
    inner = inner_marks(ink, stroke)
    if inner.any():
        ink = inner
    ink = _without_rings(_without_enclosures(ink), stroke)
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
    return kept, notes


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
    sheet's edge, a ruled line: ``edge``), whether it is a blot or straight, and its score: its
    ink, weighted towards the centre."""
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
        thin = min(y1 - y0, x1 - x0) <= 2 * stroke  # a line, not a digit reaching the edge
        cy, cx = (y0 + y1) / 2 / h - 0.5, (x0 + x1) / 2 / w - 0.5
        weight = np.exp(-((cy**2 + cx**2) / 0.18))
        # a blot (a punch hole, a smudge): as round as a disc of its own thickness and at least
        # as thick as a stroke and a half, or thicker than three strokes whatever its shape
        radius = float(ndimage.distance_transform_edt(np.pad(here, 1)).max())
        blot = (area < 2 * np.pi * radius**2 and 2 * radius >= 1.5 * max(stroke, 1.0)) or (
            2 * radius > 3 * max(stroke, 1.0) + 2
        )
        found.append({"k": k, "area": area, "box": (y0, x0, y1, x1), "border": border,
                      "edge": border and long_side > 0.6 and thin, "encloses": False,
                      "blot": blot, "straight": _straight(here, stroke),
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


def _without_rings(ink: np.ndarray, stroke: float) -> np.ndarray:
    """``ink`` less a circle or box drawn round the digit and touching it (one piece of ink
    with the digit): the piece's outline (its ink within a stroke and a half of the outside of
    the piece with its gaps closed and its holes filled) is a ring when what it leaves inside
    is a good part of the ink and spans much of the piece. A digit's own loops lie on its
    outline (a 0, 6, 8, 9 leave little inside); an open digit is all outline."""
    parts, _ = ndimage.label(ink, structure=np.ones((3, 3)))
    out = ink.copy()
    gap = max(1, round(stroke))
    for k, box in enumerate(ndimage.find_objects(parts), start=1):
        if box is None:
            continue
        piece = np.pad(parts[box] == k, gap + 1)
        area = int(piece.sum())
        if area < 50:
            continue
        filled = ndimage.binary_fill_holes(ndimage.binary_closing(piece, iterations=gap))
        if filled.sum() < 3 * area:
            continue  # not much enclosed: no ring round anything
        ring = piece & (ndimage.distance_transform_edt(filled) <= 1.5 * stroke + 1)
        inside = piece & ~ring
        if inside.sum() < 0.25 * area:
            continue
        rows, cols = np.nonzero(inside)
        all_rows, all_cols = np.nonzero(piece)
        if max(np.ptp(rows), np.ptp(cols)) < 0.35 * max(np.ptp(all_rows), np.ptp(all_cols)):
            continue
        inner = gap + 1
        ring = ring[inner:-inner, inner:-inner]
        out[box] &= ~(ring & (parts[box] == k))
    return out


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


def _box_side(f: dict, digit: dict) -> bool:
    """Whether the straight mark ``f`` is a side of a box the digit is written in: upright,
    beside the digit and at least as tall, or lying above or below it and much wider."""
    if not f["straight"]:
        return False
    y0, x0, y1, x1 = digit["box"]
    fy0, fx0, fy1, fx1 = f["box"]
    beside = (fx1 <= x0 or fx0 >= x1) and fy1 - fy0 >= 0.9 * (y1 - y0)
    over = (fy1 <= y0 or fy0 >= y1) and fx1 - fx0 >= 1.5 * (x1 - x0)
    return beside or over


def _parts_of(digit: dict, candidates: list[dict]) -> set[int]:
    """The marks that belong to ``digit``: smaller pieces near it, or mostly inside its box, or
    stacked above or below it; never a piece of the frame beside a digit that is not, a blot
    or a side of a box it is written in."""
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
        if _box_side(f, digit):
            continue
        inside = oy * ox / ((fy1 - fy0) * (fx1 - fx0))
        stacked = min(fx1, x1) - max(fx0, x0) >= 0.5 * min(fx1 - fx0, x1 - x0)
        small = 0.08 * digit["area"] <= f["area"] < 0.5 * digit["area"]
        if small or inside > 0.7 or stacked:
            keep.add(f["k"])
    return keep


def touches_border(kept: np.ndarray) -> bool:
    edges = (kept[0], kept[-1], kept[:, 0], kept[:, -1])
    return bool(any(e.any() for e in edges))
