"""`lenet evaluate`: loss, accuracy, per-class accuracy, confusion matrix; bad checkpoints."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lenet_cli.cli import app


def test_evaluate_json(random_run):
    result = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(random_run), "--device", "cpu", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["data"] == "random" and doc["split"] == "test" and doc["count"] == 256
    matrix = doc["confusion"]
    assert len(matrix) == 10 and sum(map(sum, matrix)) == 256
    assert doc["accuracy"] == pytest.approx(sum(matrix[k][k] for k in range(10)) / 256)
    assert [c["count"] for c in doc["per_class"]] == [sum(row) for row in matrix]
    assert doc["checkpoint"].endswith("best.pt")


def test_evaluate_table_and_train_split(random_run):
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--checkpoint",
            str(random_run / "last.pt"),
            "--device",
            "cpu",
            "--split",
            "train",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "confusion matrix" in result.stdout and "1,024 images" in result.stdout


def test_evaluate_refuses_a_corrupt_checkpoint(tmp_path, random_run):
    data = bytearray((random_run / "last.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.pt").write_bytes(bytes(data))
    result = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(tmp_path / "bad.pt"), "--device", "cpu"]
    )
    assert result.exit_code == 6 and "SHA-256" in result.stderr


def test_evaluate_missing_checkpoint(tmp_path):
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "nope")])
    assert result.exit_code == 6 and "does not exist" in result.stderr
