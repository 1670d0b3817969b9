"""`lenet activations` and `lenet filters` on a run trained on the bundled sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import check_png, check_terminal_text
from PIL import Image
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.model import build_model
from lenet_cli.teach.activations import activations

runner = CliRunner()


def test_activations_json_shapes_and_softmax(sample_run, tmp_path):
    png = tmp_path / "act.png"
    args = ["activations", "--index", "0", "--checkpoint", str(sample_run), "--json"]
    result = runner.invoke(app, [*args, "--out", str(png)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    stages = doc["stages"]
    shapes = {k: stages[k]["shape"] for k in stages}
    assert shapes["input"] == [32, 32]
    assert shapes["conv1"] == [6, 30, 30] and shapes["pool1"] == [6, 15, 15]
    assert shapes["conv2"] == [16, 13, 13] and shapes["pool2"] == [16, 6, 6]
    assert shapes["fc1"] == [120] and shapes["fc2"] == [84] and shapes["softmax"] == [10]
    probs = stages["softmax"]["values"]
    assert sum(probs) == pytest.approx(1, abs=1e-3)
    assert doc["predicted"] == int(np.argmax(probs)) and doc["label"] == 7  # MNIST test #0
    assert min(np.ravel(stages["conv1"]["values"])) >= 0  # after ReLU
    check_png(png, min_size=(900, 1500))


def test_activations_hooks_see_the_models_own_forward():
    torch.manual_seed(0)
    model = build_model("tutorial")
    x = torch.randn(1, 1, 32, 32)
    values = activations(model, x, "tutorial")
    expected = torch.softmax(model(x), dim=1)[0].detach().numpy()
    assert np.allclose(values["softmax"], expected, atol=1e-6)
    pooled = torch.nn.functional.max_pool2d(torch.relu(model.conv1(x)), 2)[0].detach().numpy()
    assert np.allclose(values["pool1"], pooled, atol=1e-6)


def test_activations_terminal_and_an_image_file(sample_run, tmp_path):
    digit = np.zeros((60, 60), dtype=np.uint8)
    digit[10:50, 28:34] = 255  # a "1"
    Image.fromarray(digit).save(tmp_path / "one.png")
    args = ["activations", str(tmp_path / "one.png"), "--checkpoint", str(sample_run)]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "conv1: 6 maps after ReLU" in result.stdout and "<- prediction" in result.stdout
    assert "▀" in result.stdout or "█" in result.stdout
    check_terminal_text(result.stdout)


def test_activations_bad_inputs(sample_run, tmp_path, monkeypatch):
    (tmp_path / "not.png").write_text("hello")
    bad = runner.invoke(
        app, ["activations", str(tmp_path / "not.png"), "--checkpoint", str(sample_run)]
    )
    assert bad.exit_code == 8 and "not an image" in bad.stderr
    far = runner.invoke(app, ["activations", "--index", "99999", "--checkpoint", str(sample_run)])
    assert far.exit_code == 2 and "out of range" in far.stderr
    monkeypatch.chdir(tmp_path)
    none = runner.invoke(app, ["activations"])
    assert none.exit_code == 2 and "no run directory" in none.stderr
    for r in (bad, far, none):
        assert len(r.stderr.strip().splitlines()) == 1


def test_filters_two_checkpoints(sample_run, random_run, tmp_path):
    png = tmp_path / "f.png"
    args = ["filters", "--checkpoint", str(random_run), "--checkpoint", str(sample_run)]
    result = runner.invoke(app, [*args, "--json", "--out", str(png)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    first, second = doc["models"]
    assert first["conv1"]["shape"] == [6, 1, 3, 3] and first["conv2"]["shape"] == [16, 6, 3, 3]
    assert second["conv1"]["max_abs"] == pytest.approx(
        np.abs(second["conv1"]["weights"]).max(), abs=1e-4
    )
    check_png(png, min_size=(900, 900))


def test_filters_terminal_defaults_to_newest_run(sample_run, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(sample_run, tmp_path / "runs" / "x")
    result = runner.invoke(app, ["filters"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "newest run" in result.stderr and "runs/x" in result.stderr
    assert "conv1 #5" in result.stdout and "out 15 in 5" in result.stdout
    check_terminal_text(result.stdout)


def test_activations_on_fashion_mnist_names_garments(sample_run):
    from pathlib import Path

    if not Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is not installed here")
    args = ["activations", "--index", "0", "--checkpoint", str(sample_run), "--json"]
    result = runner.invoke(app, [*args, "--data", "fashion-mnist"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["class_names"][9] == "Ankle boot" and doc["label"] == 9  # test image 0: a boot
    text = runner.invoke(app, args[:-1] + ["--data", "fashion-mnist"], env={"COLUMNS": "200"})
    assert "Ankle boot" in text.stdout
    check_terminal_text(text.stdout)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_activations_and_filters_take_plain_weights(sample_run, tmp_path, suffix):
    """README: plain weights work wherever a checkpoint does; the numbers are the same."""
    from lenet_cli.runs.checkpoint import load_checkpoint

    state = load_checkpoint(sample_run)["model"]
    path = tmp_path / f"plain{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    docs = []
    for source in (sample_run, path):
        act = runner.invoke(
            app, ["activations", "--index", "0", "--checkpoint", str(source), "--json"]
        )
        assert act.exit_code == 0, act.output
        filt = runner.invoke(app, ["filters", "--checkpoint", str(source), "--json"])
        assert filt.exit_code == 0, filt.output
        docs.append((json.loads(act.stdout), json.loads(filt.stdout)["models"][0]))
    assert "holds plain weights" in act.stderr and "holds plain weights" in filt.stderr
    (act_ckpt, filt_ckpt), (act_plain, filt_plain) = docs
    assert act_plain["predicted"] == act_ckpt["predicted"]
    assert filt_plain["conv1"]["weights"] == filt_ckpt["conv1"]["weights"]
