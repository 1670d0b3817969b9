"""`lenet runs`: a table of run directories (status inferred from their files) and `runs diff`."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from lenet_cli.cli import app


def _runs(*args):
    return CliRunner().invoke(app, ["runs", *map(str, args)])


@pytest.fixture
def runs_dir(sample_run, tmp_path):
    """finished (the 20-step sample run), interrupted (its files, 5 epochs planned, no recorded
    end), empty."""
    root = tmp_path / "runs"
    shutil.copytree(sample_run, root / "done")
    shutil.copytree(sample_run, root / "cut")
    config = root / "cut" / "config.toml"
    text = re.sub(r"(?m)^max_steps = .*$", "# max_steps is not set", config.read_text())
    config.write_text(re.sub(r"(?m)^epochs = .*$", "epochs = 5", text) + 'new_key = "later"\n')
    env = json.loads((root / "cut" / "env.json").read_text())
    env.pop("ended")  # as a killed process leaves it: no end recorded, the files tell
    (root / "cut" / "env.json").write_text(json.dumps(env))
    (root / "empty").mkdir()
    return root


def test_runs_table_json_and_status(runs_dir):
    result = _runs(runs_dir, "--json")
    assert result.exit_code == 0, result.output
    runs = {r["name"]: r for r in json.loads(result.stdout)}
    assert {n: r["status"] for n, r in runs.items()} == {
        "done": "finished",
        "cut": "interrupted",
        "empty": "failed",
    }
    done = runs["done"]
    rows = [
        json.loads(line) for line in (runs_dir / "done" / "metrics.jsonl").read_text().splitlines()
    ]
    assert done["final_acc"] == rows[-1]["test_acc"] and done["data"] == "mnist-sample"
    assert done["best_acc"] == max(r["test_acc"] for r in rows) and done["arch"] == "tutorial"
    assert done["images_per_s"] > 0 and done["wall_s"] >= 0 and done["epochs"] == 0  # partial
    assert runs["cut"]["epochs_planned"] == 5  # an unknown config key is tolerated
    assert runs["empty"]["final_acc"] is None and runs["empty"]["epochs"] == 0

    table = _runs(runs_dir, "--sort", "status")
    assert table.exit_code == 0, table.output
    order = [
        line.split()[0] for line in table.stdout.splitlines() if "%" in line or "failed" in line
    ]
    assert order == ["empty", "done", "cut"]  # failed, finished, interrupted: A-Z


def test_runs_refuses_a_broken_file(runs_dir):
    (runs_dir / "cut" / "metrics.jsonl").write_text('{"epoch": "one"}\n')
    result = _runs(runs_dir)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "metrics.jsonl" in lines[0] and "line 1" in lines[0]
    (runs_dir / "cut" / "metrics.jsonl").unlink()
    (runs_dir / "cut" / "config.toml").write_text("epochs = [")
    result = _runs(runs_dir)
    assert result.exit_code == 2 and "config.toml" in result.stderr
    assert "Traceback" not in result.output
    assert _runs(runs_dir / "nothing-here").exit_code == 2


def test_runs_diff(runs_dir):
    result = _runs("diff", runs_dir / "done", runs_dir / "cut", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    changed = {c["key"]: (c["a"], c["b"]) for c in doc["config"]}
    assert changed == {"epochs": (1, 5), "max_steps": (20, None), "new_key": (None, "later")}
    results = {r["key"]: (r["a"], r["b"]) for r in doc["results"]}
    assert results["status"] == ("finished", "interrupted")
    assert results["final_acc"][0] == results["final_acc"][1] is not None
    table = _runs("diff", runs_dir / "done", runs_dir / "cut")
    assert table.exit_code == 0 and "max_steps" in table.stdout and "interrupted" in table.stdout
    assert _runs("diff", runs_dir / "done", runs_dir / "missing").exit_code == 2


def test_status_recorded_by_train_nan_is_failed(tmp_path):
    args = "train --data mnist-sample --device cpu --threads 1 --epochs 2 --max-steps 3"
    nan = "--optimizer sgd --lr 1e12 --loss mse --scheduler none"
    runner = CliRunner()
    ok = runner.invoke(app, [*args.split(), "--out", str(tmp_path), "--name", "ok"])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, [*args.split(), *nan.split(), "--out", str(tmp_path), "--name", "nan"])
    assert bad.exit_code == 9, bad.output
    env = json.loads((tmp_path / "ok" / "env.json").read_text())
    assert env["ended"]["status"] == "finished"
    runs = {r["name"]: r for r in json.loads(_runs(tmp_path, "--json").stdout)}
    assert runs["ok"]["status"] == "finished" and runs["nan"]["status"] == "failed"
    assert "non-finite" in runs["nan"]["reason"]


def test_a_run_whose_lock_is_held_is_running(runs_dir):
    import fcntl
    import os

    fd = os.open(runs_dir / "cut" / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as `lenet train` holds it
        held = {r["name"]: r["status"] for r in json.loads(_runs(runs_dir, "--json").stdout)}
    finally:
        os.close(fd)
    after = {r["name"]: r["status"] for r in json.loads(_runs(runs_dir, "--json").stdout)}
    assert held["cut"] == "running" and held["done"] == "finished"
    assert after["cut"] == "interrupted"  # a lock file left behind by a dead process: not running
