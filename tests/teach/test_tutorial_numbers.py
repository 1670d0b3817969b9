"""With --seed N, lenet prints the numbers the tutorial's own code prints in a fresh Python on
the CPU after torch.manual_seed(N): the code below is the tutorial's, run in a subprocess."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.teach.tutorial import tutorial_steps

runner = CliRunner()

# The tutorial's code as it writes it ({k}: 3 in the 2019-2021 version, 5 today; {side}: 6 or 5),
# with a JSON line at the end of what its print() calls show.
TUTORIAL = """
import json, sys
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):

    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 6, {k})
        self.conv2 = nn.Conv2d(6, 16, {k})
        self.fc1 = nn.Linear(16 * {side} * {side}, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


torch.manual_seed({seed})
net = Net()
printed = {{"net": repr(net)}}
params = list(net.parameters())
printed["sizes"] = [list(p.size()) for p in params]
printed["stats"] = [[p.mean().item(), p.std().item(), p.min().item(), p.max().item()]
                    for p in params]
input = torch.randn(1, 1, 32, 32)
out = net(input)
printed["out_repr"] = repr(out)
printed["out"] = out.tolist()
net.zero_grad()
out.backward(torch.randn(1, 10))
printed["random_grad"] = net.conv1.bias.grad.tolist()
output = net(input)
target = torch.randn(10)
target = target.view(1, -1)
criterion = nn.MSELoss()
loss = criterion(output, target)
printed["loss"] = loss.item()
net.zero_grad()
printed["before"] = net.conv1.bias.grad
loss.backward()
printed["after"] = net.conv1.bias.grad.tolist()
print(json.dumps(printed))
"""

ARCHES = {"tutorial": (3, 6), "lenet5": (5, 5)}


def _tutorial(arch: str, seed: int) -> dict:
    k, side = ARCHES[arch]
    code = TUTORIAL.format(k=k, side=side, seed=seed)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout)


def _lenet(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _close(a, b) -> None:
    """Equal to 1e-5, numbers or (nested) lists of them."""
    import torch

    torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", list(ARCHES))
def test_forward_step_autograd_and_inspect_params_print_the_tutorials_numbers(arch):
    seed = 7
    theirs = _tutorial(arch, seed)
    common = ("--seed", str(seed), "--arch", arch)
    forward = _lenet("forward", "--random", *common, "--device", "cpu")
    _close(forward["output"], theirs["out"])
    step = _lenet("step", *common, "--device", "cpu")
    _close(step["output"], theirs["out"])
    _close(step["random_backward_conv1_bias_grad"], theirs["random_grad"])
    _close(step["loss_before"], theirs["loss"])
    assert theirs["before"] is None and step["conv1_bias_grad_before"] is None
    _close(step["conv1_bias_grad_after"], theirs["after"])
    _close(_lenet("autograd", *common)["loss"], theirs["loss"])
    facts = _lenet("inspect-params", *common)
    assert [p["shape"] for p in facts["parameters"]] == theirs["sizes"]
    for row, (mean, std, lo, hi) in zip(facts["parameters"], theirs["stats"], strict=True):
        _close([row["mean"], row["std"], row["min"], row["max"]], [mean, std, lo, hi])


@pytest.mark.parametrize("arch", list(ARCHES))
def test_the_tutorial_commands_steps_print_what_the_tutorials_code_prints(arch):
    theirs = _tutorial(arch, 3)
    steps = list(itertools.islice(tutorial_steps(seed=3, arch=arch), 8))  # 9 trains
    v = [s["values"] for s in steps]
    assert v[0]["module"] == theirs["net"]  # print(net)
    assert v[2]["tensor"] == theirs["out_repr"]  # print(out), digit for digit
    _close(v[3]["random_grad"], theirs["random_grad"])
    _close(v[4]["loss"], theirs["loss"])
    assert v[5]["grad_before"] is None  # torch 2.x: zero_grad() sets .grad to None
    _close(v[5]["grad_after"], theirs["after"])
    k, side = ARCHES[arch]
    assert f"nn.Conv2d(1, 6, {k})" in steps[0]["code"]
    assert (
        f"16 * {side} * {side}" in steps[0]["code"] and "torch.manual_seed(3)" in steps[0]["code"]
    )
    assert f"= {16 * side * side} inputs" in steps[1]["text"]
    assert "None" in steps[5]["text"] and "set_to_none=True" in steps[5]["text"]


def test_forward_seed_0_prints_the_tutorials_first_number():
    result = runner.invoke(app, ["forward", "--random", "--seed", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("tensor([[ 0.0118, -0.1022,")


@pytest.mark.slow
def test_lenet_tutorial_arch_lenet5_shows_the_5x5_network():
    result = runner.invoke(app, ["tutorial", "--arch", "lenet5", "--no-pause", "--seed", "7"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "61,706" in text and "[6, 1, 5, 5]" in text and "16 * 5 * 5" in text
    assert "before backward: None" in text and "Step 9 of 9" in text
    assert "81,194" not in text and "nn.Conv2d(1, 6, 3)" not in text
