"""Prediction: pictures of digits prepared as MNIST's were, then classified.

Two stages. First a document scanner's (``scan/``): the paper removed (light, shadow, tint),
the ink found with a threshold taken from the picture, the digit's own marks kept, the stroke
brought to MNIST's width. Then MNIST's preparation, followed step by step: cropped to the ink;
fitted into 20x20 keeping the aspect ratio (anti-aliased); placed in 28x28 so that its centre
of mass is at the centre; padded to 32x32 (LeNet's input) and normalised with the training
set's mean and std from the checkpoint. ``steps="mnist"`` runs MNIST's stage alone (grey,
inverted when the border is light, the border's level taken off): what the scanner's stage
adds is measured against it (``benchmarks/photolike.py --steps``).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from lenet_cli.errors import ImageError, NoInkError, UsageError

MAX_PIXELS = 40_000_000  # far above any photo of a digit; guards against decompression bombs
BOX, FIELD, PAD = 20, 28, 2
STEPS = ("scan", "mnist")
UNSURE = 0.5  # a top probability under this is worth a warning


@dataclass(frozen=True)
class Upload:
    """A picture's bytes held in memory (`lenet serve`): read as a file is, never written."""

    name: str
    data: bytes = field(repr=False)

    def __str__(self) -> str:
        return self.name


class Prepared(tuple):
    """``(tensor, picture)``: the normalised [1, 32, 32] tensor and the [32, 32] picture in
    [0, 1] the network sees (a pair, as ``prepare_image`` has always returned), with
    ``warnings`` (what makes the picture look unlike one digit on paper) and ``steps`` (each
    step's picture, [H, W] in [0, 1], for ``--preview``) as attributes."""

    warnings: list[str]
    steps: dict[str, np.ndarray]

    def __new__(cls, tensor, picture, warnings=(), steps=None) -> Prepared:
        pair = super().__new__(cls, (tensor, picture))
        pair.warnings = list(warnings)
        pair.steps = dict(steps or {})
        return pair


def _read(path: Path | Upload) -> np.ndarray:
    """The image as float32 in [0, 1]: [H, W] for grey pictures, [H, W, 3] for colour ones."""
    if isinstance(path, Upload):
        if not path.data:
            raise ImageError(f"image {path} is empty")
    elif path.is_dir():
        raise ImageError(f"image {path} is a directory", hint="pass the image files in it")
    elif not path.is_file():
        if path.exists():  # a device, a FIFO, a socket: never read (a FIFO would block)
            raise ImageError(f"image {path} is not a regular file", hint="pass an image file")
        raise ImageError(f"image {path} does not exist", hint="check the path")
    elif path.stat().st_size == 0:
        raise ImageError(f"image {path} is an empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            source = io.BytesIO(path.data) if isinstance(path, Upload) else path
            with Image.open(source) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageError(
                        f"image {path} is {w}x{h} pixels, more than {MAX_PIXELS:,}: "
                        "refused as a possible decompression bomb",
                        hint="scale the picture down first",
                    )
                pixels = _pixels(ImageOps.exif_transpose(img))
    except ImageError:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as e:
        kind = (
            "not an image Pillow can read"
            if isinstance(e, UnidentifiedImageError)
            else "refused as a possible decompression bomb"
        )
        raise ImageError(f"{path} is {kind}", hint="use a PNG or JPEG picture of a digit") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(
            f"cannot decode image {path}: {e}", hint="the file may be truncated or corrupt"
        ) from None
    return pixels


def plain_ink(picture: np.ndarray) -> np.ndarray:
    """MNIST's stage alone: grey, light on dark (inverted when the border is mostly light),
    the border's level taken off: [H, W] in [0, 1]."""
    gray = picture.mean(axis=2) if picture.ndim == 3 else picture
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:  # dark ink on light paper, as most photos and drawings
        gray = 1.0 - gray
        border = 1.0 - border
    return np.clip(gray - float(np.median(border)), 0.0, 1.0)  # background to 0


def _pixels(img: Image.Image) -> np.ndarray:
    """float32 in [0, 1]: [H, W, 3] for a colour picture, [H, W] for a grey one. Deep images
    are scaled to their range, never clipped at 255: 16-bit grayscale (PNG's I;16, or I for
    older Pillow) by 65,535, 32-bit or float images by the smallest of 1, 255, 65,535 and
    their own maximum that holds every value."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        values = np.asarray(img, dtype=np.float64).clip(min=0)
        values = np.nan_to_num(values, nan=0.0, posinf=0.0)
        top = float(values.max()) if values.size else 0.0
        if img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PNG"):
            scale = 65535.0
        else:
            scale = next((s for s in (1.0, 255.0, 65535.0) if top <= s), top)
            scale = 255.0 if img.mode == "I" and scale == 1.0 else scale
        return (values / scale).astype(np.float32)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        img = _on_paper(img.convert("RGBA"))
    if img.mode in ("1", "L", "LA", "La"):
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _on_paper(rgba: Image.Image) -> Image.Image:
    """A picture with transparency laid on paper that contrasts with what is drawn.

    Dark strokes on a transparent canvas go on white paper, light strokes (a dark-mode drawing
    app's) on black: on white they would vanish.
    """
    pixels = np.asarray(rgba, dtype=np.float32)
    alpha = pixels[..., 3]
    drawn = float(alpha.sum())
    light = drawn > 0 and float((pixels[..., :3].mean(axis=2) * alpha).sum() / drawn) > 127.5
    paper = Image.new("RGBA", rgba.size, "black" if light else "white")
    return Image.alpha_composite(paper, rgba)


def prepare_array(ink: np.ndarray, name: str = "image") -> np.ndarray:
    """[H, W] light-on-dark in [0, 1] -> [28, 28] MNIST-style digit in [0, 1]."""
    peak = float(ink.max()) if ink.size else 0.0
    if peak <= 0.0:
        raise NoInkError(f"{name} is blank: no ink found", hint="use a picture of one digit")
    rows, cols = np.nonzero(ink > 0.2 * peak)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] / peak
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = Image.fromarray(np.uint8(np.round(crop * 255))).resize(size, Image.LANCZOS)
    digit = np.asarray(small, dtype=np.float32) / 255.0
    total = float(digit.sum())
    ys, xs = np.indices(digit.shape)
    cy = float((ys * digit).sum() / total) if total else digit.shape[0] / 2
    cx = float((xs * digit).sum() / total) if total else digit.shape[1] / 2
    top, left = round(FIELD / 2 - cy), round(FIELD / 2 - cx)  # MNIST: mass at pixel (14, 14)
    top = min(max(top, 0), FIELD - digit.shape[0])  # keep all the ink inside the field
    left = min(max(left, 0), FIELD - digit.shape[1])
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return field


def prepare_picture(picture: np.ndarray, name: str = "image", steps: str = "scan") -> Prepared:
    """A picture ([H, W] or [H, W, 3] in [0, 1], any polarity) prepared for the network, not
    yet normalised: ``Prepared(None, padded 32x32)`` with its warnings and steps."""
    if steps not in STEPS:
        raise UsageError(f"steps={steps!r} is neither 'scan' nor 'mnist'")
    shown = picture.mean(axis=2) if picture.ndim == 3 else picture
    if steps == "mnist":
        digit = prepare_array(plain_ink(picture), name)
        padded = np.pad(digit, PAD)
        return Prepared(None, padded, steps={"picture": shown, "28x28 digit": digit,
                                             "32x32 input": padded})  # fmt: skip
    from lenet_cli.use.scan import NoInk, scan

    try:
        found = scan(picture)
    except NoInk:
        raise NoInkError(
            f"{name} is blank: no ink found", hint="use a picture of one digit"
        ) from None
    digit = prepare_array(found.ink, name)
    padded = np.pad(digit, PAD)
    return Prepared(
        None,
        padded,
        warnings=found.warnings,
        steps={
            "picture": found.picture,
            "paper removed": found.paper_removed,
            "ink mask": found.mask,
            "28x28 digit": digit,
            "32x32 input": padded,
        },
    )


def prepare_image(
    path: str | Path | Upload, mean: float, std: float, steps: str = "scan"
) -> Prepared:
    """``(normalised [1, 32, 32] tensor, the [32, 32] picture in [0, 1] the network sees)``,
    with ``.warnings`` and ``.steps`` (see ``Prepared``)."""
    path = path if isinstance(path, Upload) else Path(path)
    ready = prepare_picture(_read(path), str(path), steps)
    padded = ready[1]
    x = torch.from_numpy((padded - mean) / std).to(torch.float32).unsqueeze(0)
    return Prepared(x, padded, ready.warnings, ready.steps)


@torch.inference_mode()
def predict_images(
    paths: list[Path | Upload],
    model: torch.nn.Module,
    meta: dict[str, Any],
    device: torch.device,
    steps: str = "scan",
    with_steps: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(results, failures): the predicted class and ten probabilities of each image that could
    be read (one batch), and ``{"file", "error"}`` for each that could not: one bad file does
    not stop the others from being answered. ``steps``: "scan" (the scanner's stage, then
    MNIST's) or "mnist" (MNIST's alone); ``with_steps``: each result keeps its steps' pictures
    (``"steps"``, for ``--preview``)."""
    prepared, good, failures = [], [], []
    for p in paths:
        try:
            prepared.append(prepare_image(p, meta["mean"], meta["std"], steps))
            good.append(p)
        except ImageError as e:
            failures.append({"file": str(p), "error": str(e)})
    if not prepared:
        return [], failures
    return classify(prepared, good, model, device, with_steps), failures


@torch.inference_mode()
def classify(
    prepared: list[tuple[torch.Tensor, np.ndarray]],
    paths: list[Path | Upload],
    model: torch.nn.Module,
    device: torch.device,
    with_steps: bool = False,
) -> list[dict[str, Any]]:
    """Each prepared picture's result (one batch): predicted class, probabilities, input,
    warnings (the preparation's, and a top probability under ``UNSURE``); with
    ``with_steps``, each step's picture too (``"steps"``: name -> [H, W] array)."""
    x = torch.stack([t for t, _ in prepared]).to(device)
    probs = torch.softmax(model(x).float(), dim=1).cpu()
    results = []
    for p, pr, ready in zip(paths, probs, prepared, strict=True):
        warnings = list(getattr(ready, "warnings", []))
        top = float(pr.max())
        if top < UNSURE:
            warnings.append(f"the model is unsure: its top probability is only {top:.2f}")
        result = {
            "file": str(p),
            "predicted": int(pr.argmax()),
            "probabilities": pr.tolist(),
            "input": np.round(ready[1], 4).tolist(),
            "warnings": warnings,
        }
        if with_steps:
            result["steps"] = getattr(ready, "steps", {})
        results.append(result)
    return results
