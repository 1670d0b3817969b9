"""--ema: the moving average of the weights, updated after every step (the fused step's too),
evaluated after each epoch, saved beside the raw weights and chosen with --weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.runs.checkpoint import load_checkpoint, save_checkpoint
from lenet_cli.training.ema import Ema

FAST = ["--data", "random", "--device", "cpu", "--threads", "1", "--batch-size", "256"]


def _train(out: Path, *args: str):
    return CliRunner().invoke(app, ["train", *FAST, "--out", str(out), "--json", *args])


def test_the_average_follows_the_weights_with_the_warm_up_decay():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = Ema(model, decay=0.9)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update()  # the first update starts the average at the weights
    first = model.weight.detach().clone()
    assert torch.equal(ema.state_dict()["weight"], first)
    with torch.no_grad():
        model.weight.mul_(2.0)
    ema.update()
    d = min(0.9, 3 / 12)  # min(DECAY, (1 + n) / (10 + n)) at the n-th update, n = 2
    assert torch.allclose(ema.state_dict()["weight"], d * first + (1 - d) * model.weight)
    assert ema.updates == 2 and ema.current_decay() == d


def test_swapped_puts_the_average_in_place_and_back():
    model = nn.Linear(3, 2)
    ema = Ema(model, decay=0.5)
    ema.update()
    with torch.no_grad():
        model.weight.add_(1.0)
    raw, ptr = model.weight.detach().clone(), model.weight.data_ptr()
    with ema.swapped():
        assert torch.equal(model.weight, ema.state_dict()["weight"])
        assert model.weight.data_ptr() == ptr  # in place: the fused kernels' pointers hold
    assert torch.equal(model.weight, raw)


def test_the_average_is_updated_after_each_fused_step(tmp_path):
    """After two steps the average is d * w1 + (1 - d) * w2 (w1: the weights after step 1, as
    a one-step run leaves them), and the fused step still trained."""
    assert _train(tmp_path, "--name", "one", "--max-steps", "1", "--epochs", "1").exit_code == 0
    result = _train(tmp_path, "--name", "two", "--max-steps", "2", "--epochs", "1", "--ema", "0.5")
    assert result.exit_code == 0, result.output
    w1 = load_checkpoint(tmp_path / "one" / "last.pt")["model"]
    two = load_checkpoint(tmp_path / "two" / "last.pt")
    d = min(0.5, 3 / 12)
    for k, w2 in two["model"].items():
        assert torch.allclose(two["ema"][k], d * w1[k] + (1 - d) * w2, rtol=1e-6, atol=1e-7)
    assert two["ema_updates"] == 2
    from lenet_cli.fast import fused

    env = json.loads((tmp_path / "two" / "env.json").read_text())
    assert env["fused_step"] == ("update" if fused.status() is None else None)


def test_rows_report_the_average_and_weights_choose(tmp_path):
    """The epoch row's test loss is the average's (evaluate's default, --weights ema), not the
    raw weights'; predict and export take --weights too."""
    result = _train(tmp_path, "--name", "r", "--epochs", "2", "--ema", "0.9")
    assert result.exit_code == 0, result.output
    assert "moving average" in result.stderr
    run = tmp_path / "r"
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])

    def evaluate(*extra: str) -> dict:
        done = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(run / "last.pt"),
                                        "--device", "cpu", "--json", *extra])  # fmt: skip
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    default, ema, raw = evaluate(), evaluate("--weights", "ema"), evaluate("--weights", "raw")
    assert default["weights"] == ema["weights"] == "ema" and raw["weights"] == "raw"
    assert default["loss"] == ema["loss"] == pytest.approx(row["test_loss"], rel=1e-6)
    assert raw["loss"] != pytest.approx(row["test_loss"], rel=1e-6)
    exported = CliRunner().invoke(app, ["export", str(run), "--format", "safetensors",
                                        "--weights", "raw", "--out", str(tmp_path / "m.st"),
                                        "--json"])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["weights"] == "raw"


def test_weights_ema_without_an_average_is_exit_6(tmp_path):
    assert _train(tmp_path, "--name", "r", "--epochs", "1").exit_code == 0
    run = tmp_path / "r"
    evaluated = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(run), "--weights", "ema"])
    assert evaluated.exit_code == 6 and "holds no averaged weights" in evaluated.output
    assert "best.pt" in evaluated.output
    exported = CliRunner().invoke(
        app,
        [
            "export",
            str(run),
            "--format",
            "pt2",
            "--weights",
            "ema",
            "--out",
            str(tmp_path / "m.pt2"),
        ],  # fmt: skip
    )
    assert exported.exit_code == 6 and not (tmp_path / "m.pt2").exists()
    plain = tmp_path / "plain.pt"
    torch.save(load_checkpoint(run / "last.pt")["model"], plain)
    from PIL import Image

    picture = tmp_path / "d.png"
    img = Image.new("L", (28, 28), 0)
    img.paste(255, (10, 4, 18, 24))
    img.save(picture)
    predicted = CliRunner().invoke(
        app, ["predict", str(picture), "--checkpoint", str(plain), "--weights", "ema"]
    )
    assert predicted.exit_code == 6 and "plain weights" in predicted.output


def test_a_damaged_average_is_refused_naming_it(tmp_path):
    assert _train(tmp_path, "--name", "r", "--epochs", "1", "--ema", "0.9").exit_code == 0
    payload = load_checkpoint(tmp_path / "r" / "last.pt")
    payload.pop("path")
    payload["ema"]["conv1.weight"][0, 0, 0, 0] = float("nan")
    save_checkpoint(tmp_path / "bad.pt", {k: v for k, v in payload.items()
                                          if k not in ("format", "version")})  # fmt: skip
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "bad.pt")])
    assert result.exit_code == 6 and "ema.conv1.weight holds NaN or Inf" in result.output


def test_the_average_resumes_exactly_and_stays_on(tmp_path):
    args = ("--ema", "0.9", "--scheduler", "none")
    assert _train(tmp_path, "--name", "straight", "--epochs", "2", *args).exit_code == 0
    assert _train(tmp_path, "--name", "split", "--epochs", "1", *args).exit_code == 0
    resumed = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "split"),
                                       "--epochs", "2", "--ema", "0.9"])  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "last.pt")
    assert a["ema_updates"] == b["ema_updates"] == 8
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    off = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "split"), "--epochs", "3",
                                   "--ema", "0.99"])  # fmt: skip
    assert off.exit_code == 0  # the decay may change
    assert _train(tmp_path, "--name", "plain", "--epochs", "1").exit_code == 0
    on = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "plain"), "--ema", "0.9"])
    assert on.exit_code == 2 and "cannot turn --ema on" in on.output
