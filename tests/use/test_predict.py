"""`lenet predict` / `forward --image`: MNIST-style preparation, and clear errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.errors import ImageError
from lenet_cli.use.predict import MAX_PIXELS, prepare_array, prepare_image

SAMPLE = REPO / "lenet_cli" / "data" / "mnist_sample"


def _mnist_test_digits(n: int) -> np.ndarray:
    raw = gzip.decompress((SAMPLE / "t10k-images-idx3-ubyte.gz").read_bytes())
    return np.frombuffer(raw, dtype=np.uint8, offset=16)[: n * 784].reshape(n, 28, 28)


def test_real_mnist_digits_come_back_nearly_unchanged(tmp_path):
    """MNIST digits are already prepared this way: drawn dark on white paper, upscaled and
    off-centre, they must come back as (nearly) the original 28x28 digit."""
    for k, digit in enumerate(_mnist_test_digits(5)):
        paper = Image.fromarray(255 - digit).resize((140, 140), Image.BICUBIC)
        canvas = Image.new("L", (300, 200), 255)
        canvas.paste(paper, (150, 40))
        path = tmp_path / f"d{k}.png"
        canvas.save(path)
        _, seen = prepare_image(path, mean=0.0, std=1.0)
        assert seen.shape == (32, 32) and seen[:2].max() == 0 and seen[:, -2:].max() == 0
        got, want = seen[2:30, 2:30].ravel(), digit.ravel() / 255.0
        assert np.corrcoef(got, want)[0, 1] > 0.8, k


def test_fitted_into_20_and_centred_by_mass():
    ink = np.zeros((100, 40), dtype=np.float32)
    ink[10:90, 15:25] = 1.0  # a tall bar: height becomes 20, aspect kept
    field = prepare_array(ink)
    rows, cols = np.nonzero(field > 0.5)
    assert rows.max() - rows.min() + 1 in (19, 20, 21) and cols.max() - cols.min() + 1 <= 4
    ys, xs = np.indices(field.shape)
    assert abs((ys * field).sum() / field.sum() - 14) <= 0.5
    assert abs((xs * field).sum() / field.sum() - 14) <= 0.5


def test_bad_images_are_clear_errors(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.new("L", (30, 30), 255).save(tmp_path / "blank.png")
    side = int(MAX_PIXELS**0.5) + 10
    Image.new("1", (side, side), 1).save(tmp_path / "bomb.png")  # a few KB, decoded >40 MP
    for name, words in (
        ("text.png", "not an image"),
        ("empty.png", "empty"),
        ("blank.png", "blank"),
        ("bomb.png", "decompression bomb"),
        ("missing.png", "does not exist"),
    ):
        with pytest.raises(ImageError, match=words):
            prepare_image(tmp_path / name, 0.0, 1.0)


def _digit_png(tmp_path: Path) -> Path:
    path = tmp_path / "seven [1].png"  # '[' would be Rich markup if not escaped
    Image.fromarray(255 - _mnist_test_digits(1)[0]).save(path)
    return path


def test_predict_json_and_preview(tmp_path, random_run):
    image = _digit_png(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(image),
            str(image),
            "--checkpoint",
            str(random_run),
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["results"]) == 2 and "input" not in doc["results"][0]
    probs = doc["results"][0]["probabilities"]
    assert len(probs) == 10 and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert doc["results"][0]["predicted"] == int(np.argmax(probs))
    shown = CliRunner().invoke(
        app,
        ["predict", str(image), "--checkpoint", str(random_run), "--device", "cpu", "--preview"],
    )
    assert shown.exit_code == 0 and "seven [1].png" in shown.stdout
    # The preview: 32 pixel columns, two pixel rows per text line, ink drawn in shade characters.
    rows = [ln for ln in shown.stdout.splitlines() if len(ln) == 32]
    assert len(rows) == 16 + 1  # 16 lines of pixels, then the caption
    assert any(set(ln) - {" "} for ln in rows[:16]) and rows[0].strip() == ""


def test_forward_image_goes_through_predict(tmp_path, random_run):
    image = _digit_png(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "forward",
            "--image",
            str(image),
            "--checkpoint",
            str(random_run),
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["results"]) == 1
    bare = CliRunner().invoke(app, ["forward", "--image", str(image)])
    assert bare.exit_code == 2 and "--checkpoint" in bare.stderr


def test_predict_not_an_image_exit_8(tmp_path, random_run):
    (tmp_path / "x.jpg").write_text("hello")
    result = CliRunner().invoke(
        app,
        ["predict", str(tmp_path / "x.jpg"), "--checkpoint", str(random_run), "--device", "cpu"],
    )
    assert result.exit_code == 8 and "x.jpg" in result.stderr


def test_a_directory_is_not_called_missing(tmp_path, random_run):
    result = CliRunner().invoke(
        app, ["predict", str(tmp_path), "--checkpoint", str(random_run), "--device", "cpu"]
    )
    assert result.exit_code == 8
    assert "is a directory" in result.stderr and "does not exist" not in result.stderr


def test_light_strokes_on_a_transparent_canvas_are_ink(tmp_path):
    # a dark-mode drawing app's export: white strokes, transparent background
    for name, ink in (("light.png", (255, 255, 255, 255)), ("dark.png", (0, 0, 0, 255))):
        img = Image.new("RGBA", (28, 28), (ink[0], ink[1], ink[2], 0))
        for y in range(5, 23):
            for x in range(12, 16):
                img.putpixel((x, y), ink)
        img.save(tmp_path / name)
    _, light = prepare_image(tmp_path / "light.png", 0.0, 1.0)
    _, dark = prepare_image(tmp_path / "dark.png", 0.0, 1.0)
    assert light.max() == 1.0
    np.testing.assert_array_equal(light, dark)


def test_a_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    """A 16-bit scan: paper 60,000, ink 6,000 (both above 255, so clipping made it blank)."""
    digit = _mnist_test_digits(1)[0].astype(np.float64) / 255.0
    deep = (60000 - digit * 54000).astype(np.uint16)  # dark ink on light 16-bit paper
    Image.fromarray(deep).save(tmp_path / "deep.png")
    Image.fromarray(np.uint8(np.round(deep / 65535 * 255))).save(tmp_path / "eight.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I;16")
    _, deep_seen = prepare_image(tmp_path / "deep.png", 0.0, 1.0)
    _, eight_seen = prepare_image(tmp_path / "eight.png", 0.0, 1.0)
    assert deep_seen.max() == pytest.approx(1.0)
    assert np.corrcoef(deep_seen.ravel(), eight_seen.ravel())[0, 1] > 0.98
    # 32-bit float images (TIFF) are scaled to their range too
    Image.fromarray((deep / 65535).astype(np.float32)).save(tmp_path / "float.tif")
    _, float_seen = prepare_image(tmp_path / "float.tif", 0.0, 1.0)
    assert np.corrcoef(float_seen.ravel(), eight_seen.ravel())[0, 1] > 0.98


def test_one_bad_image_does_not_stop_the_others(tmp_path, random_run):
    good = _digit_png(tmp_path)
    (tmp_path / "bad.png").write_text("not an image")
    args = ["predict", str(good), str(tmp_path / "bad.png"), str(tmp_path / "gone.png")]
    args += ["--checkpoint", str(random_run), "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 8  # documented: some images could not be read
    doc = json.loads(result.stdout)  # still exactly one JSON document, with the good answer
    assert [r["file"] for r in doc["results"]] == [str(good)]
    assert [f["file"] for f in doc["failed"]] == [
        str(tmp_path / "bad.png"),
        str(tmp_path / "gone.png"),
    ]
    lines = [ln for ln in result.stderr.strip().splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 2 and "bad.png" in lines[0] and "gone.png" in lines[1]
    assert "2 of 3 images failed" in lines[1] and "Traceback" not in result.stderr
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 8 and "seven [1].png" in plain.stdout


def test_a_fifo_is_not_a_regular_file(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageError, match="is not a regular file"):
        prepare_image(tmp_path / "pipe.png", 0.0, 1.0)


def _predict_preview_out(image: Path, checkpoint: Path, out: str):
    args = ["predict", str(image), "--checkpoint", str(checkpoint), "--device", "cpu"]
    return CliRunner().invoke(app, [*args, "--preview-out", out])


def _one_error_line(result, *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    for word in words:
        assert word in lines[0]


def test_preview_out_png_file_holds_the_steps(tmp_path, random_run):
    from conftest import check_png

    result = _predict_preview_out(_digit_png(tmp_path), random_run, str(tmp_path / "s.png"))
    assert result.exit_code == 0, result.output
    check_png(tmp_path / "s.png")


@pytest.mark.parametrize("name", ["steps.jpg", "steps"])
def test_preview_out_file_without_png_suffix_is_a_usage_error(tmp_path, random_run, name):
    result = _predict_preview_out(_digit_png(tmp_path), random_run, str(tmp_path / name))
    assert result.exit_code == 2
    _one_error_line(result, "--preview-out", name, "PNG")
    assert not (tmp_path / name).exists()


def test_empty_preview_out_is_a_usage_error(tmp_path, random_run, monkeypatch):
    image = _digit_png(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = _predict_preview_out(image, random_run, "")
    assert result.exit_code == 2
    _one_error_line(result, "--preview-out is empty")
    assert [p.name for p in tmp_path.iterdir()] == [image.name]  # nothing in this folder


def test_preview_out_under_a_file_is_exit_11_before_any_work(tmp_path):
    (tmp_path / "plain").write_text("a file where a folder would go")
    gone = tmp_path / "no-such-run"  # the checkpoint is never read: the path is checked first
    for out in ("plain/s.png", "plain/sub/s.png"):
        result = _predict_preview_out(_digit_png(tmp_path), gone, str(tmp_path / out))
        assert result.exit_code == 11, result.output
        _one_error_line(result, "--preview-out", "plain is a file, not a folder")


def test_preview_out_in_a_read_only_folder_is_exit_11_before_any_work(tmp_path, monkeypatch):
    import errno
    import os
    import tempfile

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes in it anyway: refuse as a read-only mount does
        make = tempfile.mkstemp

        def read_only(*args, dir=None, **kwargs):  # noqa: A002  (mkstemp's own name)
            if dir is not None and Path(dir) == folder:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            return make(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", read_only)
    result = _predict_preview_out(_digit_png(tmp_path), tmp_path / "no-such-run", str(folder))
    assert result.exit_code == 11, result.output
    _one_error_line(result, "--preview-out", str(folder))
    assert list(folder.iterdir()) == []
