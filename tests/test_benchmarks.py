"""The benchmark scripts compare like with like: the same images reach both paths."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lenet_cli.data import load_dataset, read_idx_pair, resolve_source

ROOT = Path(__file__).resolve().parents[1]


def _pipeline():
    spec = importlib.util.spec_from_file_location("pipeline", ROOT / "benchmarks" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_usual_datasets_give_lenets_images(idx_set):
    """Both per-sample Datasets (PIL as torchvision does, tensor-only) yield the images that
    lenet's path normalises once for the whole set, with the same labels."""
    data_dir = idx_set(n_train=40)
    ds = load_dataset("mnist", "train", data_dir=data_dir)
    located, _ = resolve_source("mnist", data_dir=data_dir, download=False)
    raw_images, raw_labels = read_idx_pair(*located.files["train"])
    pipeline = _pipeline()
    for name, cls in pipeline.DATASETS.items():
        usual = cls(raw_images, raw_labels, ds.mean, ds.std)
        assert len(usual) == len(ds.labels)
        for i in (0, 17, 39):
            x, y = usual[i]
            assert x.shape == (1, 32, 32) and x.dtype == torch.float32, name
            assert y == int(ds.labels[i]), name
            torch.testing.assert_close(x, ds.images[i], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("usual", ["torchvision", "tensor"])
def test_pipeline_runs_and_reports_both_paths(idx_set, usual):
    data_dir = idx_set(n_train=300, n_test=50)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "pipeline.py"), "--data", "mnist"]
    cmd += ["--data-dir", str(data_dir), "--usual", usual, "--epochs", "1", "--batch-size", "32"]
    cmd += ["--threads", "1", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["usual"] == usual and result["train_images"] == 300
    assert result["speedup"] == pytest.approx(
        result["lenet_images_per_s"] / result["usual_images_per_s"]
    )
    for key in ("usual_test_acc", "lenet_test_acc"):
        assert 0.0 <= result[key] <= 1.0


def test_fused_benchmark_reports_each_variant():
    import shutil

    if shutil.which("cc") is None:
        pytest.skip("needs a C compiler for the fused kernels")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "fused.py"), "--batch-sizes", "16"]
    cmd += ["--threads", "1", "--rounds", "1", "--images", "64", "--json"]
    result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    (row,) = result["rows"]
    assert tuple(result["variants"]) == ("pytorch", "fused", "step")
    for variant in result["variants"]:
        assert row[f"{variant}_train_images_per_s"] > 0
    for variant in ("pytorch", "fused"):  # the step's inference is the fused model's
        assert row[f"{variant}_infer_images_per_s"] > 0


def test_train_features_benchmark_reports_each_variant():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "train_features.py"), "--rounds", "1"]
    cmd += ["--steps", "3", "--batch-size", "16", "--json"]
    result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"none", "clip-norm", "clip-value", "ema"}
    for row in rows.values():
        assert row["us_per_step"] > 0 and row["vs_none"] > 0
    assert rows["none"]["vs_none"] == 1.0
