"""`lenet step --target arange` and `--no-zero-grad`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.teach.walkthrough import tutorial_step

runner = CliRunner()


def test_arange_target_is_the_tutorials():
    s = tutorial_step(target_kind="arange")
    assert s["target"] == [[float(k) for k in range(1, 11)]]
    out = s["output"][0]
    mse = sum((o - t) ** 2 for o, t in zip(out, range(1, 11), strict=True)) / 10
    assert s["loss_before"] == pytest.approx(mse, rel=1e-5)


def test_no_zero_grad_piles_gradients_up():
    s = tutorial_step(zero_grad=False)
    before = s["conv1_bias_grad_before"]
    assert before == s["random_backward_conv1_bias_grad"]  # left over from step 4
    once = [a - b for a, b in zip(s["conv1_bias_grad_after"], before, strict=True)]
    twice = [a - b for a, b in zip(s["conv1_bias_grad_after_second"], before, strict=True)]
    assert twice == pytest.approx([2 * v for v in once], rel=1e-4, abs=1e-7)
    zeroed = tutorial_step()
    assert once == pytest.approx(zeroed["conv1_bias_grad_after"], rel=1e-4, abs=1e-7)
    assert s["loss_after_manual"] != pytest.approx(zeroed["loss_after_manual"], rel=1e-6)
    assert s["manual_vs_sgd_max_abs_diff"] < 1e-6  # both updates use the same piled-up grads


def test_step_cli_flags():
    result = runner.invoke(app, ["step", "--device", "cpu", "--no-zero-grad", "--target", "arange"])
    assert result.exit_code == 0, result.output
    assert "torch.arange(1, 11)" in result.stdout and "the gradient doubled" in result.stdout
    doc = json.loads(runner.invoke(app, ["step", "--device", "cpu", "--json"]).stdout)
    assert doc["zero_grad"] is True and doc["target_kind"] == "randn"
    bad = runner.invoke(app, ["step", "--loss", "cross-entropy", "--target", "arange"])
    assert bad.exit_code == 2 and "--loss mse" in bad.stderr
