"""Plain weights: a tutorial reader's torch.save(net.state_dict()) and .safetensors files."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.model import build_model
from lenet_cli.runs.checkpoint import save_checkpoint


class Net(nn.Module):
    """The tutorial's own code (60-minute blitz, 2019-2021), as a reader has it."""

    def __init__(self):
        super(Net, self).__init__()  # noqa: UP008  (the tutorial's spelling)
        self.conv1 = nn.Conv2d(1, 6, 3)
        self.conv2 = nn.Conv2d(6, 16, 3)
        self.fc1 = nn.Linear(16 * 6 * 6, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(-1, self.num_flat_features(x))
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)

    def num_flat_features(self, x):
        size = x.size()[1:]
        num_features = 1
        for s in size:
            num_features *= s
        return num_features


@pytest.fixture
def tutorial_file(tmp_path):
    torch.manual_seed(1)
    net = Net()
    path = tmp_path / "tutorial_net.pth"
    torch.save(net.state_dict(), path)
    return path, net


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_tutorial_state_dict_forward_matches_its_own_net(tutorial_file):
    path, net = tutorial_file
    result = _run("forward", "--random", "--checkpoint", path, "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["arch"] == "tutorial"
    torch.manual_seed(0)
    with torch.no_grad():
        want = net(torch.randn(1, 1, 32, 32))
    assert torch.allclose(torch.tensor(doc["output"]), want, atol=1e-5)
    assert "read as 'tutorial'" in result.stderr and "inferred" in result.stderr
    assert "MNIST's mean/std" in result.stderr


def test_tutorial_state_dict_evaluated_and_inspected(tutorial_file):
    path, net = tutorial_file
    result = _run("evaluate", "--checkpoint", path, "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["arch"] == "tutorial" and doc["count"] == 10_000  # the bundled test set
    assert "bundled sample" in result.stderr  # mnist by default, offline: the sample, said so
    facts = json.loads(_run("inspect-params", "--checkpoint", path, "--json").stdout)
    assert sum(p["count"] for p in facts["parameters"]) == 81_194
    assert facts["parameters"][0]["mean"] == pytest.approx(float(net.conv1.weight.detach().mean()))


def test_nested_and_dataparallel_state_dicts(tmp_path):
    state = build_model("lenet5").state_dict()
    path = tmp_path / "ckpt.tar"
    torch.save({"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    result = _run("inspect-params", "--checkpoint", path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["arch"] == "lenet5"
    assert "5x5 kernels" in result.stderr


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda s: s.__setitem__("fc1.weight", torch.zeros(120, 500)), "fc1.weight"),
        (lambda s: s.pop("conv2.bias"), "conv2.bias"),
        (lambda s: s.__setitem__("fc4.weight", torch.zeros(2, 2)), "fc4.weight"),
    ],
)
def test_a_dict_matching_no_architecture_names_the_tensor(tmp_path, change, named):
    state = build_model("tutorial").state_dict()
    change(state)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    result = _run("evaluate", "--checkpoint", path, "--device", "cpu")
    assert result.exit_code == 6
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "matches no LeNet" in lines[0]


def test_unsafe_pickle_and_damaged_checkpoint_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": torch.zeros(6, 1, 3, 3), "x": nn.ReLU()}, path)  # a module
    result = _run("inspect-params", "--checkpoint", path)
    assert result.exit_code == 6 and "would run code" in result.stderr
    model = build_model("tutorial")
    payload = {"arch": "tutorial", "model": model.state_dict(), "mean": 0.1, "std": 0.3}
    good = save_checkpoint(tmp_path / "last.pt", payload)
    good.write_bytes(good.read_bytes()[:-3])  # the checksum trailer cut short
    result = _run("inspect-params", "--checkpoint", good)
    assert result.exit_code == 6 and "checksum trailer" in result.stderr


def test_safetensors_keeps_classic_and_normalisation(tmp_path):
    torch.manual_seed(0)
    model = build_model("classic")
    payload = {"arch": "classic", "model": model.state_dict(), "mean": 0.2, "std": 0.35}
    ckpt = save_checkpoint(tmp_path / "best.pt", payload)
    assert _run("export", ckpt, "--format", "safetensors").exit_code == 0
    weights = tmp_path / "best.safetensors"
    result = _run("forward", "--random", "--checkpoint", weights, "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["arch"] == "classic"  # same shapes as lenet5: the metadata
    assert "named in its metadata" in result.stderr and "0.2/0.35" in result.stderr
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    broken = _run("inspect-params", "--checkpoint", weights)
    assert broken.exit_code == 6 and "not a readable .safetensors" in broken.stderr


def test_predict_with_exported_safetensors_matches_the_checkpoint(sample_run, tmp_path):
    import gzip

    import numpy as np
    from PIL import Image

    from lenet_cli.data.sources import BUNDLED_DIR

    raw = gzip.decompress((BUNDLED_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
    digit = np.frombuffer(raw, dtype=np.uint8, offset=16)[:784].reshape(28, 28)
    image = tmp_path / "seven.png"
    Image.fromarray(255 - digit).save(image)
    weights = tmp_path / "model.safetensors"
    assert _run("export", sample_run, "--format", "safetensors", "--out", weights).exit_code == 0
    docs = []
    for source in (sample_run, weights):
        result = _run("predict", image, "--checkpoint", source, "--device", "cpu", "--json")
        assert result.exit_code == 0, result.output
        docs.append(json.loads(result.stdout)["results"][0])
    assert docs[0]["predicted"] == docs[1]["predicted"]
    assert docs[1]["probabilities"] == pytest.approx(docs[0]["probabilities"], abs=1e-5)


def _odd_weights(tmp_path, kind: str):
    """A tutorial state_dict whose tensors are on the meta device, or float8."""
    state = build_model("tutorial").state_dict()
    if kind == "meta":
        state = {k: torch.empty(v.shape, device="meta") for k, v in state.items()}
    else:
        dtype = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}[kind.split("-")[0]]
        state = {k: v.to(dtype).contiguous() for k, v in state.items()}
    if kind.endswith("safetensors"):
        from safetensors.torch import save_file

        path = tmp_path / f"{kind}.safetensors"
        save_file(state, str(path))
    else:
        path = tmp_path / f"{kind}.pt"
        torch.save(state, path)
    return path


@pytest.mark.parametrize("kind", ["meta", "e4m3", "e5m2", "e4m3-safetensors", "e5m2-safetensors"])
@pytest.mark.parametrize("command", ["inspect-params", "evaluate", "predict", "train"])
def test_meta_and_float8_weights_refused_naming_file_and_tensor(tmp_path, kind, command):
    from PIL import Image

    path = _odd_weights(tmp_path, kind)
    args = {
        "inspect-params": ["inspect-params", "--checkpoint", path],
        "evaluate": ["evaluate", "--checkpoint", path, "--device", "cpu"],
        "predict": ["predict", tmp_path / "x.png", "--checkpoint", path, "--device", "cpu"],
        "train": ["train", "--init", path, "--data", "random", "--device", "cpu",
                  "--epochs", "1", "--out", tmp_path / "runs"],
    }[command]  # fmt: skip
    Image.new("L", (28, 28), 0).save(tmp_path / "x.png")
    result = _run(*args)
    assert result.exit_code == 6, result.output
    lines = result.stderr.strip().splitlines()
    assert str(path) in lines[-1] and "conv1.weight" in lines[-1], lines
    assert not (tmp_path / "runs").exists()


def _safetensors_with(tmp_path, **metadata) -> object:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in build_model("tutorial").state_dict().items()}
    path = tmp_path / "m.safetensors"
    save_file(state, str(path), metadata={"format": "lenet-cli-weights", **metadata})
    return path


@pytest.mark.parametrize(
    "metadata, named",
    [
        ({"arch": "tutorial", "data": "bogus-set"}, "bogus-set"),
        ({"arch": "resnet"}, "resnet"),
        ({"arch": "tutorial", "mean": "abc", "std": "0.3"}, "abc"),
        ({"arch": "tutorial", "mean": "0.1"}, "std"),
        ({"arch": "tutorial", "mean": "0.1", "std": "nan"}, "nan"),
    ],
)
def test_bad_safetensors_metadata_refused_naming_the_file(tmp_path, metadata, named):
    path = _safetensors_with(tmp_path, **metadata)
    for args in (
        ["evaluate", "--checkpoint", path, "--device", "cpu"],
        ["inspect-params", "--checkpoint", path],
        ["export", path, "--format", "safetensors", "--out", tmp_path / "copy.safetensors"],
    ):
        result = _run(*args)
        assert result.exit_code == 6, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and named in lines[0], lines
    assert not (tmp_path / "copy.safetensors").exists()  # export copies no bad metadata on


@pytest.mark.parametrize("sealed", [False, True])
def test_a_pickle_that_would_run_code_is_refused_plainly(tmp_path, sealed):
    from conftest import checkpoint_payload, raw_checkpoint

    class Runs:
        def __reduce__(self):
            return (print, ("this ran",))

    path = tmp_path / "evil.pt"
    if sealed:  # a lenet checkpoint whose checksum is right, its payload hostile
        raw_checkpoint(path, {**checkpoint_payload(), "extra": Runs()})
    else:
        torch.save({**build_model("tutorial").state_dict(), "extra": Runs()}, path)
    evaluate = ["evaluate", "--checkpoint", path, "--device", "cpu"]
    for args in (["inspect-params", "--checkpoint", path], evaluate):
        result = _run(*args)
        assert result.exit_code == 6, result.output
        (line,) = result.stderr.strip().splitlines()
        assert str(path) in line and "would run code" in line and "print" in line, line
        assert "weights_only" not in line and "safe_globals" not in line, line
        assert line.endswith(")") and "this ran" not in result.output
