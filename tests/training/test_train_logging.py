"""`lenet train --tensorboard`, `--log-every N` (per-step rows) and `--init PATH`."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.model import build_model

BASE = "train --data mnist-sample --device cpu --threads 1 --epochs 1 --batch-size 64"


def _train(tmp_path, name, *extra):
    args = [*BASE.split(), "--out", str(tmp_path), "--name", name, *map(str, extra)]
    return CliRunner().invoke(app, args)


def _lines(run, name="metrics.jsonl"):
    return [json.loads(line) for line in (run / name).read_text().splitlines() if line]


@pytest.mark.slow
@pytest.mark.extra("tensorboard")
def test_tensorboard_events_and_step_rows(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = _train(tmp_path, "tb", "--max-steps", 30, "--log-every", 10, "--tensorboard")
    assert result.exit_code == 0, result.output
    run = tmp_path / "tb"
    rows = _lines(run)
    steps = [r for r in rows if r.get("kind") == "step"]
    epochs = [r for r in rows if r.get("kind") != "step"]
    assert [r["step"] for r in steps] == [10, 20, 30] and len(epochs) == 1
    assert all(math.isfinite(r["loss"]) and r["lr"] > 0 and r["epoch"] == 1 for r in steps)
    assert len((run / "metrics.csv").read_text().splitlines()) == 2  # header + the epoch row

    events = EventAccumulator(str(run))
    events.Reload()
    tags = events.Tags()
    loss = events.Scalars("step/loss")
    assert [e.step for e in loss] == [10, 20, 30]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    (acc,) = events.Scalars("test/acc")
    assert acc.step == 30 and acc.value == pytest.approx(epochs[0]["test_acc"], rel=1e-6)
    assert "step/lr" in tags["scalars"] and "hparam/test_acc" in tags["scalars"]
    assert any("test digits" in t for t in tags["images"])

    listed = CliRunner().invoke(app, ["runs", str(tmp_path), "--json"])  # step rows skipped
    assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["status"] == "finished"


def test_tensorboard_missing_extra_is_named_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    result = _train(tmp_path, "tb", "--max-steps", 2, "--tensorboard")
    assert result.exit_code == 14
    assert "pip install 'lenet-cli[tensorboard]'" in result.stderr
    assert not (tmp_path / "tb" / "last.pt").exists()


def test_log_every_without_tensorboard(tmp_path):
    result = _train(tmp_path, "steps", "--max-steps", 6, "--log-every", 3)
    assert result.exit_code == 0, result.output
    steps = [r for r in _lines(tmp_path / "steps") if r.get("kind") == "step"]
    assert [r["step"] for r in steps] == [3, 6]
    assert _train(tmp_path, "zero", "--log-every", 0).exit_code == 2


def test_init_from_a_plain_state_dict(tmp_path):
    torch.manual_seed(5)
    start = build_model("tutorial").state_dict()
    path = tmp_path / "tutorial_net.pth"
    torch.save(start, path)
    # one step at a negligible lr: the run's weights are the file's
    result = _train(tmp_path, "init", "--init", path, "--max-steps", 1, "--lr", 1e-12)
    assert result.exit_code == 0, result.output
    assert "read as 'tutorial'" in result.stderr
    saved = torch.load(tmp_path / "init" / "last.pt", weights_only=True)["model"]
    assert all(torch.allclose(saved[k], start[k], atol=1e-6) for k in start)
    fresh = _train(tmp_path, "fresh", "--max-steps", 1, "--lr", 1e-12)
    assert fresh.exit_code == 0
    other = torch.load(tmp_path / "fresh" / "last.pt", weights_only=True)["model"]
    assert not torch.allclose(other["conv1.weight"], start["conv1.weight"])


def test_init_that_does_not_fit_the_arch_names_the_tensor(tmp_path):
    path = tmp_path / "lenet5.pt"
    torch.save(build_model("lenet5").state_dict(), path)
    result = _train(tmp_path, "bad", "--init", path, "--arch", "tutorial", "--max-steps", 1)
    assert result.exit_code == 6
    assert "conv1.weight" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad" / "last.pt").exists()
