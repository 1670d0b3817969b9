"""--clip-grad-norm / --clip-grad-value in training: PyTorch's step clips as torch.nn.utils does,
the fused step stays the training step, and the weights move no further than the bound allows."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.losses import build_loss
from lenet_cli.model import build_model
from lenet_cli.runs.checkpoint import load_checkpoint
from lenet_cli.training.step import Clip, train_step

LR = 0.05
PLAIN_SGD = ["--optimizer", "sgd", "--momentum", "0", "--weight-decay", "0", "--lr", str(LR),
             "--scheduler", "none"]  # fmt: skip
FAST = ["--data", "random", "--device", "cpu", "--threads", "1", "--batch-size", "256"]


@pytest.mark.parametrize("clip", [Clip(norm=0.01), Clip(value=1e-4)])
def test_train_step_clips_between_backward_and_update(clip):
    torch.manual_seed(0)
    a = build_model("tutorial")
    b = copy.deepcopy(a)
    opt_a = torch.optim.SGD(a.parameters(), lr=LR)
    opt_b = torch.optim.SGD(b.parameters(), lr=LR)
    x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    loss_fn = build_loss("cross-entropy")
    train_step(a, opt_a, loss_fn, x, y, clip=clip)
    opt_b.zero_grad()
    loss_fn(b(x), y).backward()
    if clip.norm is not None:
        torch.nn.utils.clip_grad_norm_(b.parameters(), clip.norm)
    else:
        torch.nn.utils.clip_grad_value_(b.parameters(), clip.value)
    opt_b.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def _moved(out: Path, name: str, *args: str) -> tuple[torch.Tensor, dict]:
    """How far each weight moved in four steps of plain SGD, and the run's env.json."""
    result = CliRunner().invoke(app, ["train", *FAST, *PLAIN_SGD, "--out", str(out), "--name",
                                      name, "--epochs", "1", *args])  # fmt: skip
    assert result.exit_code == 0, result.output
    torch.manual_seed(0)
    start = build_model("tutorial").state_dict()  # the run's initial weights (--seed 0)
    end = load_checkpoint(out / name / "last.pt")["model"]
    moved = torch.cat([(end[k] - start[k]).flatten() for k in start])
    return moved, json.loads((out / name / "env.json").read_text())


@pytest.mark.parametrize("fused", ["--fused", "--no-fused"])
def test_clipped_training_moves_the_weights_within_the_bound(tmp_path, fused):
    """Four steps of w -= lr * g with ||g|| <= X move the weights by at most 4 * lr * X (and
    each element by at most 4 * lr * X for --clip-grad-value)."""
    from lenet_cli.fast import fused as kernels

    if fused == "--fused" and kernels.status() is not None:
        pytest.skip(f"the kernels do not build here: {kernels.status()}")
    free, _ = _moved(tmp_path, "free", fused)
    by_norm, env = _moved(tmp_path, "norm", fused, "--clip-grad-norm", "0.001")
    by_value, _ = _moved(tmp_path, "value", fused, "--clip-grad-value", "1e-5")
    # unclipped, they move much further
    assert float(free.norm()) > 10 * 4 * LR * 0.001
    assert float(free.abs().max()) > 10 * 4 * LR * 1e-5
    assert 0 < float(by_norm.norm()) <= 4 * LR * 0.001 * (1 + 1e-4)
    # each weight rounded to float32 four times: up to about 2e-7 beside a bound of 2e-6
    assert 0 < float(by_value.abs().max()) <= 4 * LR * 1e-5 + 2e-7
    assert env["fused_step"] == ("update" if fused == "--fused" else None)
