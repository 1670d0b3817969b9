"""lenet_cli.load, .evaluate, .predict, .export: what the commands answer, from Python."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, mnist_sample_digits
from PIL import Image
from typer.testing import CliRunner

import lenet_cli as lenet
from lenet_cli.cli import app
from lenet_cli.errors import CheckpointError, ImageError, UsageError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two epochs on the bundled sample: a model that reads digits."""
    out = tmp_path_factory.mktemp("runs")
    res = lenet.train(data="mnist-sample", epochs=2, out=out, name="r", threads=1, progress="none")
    return res


def test_import_lenet_cli_imports_no_torch():
    code = (
        "import sys, lenet_cli as lenet\n"
        "assert callable(lenet.train) and callable(lenet.load) and callable(lenet.export)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'rich')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_evaluate_is_the_commands_evaluate(run):
    net = lenet.load(run.run_dir)
    assert type(net).__name__ == "Net" and not net.training
    mine = lenet.evaluate(net, data="mnist-sample")
    cli = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(run.run_dir), "--data", "mnist-sample", "--json"]
    )
    theirs = json.loads(cli.stdout)
    # the command runs the fused kernels, Python PyTorch's ops: the same up to rounding
    assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
    assert mine["accuracy"] == pytest.approx(theirs["accuracy"], abs=2e-4)
    assert mine["count"] == theirs["count"] == 10_000
    moved = np.abs(np.array(mine["confusion"]) - np.array(theirs["confusion"])).sum()
    assert moved <= 4 and [c["count"] for c in mine["per_class"]] == [
        c["count"] for c in theirs["per_class"]
    ]
    assert 0 < mine["accuracy"] < 1 and mine["data"] == "mnist-sample"
    assert mine["accuracy"] == pytest.approx(run.summary["best"]["test_acc"])
    # the trained model as train returned it: the same figures, no file read
    assert lenet.evaluate(run.model, data="mnist-sample")["accuracy"] == pytest.approx(
        mine["accuracy"]
    )
    # the same images given as arrays
    images, labels = mnist_sample_digits(500)
    by_arrays = lenet.evaluate(net, data=(images, labels))
    by_name = lenet.evaluate(net, data="mnist-sample")
    hits = sum(by_name["confusion"][k][k] for k in range(10))
    assert by_arrays["count"] == 500 and 0 < by_arrays["accuracy"] <= 1
    assert hits == round(by_name["accuracy"] * 10_000)


def test_predict_answers_as_lenet_predict_json(run, tmp_path):
    images, _ = mnist_sample_digits(3)
    paths = []
    for i, digit in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(digit).save(paths[-1])
    cli = CliRunner().invoke(
        app, ["predict", *map(str, paths), "--checkpoint", str(run.run_dir), "--json"]
    )
    want = json.loads(cli.stdout)["results"]
    net = lenet.load(run.run_dir)
    for given in (
        paths,  # paths
        [Image.open(p) for p in paths],  # PIL images
        images,  # one array [N, 28, 28] of uint8
        [d.astype(np.float32) / 255 for d in images],  # arrays of floats in 0..1
        torch.from_numpy(images.copy()).unsqueeze(1),  # a tensor [N, 1, 28, 28]
    ):
        got = lenet.predict(net, given)
        assert [r["predicted"] for r in got] == [r["predicted"] for r in want]
        for g, w in zip(got, want, strict=True):
            assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-4)
            assert "input" not in g
    one = lenet.predict(net, paths[0], preview=True)
    assert len(one) == 1 and np.array(one[0]["input"]).shape == (32, 32)
    assert lenet.predict(str(run.run_dir), [paths[0]])[0]["predicted"] == want[0]["predicted"]


def test_predict_and_evaluate_refuse_what_they_cannot_read(run, tmp_path):
    net = lenet.load(run.run_dir)
    blank = tmp_path / "blank.png"
    Image.new("L", (28, 28)).save(blank)
    with pytest.raises(ImageError, match=r"blank.png is blank.*\(1 of 2 pictures failed\)"):
        lenet.predict(net, [blank, mnist_sample_digits(1)[0][0]])
    with pytest.raises(ImageError, match=r"images\[0\] is int64"):
        lenet.predict(net, [np.zeros((28, 28), dtype=np.int64)])
    with pytest.raises(UsageError, match=r"images\[0\] is a dict"):
        lenet.predict(net, [{}])
    with pytest.raises(UsageError, match="split='val' is neither"):
        lenet.evaluate(net, data="mnist-sample", split="val")
    with pytest.raises(UsageError, match="expected a torch.nn.Module"):
        lenet.evaluate(object())
    with pytest.raises(UsageError, match="load takes a path"):
        lenet.load(net)
    assert lenet.evaluate(run, data="mnist-sample")["count"] == 10_000  # a TrainResult


def test_a_module_without_lenet_meta_is_normalised_as_mnist_and_says_so(run, capsys):
    from lenet_cli.model import Net

    plain = Net()
    plain.load_state_dict(lenet.load(run.run_dir).state_dict())
    report = lenet.evaluate(plain, data="mnist-sample")
    assert (
        "carries no lenet_meta: inputs normalised with MNIST's mean/std" in capsys.readouterr().err
    )
    assert 0 < report["accuracy"] < 1


def test_load_plain_weights_and_into_an_instance(run, tmp_path):
    from lenet_cli.model import Net

    trained = lenet.load(run.run_dir)
    plain = tmp_path / "w.pt"
    torch.save(trained.state_dict(), plain)
    again = lenet.load(plain)
    pairs = zip(again.state_dict().values(), trained.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    target = Net()
    assert lenet.load(plain, model=target) is target
    assert torch.equal(target.fc3.bias, trained.fc3.bias)
    with pytest.raises(CheckpointError, match=r"'Net' needs \(6, 1, 5, 5\)"):
        lenet.load(plain, model=Net(kernel_size=5))
    with pytest.raises(UsageError, match="weights='best' is none of"):
        lenet.load(run.run_dir, weights="best")
    with pytest.raises(CheckpointError, match="holds no averaged weights"):
        lenet.load(run.run_dir, weights="ema")
    with pytest.raises(CheckpointError, match="does not exist"):
        lenet.load(tmp_path / "nothing.pt")


def test_export_from_python(run, tmp_path):
    out = tmp_path / "m.safetensors"
    info = lenet.export(run, format="safetensors", out=out, verify=True, data="mnist-sample")
    assert info["out"] == str(out) and out.stat().st_size == info["bytes"]
    assert info["verify"]["same_predictions"] == info["verify"]["count"] == 10_000
    assert lenet.load(out).state_dict()["fc3.bias"].equal(run.model.fc3.bias.cpu())
    from lenet_cli.errors import OutputExistsError

    with pytest.raises(OutputExistsError):
        lenet.export(run.run_dir, format="safetensors", out=out)
    with pytest.raises(UsageError, match="format='tflite' is none of"):
        lenet.export(run.run_dir, format="tflite")
