"""The photo-like benchmark end to end: README's model reads photos of digits on paper (made from
MNIST's test digits) nearly as well as MNIST's own files, and far better than MNIST's
preparation alone would."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_the_recommended_model_reads_photo_like_digits(tmp_path):
    config = str(REPO / "configs" / "mnist.toml")
    train = subprocess.run(
        [sys.executable, "-m", "lenet_cli", "train", "--config", config,
         "--out", str(tmp_path / "runs"), "--data", "mnist-sample", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    run = json.loads(train.stdout)["run_dir"]
    bench = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "photolike.py"), "--checkpoint", run,
         "--n", "140", "--steps", "both", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert bench.returncode == 0, bench.stderr[-2000:]
    result = json.loads(bench.stdout)
    assert result["n"] == 140 and len(result["scan"]["per_kind"]) == 14
    assert result["scan"]["overall"] >= 0.9, result["scan"]["wrong"]
    assert result["mnist"]["overall"] <= result["scan"]["overall"] - 0.2
    assert result["scan"]["mnist_file"] >= 0.95
