"""`lenet train --mlflow URI`: a real local MLflow store, read back with MLflow's own client."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from lenet_cli.cli import app

FAST = ["--data", "random", "--device", "cpu", "--threads", "1", "--batch-size", "256"]


def _train(out, *args: str):
    return CliRunner().invoke(app, ["train", *FAST, "--out", str(out), *args])


@pytest.mark.extra("mlflow")
@pytest.mark.slow
def test_params_epoch_metrics_and_artifacts_in_a_sqlite_store(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path / "..")  # not where the store is: its artifacts stay beside it

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = _train(tmp_path, "--name", "r", "--epochs", "2", "--scheduler", "none",
                    "--mlflow", uri)  # fmt: skip
    assert result.exit_code == 0, result.output
    resumed = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "r"), "--epochs", "3",
                                       "--mlflow", uri])  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("lenet").experiment_id])
    assert run.info.run_name == "r" and run.info.status == "FINISHED"
    assert run.data.params["arch"] == "tutorial" and run.data.params["epochs"] == "2"
    assert run.data.tags["lenet.resumed.epochs"] == "3"
    assert run.data.tags["lenet.run_dir"] == str((tmp_path / "r").resolve())
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    history = client.get_metric_history(run.info.run_id, "test_acc")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], r["test_acc"]) for r in rows]
    assert all(0 <= m.value <= 1 for m in history)  # fractions, as metrics.jsonl
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 3
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"config.toml", "best.pt"}
    kept = tmp_path / "mlruns" / run.info.run_id / "artifacts"
    assert (kept / "best.pt").read_bytes() == (tmp_path / "r" / "best.pt").read_bytes()
    assert not (tmp_path / ".." / "mlruns").exists()


@pytest.mark.extra("mlflow")
def test_a_file_store_and_local(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    refused = _train(tmp_path, "--name", "f", "--epochs", "1", "--mlflow", uri)
    if refused.exit_code != 0:  # MLflow 3 opens file stores only when told to
        assert refused.exit_code == 2 and "MLFLOW_ALLOW_FILE_STORE=true" in refused.output
        assert not (tmp_path / "f").exists()
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        assert _train(tmp_path, "--name", "f", "--epochs", "1", "--mlflow", uri).exit_code == 0
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("lenet").experiment_id])
    assert run.info.run_name == "f" and "test_loss" in run.data.metrics
    monkeypatch.chdir(tmp_path)
    assert _train(tmp_path, "--name", "l", "--epochs", "1", "--mlflow", "local").exit_code == 0
    assert (tmp_path / "mlflow.db").is_file()  # local is sqlite:///mlflow.db here


def test_without_the_extra_it_is_exit_14_before_anything_runs(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    result = _train(tmp_path, "--name", "r", "--mlflow", "local")
    assert result.exit_code == 14 and "lenet-cli[mlflow]" in result.output
    assert not (tmp_path / "r").exists()


def test_uris_it_cannot_use(tmp_path):
    bad = _train(tmp_path, "--name", "r", "--mlflow", "mysql://host/db")
    assert bad.exit_code == 2 and "not a tracking URI" in bad.output
    if "mlflow" in sys.modules or _installed("mlflow"):
        down = _train(tmp_path, "--name", "r", "--mlflow", "http://127.0.0.1:9")
        assert down.exit_code == 16 and "does not answer" in down.output
    assert not (tmp_path / "r").exists()


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
