"""`lenet serve --weights ema|raw`: the model it answers with, and the accuracy it shows."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.errors import CheckpointError
from lenet_cli.serve.service import Service

FAST = ["--data", "random", "--device", "cpu", "--threads", "1", "--batch-size", "256"]


def test_serve_loads_the_average_by_default_and_raw_on_request(tmp_path):
    args = ["train", *FAST, "--out", str(tmp_path), "--name", "r", "--epochs", "1"]
    assert CliRunner().invoke(app, [*args, "--ema", "0.9"]).exit_code == 0
    run = tmp_path / "r"
    logged = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["test_acc"]
    ema, raw = Service.load(run), Service.load(run, "raw")
    assert ema.info["weights"] == "ema" and ema.info["test_accuracy"] == logged
    assert raw.info["weights"] == "raw"
    assert raw.info["test_accuracy"] is None  # the run logged the average's accuracy, not these
    assert any(
        not bool((a == b).all())
        for a, b in zip(ema.model.parameters(), raw.model.parameters(), strict=True)
    )
    plain = tmp_path / "p"
    assert CliRunner().invoke(app, ["train", *FAST, "--out", str(tmp_path), "--name", "p",
                                    "--epochs", "1"]).exit_code == 0  # fmt: skip
    with pytest.raises(CheckpointError, match="holds no averaged weights"):
        Service.load(plain, "ema")
