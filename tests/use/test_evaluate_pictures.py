"""`lenet evaluate --out DIR` pictures and `--json --predictions`."""

from __future__ import annotations

import json

import pytest
from conftest import check_png, check_terminal_text
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.runs.reader import class_names

runner = CliRunner()


def test_evaluate_out_draws_three_pngs_and_predictions(sample_run, tmp_path):
    out = tmp_path / "pictures"
    args = ["evaluate", "--checkpoint", str(sample_run), "--device", "cpu", "--out", str(out)]
    result = runner.invoke(app, [*args, "--json", "--predictions"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["class_names"] == [str(k) for k in range(10)]
    check_png(out / "confusion.png", min_size=(1000, 450))
    check_png(out / "errors.png", min_size=(800, 300))
    check_png(out / "per_class.png", min_size=(600, 300))
    assert sorted(doc["pngs"]) == sorted(
        str(out / n) for n in ("confusion.png", "errors.png", "per_class.png")
    )
    preds = doc["predictions"]
    assert len(preds) == doc["count"] == 10_000
    assert all(sum(p["probabilities"]) == pytest.approx(1, abs=1e-3) for p in preds[:100])
    correct = sum(p["label"] == p["predicted"] for p in preds)
    assert correct / len(preds) == pytest.approx(doc["accuracy"])
    mistakes = doc["mistakes"]
    assert mistakes and "image" not in mistakes[0]
    probs = [m["probability"] for m in mistakes]
    assert probs == sorted(probs, reverse=True)  # most confident first
    assert all(m["label"] != m["predicted"] for m in mistakes)
    again = runner.invoke(app, args)
    assert again.exit_code == 10 and "already exists" in again.stderr


def test_evaluate_terminal_fits_80_columns(sample_run):
    args = ["evaluate", "--checkpoint", str(sample_run), "--device", "cpu"]
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    first, rest = result.stdout.split("\n", 1)  # the first line names the checkpoint's path
    assert first.isprintable()
    check_terminal_text(rest)


def test_predictions_need_json(sample_run):
    args = ["evaluate", "--checkpoint", str(sample_run), "--predictions"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--json" in result.stderr


def test_fashion_class_names():
    assert class_names("fashion-mnist")[9] == "Ankle boot"
    assert class_names("mnist-sample") == [str(k) for k in range(10)]
