"""`lenet lr-find`: the learning-rate range test, its stop on divergence, its suggestion."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.training.lrfind import lr_at, smooth, suggest

SAMPLE = ["--data", "mnist-sample", "--device", "cpu", "--threads", "1"]


def test_rates_rise_exponentially_from_start_to_end():
    lrs = [lr_at(i, 5, 1e-4, 1.0) for i in range(5)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1.0)
    assert all(b / a == pytest.approx(10.0) for a, b in zip(lrs, lrs[1:], strict=False))


def test_the_suggestion_is_the_steepest_descent_of_the_smoothed_curve():
    """A loss flat at 2.3, falling fastest around lr 1e-3, lowest near 1e-2, then rising."""
    lrs = [lr_at(i, 100, 1e-6, 1.0) for i in range(100)]
    losses = [2.3 - 1.5 / (1 + math.exp(-4 * (math.log10(lr) + 3))) + 3 * max(0, lr - 0.02)
              for lr in lrs]  # fmt: skip
    found = suggest(lrs, smooth(losses))
    assert 10**-3.3 < found["suggested_lr"] < 10**-2.7
    assert 5e-3 < found["min_loss_lr"] < 5e-2
    flat = suggest(lrs, smooth([2.3 + 0.01 * i for i in range(100)]))
    assert flat["suggested_lr"] is None  # a loss that never falls suggests nothing


def test_lr_find_on_digits(tmp_path):
    png = tmp_path / "lr.png"
    result = CliRunner().invoke(
        app,
        [
            "lr-find",
            *SAMPLE,
            "--start-lr",
            "1e-5",
            "--end-lr",
            "1",
            "--steps",
            "40",
            "--out",
            str(png),
            "--json",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    n = found["steps"]
    assert 5 <= n <= 40
    assert len(found["lrs"]) == len(found["losses"]) == len(found["smoothed"]) == n
    assert found["lrs"][0] == pytest.approx(1e-5)
    assert found["start_lr"] < found["suggested_lr"] < found["end_lr"]
    assert found["stopped"] in ("steps", "diverged") and found["png"] == str(png)
    assert png.read_bytes().startswith(b"\x89PNG")
    from lenet_cli.fast import fused

    assert found["fused_step"] == ("update" if fused.status() is None else None)
    again = CliRunner().invoke(app, ["lr-find", *SAMPLE, "--steps", "20", "--out", str(png)])
    assert again.exit_code == 10  # an existing picture is kept without --force


def test_a_diverging_loss_ends_the_test_as_a_result(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "lr-find",
            *SAMPLE,
            "--optimizer",
            "sgd",
            "--start-lr",
            "1e-3",
            "--end-lr",
            "1e5",
            "--steps",
            "60",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    assert "the loss diverged past lr" in result.stdout
    steps = int(result.stdout.split("stopped after ")[1].split()[0])
    assert steps < 60
    assert "loss against the learning rate" in result.stdout  # the character chart


def test_a_range_that_does_not_rise_is_exit_2():
    result = CliRunner().invoke(app, ["lr-find", *SAMPLE, "--start-lr", "1", "--end-lr", "0.1"])
    assert result.exit_code == 2 and "not a rising range" in result.output
