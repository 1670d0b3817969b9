"""`lenet export`: each format reloads where lenet-cli is not imported and predicts the same."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.errors import ExportMismatchError

# Loads an artifact as its own runtime does, in a process that never imports lenet_cli, and
# writes the predicted classes of the test digits (normalised, saved by the test) as .npy.
RELOAD = r"""
import sys
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

fmt, path, images_path, out_path = sys.argv[1:]
x = torch.from_numpy(np.load(images_path))


class Net(nn.Module):  # the tutorial's network, written out here: no lenet_cli
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 3), nn.Conv2d(6, 16, 3)
        self.fc1, self.fc2, self.fc3 = nn.Linear(576, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


if fmt == "safetensors":
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    assert meta["arch"] == "tutorial" and meta["input_shape"] == "1x32x32", meta
    assert meta["padding"] == "2" and float(meta["std"]) > 0, meta
    net = Net().eval()
    net.load_state_dict(load_file(path))
    with torch.no_grad():
        scores = net(x)
elif fmt == "pt2":
    with torch.no_grad():
        scores = torch.export.load(path).module()(x)
else:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    scores = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
assert not any(m.startswith("lenet_cli") for m in sys.modules), "lenet_cli was imported"
np.save(out_path, scores.argmax(1).numpy())
"""


@pytest.fixture(scope="module")
def test_digits(sample_run, tmp_path_factory):
    """The 10,000 test digits normalised as the model was trained, and its own predictions."""
    from lenet_cli.use.evaluate import model_data
    from lenet_cli.use.weights import load_model

    model, meta = load_model(sample_run, torch.device("cpu"))
    ds, images = model_data(meta, data=None, split="test", data_dir=None, device="cpu")
    path = tmp_path_factory.mktemp("digits") / "test.npy"
    np.save(path, images.numpy())
    with torch.no_grad():
        predicted = model(images).argmax(1).numpy()
    return path, predicted, ds.labels.numpy()


@pytest.mark.slow
@pytest.mark.parametrize(
    "fmt", ["safetensors", "pt2", pytest.param("onnx", marks=pytest.mark.extra("onnx"))]
)
def test_export_reloads_without_lenet_and_predicts_the_same(fmt, sample_run, test_digits, tmp_path):
    images, predicted, labels = test_digits
    out = tmp_path / f"model.{fmt}"
    args = ["export", str(sample_run), "--format", fmt, "--out", str(out), "--verify", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["out"] == str(out) and doc["bytes"] == out.stat().st_size > 100_000
    v = doc["verify"]
    assert v["count"] == 10_000 and v["max_abs_diff"] <= 1e-4
    assert v["accuracy_export"] == v["accuracy_checkpoint"] > 0.5
    assert v["accuracy_checkpoint"] == pytest.approx((predicted == labels).mean())

    preds = tmp_path / "preds.npy"
    run = subprocess.run(
        [sys.executable, "-c", RELOAD, fmt, str(out), str(images), str(preds)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert (np.load(preds) == predicted).all()


def test_export_refuses_to_overwrite_and_default_out(sample_run, tmp_path):
    import shutil

    source = tmp_path / "best.pt"
    shutil.copy(sample_run / "best.pt", source)
    first = CliRunner().invoke(app, ["export", str(source), "--format", "safetensors"])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "best.safetensors").is_file()
    again = CliRunner().invoke(app, ["export", str(source), "--format", "safetensors"])
    assert again.exit_code == 10 and "already exists" in again.stderr
    forced = ["export", str(source), "--format", "safetensors", "--force"]
    assert CliRunner().invoke(app, forced).exit_code == 0
    nowhere = ["export", str(source), "--format", "safetensors", "--out", str(tmp_path / "no/x")]
    assert CliRunner().invoke(app, nowhere).exit_code == 11


def test_missing_onnx_extra_names_it(sample_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript -> ImportError
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(
        app, ["export", str(sample_run), "--format", "onnx", "--out", str(out)]
    )
    assert result.exit_code == 14
    assert "pip install 'lenet-cli[onnx]'" in result.stderr and not out.exists()
    assert "Traceback" not in result.output


def test_verify_refuses_an_artifact_that_differs(sample_run, tmp_path):
    from lenet_cli.use.export import verify_export, write_export
    from lenet_cli.use.weights import load_model

    model, meta = load_model(sample_run, torch.device("cpu"))
    out = write_export(model, meta, "safetensors", tmp_path / "m.safetensors")
    with torch.no_grad():
        model.fc3.bias += 0.01  # the checkpoint's model no longer matches the file
    images = torch.randn(50, 1, 32, 32)
    with pytest.raises(ExportMismatchError, match="largest score difference 0.01"):
        verify_export(model, "safetensors", out, "tutorial", images, torch.zeros(50).long())


@pytest.mark.parametrize(
    "name",
    [
        "last.pt",
        "best.pt",
        "epoch-003.pt",
        "config.toml",
        "env.json",
        "metrics.jsonl",
        "metrics.csv",
    ],
)
def test_export_never_overwrites_a_runs_own_files(tmp_path, name):
    """--force or not, directly or through a symlinked directory or file: exit 10, untouched."""
    from conftest import checkpoint_payload

    from lenet_cli.runs.checkpoint import save_checkpoint

    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    for own in ("config.toml", "env.json", "metrics.jsonl", "metrics.csv"):
        (run / own).write_text(f"{own} of the run\n")
    payload = checkpoint_payload()
    save_checkpoint(run / "last.pt", payload)
    save_checkpoint(run / "best.pt", payload)
    save_checkpoint(run / "epoch-003.pt", payload)  # --save-top-k's
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    (tmp_path / "link").symlink_to(run, target_is_directory=True)
    (tmp_path / "file-link.pt2").symlink_to(run / name)
    for out in (run / name, tmp_path / "link" / name, tmp_path / "file-link.pt2"):
        for force in ([], ["--force"]):
            args = ["export", str(run / "best.pt"), "--format", "pt2", "--out", str(out), *force]
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 10, (out, result.output)
            (line,) = result.stderr.strip().splitlines()
            assert name in line and "run" in line, line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    beside = ["export", str(run / "best.pt"), "--format", "safetensors"]  # best.safetensors
    assert CliRunner().invoke(app, beside).exit_code == 0
