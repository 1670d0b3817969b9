"""Accuracy is a fraction (0..1) in everything a program reads (every --json, metrics.jsonl,
TensorBoard, a sweep's JSON) and a percentage in what a person reads (the terminal)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO
from typer.testing import CliRunner

from lenet_cli.cli import app

runner = CliRunner()


def _accuracies(doc, key: str = "") -> list[float]:
    """Every number held under a key that names an accuracy ("test_acc", "accuracy", ...)."""
    found: list[float] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += _accuracies(v, k)
    elif isinstance(doc, list):
        for v in doc:
            found += _accuracies(v, key)
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool):
        if key.endswith("_acc") or "accuracy" in key:
            found.append(float(doc))
    return found


def _fractions(doc) -> int:
    values = _accuracies(doc)
    assert values, "no accuracy found"
    assert all(0 <= v <= 1 for v in values), values
    assert any(0 < v < 1 for v in values), values  # not all 0 or 1 by chance
    return len(values)


def _json(*args: str):
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_json_document_and_file_holds_fractions(tmp_path):
    run = tmp_path / "runs" / "r"
    _fractions(_json("train", "--data", "mnist-sample", "--device", "cpu", "--threads", "1",
                     "--val-split", "0.1", "--epochs", "1", "--max-steps", "30",
                     "--out", str(run.parent), "--name", "r"))  # fmt: skip
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert _fractions(rows) == 3  # train, val and test of the one epoch
    _fractions(_json("evaluate", "--checkpoint", str(run)))
    _fractions(_json("runs", str(run.parent)))
    _fractions(_json("plot", str(run)))
    out = tmp_path / "m.safetensors"
    _fractions(_json("export", str(run), "--format", "safetensors", "--out", str(out), "--verify"))
    said = runner.invoke(app, ["evaluate", "--checkpoint", str(run)])
    assert said.exit_code == 0 and "%" in said.stdout  # a person reads a percentage


@pytest.mark.slow
@pytest.mark.extra("tensorboard")
def test_tensorboard_scalars_are_fractions(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["train", "--data", "random", "--device", "cpu", "--threads", "1", "--epochs", "2",
            "--batch-size", "256", "--tensorboard", "--out", str(tmp_path),
            "--name", "t"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    events = EventAccumulator(str(tmp_path / "t")).Reload()
    tags = [t for t in events.Tags()["scalars"] if "acc" in t]
    assert tags
    for tag in tags:
        assert all(0 <= s.value <= 1 for s in events.Scalars(tag)), tag


@pytest.mark.slow
@pytest.mark.extra("sweep")
def test_a_sweeps_json_holds_fractions(tmp_path):
    (tmp_path / "s.toml").write_text(
        '[space]\nlr = { type = "float", low = 1e-3, high = 1e-2, log = true }\n'
    )
    cmd = [sys.executable, "-m", "lenet_cli", "sweep", "--space", "s.toml", "--trials", "1",
           "--study", "s", "--data", "random", "--device", "cpu", "--no-fused", "--epochs", "1",
           "--max-steps", "4", "--json"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["metric"] == "test_acc"
    assert all(0 <= t["value"] <= 1 for t in doc["trials"]) and 0 <= doc["best"]["value"] <= 1
    assert "%" in done.stderr  # the trial's line for a person
