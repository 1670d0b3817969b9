"""`lenet tutorial`: the tutorial's nine steps, their numbers, and the final training."""

from __future__ import annotations

import json

import pytest
from conftest import check_png, check_terminal_text
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.teach.tutorial import _values, load_text
from lenet_cli.teach.walkthrough import tutorial_step

runner = CliRunner()


def test_text_has_nine_steps_and_every_template_fills():
    steps = load_text()
    assert len(steps) == 9 and all(s["title"] and s["code"] and s["output"] for s in steps)
    values = _values(seed=0)
    for words, v in zip(steps[:8], values, strict=False):  # step 9 trains: tested below
        assert "{" not in words["output"].format(**v)
    s = tutorial_step(seed=0)
    step5 = list(zip(range(5), _values(seed=0), strict=False))[4][1]
    assert step5["loss"] == s["loss_before"]  # the same numbers as `lenet step`


@pytest.mark.parametrize("arch", ["tutorial", "lenet5", "classic"])
def test_code_panel_defines_the_class_the_arch_runs(arch):
    from lenet_cli.model import build_model

    runs = type(build_model(arch)).__name__  # Net for tutorial and lenet5, ClassicLeNet5
    code = load_text(arch)[0]["code"]
    assert f"class {runs}(nn.Module):" in code and f"net = {runs}()" in code
    assert code.count("class ") == 1


@pytest.mark.slow
def test_tutorial_runs_all_steps_and_draws_the_activations(tmp_path):
    png = tmp_path / "act.png"
    result = runner.invoke(app, ["tutorial", "--no-pause", "--out", str(png)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    for n in range(1, 10):
        assert f"Step {n} of 9" in text
    assert "loss 1.000194 -> 0.976075" in text  # steps 7 and 8, as `lenet step` prints them
    assert "test accuracy" in text and "conv2: 16 maps after ReLU" in text
    check_terminal_text(text)
    check_png(png, min_size=(900, 1500))


@pytest.mark.slow
def test_tutorial_json():
    result = runner.invoke(app, ["tutorial", "--json"])
    assert result.exit_code == 0, result.output
    steps = json.loads(result.stdout)["steps"]
    assert [s["number"] for s in steps] == list(range(1, 10))
    last = steps[-1]["values"]
    assert 0.5 < last["test_acc"] <= 1 and sum(last["softmax"]) == pytest.approx(1, abs=1e-4)


@pytest.mark.slow
def test_tutorial_with_stdin_closed_runs_without_pausing():
    """cron, nohup or `<&-`: no stdin at all (sys.stdin is None); every step, exit 0."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        ["sh", "-c", f"exec {sys.executable} -m lenet_cli tutorial <&-"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Step 9 of 9" in done.stdout and "Enter: next step" not in done.stdout
