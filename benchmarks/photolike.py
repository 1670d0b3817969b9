"""Photo-like pictures of handwritten digits, made from MNIST's test digits (so the labels are
known), and how well `lenet predict` reads them.

    python benchmarks/photolike.py --checkpoint RUN [--n 1400] [--out DIR] [--seed 0]
        [--kinds grey,shadow,...] [--steps scan|mnist|both] [--calibrate] [--json]

Each picture is one MNIST test digit redrawn as a phone photo of a digit written on paper
would show it: the digit's outline upscaled and inked again with a pen of some width, laid on
paper of some colour under some light, then blurred, noised and saved as PNG or JPEG. Every
parameter is drawn from a wide range (see ``KINDS`` and ``_draw_kind``), so the set is not one
look but many. Picture i of a seed is the same whatever ``--n`` is (the kinds are taken in
turn, so ``--kinds`` changes which kind picture i is).

The script writes the pictures into ``--out`` (a temporary folder without it) as
``KIND-NNNN-dLABEL.png|jpg``, reads them with lenet's own predict engine (``--steps scan``: the
scanner's preparation then MNIST's; ``--steps mnist``: MNIST's alone), and prints the accuracy
overall and per kind (``--json``: one JSON document). As a control it also reads the same
number of MNIST test digits saved unchanged as PNG files ("mnist-file", not in the overall).

As a module: ``generate(n, seed, kinds)`` returns ``Sample`` records (kind, label, MNIST index,
the file's bytes and format) and ``write(samples, out)`` saves them.
"""

from __future__ import annotations

import argparse
import colorsys
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KINDS = {
    "grey": "flat grey paper, from light to dark grey",
    "tint": "tinted paper (sticky-note yellow, pink, blue, green...) with dark ink",
    "gradient": "light falling off across the page, linear or from one corner",
    "shadow": "a soft shadow (a hand, a phone) over part of the digit",
    "noise-blur": "out of focus, sensor noise and heavy JPEG compression",
    "thin-pen": "a fine pen: strokes 1.5-5% of the digit's height",
    "thick-marker": "a marker: strokes 17-27% of the digit's height",
    "colour": "a colour photo: blue, red, green or purple ink, a colour cast",
    "frame": "a small digit anywhere in a larger picture, with dust and dots",
    "pencil": "pencil: faint grey strokes with grain",
    "lined": "ruled or squared notebook paper",
    "paper-edge": "the sheet's edge and the desk beside it in the picture",
    "tilted": "the phone held at an angle: rotation and perspective",
    "mixed": "three of the other kinds at once",
}
BASE_KINDS = [k for k in KINDS if k != "mixed"]
MIXABLE = ["grey", "tint", "gradient", "shadow", "noise-blur", "thin-pen", "thick-marker",
           "colour", "pencil", "lined", "tilted"]  # fmt: skip


@dataclass
class Sample:
    kind: str
    label: int
    index: int  # the digit's index in MNIST's test set
    data: bytes  # the file, PNG or JPEG
    fmt: str  # "png" or "jpeg"

    @property
    def image(self) -> Image.Image:
        """The picture as the file holds it."""
        img = Image.open(io.BytesIO(self.data))
        img.load()
        return img

    @property
    def name(self) -> str:
        ext = "jpg" if self.fmt == "jpeg" else "png"
        return f"{self.kind}-{self.index:04d}-d{self.label}.{ext}"


def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 10,000 test digits ([N, 28, 28] uint8) and labels, from the bundled sample."""
    from lenet_cli.data import read_idx_pair

    folder = ROOT / "lenet_cli" / "data" / "mnist_sample"
    images, labels = read_idx_pair(
        folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    )
    return images.numpy(), labels.numpy()


# --- the pen ----------------------------------------------------------------------------------


def thin(mask: np.ndarray) -> np.ndarray:
    """The one-pixel centre line of a binary shape (Zhang and Suen's thinning, 1984)."""
    m = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = np.pad(m[1:-1, 1:-1], 1)
            n = [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:],  # P2 P3 P4 P5
                 p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]]  # P6 P7 P8 P9  # fmt: skip
            count = sum(n)
            ring = n + [n[0]]
            turns = sum((ring[i] == 0) & (ring[i + 1] == 1) for i in range(8))
            if step == 0:
                side = (n[0] * n[2] * n[4] == 0) & (n[2] * n[4] * n[6] == 0)
            else:
                side = (n[0] * n[2] * n[6] == 0) & (n[0] * n[4] * n[6] == 0)
            drop = (m[1:-1, 1:-1] == 1) & (count >= 2) & (count <= 6) & (turns == 1) & side
            if drop.any():
                m[1:-1, 1:-1][drop] = 0
                changed = True
        if not changed:
            return m[1:-1, 1:-1].astype(bool)


def ink_alpha(digit: np.ndarray, height: int, width_frac: float | None, rng) -> np.ndarray:
    """The digit's ink coverage in [0, 1] at ``height`` pixels tall, drawn with a pen whose
    stroke is ``width_frac`` of the height (None: MNIST's own outline, cut at a random level).
    Drawn at 3x and reduced, so the edges are anti-aliased as a camera sees them."""
    rows, cols = np.nonzero(digit > 30)
    crop = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    sup = 3
    h = height * sup
    w = max(1, round(crop.shape[1] * h / crop.shape[0]))
    big = Image.fromarray(np.pad(crop, 2)).resize(
        (w + round(4 * h / crop.shape[0]), h + round(4 * h / crop.shape[0])), Image.BICUBIC
    )
    soft = np.asarray(big, dtype=np.float32) / 255.0
    if width_frac is None:
        mask = soft > rng.uniform(0.3, 0.6)
    else:  # the centre line found at a modest size, its distance field scaled up
        low = 96 / big.height
        small = big.resize((max(8, round(big.width * low)), 96), Image.BICUBIC)
        centre = thin(np.asarray(small) > 115)
        reach = ndimage.distance_transform_edt(~centre).astype(np.float32)
        field = Image.fromarray(reach, mode="F").resize(big.size, Image.BILINEAR)
        mask = np.asarray(field) / low <= max(0.75 * sup, width_frac * h / 2)
    img = Image.fromarray(np.uint8(mask) * 255)
    small = img.resize((img.width // sup, img.height // sup), Image.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


# --- light, paper and camera -------------------------------------------------------------------


def _smooth_noise(shape, scale: float, rng) -> np.ndarray:
    """Low-frequency noise in about [-1, 1] with blobs ``scale`` pixels across."""
    small = rng.standard_normal(
        (max(2, int(shape[0] / scale) + 2), max(2, int(shape[1] / scale) + 2))
    )
    img = Image.fromarray(small.astype(np.float32), mode="F").resize(shape[::-1], Image.BICUBIC)
    field = np.asarray(img)
    return field / (np.abs(field).max() + 1e-6)


def _gradient(shape, rng) -> np.ndarray:
    """Illumination from ``low`` to 1: linear across the page at any angle, or from a corner."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    low = rng.uniform(0.3, 0.65)
    if rng.random() < 0.6:
        a = rng.uniform(0, 2 * np.pi)
        t = xs * np.cos(a) + ys * np.sin(a)
    else:
        cy, cx = rng.uniform(-0.3, 1.3) * h, rng.uniform(-0.3, 1.3) * w
        t = -np.hypot(ys - cy, xs - cx)
    t = (t - t.min()) / (np.ptp(t) + 1e-6)
    return low + (1 - low) * t ** rng.uniform(0.6, 1.6)


def _shadow(shape, box, rng) -> np.ndarray:
    """A soft shadow whose edge crosses the digit's box: a straight edge (a phone) or an
    ellipse's (a hand's), darkening by 30-65%, its penumbra 2-20% of the picture."""
    h, w = shape
    y0, x0, y1, x1 = box
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(y0, y1), rng.uniform(x0, x1)
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * np.pi)
        d = (xs - cx) * np.cos(a) + (ys - cy) * np.sin(a)
    else:
        r = rng.uniform(0.4, 1.0) * max(h, w)
        ey, ex = cy + rng.uniform(-1, 1) * r, cx + rng.uniform(-1, 1) * r
        d = r - np.hypot((ys - ey) * rng.uniform(0.6, 1.4), xs - ex)
    soft = rng.uniform(0.02, 0.2) * max(h, w)
    cover = 1 / (1 + np.exp(-d / max(soft / 4, 0.5)))
    return 1 - rng.uniform(0.3, 0.65) * cover


def _lines(shape, box, rng) -> np.ndarray:
    """Ruled (or squared) paper's lines as coverage in [0, 1]."""
    h, w = shape
    digit_h = box[2] - box[0]
    gap = rng.uniform(0.25, 0.6) * digit_h
    thick = rng.uniform(0.8, 2.5)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    tilt = rng.uniform(-0.03, 0.03)
    phase = rng.uniform(0, gap)

    def ruled(t: np.ndarray) -> np.ndarray:
        dist = np.abs((t - phase + gap / 2) % gap - gap / 2)
        return np.clip(thick / 2 + 0.5 - dist, 0, 1)

    cover = ruled(ys + tilt * xs)
    if rng.random() < 0.35:  # squared paper
        cover = np.maximum(cover, ruled(xs - tilt * ys))
    elif rng.random() < 0.3:  # a margin line
        mx = rng.uniform(0.05, 0.3) * w
        cover = np.maximum(cover, np.clip(thick / 2 + 0.5 - np.abs(xs - mx), 0, 1))
    return cover


def _perspective(img: Image.Image, rng) -> Image.Image:
    """A mild perspective (the phone not parallel to the page) and a rotation; the corners
    they uncover show the desk."""
    w, h = img.size
    k = 0.12
    corners = [(rng.uniform(0, k) * w, rng.uniform(0, k) * h),
               (w - rng.uniform(0, k) * w, rng.uniform(0, k) * h),
               (w - rng.uniform(0, k) * w, h - rng.uniform(0, k) * h),
               (rng.uniform(0, k) * w, h - rng.uniform(0, k) * h)]  # fmt: skip
    target = [(0, 0), (w, 0), (w, h), (0, h)]
    a = []
    for (x, y), (u, v) in zip(target, corners, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    coeffs = np.linalg.solve(np.array(a), np.array(corners).ravel())
    desk = tuple(int(v * 255) for v in _hue(rng.uniform(0.05, 0.12), rng.uniform(0, 0.6),
                                               rng.uniform(0.05, 0.45)))  # fmt: skip
    out = img.transform(img.size, Image.PERSPECTIVE, tuple(coeffs), Image.BICUBIC, fillcolor=desk)
    return out.rotate(rng.uniform(-12, 12), Image.BICUBIC, expand=False, fillcolor=desk)


def _hue(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


# --- one picture -------------------------------------------------------------------------------


@dataclass
class _Look:
    """Everything a kind may set; the defaults are an ordinary photo of a digit on white paper."""

    height: int  # the digit's height in pixels
    width_frac: float | None  # pen width over digit height (None: MNIST's outline)
    fill: float  # the digit's height over the picture's
    paper: np.ndarray  # RGB
    ink: np.ndarray  # RGB
    grain: float = 0.02  # paper texture
    blur: float = 0.6
    noise: float = 0.015
    jpeg: int | None = None
    colour: bool = False
    light: str = "even"  # even, gradient, shadow
    pencil: bool = False
    lines: bool = False
    edge: bool = False
    tilt: bool = False
    frame: bool = False
    cast: bool = False


def _base(rng) -> _Look:
    white = rng.uniform(0.78, 0.97)
    ink = rng.uniform(0.02, 0.25)
    pen = rng.random()
    return _Look(
        height=int(rng.integers(40, 220)),
        width_frac=None if pen < 0.35 else float(rng.uniform(0.04, 0.14)),
        fill=float(rng.uniform(0.4, 0.8)),
        paper=np.full(3, white, np.float32),
        ink=np.full(3, ink, np.float32),
        grain=float(rng.uniform(0.0, 0.04)),
        blur=float(rng.uniform(0.3, 1.0)),
        noise=float(rng.uniform(0.005, 0.025)),
        jpeg=int(rng.integers(60, 96)) if rng.random() < 0.5 else None,
    )


def _draw_kind(kind: str, look: _Look, rng) -> None:
    """Set what ``kind`` changes, each parameter from a wide range."""
    if kind == "grey":
        level = rng.uniform(0.35, 0.8)
        look.paper = np.full(3, level, np.float32)
        look.ink = np.full(3, level * rng.uniform(0.0, 0.45), np.float32)
    elif kind == "tint":
        look.paper = _hue(rng.random(), rng.uniform(0.2, 0.6), rng.uniform(0.7, 0.97))
        look.ink = _hue(rng.random(), rng.uniform(0, 0.7), rng.uniform(0.02, 0.3))
        look.colour = True
    elif kind == "gradient":
        look.light = "gradient"
    elif kind == "shadow":
        look.light = "shadow"
    elif kind == "noise-blur":
        look.height = int(rng.integers(40, 140))
        look.blur = float(rng.uniform(1.0, 0.03 * look.height + 1.0))
        look.noise = float(rng.uniform(0.03, 0.09))
        look.jpeg = int(rng.integers(20, 60))
    elif kind == "thin-pen":
        look.height = int(rng.integers(80, 320))
        look.width_frac = float(rng.uniform(0.015, 0.05))
    elif kind == "thick-marker":
        look.width_frac = float(rng.uniform(0.17, 0.27))
    elif kind == "colour":
        look.paper = _hue(rng.uniform(0.08, 0.16), rng.uniform(0, 0.15), rng.uniform(0.8, 0.97))
        hue = rng.choice([0.6, 0.0, 0.33, 0.78]) + rng.uniform(-0.05, 0.05)
        look.ink = _hue(hue, rng.uniform(0.55, 1.0), rng.uniform(0.35, 0.85))
        look.colour = look.cast = True
        look.jpeg = int(rng.integers(50, 95))
    elif kind == "frame":
        look.fill = float(rng.uniform(0.12, 0.35))
        look.frame = True
    elif kind == "pencil":
        look.pencil = True
        look.ink = look.paper * rng.uniform(0.4, 0.75)
        look.width_frac = float(rng.uniform(0.03, 0.09))
    elif kind == "lined":
        look.lines = True
    elif kind == "paper-edge":
        look.edge = True
        look.fill = float(rng.uniform(0.3, 0.55))
    elif kind == "tilted":
        look.tilt = True
    else:
        raise ValueError(f"unknown kind {kind!r}")


def photo(digit: np.ndarray, kind: str, rng) -> tuple[bytes, str]:
    """One photo-like picture of ``digit`` (28x28 uint8, MNIST's) as ``kind`` shows it: the
    file's bytes and its format ("png" or "jpeg")."""
    look = _base(rng)
    parts = list(rng.choice(MIXABLE, size=3, replace=False)) if kind == "mixed" else [kind]
    for part in parts:
        _draw_kind(part, look, rng)
    alpha = ink_alpha(digit, look.height, look.width_frac, rng)
    dh, dw = alpha.shape
    ph = max(dh + 4, round(dh / look.fill))
    pw = max(dw + 4, round(ph * rng.uniform(0.75, 1.35)))
    free_y, free_x = ph - dh, pw - dw
    jitter = 0.5 if look.frame else 0.15
    top = int(np.clip(free_y / 2 + rng.uniform(-jitter, jitter) * free_y, 0, free_y))
    left = int(np.clip(free_x / 2 + rng.uniform(-jitter, jitter) * free_x, 0, free_x))
    cover = np.zeros((ph, pw), np.float32)
    cover[top : top + dh, left : left + dw] = alpha
    box = (top, left, top + dh, left + dw)
    if look.pencil:
        cover *= np.clip(0.65 + 0.35 * rng.standard_normal(cover.shape), 0, 1)
    paper = np.broadcast_to(look.paper, (ph, pw, 3)).copy()
    paper *= (1 + look.grain * _smooth_noise((ph, pw), 3, rng))[..., None]
    if look.lines:
        line_colour = _hue(rng.uniform(0.55, 0.65), rng.uniform(0, 0.6), rng.uniform(0.45, 0.8))
        lc = _lines((ph, pw), box, rng)[..., None] * rng.uniform(0.35, 1.0)
        paper = paper * (1 - lc) + lc * line_colour * look.paper
    if look.frame:  # dust, dots and a stray short stroke away from the digit
        for _ in range(int(rng.integers(2, 12))):
            y, x = rng.uniform(0, ph), rng.uniform(0, pw)
            if box[0] - 5 < y < box[2] + 5 and box[1] - 5 < x < box[3] + 5:
                continue
            r = rng.uniform(0.5, max(1.0, 0.04 * dh))
            ys, xs = np.ogrid[0:ph, 0:pw]
            cover = np.maximum(cover, np.clip(r + 0.5 - np.hypot(ys - y, xs - x), 0, 1))
    img = paper * (1 - cover[..., None]) + look.ink * cover[..., None]
    if look.edge:  # the sheet ends along a straight line; the desk lies beyond it
        ys, xs = np.mgrid[0:ph, 0:pw].astype(np.float32)
        side = rng.integers(4)
        a = rng.uniform(-0.25, 0.25) + side * np.pi / 2
        # the edge passes between the digit and the picture's border on one side
        cy, cx = (top + dh / 2, left + dw / 2)
        reach = [top, pw - left - dw, ph - top - dh, left][side]
        d = rng.uniform(0.3, 0.85) * reach + [dh, dw, dh, dw][side] / 2
        dist = (xs - cx) * np.cos(a - np.pi / 2) + (ys - cy) * np.sin(a - np.pi / 2) - d
        desk = np.clip(dist + 0.5, 0, 1)[..., None]
        desk_colour = _hue(rng.uniform(0.05, 0.12), rng.uniform(0, 0.7), rng.uniform(0.1, 0.5))
        desk_img = desk_colour * (1 + 0.1 * _smooth_noise((ph, pw), 8, rng))[..., None]
        img = img * (1 - desk) + desk_img * desk
        look.colour = True
    if look.light == "gradient":
        img *= _gradient((ph, pw), rng)[..., None]
    elif look.light == "shadow":
        img *= _shadow((ph, pw), box, rng)[..., None]
    if look.cast:
        img *= rng.uniform(0.8, 1.15, size=3).astype(np.float32)
    out = Image.fromarray(np.uint8(np.clip(img, 0, 1) * 255 + 0.5))
    if look.tilt:
        out = _perspective(out, rng)
        if not look.colour:
            out = out.convert("L").convert("RGB")
    if look.blur > 0:
        out = out.filter(ImageFilter.GaussianBlur(look.blur))
    arr = np.asarray(out, dtype=np.float32) / 255.0
    arr = arr + rng.normal(0, look.noise, arr.shape if look.colour else arr.shape[:2] + (1,))
    out = Image.fromarray(np.uint8(np.clip(arr, 0, 1) * 255 + 0.5))
    if not look.colour:
        out = out.convert("L")
    buf = io.BytesIO()
    if look.jpeg:
        out.save(buf, "JPEG", quality=look.jpeg)
    else:
        out.save(buf, "PNG")
    return buf.getvalue(), "jpeg" if look.jpeg else "png"


def generate(n: int, seed: int = 0, kinds: list[str] | None = None, digits=None) -> list[Sample]:
    """``n`` pictures, kinds in turn; picture i depends on (seed, i) only."""
    kinds = list(KINDS) if kinds is None else kinds
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown kind {k!r}: one of {', '.join(KINDS)}")
    images, labels = mnist_test() if digits is None else digits
    order = np.random.default_rng(seed).permutation(len(labels))
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        index = int(order[i % len(order)])
        rng = np.random.default_rng([seed, i, list(KINDS).index(kind)])
        data, fmt = photo(images[index], kind, rng)
        out.append(Sample(kind, int(labels[index]), index, data, fmt))
    return out


def write(samples: list[Sample], out: Path) -> list[Path]:
    """Save each sample as ``out/NAME``, the file's bytes as they were made."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in samples:
        path = out / s.name
        path.write_bytes(s.data)
        paths.append(path)
    return paths


# --- reading them with lenet -------------------------------------------------------------------


def read_with_lenet(paths: list[Path], checkpoint: Path, steps: str = "scan") -> list[dict]:
    """lenet predict's answers for ``paths`` (its engine, on the CPU)."""
    import torch

    from lenet_cli.use.predict import predict_images
    from lenet_cli.use.weights import load_model

    device = torch.device("cpu")
    model, meta = load_model(checkpoint, device)
    results, failures = [], []
    for start in range(0, len(paths), 256):
        r, f = predict_images(paths[start : start + 256], model, meta, device, steps=steps)
        results += r
        failures += f
    by_file = {r["file"]: r for r in results}
    by_file.update({f["file"]: {"file": f["file"], "error": f["error"]} for f in failures})
    return [by_file[str(p)] for p in paths]


def score(samples: list[Sample], answers: list[dict]) -> dict:
    """Accuracy overall and per kind (a picture lenet refused counts as wrong)."""
    per: dict[str, list[int]] = {}
    for s, a in zip(samples, answers, strict=True):
        per.setdefault(s.kind, []).append(int(a.get("predicted") == s.label))
    hits = [h for v in per.values() for h in v]
    return {
        "overall": float(np.mean(hits)) if hits else 0.0,
        "n": len(hits),
        "per_kind": {k: {"accuracy": float(np.mean(v)), "n": len(v)} for k, v in per.items()},
    }


def measure(
    samples: list[Sample], paths: list[Path], control: tuple[list[Sample], list[Path]],
    checkpoint: Path, steps: str = "scan",
) -> tuple[dict, list[dict]]:  # fmt: skip
    """(what lenet predict with ``steps`` makes of the pictures, its answers): ``score``'s
    accuracies, the same for MNIST's own files (``control``, from ``mnist_files``) as
    ``mnist_file``, the seconds the pictures took to read, and each picture read wrong."""
    t0 = time.perf_counter()
    answers = read_with_lenet(paths, checkpoint, steps)
    read = time.perf_counter() - t0
    result = score(samples, answers)
    control_answers = read_with_lenet(control[1], checkpoint, steps)
    result["mnist_file"] = score(control[0], control_answers)["overall"]
    result["seconds_to_read"] = round(read, 2)
    result["wrong"] = [
        {"file": s.name, "label": s.label, "mnist_index": s.index,
         "answer": a.get("predicted", a.get("error"))}
        for s, a in zip(samples, answers, strict=True) if a.get("predicted") != s.label
    ]  # fmt: skip
    return result, answers


def mnist_files(n: int, seed: int, out: Path) -> tuple[list[Sample], list[Path]]:
    """The first ``n`` digits of the same order saved unchanged (white on black) as PNG."""
    images, labels = mnist_test()
    order = np.random.default_rng(seed).permutation(len(labels))[:n]
    samples = []
    for i in order:
        buf = io.BytesIO()
        Image.fromarray(images[i]).save(buf, "PNG")
        samples.append(Sample("mnist-file", int(labels[i]), int(i), buf.getvalue(), "png"))
    return samples, write(samples, out)


def calibrate(n: int = 5000) -> dict:
    """The stroke width scan measures on MNIST's own training digits (the bundled sample's
    first ``n``), over the digit's longer side: the percentiles scan.MNIST_STROKE holds."""
    from lenet_cli.data import read_idx_pair
    from lenet_cli.use.scan import scan

    folder = ROOT / "lenet_cli" / "data" / "mnist_sample"
    images, _ = read_idx_pair(
        folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz"
    )
    ratios = [scan(d / 255.0).info["stroke"] for d in images.numpy()[:n]]
    cuts = (2, 10, 50, 90, 98)
    return {"n": len(ratios), **{f"p{q}": float(np.percentile(ratios, q)) for q in cuts}}


def main(argv: list[str] | None = None, emit: Callable[[str], None] = print) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, help="a run or checkpoint")
    ap.add_argument(
        "--n", type=int, default=1400, help="pictures in all (default 1400: 100 of each kind)"
    )
    ap.add_argument("--seed", type=int, default=0, help="which pictures (default 0)")
    ap.add_argument("--out", type=Path, help="write the pictures here (default: a temp folder)")
    ap.add_argument("--kinds", help=f"comma-separated subset of: {', '.join(KINDS)}")
    ap.add_argument(
        "--steps",
        choices=["scan", "mnist", "both"],
        default="scan",
        help="scan: the scanner's preparation, then MNIST's (lenet predict); mnist: MNIST's "
        "only; both: one column each",
    )
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="print the stroke widths scan measures on MNIST's training digits instead",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    if args.calibrate:
        result = calibrate()
        emit(json.dumps(result, indent=2) if args.json else
             "MNIST stroke width / longer side: " + ", ".join(
                 f"{k} {v:.3f}" for k, v in result.items() if k != "n"))  # fmt: skip
        return result
    if args.checkpoint is None:
        ap.error("--checkpoint is required (a run that `lenet train` made)")
    kinds = args.kinds.split(",") if args.kinds else None
    steps = ["scan", "mnist"] if args.steps == "both" else [args.steps]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        t0 = time.perf_counter()
        samples = generate(args.n, args.seed, kinds)
        paths = write(samples, out)
        made = time.perf_counter() - t0
        control = mnist_files(args.n, args.seed, out / "mnist-file")
        result = {"checkpoint": str(args.checkpoint), "seed": args.seed, "n": len(samples)}
        result["seconds_to_make"] = round(made, 2)
        for step in steps:
            result[step] = measure(samples, paths, control, args.checkpoint, step)[0]
    if args.json:
        emit(json.dumps(result, indent=2))
        return result
    emit(f"{result['n']} photo-like pictures (seed {args.seed}), read by lenet predict's engine")
    emit(f"{'kind':<14} {'n':>5}" + "".join(f" {'steps ' + s:>12}" for s in steps))
    for k, v in result[steps[0]]["per_kind"].items():
        row = "".join(f" {100 * result[s]['per_kind'][k]['accuracy']:>11.1f}%" for s in steps)
        emit(f"{k:<14} {v['n']:>5}{row}")
    emit(f"{'overall':<14} {result['n']:>5}"
         + "".join(f" {100 * result[s]['overall']:>11.1f}%" for s in steps))  # fmt: skip
    emit(f"{'mnist-file':<14} {result['n']:>5}"
         + "".join(f" {100 * result[s]['mnist_file']:>11.1f}%" for s in steps)
         + "  (MNIST's own test digits as PNG files, not in the overall)")  # fmt: skip
    emit(f"made in {made:.1f} s; read in "
         + ", ".join(f"{result[s]['seconds_to_read']:.1f} s ({s})" for s in steps))  # fmt: skip
    return result


if __name__ == "__main__":
    main()
