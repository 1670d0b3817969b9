"""Data and models given in Python: checked, trained, recorded, and refused by the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import mnist_sample_digits
from torch import nn
from typer.testing import CliRunner

import lenet_cli as lenet
from lenet_cli.cli import app
from lenet_cli.errors import CheckpointError, DataError, UsageError

QUICK = dict(epochs=1, batch_size=100, device="cpu", threads=1, progress="none")


class Tiny(nn.Module):
    """A model of one's own: not a LeNet the commands know."""

    def __init__(self, out: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 5, stride=2)
        self.fc = nn.Linear(4 * 14 * 14, out)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def digits():
    images, labels = mnist_sample_digits(600)
    return images, labels


@pytest.fixture(scope="module")
def own_run(tmp_path_factory, digits):
    """A Tiny trained on 500 given digits (MNIST's test set's first), tested on 100 more."""
    images, labels = digits
    out = tmp_path_factory.mktemp("own")
    torch.manual_seed(0)
    res = lenet.train(
        data=(images[:500], labels[:500]),
        test_data=(images[500:], labels[500:]),
        model=Tiny(),
        out=out,
        name="own",
        epochs=3,
        **{k: v for k, v in QUICK.items() if k != "epochs"},
    )
    return res, images, labels


def _bad(images, labels, match, kind=DataError, tmp_path=None, **extra):
    with pytest.raises(kind, match=match):
        lenet.train(data=(images, labels), **QUICK, out=tmp_path, **extra)
    assert not any(tmp_path.iterdir())  # nothing written


def test_given_data_are_checked_before_anything_is_written(tmp_path, digits):
    x, y = digits[0][:50], digits[1][:50]
    _bad(x[:, :20], y, r"data= images have shape \[50, 20, 28\]", tmp_path=tmp_path)
    _bad(x, y[:49], "data= has 50 images but 49 labels", tmp_path=tmp_path)
    _bad(x, y + 1, r"data= labels hold 10 \(at 7\): the classes are 0..9", tmp_path=tmp_path)
    _bad(x, y.astype(float), "labels are float64: expected whole numbers", tmp_path=tmp_path)
    _bad(x.astype(np.float32), y, r"floats in \[0, 255\]: expected 0..1", tmp_path=tmp_path)
    nan = x.astype(np.float32) / 255
    nan[7, 3, 3] = np.nan
    _bad(nan, y, r"hold NaN or Inf \(the first in image 7\)", tmp_path=tmp_path)
    _bad(x.astype(np.int64), y, "are int64: expected uint8", tmp_path=tmp_path)
    _bad(x, y.reshape(5, 10), r"labels have shape \[5, 10\]", tmp_path=tmp_path)
    _bad(x[:1], y[:1], "too few to hold a tenth out", tmp_path=tmp_path)
    with pytest.raises(UsageError, match="a data set's name or a pair"):
        lenet.train(data=[x], **QUICK, out=tmp_path)
    with pytest.raises(UsageError, match="test_data= goes with data="):
        lenet.train(test_data=(x, y), **QUICK, out=tmp_path)
    _bad(x, y, "data_dir= reads IDX files", kind=UsageError, tmp_path=tmp_path, data_dir="d")


def test_given_models_are_checked_before_anything_is_written(tmp_path):
    with pytest.raises(UsageError, match=r"maps \[2, 1, 32, 32\] to \[2, 3\], not \[2, 10\]"):
        lenet.train(data="random", model=Tiny(out=3), **QUICK, out=tmp_path)
    with pytest.raises(UsageError, match="fails on a batch of .2, 1, 32, 32. images"):
        lenet.train(data="random", model=nn.Linear(3, 10), **QUICK, out=tmp_path)
    with pytest.raises(UsageError, match="arch= names a built-in network"):
        lenet.train(data="random", model=Tiny(), arch="lenet5", **QUICK, out=tmp_path)
    with pytest.raises(UsageError, match="fused C step computes the built-in networks only"):
        lenet.train(data="random", model=Tiny(), fused=True, **QUICK, out=tmp_path)
    with pytest.raises(UsageError, match="takes a torch.nn.Module"):
        lenet.train(data="random", model="tutorial", **QUICK, out=tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_run_on_given_data_and_model_records_them(own_run):
    res, _, _ = own_run
    run = res.run_dir
    assert res.summary["data"] == "python" and res.summary["arch"] == "python:Tiny"
    assert res.metrics[-1]["test_acc"] > 0.5  # it learnt from the given digits
    env = json.loads((run / "env.json").read_text())
    assert env["fused_step"] is None and env["fused_kernels"] is False  # PyTorch's ops
    assert env["given_in_python"] == {
        "data": "500 training images (28x28) from data=, 100 test from test_data=",
        "model": f"{Tiny.__module__}.Tiny",
    }
    config = (run / "config.toml").read_text()
    assert 'data = "python"' in config and 'arch = "python:Tiny"' in config
    assert "given in Python" in config.splitlines()[1]
    # the checkpoint names nothing it cannot rebuild: no arch, no data set, no config keys
    saved = torch.load(run / "last.pt", weights_only=True)
    assert saved["arch"] is None and saved["data"] is None
    assert "arch" not in saved["config"] and "data" not in saved["config"]
    assert set(saved["model"]) == set(Tiny().state_dict())
    # `lenet runs` shows it
    table = CliRunner().invoke(app, ["runs", "list", str(run), "--json"])
    assert table.exit_code == 0, table.output
    assert '"data": "python"' in table.stdout and '"arch": "python:Tiny"' in table.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "--checkpoint", "RUN"],
        ["predict", "--checkpoint", "RUN", "IMG"],
        ["export", "RUN", "--format", "safetensors"],
        ["inspect-params", "--checkpoint", "RUN"],
        ["activations", "--checkpoint", "RUN", "--index", "0"],
        ["train", "--resume", "RUN"],
        ["train", "--init", "RUN", "--data", "random"],
    ],
)
def test_commands_refuse_a_model_given_in_python(own_run, tmp_path, args):
    from PIL import Image

    run = own_run[0].run_dir
    img = tmp_path / "d.png"
    Image.fromarray(own_run[1][0]).save(img)
    args = [str(run) if a == "RUN" else str(img) if a == "IMG" else a for a in args]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 6, result.output
    assert "holds the weights of a model given in Python" in result.output
    assert "Tiny" in result.output and "lenet_cli.load(PATH, model=Tiny())" in result.output


def test_rerunning_its_config_file_is_refused(own_run):
    config = own_run[0].run_dir / "config.toml"
    result = CliRunner().invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 7
    assert "data = 'python': its data were given in Python" in result.output
    with pytest.raises(Exception, match="given in Python") as e:
        lenet.train(config, **QUICK)
    assert e.value.exit_code == 7


def test_load_needs_an_instance_and_fills_it(own_run):
    res, images, labels = own_run
    with pytest.raises(CheckpointError, match="model given in Python"):
        lenet.load(res.run_dir)
    wrong = r"model.fc.weight has shape \(10, 784\), 'Tiny' needs \(3, 784\) \(pass an instance"
    with pytest.raises(CheckpointError, match=wrong):
        lenet.load(res.run_dir, model=Tiny(out=3))
    net = lenet.load(res.run_dir, model=Tiny())
    best = torch.load(res.run_dir / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(best[k], v) for k, v in net.state_dict().items())
    # evaluate: no data set to default to; the given test set gives the run's own figure
    with pytest.raises(UsageError, match="trained on data given in Python"):
        lenet.evaluate(net)
    report = lenet.evaluate(net, data=(images[500:], labels[500:]))
    best_row = max(res.metrics, key=lambda r: r["test_acc"])
    assert report["accuracy"] == pytest.approx(best_row["test_acc"])
    assert report["loss"] == pytest.approx(best_row["test_loss"], rel=1e-5)
    assert report["count"] == 100 and sum(map(sum, report["confusion"])) == 100


def test_resume_in_python_with_the_same_kinds_of_things(own_run, tmp_path):
    import shutil

    res, images, labels = own_run
    copy = tmp_path / "own"
    shutil.copytree(res.run_dir, copy)
    data = dict(data=(images[:500], labels[:500]), test_data=(images[500:], labels[500:]))
    with pytest.raises(CheckpointError, match="model given in Python"):
        lenet.train(resume=copy, **data)
    with pytest.raises(CheckpointError, match="cannot be resumed without its data"):
        lenet.train(resume=copy, model=Tiny())
    more = lenet.train(
        resume=copy, **data, model=Tiny(), epochs=4, restart_schedule=True, progress="none"
    )
    assert [r["epoch"] for r in more.metrics] == [1, 2, 3, 4]
    # the CLI cannot give the data back
    result = CliRunner().invoke(app, ["train", "--resume", str(copy)])
    assert result.exit_code == 6


def test_a_builtin_net_on_given_data_works_with_the_commands(tmp_path, digits):
    images, labels = digits
    res = lenet.train(data=(images, labels), **QUICK, out=tmp_path, name="b", arch="lenet5")
    assert res.summary["data"] == "python" and res.summary["arch"] == "lenet5"
    assert sum(len(r) for r in [res.metrics]) == 1
    held = json.loads((res.run_dir / "env.json").read_text())["given_in_python"]["data"]
    assert held.startswith("540 training images (28x28) from data=, 60 test from a seeded tenth")
    ok = CliRunner().invoke(app, ["export", str(res.run_dir), "--format", "safetensors"])
    assert ok.exit_code == 0, ok.output
    need = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(res.run_dir)])
    assert need.exit_code == 2 and "name the data set to judge it on with --data" in need.output
    ok = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(res.run_dir), "--data", "mnist-sample"]
    )
    assert ok.exit_code == 0, ok.output
