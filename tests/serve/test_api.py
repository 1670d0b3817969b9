"""`lenet serve`'s API through FastAPI's TestClient: the answers of `lenet predict --json` and
`lenet activations --json`, every refusal as JSON, and 16 clients at once."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import mnist_sample_digits
from PIL import Image
from typer.testing import CliRunner

from lenet_cli.cli import app

pytest.importorskip("fastapi", reason="fastapi is not installed (pip install 'lenet-cli[serve]')")
pytest.importorskip("httpx", reason="httpx (FastAPI's TestClient) is not installed")
pytest.importorskip("python_multipart", reason="python-multipart is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from lenet_cli.serve.web import create_app  # noqa: E402


def png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def digit_png(digit: np.ndarray, side: int = 140) -> bytes:
    """An MNIST digit drawn dark on white paper, scaled up as a photo or a drawing would be."""
    return png(Image.fromarray(255 - digit).resize((side, side), Image.BICUBIC))


@pytest.fixture(scope="module")
def client(reading_run):
    with TestClient(create_app(reading_run)) as c:
        yield c


def post(client, body: bytes, endpoint: str = "predict", content_type: str = "image/png"):
    return client.post(f"/api/{endpoint}", content=body, headers={"Content-Type": content_type})


def test_real_digits_are_answered_as_lenet_predict_json_answers_them(client, reading_run, tmp_path):
    digits, labels = mnist_sample_digits(24)
    files = []
    for k, digit in enumerate(digits):
        files.append(tmp_path / f"d{k}.png")
        files[-1].write_bytes(digit_png(digit))
    cli = CliRunner().invoke(
        app, ["predict", *map(str, files), "--checkpoint", str(reading_run), "--json", "--preview"]
    )
    assert cli.exit_code == 0, cli.output
    expected = json.loads(cli.stdout)["results"]
    hits = 0
    for k, (path, want) in enumerate(zip(files, expected, strict=True)):
        if k % 2:  # the picture as the body, or as the multipart field `file`
            r = post(client, path.read_bytes())
        else:
            r = client.post("/api/predict", files={"file": (path.name, path.read_bytes())})
        assert r.status_code == 200, r.text
        got = r.json()
        assert set(got) == {"predicted", "probabilities", "input", "warnings"}
        assert got["predicted"] == want["predicted"]
        assert got["input"] == want["input"]  # the same preparation
        # the same numbers; `lenet predict` ran the 24 as one batch, the API one at a time
        np.testing.assert_allclose(
            got["probabilities"], want["probabilities"], rtol=1e-5, atol=1e-7
        )
        assert got["warnings"] == want.get("warnings", [])
        hits += got["predicted"] == labels[k]
    assert hits >= 18  # the model reads digits (about 90% on the test set)


def test_activations_have_the_keys_and_values_of_lenet_activations_json(
    client, reading_run, tmp_path
):
    path = tmp_path / "seven.png"
    path.write_bytes(digit_png(mnist_sample_digits(1)[0][0]))
    cli = CliRunner().invoke(
        app, ["activations", str(path), "--checkpoint", str(reading_run), "--json"]
    )
    assert cli.exit_code == 0, cli.output
    want = json.loads(cli.stdout)
    r = post(client, path.read_bytes(), "activations")
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got) == set(want)
    assert got["stages"] == want["stages"]  # every stage's shape and values
    assert got["stages"]["conv1"]["shape"] == [6, 30, 30]
    assert got["stages"]["conv2"]["shape"] == [16, 13, 13]
    assert got["predicted"] == want["predicted"] == 7


def test_model_says_what_answers(client, reading_run):
    info = client.get("/api/model").json()
    assert info["arch"] == "tutorial" and info["parameters"] == 81_194
    assert info["checkpoint"] == str(reading_run / "best.pt")
    rows = [json.loads(line) for line in (reading_run / "metrics.jsonl").read_text().splitlines()]
    assert info["test_accuracy"] == max(r["test_acc"] for r in rows)
    assert info["class_names"] == [str(k) for k in range(10)]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]


def _bomb() -> bytes:
    """A small PNG that says it is 20,000 x 20,000 pixels."""
    return png(Image.new("1", (20_000, 20_000)))


def _multipart(body: bytes, boundary: str = "b0und") -> tuple[bytes, str]:
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="other"; filename="x.png"\r\n'
    data = (
        head.encode()
        + b"Content-Type: image/png\r\n\r\n"
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return data, f"multipart/form-data; boundary={boundary}"


BAD = {
    "text body": (415, b"hello", "text/plain"),
    "no Content-Type": (415, b"\x89PNG", ""),
    "JSON": (415, b'{"image": 1}', "application/json"),
    "empty body": (400, b"", "image/png"),
    "not an image": (400, b"this is not a picture at all", "image/png"),
    "truncated PNG": (400, "truncated", "image/png"),
    "form without a file field": (400, "form", None),
    "form without a boundary": (400, b"--x\r\n\r\n", "multipart/form-data"),
    "over 2 MB": (413, b"\x89PNG" + b"\0" * (2 * 1024 * 1024), "image/png"),
    "over 4096 pixels a side": (413, "wide", "image/png"),
    "decompression bomb": (413, "bomb", "image/png"),
    "no ink": (422, "blank", "image/png"),
}


@pytest.mark.parametrize("endpoint", ["predict", "activations"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_json_4xx_and_the_server_keeps_answering(client, case, endpoint):
    status, body, content_type = BAD[case]
    good = digit_png(mnist_sample_digits(1)[0][0])
    if body == "truncated":
        body = good[: len(good) // 2]
    elif body == "form":
        body, content_type = _multipart(good)
    elif body == "wide":
        body = png(Image.new("L", (5000, 8), 255))
    elif body == "bomb":
        body = _bomb()
    elif body == "blank":
        body = png(Image.new("RGB", (200, 200), "white"))
    r = post(client, body, endpoint, content_type)
    assert r.status_code == status, (case, r.text)
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert isinstance(error, str) and len(error) > 10
    assert post(client, good, endpoint).status_code == 200  # still serving


def test_wrong_method_and_unknown_path_are_json(client):
    for method, path in [("GET", "/api/predict"), ("DELETE", "/api/model"), ("POST", "/healthz")]:
        r = client.request(method, path)
        assert r.status_code == 405, (method, path)
        assert "is not allowed" in r.json()["error"]
    r = client.get("/api/nothing")
    assert r.status_code == 404 and "error" in r.json()


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(client):
    r = client.post(
        "/api/predict",
        content=b"\x89PNG",
        headers={"Content-Type": "image/png", "Content-Length": str(3 * 1024 * 1024)},
    )
    assert r.status_code == 413 and "2,097,152" in r.json()["error"]


def test_the_page_and_its_files_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for element in ('id="pad"', 'id="clear"', 'id="prediction"', 'id="stroke"', 'id="upload"'):
        assert element in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing fetched from elsewhere
    assert "pointerdown" in client.get("/static/app.js").text
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/../service.py").status_code == 404


def test_sixteen_clients_at_once_get_the_answers_one_gets_alone(client):
    digits, _ = mnist_sample_digits(16)
    bodies = [digit_png(d, side=120 + 8 * k) for k, d in enumerate(digits)]
    alone = [post(client, b).json() for b in bodies]
    alone_layers = [post(client, b, "activations").json()["stages"]["fc2"] for b in bodies]

    def ask(k: int):
        endpoint = "activations" if k % 3 == 0 else "predict"
        r = post(client, bodies[k % 16], endpoint)
        return k, endpoint, r.status_code, r.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(160)))
    for k, endpoint, status, got in answers:
        assert status == 200, got
        if endpoint == "predict":
            assert got == alone[k % 16]
        else:
            assert got["stages"]["fc2"] == alone_layers[k % 16]
            assert got["predicted"] == alone[k % 16]["predicted"]


def test_the_errors_docs_show_are_what_the_api_says(client):
    from conftest import REPO

    doc = (REPO / "docs" / "serve.md").read_text(encoding="utf-8")
    blank = post(client, png(Image.new("RGB", (200, 200), "white")))
    text = post(client, b"hello", content_type="text/plain")
    for answer in (blank, text):
        assert json.dumps(answer.json(), separators=(",", ":")) in doc
