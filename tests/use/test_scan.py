"""predict's scanner stage (use/scan/): a digit photographed on paper comes back as MNIST's
preparation of the same digit, whatever the paper, the light or the pen."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from scipy import ndimage

from lenet_cli.errors import NoInkError
from lenet_cli.use.predict import prepare_array, prepare_picture
from lenet_cli.use.scan import scan

SAMPLE = REPO / "lenet_cli" / "data" / "mnist_sample"
SIDE = 240  # the photos' size
PICTURES = REPO / "tests" / "use" / "pictures"


def _digits() -> tuple[np.ndarray, np.ndarray]:
    images = gzip.decompress((SAMPLE / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((SAMPLE / "t10k-labels-idx1-ubyte.gz").read_bytes())
    n = 40
    return (
        np.frombuffer(images, np.uint8, offset=16)[: n * 784].reshape(n, 28, 28),
        np.frombuffer(labels, np.uint8, offset=8)[:n],
    )


DIGITS, LABELS = _digits()


def _stroke(digit: np.ndarray, height: int = 150, grow: int = 0) -> np.ndarray:
    """The digit's ink as a pen draws it, ``height`` pixels tall: 1 ink, 0 paper (``grow``:
    pixels added around the stroke, a marker; taken off its sides when negative, a fine pen)."""
    big = Image.fromarray(digit).resize((height, height), Image.BICUBIC)
    ink = np.asarray(big, np.float32) > 110
    if grow > 0:
        ink = ndimage.distance_transform_edt(~ink) <= grow
    elif grow < 0:
        ink = ndimage.distance_transform_edt(ink) > -grow
    return ndimage.gaussian_filter(ink.astype(np.float32), 1.0)


def _on_paper(ink: np.ndarray, paper: np.ndarray, at=(45, 45), darkness: float = 0.8):
    """``ink`` laid on ``paper`` ([SIDE, SIDE] brightness) at ``at``, noise added."""
    page = paper.copy()
    y, x = at
    h, w = ink.shape
    page[y : y + h, x : x + w] *= 1 - darkness * ink
    page += np.random.default_rng(0).normal(0, 0.015, page.shape)
    return np.clip(page, 0, 1).astype(np.float32)


def _flat(level: float = 0.85) -> np.ndarray:
    return np.full((SIDE, SIDE), level, np.float32)


def _similarity(picture: np.ndarray, digit: np.ndarray, steps: str = "scan") -> float:
    """How close the 28x28 the network reads is to MNIST's own preparation of ``digit``."""
    got = prepare_picture(picture, steps=steps)[1][2:30, 2:30]
    want = prepare_array(digit / 255.0)
    return float(np.corrcoef(got.ravel(), want.ravel())[0, 1])


def test_light_falling_off_across_the_page_is_not_ink():
    """A page lit from the left, three times darker on the right: MNIST's preparation alone
    reads the dark side as ink; the scanner's reads the digit."""
    ys, xs = np.mgrid[0:SIDE, 0:SIDE]
    paper = (0.95 - 0.65 * xs / SIDE).astype(np.float32)
    for digit in DIGITS[:5]:
        photo = _on_paper(_stroke(digit), paper, darkness=0.6)
        assert _similarity(photo, digit) > 0.8
        assert _similarity(photo, digit, steps="mnist") < 0.5


def test_a_desk_beside_the_sheet_is_left_out():
    paper = _flat()
    paper[:40] = 0.25 + 0.05 * np.random.default_rng(1).random((40, SIDE))  # a dark desk
    digit = DIGITS[1]
    found = scan(_on_paper(_stroke(digit), paper, at=(60, 45)))
    assert found.mask[:35].max() < 1, "the desk was kept as part of the digit"
    assert _similarity(_on_paper(_stroke(digit), paper, at=(60, 45)), digit) > 0.8


def test_squared_paper_lines_are_left_out():
    paper = _flat(0.9)
    for k in range(8, SIDE, 22):  # a grid as dark as the ink is, nearly
        paper[k : k + 3] *= 0.5
        paper[:, k : k + 3] *= 0.5
    digit = DIGITS[2]
    photo = _on_paper(_stroke(digit), paper, darkness=0.75)
    assert scan(photo).info["ruled_lines"]
    assert _similarity(photo, digit) > 0.75


def test_a_marker_is_thinned_and_a_fine_pen_thickened():
    digit = DIGITS[3]
    thick = scan(_on_paper(_stroke(digit, grow=9), _flat()))
    assert thick.info["stroke"] > 0.2 and "stroke_redrawn" in thick.info
    fine = scan(_on_paper(_stroke(digit, height=150, grow=-7), _flat()))
    assert fine.info["stroke"] < 0.065 and "stroke_redrawn" in fine.info
    # MNIST's own stroke is left as it is
    assert "stroke_redrawn" not in scan(_on_paper(_stroke(digit), _flat())).info


def test_coloured_ink_on_tinted_paper():
    digit = DIGITS[4]
    ink = _stroke(digit)
    paper = np.empty((SIDE, SIDE, 3), np.float32)
    paper[:] = (0.98, 0.93, 0.55)  # a yellow note
    pen = np.array([0.15, 0.25, 0.85], np.float32)  # blue ink
    page = paper.copy()
    page[45:195, 45:195] = paper[45:195, 45:195] * (1 - ink[..., None]) + pen * ink[..., None]
    assert _similarity(page, digit) > 0.8


def test_two_digits_warn_and_the_one_nearest_the_centre_is_read():
    paper = _flat()
    page = _on_paper(_stroke(DIGITS[0], 90), paper, at=(75, 20))
    page = _on_paper(_stroke(DIGITS[1], 90), page, at=(75, 130))
    warnings = prepare_picture(page).warnings
    assert any("separate marks of similar size" in w for w in warnings), warnings


def test_ink_cut_off_by_the_border_warns():
    page = _on_paper(_stroke(DIGITS[5], 150)[40:], _flat(), at=(0, 45))
    assert any("touches the picture's edge" in w for w in prepare_picture(page).warnings)


def test_a_clean_digit_gives_no_warning():
    page = _on_paper(_stroke(DIGITS[6]), _flat())
    assert prepare_picture(page).warnings == []


@pytest.mark.parametrize("noise", [0.0, 0.01, 0.02, 0.04])
def test_empty_paper_is_blank(noise):
    page = _flat() + np.random.default_rng(2).normal(0, noise, (SIDE, SIDE))
    with pytest.raises(NoInkError, match="blank"):
        prepare_picture(np.clip(page, 0, 1).astype(np.float32))


@pytest.mark.parametrize("frame", ["box", "circle"])
def test_a_box_or_circle_round_the_digit_is_left_out(frame):
    ys, xs = np.mgrid[0:SIDE, 0:SIDE]
    if frame == "box":
        edge = np.maximum(abs(ys - 120), abs(xs - 120))
        line = (edge >= 100) & (edge <= 103)
    else:
        line = abs(np.hypot(ys - 120, xs - 120) - 108) <= 2
    paper = _flat()
    paper[line] *= 0.3
    digit = DIGITS[7]
    photo = _on_paper(_stroke(digit, 130), paper, at=(55, 55))
    assert _similarity(photo, digit) > 0.8


def test_a_lens_darkening_the_corners_is_not_light_ink():
    """A small thin 3 off-centre in a photo whose corners the lens darkened (picture 21 of the
    big-offcentre kind of ``python benchmarks/penstrokes.py``, reduced to 512 pixels): the
    bright middle is paper, not a light mark on a dark ground."""
    page = np.asarray(Image.open(PICTURES / "vignette-d3.png"), np.float32) / 255.0
    found = scan(page)
    assert found.info["ink"] == "dark on light"
    rows, cols = np.nonzero(found.mask == 1)  # the digit's ink is the 3, near (385, 330)
    assert 340 < rows.min() and rows.max() < 430 and 300 < cols.min() and cols.max() < 365
