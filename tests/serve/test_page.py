"""`lenet serve`'s page in headless Chromium (Debian's, driven by Playwright): a 1 and a 0 drawn
on the pad with the mouse are read as 1 and 0, the clear button works from the keyboard, and a
photo larger than the API takes is scaled down by the page and answered."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import Server, mnist_sample_digits
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
pytest.importorskip("fastapi", reason="fastapi is not installed (pip install 'lenet-cli[serve]')")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install 'lenet-cli[test]')"
)
if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(reading_run):
    server = Server("--checkpoint", str(reading_run))
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM),
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                ],
            )
            tab = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(server.url)
            tab.wait_for_function("document.querySelectorAll('#conv2 canvas').length === 16")
            yield tab
            assert errors == []
            browser.close()
    finally:
        assert server.stop() == 0, server.stderr


def draw(tab, strokes: list[list[tuple[float, float]]]) -> None:
    """Mouse strokes on #pad, in fractions of its size."""
    box = tab.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [
            (box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in stroke
        ]
        tab.mouse.move(*points[0])
        tab.mouse.down()
        for p in points[1:]:
            tab.mouse.move(*p, steps=3)
        tab.mouse.up()


def read(tab) -> str:
    """#prediction once the network has answered the whole drawing: '7 probability 0.934'."""
    tab.wait_for_selector('#prediction[aria-busy="false"] .digit', timeout=15000)
    return tab.locator("#prediction").inner_text()


def clear(tab) -> None:
    tab.locator("#clear").focus()
    tab.keyboard.press("Enter")  # a real button: the keyboard works as the mouse does
    assert tab.locator("#prediction").inner_text() == "\u2013"


def test_a_drawn_1_is_read_as_1(page):
    clear(page)
    draw(page, [[(0.52, 0.18), (0.50, 0.5), (0.48, 0.82)]])
    text = read(page)
    assert text.split()[0] == "1", text
    assert "probability" in text
    bars = page.locator("#probs li")
    assert bars.count() == 10 and "best" in (bars.nth(1).get_attribute("class") or "")


def test_a_drawn_0_is_read_as_0(page):
    clear(page)
    ring = [(0.5 + 0.2 * math.cos(t), 0.5 + 0.3 * math.sin(t)) for t in np.linspace(0, 6.4, 40)]
    draw(page, [ring])
    text = read(page)
    assert text.split()[0] == "0", text
    # the layers were drawn: conv1's first map is no longer blank
    drawn = page.evaluate(
        "(() => { const c = document.querySelector('#conv1 canvas');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " return d.some((v, i) => i % 4 !== 3 && v > 0); })()"
    )
    assert drawn


def test_a_large_photo_is_scaled_by_the_page_and_read(page, tmp_path):
    """A 3,000-pixel noisy photo of a 7 is several MB as PNG, over the API's 2 MB: the page
    scales it to 1,024 pixels as JPEG before sending, so it is answered."""
    clear(page)
    digit = mnist_sample_digits(1)[0][0]  # a 7
    rng = np.random.default_rng(0)
    paper = Image.fromarray(255 - digit).resize((3000, 3000), Image.BICUBIC)
    noisy = np.clip(np.asarray(paper, dtype=np.int16) + rng.integers(-12, 12, (3000, 3000)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(noisy.astype(np.uint8)).save(buffer, format="PNG")
    assert len(buffer.getvalue()) > 2 * 1024 * 1024
    photo = tmp_path / "photo.png"
    photo.write_bytes(buffer.getvalue())
    page.locator("#file").set_input_files(str(photo))
    text = read(page)
    assert text.split()[0] == "7", text
