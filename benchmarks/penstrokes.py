"""Pen-stroke photos of MNIST's test digits, a second set made apart from photolike.py, and how
well `lenet predict` reads them.

    python benchmarks/penstrokes.py --checkpoint RUN [--n 780] [--seed 7] [--kinds a,b]
        [--out DIR] [--json] [--sheet PNG]

How a picture is made. The MNIST digit is enlarged, its shape thinned to a one-pixel centre
line, and that line cut into short segments. The segments are bent by a smooth random
displacement and slanted, so the digit looks written by another hand, then inked again at the
picture's own resolution by a pen whose radius and darkness follow a smooth "pressure" field:
the segments are grouped into bands of similar radius, and each band's coverage comes from
the distance to its segments, anti-aliased at the edge. Under the ink lies a paper model
(fibres and grain, a tint, rulings, grids, printed boxes, a margin, punch holes, a crumpled
sheet's shading, a mirrored digit showing through from the back, a chalkboard), and over it
a phone camera model (white balance, vignetting, a glare spot, hand-shake blur, defocus,
sensor noise, downscaling, JPEG). ``KINDS`` lists the thirteen looks; ``clean`` is the pen
alone on white paper, saved as PNG. A digit whose centre line cannot redraw it (a filled loop,
a blot) is skipped for another.

``--n`` counts pictures in all, the kinds taken in turn, so the default 780 is 60 of each.
Picture number i of a kind depends on (seed, kind, i) only, whatever ``--n`` and ``--kinds``
are. The pictures are written into ``--out`` (a temporary folder without it) as
``KIND-NNN-dLABEL.png|jpg``, read with lenet predict's engine (the scanner's preparation, then
MNIST's), and scored per kind and overall; ``--json`` prints one JSON document with the wrong
answers. As a control the same number of MNIST test digits, saved unchanged as PNG files, are
read too ("mnist-file", not in the overall). ``--sheet`` writes a contact sheet: four pictures
of each kind with the label and lenet's answer.

The script imports photolike.py from beside it (run it as a script, or with benchmarks/ on
``sys.path``).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from photolike import Sample, measure, mnist_files, mnist_test, thin, write
from PIL import Image, ImageDraw
from scipy import ndimage

KINDS = {
    "ballpoint": "ballpoint pen: pressure sets width and darkness, the ball skips; warm paper",
    "graph": "graph paper, a fine grid and sometimes a bold one; pen or pencil",
    "margin": "blue-ruled paper, a red margin line, sometimes punch holes",
    "crumpled": "a crumpled sheet: bent, creased and shaded",
    "glare": "strong vignetting and a glare spot near or over the digit",
    "tiny-jpeg": "pictures 40-80 px across, JPEG quality 25-65",
    "big-offcentre": "pictures 1200-1920 px across, a small digit far from the centre",
    "motion": "hand-shake blur, a warm or cool white balance, noise",
    "bleed": "felt-tip or gel ink spreading into soft paper, coloured inks",
    "boxed": "the digit in a printed box, a row of boxes, or a hand-drawn ring",
    "show-through": "a mirrored digit from the back of the sheet showing through",
    "chalk": "chalk on a green or black board, light on dark, old smudges",
    "clean": "the pen alone on white paper, PNG, no camera",
}

INKS = {
    "black": (0.08, 0.08, 0.1),
    "blue": (0.12, 0.2, 0.62),
    "ballblue": (0.18, 0.22, 0.55),
    "red": (0.75, 0.1, 0.12),
    "green": (0.05, 0.5, 0.25),
    "purple": (0.42, 0.15, 0.6),
    "pink": (0.9, 0.2, 0.55),
    "orange": (0.92, 0.45, 0.08),
    "teal": (0.0, 0.48, 0.52),
    "pencil": (0.38, 0.38, 0.4),
}
PENS = ["black", "blue", "ballblue"]
ASPECTS = [(3, 4), (4, 3), (1, 1), (9, 16), (16, 9), (2, 3), (3, 2)]
FRAME = 112  # the side of the square the centre line is found in


@dataclass
class Picture(Sample):
    """A ``Sample`` that also knows its number within its kind (two pictures of a kind may
    show the same MNIST digit, so the file is named by the number)."""

    number: int = 0

    @property
    def name(self) -> str:
        ext = "jpg" if self.fmt == "jpeg" else "png"
        return f"{self.kind}-{self.number:03d}-d{self.label}.{ext}"


# --- the pen -----------------------------------------------------------------------------------


def _smooth(shape, cells: float, rng) -> np.ndarray:
    """Smooth random field in about [-1, 1], ``cells`` features across the longer side."""
    h, w = shape
    gh = max(2, int(round(cells * h / max(h, w))) + 2)
    gw = max(2, int(round(cells * w / max(h, w))) + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    field = ndimage.zoom(coarse, (h / gh, w / gw), order=3)[:h, :w]
    if field.shape != (h, w):
        field = np.pad(field, ((0, h - field.shape[0]), (0, w - field.shape[1])), mode="edge")
    return field / (np.abs(field).max() + 1e-6)


def _shape(digit: np.ndarray) -> np.ndarray:
    """The digit's ink as a mask in the FRAME-pixel square."""
    big = Image.fromarray(digit).resize((FRAME, FRAME), Image.BICUBIC)
    soft = ndimage.gaussian_filter(np.asarray(big, np.float32) / 255, 1.2)
    return soft > 0.4 * soft.max()


def drawable(digit: np.ndarray) -> bool:
    """Whether the centre line, inked as wide as the digit's own strokes, covers the digit
    (a filled loop or a blot thins to a short spur and would come back as another digit)."""
    mask = _shape(digit)
    line = thin(mask)
    r = float(np.median(ndimage.distance_transform_edt(mask)[line]))
    redrawn = ndimage.distance_transform_edt(~line) <= 1.5 * r + 1
    return (mask & ~redrawn).sum() <= 0.05 * mask.sum()


def centre_line(digit: np.ndarray, rng, wobble: float = 2.5):
    """The centre line as segments [M, 2, 2] of (y, x) points in the FRAME square, bent and
    slanted as another writer would, and the box (y0, x0, y1, x1) around them."""
    line = thin(_shape(digit))
    ys, xs = np.nonzero(line)
    pieces = []
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each neighbour pair once
        y2, x2 = ys + dy, xs + dx
        ok = (y2 < FRAME) & (x2 >= 0) & (x2 < FRAME)
        ok[ok] &= line[y2[ok], x2[ok]]
        ends = [np.stack([ys[ok], xs[ok]], -1), np.stack([y2[ok], x2[ok]], -1)]
        pieces.append(np.stack(ends, 1))
    segs = np.concatenate(pieces).astype(np.float32)
    if wobble > 0 and len(segs):
        dy = _smooth((FRAME, FRAME), 3, rng) * wobble
        dx = _smooth((FRAME, FRAME), 3, rng) * wobble
        iy = np.clip(segs[..., 0].astype(int), 0, FRAME - 1)
        ix = np.clip(segs[..., 1].astype(int), 0, FRAME - 1)
        segs = segs + np.stack([dy[iy, ix], dx[iy, ix]], -1)
    segs[..., 1] += rng.uniform(-0.18, 0.18) * (segs[..., 0] - FRAME / 2)  # slant
    box = (segs[..., 0].min(), segs[..., 1].min(), segs[..., 0].max(), segs[..., 1].max())
    return segs, box


def ink(segs, box, shape, height, centre, width_frac, pressure_var, rng, bands=6):
    """(coverage, pressure), both [H, W] in [0, 1]: the centre line drawn ``height`` pixels
    tall around ``centre`` (y, x) with a pen of radius ``width_frac * height / 2`` that a
    smooth pressure field widens or narrows by up to ``pressure_var``."""
    h, w = shape
    y0, x0, y1, x1 = box
    s = height / max(y1 - y0, 1e-3)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    pts = np.empty_like(segs)
    pts[..., 0] = (segs[..., 0] - cy) * s + centre[0]
    pts[..., 1] = (segs[..., 1] - cx) * s + centre[1]
    mid = pts.mean(axis=1)
    field = _smooth((FRAME, FRAME), 2.5, rng)
    my = np.clip(((mid[:, 0] - centre[0]) / s + cy).astype(int), 0, FRAME - 1)
    mx = np.clip(((mid[:, 1] - centre[1]) / s + cx).astype(int), 0, FRAME - 1)
    press = np.clip(1 + pressure_var * field[my, mx], 0.25, 1.6)
    radius = np.maximum(0.6, width_frac * height / 2 * press)
    edges = np.quantile(radius, np.linspace(0, 1, bands + 1))
    cover = np.zeros(shape, np.float32)
    pmap = np.zeros(shape, np.float32)
    for k in range(bands):  # one pen radius per band of segments
        sel = (radius >= edges[k]) & (radius <= edges[k + 1] + 1e-6)
        if not sel.any():
            continue
        im = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(im)
        for a, b in pts[sel]:
            draw.line([(a[1], a[0]), (b[1], b[0])], fill=255, width=1)
        drawn = np.asarray(im) > 0
        if not drawn.any():
            continue
        reach = ndimage.distance_transform_edt(~drawn)
        c = np.clip(float(radius[sel].mean()) - reach + 0.5, 0, 1).astype(np.float32)
        pmap = np.where(c > cover, float(np.clip(press[sel].mean(), 0, 1.6) / 1.6), pmap)
        cover = np.maximum(cover, c)
    return cover, pmap


def pen_digit(digit, rng, shape, height_frac=(0.45, 0.7), off=0.08, width=(0.07, 0.12),
              pvar=0.25, wobble=2.5):  # fmt: skip
    """The digit re-inked in a picture of ``shape``: (coverage, pressure, height, centre)."""
    h, w = shape
    segs, box = centre_line(digit, rng, wobble)
    height = rng.uniform(*height_frac) * min(h, w)
    centre = (h / 2 + rng.uniform(-off, off) * h, w / 2 + rng.uniform(-off, off) * w)
    cover, press = ink(segs, box, shape, height, centre, rng.uniform(*width), pvar, rng)
    return cover, press, height, centre


# --- paper and camera --------------------------------------------------------------------------


def fibres(shape, rng, n=None, contrast=0.04) -> np.ndarray:
    """Paper brightness around 1: short dark fibres at random angles plus fine grain."""
    h, w = shape
    im = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(im)
    for _ in range(n or int(h * w / 900)):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a = rng.uniform(0, np.pi)
        length = rng.uniform(4, 25)
        end = (x + length * np.cos(a), y + length * np.sin(a))
        draw.line([(x, y), end], fill=int(rng.uniform(60, 255)))
    lines = ndimage.gaussian_filter(np.asarray(im, np.float32) / 255, 0.6)
    grain = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 0.8)
    return 1 - contrast * lines + 0.012 * grain


def paper_colour(rng, tint="any") -> np.ndarray:
    if tint == "warm":
        return np.array([1.0, rng.uniform(0.93, 0.97), rng.uniform(0.80, 0.9)])
    if tint == "cool":
        return np.array([rng.uniform(0.86, 0.93), rng.uniform(0.93, 0.97), 1.0])
    return np.array([1.0, 1.0, 1.0]) - rng.uniform(0, 0.06, 3)


def paper(shape, rng, tint="any", contrast=0.04) -> np.ndarray:
    """A sheet [H, W, 3]: its colour times its fibres."""
    return paper_colour(rng, tint)[None, None] * fibres(shape, rng, contrast=contrast)[..., None]


def lay(page, cover, colour, strength=1.0) -> np.ndarray:
    """``page`` with ``colour`` laid over it where ``cover`` (times ``strength``) says."""
    a = np.clip(cover * strength, 0, 1)[..., None]
    return page * (1 - a * (1 - np.asarray(colour, np.float32)))


def canvas(rng, long_side: int) -> tuple[int, int]:
    """(width, height) of a picture in one of the usual aspect ratios."""
    a, b = ASPECTS[rng.integers(len(ASPECTS))]
    if a >= b:
        return long_side, int(round(long_side * b / a))
    return int(round(long_side * a / b)), long_side


def _glare(img, rng, spot) -> np.ndarray:
    """A bright elliptical spot at ``spot`` = (y, x, radius, intensity)."""
    h, w = img.shape[:2]
    gy, gx, gr, gi = spot
    yy, xx = np.mgrid[0:h, 0:w]
    ang = rng.uniform(0, np.pi)
    u = (xx - gx) * np.cos(ang) + (yy - gy) * np.sin(ang)
    v = -(xx - gx) * np.sin(ang) + (yy - gy) * np.cos(ang)
    g = np.exp(-((u / gr) ** 2 + (v / (gr * rng.uniform(0.4, 0.8))) ** 2))
    return img + gi * g[..., None] * (1.15 - img * 0.3)


def _shake(img, rng, length: float) -> np.ndarray:
    """Motion blur along a random direction, ``length`` pixels long."""
    size = int(round(length)) | 1
    k = np.zeros((size, size), np.float32)
    k[size // 2, :] = 1
    k = ndimage.rotate(k, rng.uniform(0, 180), reshape=False, order=1)
    k /= k.sum()
    return np.stack([ndimage.convolve(img[..., c], k, mode="nearest") for c in range(3)], -1)


def _resize(img, size, how: str) -> np.ndarray:
    ow, oh = size
    f = {"lanczos": Image.LANCZOS, "box": Image.BOX, "bicubic": Image.BICUBIC}[how]
    chans = [Image.fromarray(np.ascontiguousarray(img[..., c], np.float32)) for c in range(3)]
    return np.stack([np.asarray(c.resize((ow, oh), f)) for c in chans], -1)


def camera(page, rng, out_size=None, wb=None, vignette=0.0, spot=None, shake=0.0,
           defocus=0.0, noise=0.01, jpeg=None, down="lanczos") -> tuple[bytes, str]:  # fmt: skip
    """A phone's picture of ``page`` (RGB floats in [0, 1]): the file's bytes and format."""
    img = page.astype(np.float32)
    h, w = img.shape[:2]
    if wb is not None:
        img = img * np.asarray(wb, np.float32)
    if vignette > 0:
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65)
        r2 = ((yy - cy) / h) ** 2 + ((xx - cx) / w) ** 2
        img = img * (1 - vignette * np.clip(r2 / 0.5, 0, 1))[..., None]
    if spot is not None:
        img = _glare(img, rng, spot)
    if shake > 0.5:
        img = _shake(img, rng, shake)
    if defocus > 0:
        img = np.stack([ndimage.gaussian_filter(img[..., c], defocus) for c in range(3)], -1)
    img = np.clip(img, 0, 1)
    if out_size is not None and tuple(out_size) != (w, h):
        img = _resize(img, out_size, down)
    # sensor noise, stronger in the light, slightly correlated between neighbours
    n = ndimage.gaussian_filter(rng.standard_normal(img.shape).astype(np.float32), (0.5, 0.5, 0))
    img = img + noise * n * np.sqrt(np.clip(img, 0.02, 1)) * 1.6
    img = np.clip(img, 0, 1) ** (1 / 1.1)
    out = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    buf = io.BytesIO()
    if jpeg:
        out.save(buf, "JPEG", quality=int(jpeg), subsampling=2)  # 4:2:0, as phones save
        return buf.getvalue(), "jpeg"
    out.save(buf, "PNG")
    return buf.getvalue(), "png"


def phone(page, rng, noise=0.01, jpeg=(75, 95)) -> tuple[bytes, str]:
    """The usual camera: a little defocus, some noise, a JPEG of middling quality."""
    return camera(page, rng, noise=noise, defocus=rng.uniform(0.3, 1.0), jpeg=rng.integers(*jpeg))


# --- the kinds ---------------------------------------------------------------------------------


def ballpoint(d, rng):
    w, h = canvas(rng, int(rng.integers(400, 700)))
    cover, press, *_ = pen_digit(d, rng, (h, w), width=(0.035, 0.07), pvar=0.6)
    skip = _smooth((h, w), max(h, w) / 6, rng)
    dark = np.clip(0.35 + 0.75 * press + 0.15 * skip, 0.15, 1.0)  # heavier pressure, darker
    dark = np.where(skip < -0.55, dark * 0.3, dark)  # where the ball skips
    page = paper_colour(rng, "warm")[None, None] * fibres((h, w), rng)[..., None]
    page = lay(page, cover * dark, INKS[rng.choice(["ballblue", "black", "blue"])], 0.95)
    return camera(page, rng, wb=(1, 1, 1), vignette=rng.uniform(0, 0.2), noise=0.012,
                  defocus=rng.uniform(0, 0.8), jpeg=rng.integers(70, 95))  # fmt: skip


def graph(d, rng):
    w, h = canvas(rng, int(rng.integers(400, 700)))
    cover, _, height, _ = pen_digit(d, rng, (h, w))
    page = paper((h, w), rng, contrast=0.02)
    pitch = height * rng.uniform(0.12, 0.3)
    colour = [(0.3, 0.55, 0.85), (0.35, 0.7, 0.5), (0.6, 0.6, 0.6), (0.9, 0.55, 0.35)]
    colour = colour[rng.integers(4)]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(-0.04, 0.04)
    u = xx * np.cos(ang) + yy * np.sin(ang) + rng.uniform(0, pitch)
    v = -xx * np.sin(ang) + yy * np.cos(ang) + rng.uniform(0, pitch)
    lw = rng.uniform(0.6, 1.4)
    grid = np.zeros((h, w), np.float32)
    for t in (u, v):
        dist = np.abs((t + pitch / 2) % pitch - pitch / 2)
        grid = np.maximum(grid, np.clip(lw - dist + 0.5, 0, 1) * 0.55)
        if rng.random() < 0.6:  # a bolder line every fifth
            dist5 = np.abs((t + 2.5 * pitch) % (5 * pitch) - 2.5 * pitch)
            grid = np.maximum(grid, np.clip(1.6 * lw - dist5 + 0.5, 0, 1) * 0.8)
    page = lay(page, grid, colour, rng.uniform(0.5, 0.9))
    if rng.random() < 0.4:  # pencil, with gaps in the graphite
        pen = INKS["pencil"]
        cover = cover * (0.6 + 0.4 * (rng.random((h, w)) > 0.3))
    else:
        pen = INKS[rng.choice(PENS)]
    return phone(lay(page, cover, pen, 0.95), rng)


def margin(d, rng):
    w, h = canvas(rng, int(rng.integers(450, 700)))
    cover, _, height, centre = pen_digit(d, rng, (h, w), off=0.05)
    page = paper((h, w), rng, contrast=0.02)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pitch = height * rng.uniform(0.28, 0.5)
    ang = rng.uniform(-0.03, 0.03)
    t = yy + xx * ang + rng.uniform(0, pitch)
    dist = np.abs((t + pitch / 2) % pitch - pitch / 2)
    page = lay(page, np.clip(rng.uniform(0.8, 1.6) - dist + 0.5, 0, 1), (0.45, 0.65, 0.9), 0.7)
    mx = max(centre[1] - height * rng.uniform(0.55, 0.9), w * 0.08)  # left of the digit
    for k in range(1 + int(rng.random() < 0.3)):  # one red line or two
        xd = np.abs(xx - (mx - k * rng.uniform(4, 8)) - (yy - h / 2) * ang)
        page = lay(page, np.clip(rng.uniform(1, 2) - xd + 0.5, 0, 1), (0.85, 0.25, 0.3), 0.8)
    if rng.random() < 0.4:  # punch holes: the desk shows through
        hx = mx * rng.uniform(0.3, 0.5)
        r = height * rng.uniform(0.08, 0.12)
        desk = np.array([0.25, 0.18, 0.12])
        for hy in (h * 0.2, h * 0.8):
            page[np.hypot(yy - hy, xx - hx) < r] = desk * rng.uniform(0.6, 1.2)
    return phone(lay(page, cover, INKS[rng.choice(PENS)], 0.95), rng)


def _crumple_shade(shape, rng) -> np.ndarray:
    """Light on a crumpled sheet: a height field of bumps and creases, lit from one side."""
    h, w = shape
    hf = _smooth((h, w), 6, rng) * rng.uniform(15, 30)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(rng.integers(2, 5)):  # creases: ridges or valleys along straight lines
        a = rng.uniform(0, np.pi)
        c = rng.uniform(0.2, 0.8) * np.array([h, w])
        dist = (xx - c[1]) * np.cos(a) + (yy - c[0]) * np.sin(a)
        hf += rng.choice([-1, 1]) * rng.uniform(4, 8) * np.exp(-np.abs(dist) / rng.uniform(3, 8))
    gy, gx = np.gradient(ndimage.gaussian_filter(hf, 2))
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), 1.5])
    light /= np.linalg.norm(light)
    nz = 1 / np.sqrt(1 + gx**2 + gy**2)
    shade = (-gx * light[1] - gy * light[0] + light[2]) * nz / light[2]
    return np.clip(0.55 + 0.45 * shade, 0.35, 1.1)


def crumpled(d, rng):
    w, h = canvas(rng, int(rng.integers(450, 700)))
    cover, *_ = pen_digit(d, rng, (h, w))
    page = lay(paper((h, w), rng), cover, INKS[rng.choice(["black", "blue"])], 0.95)
    shade = _crumple_shade((h, w), rng)
    amp = rng.uniform(2, 5)  # the sheet is not flat, so its picture bends
    dy = _smooth((h, w), 4, rng) * amp
    dx = _smooth((h, w), 4, rng) * amp
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bent = [yy + dy, xx + dx]
    page = np.stack(
        [ndimage.map_coordinates(page[..., c], bent, order=1, mode="nearest") for c in range(3)],
        -1,
    )
    return phone(page * shade[..., None], rng, noise=0.012, jpeg=(70, 92))


def glare(d, rng):
    w, h = canvas(rng, int(rng.integers(450, 700)))
    cover, _, height, centre = pen_digit(d, rng, (h, w))
    page = paper((h, w), rng, contrast=0.02)
    page = lay(page, cover, INKS[rng.choice(["black", "blue", "pencil"])], 0.9)
    ang = rng.uniform(0, 2 * np.pi)
    dist = height * rng.uniform(0.1, 0.45)
    spot = (centre[0] + dist * np.sin(ang), centre[1] + dist * np.cos(ang),
            height * rng.uniform(0.15, 0.35), rng.uniform(0.35, 0.6))  # fmt: skip
    page = page * rng.uniform(0.7, 0.85)  # exposed for the glare, so the paper is greyer
    return camera(page, rng, vignette=rng.uniform(0.35, 0.6), spot=spot, noise=0.012,
                  defocus=rng.uniform(0.3, 1.0), jpeg=rng.integers(75, 95))  # fmt: skip


def tiny(d, rng):
    ow, oh = canvas(rng, int(rng.integers(40, 81)))
    w, h = ow * 8, oh * 8  # drawn at 8x, then the camera bins it down
    cover, *_ = pen_digit(d, rng, (h, w), height_frac=(0.55, 0.8), off=0.06, width=(0.08, 0.13))
    page = paper_colour(rng)[None, None] * np.ones((h, w, 1), np.float32)
    page = lay(page, cover, INKS[rng.choice(PENS)], 0.95)
    return camera(page, rng, out_size=(ow, oh), down="box", vignette=rng.uniform(0, 0.25),
                  noise=0.015, defocus=rng.uniform(0, 4), jpeg=rng.integers(25, 66))  # fmt: skip


def big(d, rng):
    ow, oh = canvas(rng, int(rng.integers(1200, 1921)))
    w, h = int(ow / 2), int(oh / 2)  # drawn at half size, enlarged by the camera
    cover, *_ = pen_digit(d, rng, (h, w), height_frac=(0.12, 0.28), off=0.0, width=(0.06, 0.12))
    sy = int(rng.uniform(0.15, 0.35) * h * rng.choice([-1, 1]))
    sx = int(rng.uniform(0.15, 0.35) * w * rng.choice([-1, 1]))
    cover = np.roll(cover, (sy, sx), (0, 1))  # away from the centre
    page = paper((h, w), rng, rng.choice(["warm", "cool", "any"]), contrast=0.03)
    page = page * (1 + 0.06 * _smooth((h, w), 2, rng))[..., None]
    page = lay(page, cover, INKS[rng.choice(PENS)], 0.95)
    return camera(page, rng, out_size=(ow, oh), down="bicubic", vignette=rng.uniform(0, 0.3),
                  noise=0.015, jpeg=rng.integers(80, 96))  # fmt: skip


def motion(d, rng):
    w, h = canvas(rng, int(rng.integers(400, 650)))
    cover, _, height, _ = pen_digit(d, rng, (h, w))
    page = lay(paper((h, w), rng, contrast=0.02), cover, INKS[rng.choice(PENS)], 0.95)
    wb = (1.0, 0.93, 0.75) if rng.random() < 0.5 else (0.78, 0.92, 1.0)
    wb = np.array(wb) * rng.uniform(0.8, 1.0)
    return camera(page, rng, wb=wb, shake=height * rng.uniform(0.04, 0.1), noise=0.02,
                  defocus=rng.uniform(0, 0.8), jpeg=rng.integers(60, 90))  # fmt: skip


def bleed(d, rng):
    w, h = canvas(rng, int(rng.integers(400, 650)))
    cover, _, height, _ = pen_digit(d, rng, (h, w), width=(0.06, 0.12), pvar=0.4)
    # the ink wicks outwards, further along the paper's fibres
    fib = fibres((h, w), rng, n=int(h * w / 200), contrast=1.0)
    wick = ndimage.gaussian_filter(cover, height * rng.uniform(0.008, 0.02))
    wick = wick * np.clip(1.5 - (1 - fib) * 6 + 0.3 * _smooth((h, w), 40, rng), 0, 1.5)
    spread = np.clip(np.maximum(cover, 1.4 * wick - 0.08), 0, 1)
    rim = np.clip(spread - ndimage.gaussian_filter(spread, 2.0), 0, 1)  # dried at the edge
    amount = np.clip(spread * rng.uniform(0.6, 0.85) + rim * 0.8, 0, 1)
    colours = ["pink", "green", "purple", "orange", "teal", "blue", "red"]
    return phone(lay(paper((h, w), rng), amount, INKS[rng.choice(colours)], 1.0), rng)


def boxed(d, rng):
    w, h = canvas(rng, int(rng.integers(420, 650)))
    cover, _, height, (cy, cx) = pen_digit(d, rng, (h, w), height_frac=(0.4, 0.55), off=0.03)
    page = paper((h, w), rng, contrast=0.02)
    im = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(im)
    style = rng.choice(["box", "comb", "circle"])
    lw = max(1, int(round(height * rng.uniform(0.01, 0.03))))
    half_h = height * rng.uniform(0.62, 0.8)
    half_w = half_h * rng.uniform(0.75, 1.0)
    if style == "circle":  # by hand: a wobbly ring, not quite closed, as wide as the digit's pen
        t = np.linspace(0, 2 * np.pi * rng.uniform(0.93, 1.05), 200)
        rr = 1 + 0.05 * np.sin(3 * t + rng.uniform(0, 6))
        xs, ys = cx + 1.1 * half_w * rr * np.cos(t), cy + half_h * rr * np.sin(t)
        ring = list(zip(xs, ys, strict=True))
        draw.line(ring, fill=255, width=max(2, int(height * 0.06)))
        colour = (0.1, 0.1, 0.15)
    else:  # printed: one box, or three side by side
        n, bw = (1 if style == "box" else 3), 2 * half_w
        for k in range(-(n // 2), n // 2 + 1):
            x0 = cx - half_w + k * bw
            draw.rectangle([x0, cy - half_h, x0 + bw, cy + half_h], outline=255, width=lw)
        colour = [(0.1, 0.1, 0.1), (0.2, 0.35, 0.7), (0.8, 0.3, 0.2)][rng.integers(3)]
    page = lay(page, ndimage.gaussian_filter(np.asarray(im, np.float32) / 255, 0.5), colour, 0.9)
    return phone(lay(page, cover, INKS[rng.choice(PENS)], 0.95), rng)


def show_through(d, rng, ghost):
    w, h = canvas(rng, int(rng.integers(420, 650)))
    cover, _, height, _ = pen_digit(d, rng, (h, w))
    back = np.ascontiguousarray(ghost[:, ::-1])  # seen through the sheet: mirrored
    seen, *_ = pen_digit(back, rng, (h, w), height_frac=(0.45, 0.75), off=0.15, width=(0.08, 0.14))
    seen = ndimage.gaussian_filter(seen, height * rng.uniform(0.01, 0.025))
    page = paper((h, w), rng, contrast=0.02)
    pen = INKS[rng.choice(PENS)]
    page = lay(page, seen, pen, rng.uniform(0.1, 0.22))
    return phone(lay(page, cover, pen, 0.95), rng)


def chalk(d, rng):
    w, h = canvas(rng, int(rng.integers(420, 650)))
    cover, press, *_ = pen_digit(d, rng, (h, w), width=(0.08, 0.13), pvar=0.4)
    board = [(0.12, 0.25, 0.18), (0.1, 0.1, 0.11), (0.15, 0.2, 0.17)][rng.integers(3)]
    page = np.asarray(board, np.float32)[None, None] * np.ones((h, w, 1), np.float32)
    haze = np.clip(_smooth((h, w), 4, rng), 0, 1) * rng.uniform(0.05, 0.15)  # wiped chalk
    page = page + haze[..., None]
    grain = rng.random((h, w)) < rng.uniform(0.6, 0.85)  # chalk misses the board's pits
    dust = ndimage.gaussian_filter(cover * (0.35 + 0.65 * grain) * (0.6 + 0.4 * press), 0.7)
    page = page + dust[..., None] * (np.array([0.9, 0.9, 0.88]) - page) * 0.9
    return camera(page, rng, vignette=rng.uniform(0, 0.3), noise=0.015,
                  defocus=rng.uniform(0.3, 1.0), jpeg=rng.integers(70, 92))  # fmt: skip


def clean(d, rng):
    w, h = canvas(rng, int(rng.integers(300, 500)))
    cover, *_ = pen_digit(d, rng, (h, w))
    page = lay(np.ones((h, w, 3), np.float32), cover, INKS["black"], 1.0)
    buf = io.BytesIO()
    Image.fromarray((page * 255 + 0.5).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue(), "png"


MAKERS = {
    "ballpoint": ballpoint, "graph": graph, "margin": margin, "crumpled": crumpled,
    "glare": glare, "tiny-jpeg": tiny, "big-offcentre": big, "motion": motion, "bleed": bleed,
    "boxed": boxed, "show-through": show_through, "chalk": chalk, "clean": clean,
}  # fmt: skip


# --- the set -----------------------------------------------------------------------------------


def make(kind: str, number: int, seed: int, images, labels) -> Picture:
    """Picture ``number`` of ``kind``: a drawable MNIST test digit drawn as the kind draws it."""
    rng = np.random.default_rng([seed, list(KINDS).index(kind), number])
    index = int(rng.integers(len(images)))
    while not drawable(images[index]):
        index = int(rng.integers(len(images)))
    extra = {}
    if kind == "show-through":
        extra["ghost"] = images[int(rng.integers(len(images)))]
    data, fmt = MAKERS[kind](images[index], rng, **extra)
    return Picture(kind, int(labels[index]), index, data, fmt, number)


def generate(n: int, seed: int = 7, kinds: list[str] | None = None) -> list[Picture]:
    """``n`` pictures, the kinds in turn (picture j is number j // len(kinds) of its kind)."""
    kinds = list(KINDS) if kinds is None else kinds
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind {unknown[0]!r}: one of {', '.join(KINDS)}")
    images, labels = mnist_test()
    return [make(kinds[j % len(kinds)], j // len(kinds), seed, images, labels) for j in range(n)]


def contact_sheet(pictures, answers, kinds, path: Path, per=4, cell=160) -> None:
    """``per`` pictures of each kind in a row, each captioned with its label and lenet's
    answer (green when right, red when wrong)."""
    sheet = Image.new("RGB", (per * cell, len(kinds) * (cell + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, kind in enumerate(kinds):
        row = [(p, a) for p, a in zip(pictures, answers, strict=True) if p.kind == kind][:per]
        for c, (p, a) in enumerate(row):
            im = p.image.convert("RGB")
            f = (cell - 4) / max(im.size)
            im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))))
            top = r * (cell + 14)
            sheet.paste(im, (c * cell + 2, top + 14))
            answer = a.get("predicted", "error")
            colour = (0, 120, 0) if answer == p.label else (200, 0, 0)
            draw.text((c * cell + 2, top + 1), f"{kind} d{p.label} read {answer}", fill=colour)
    sheet.save(path)


def main(argv: list[str] | None = None, emit: Callable[[str], None] = print) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="a run or checkpoint")
    ap.add_argument("--n", type=int, default=780, help="pictures in all, kinds in turn (780)")
    ap.add_argument("--seed", type=int, default=7, help="which pictures (default 7)")
    ap.add_argument("--kinds", help=f"comma-separated subset of: {', '.join(KINDS)}")
    ap.add_argument("--out", type=Path, help="write the pictures here (default: a temp folder)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--sheet", type=Path, help="write a contact sheet PNG (4 per kind) here")
    args = ap.parse_args(argv)
    kinds = args.kinds.split(",") if args.kinds else list(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        ap.error(f"--kinds: unknown kind {unknown[0]!r}; the kinds are {', '.join(KINDS)}")
    if args.n < 1:
        ap.error("--n must be at least 1")
    if not args.checkpoint.exists():
        ap.error(f"--checkpoint {args.checkpoint} does not exist (a run that `lenet train` made)")
    if args.sheet and not args.sheet.parent.is_dir():
        ap.error(f"--sheet: the folder {args.sheet.parent} does not exist")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        print(f"making {args.n} pictures ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        pictures = generate(args.n, args.seed, kinds)
        paths = write(pictures, out)
        made = time.perf_counter() - t0
        control = mnist_files(args.n, args.seed, out / "mnist-file")
        print("reading them with lenet ...", file=sys.stderr, flush=True)
        measured, answers = measure(pictures, paths, control, args.checkpoint)
    result = {"checkpoint": str(args.checkpoint), "seed": args.seed, "n": len(pictures)}
    result |= measured | {"seconds_to_make": round(made, 2)}
    if args.sheet:
        contact_sheet(pictures, answers, kinds, args.sheet)
    if args.json:
        emit(json.dumps(result, indent=2))
        return result
    emit(f"{result['n']} pen-stroke pictures (seed {args.seed}), read by lenet predict's engine")
    emit(f"{'kind':<14} {'n':>5} {'accuracy':>9}")
    for k, v in result["per_kind"].items():
        emit(f"{k:<14} {v['n']:>5} {100 * v['accuracy']:>8.1f}%")
    emit(f"{'overall':<14} {result['n']:>5} {100 * result['overall']:>8.1f}%")
    emit(f"{'mnist-file':<14} {result['n']:>5} {100 * result['mnist_file']:>8.1f}%"
         "  (MNIST's own test digits as PNG files, not in the overall)")  # fmt: skip
    emit(f"made in {made:.1f} s; read in {result['seconds_to_read']:.1f} s")
    return result


if __name__ == "__main__":
    main()
