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


def _table(root) -> dict:
    """`lenet runs ROOT --json` in a subprocess (a file that blocks would time it out)."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "lenet_cli", "runs", str(root), "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {r["name"]: r for r in json.loads(done.stdout)}


@pytest.mark.parametrize(
    "damage, named",
    [
        (lambda run: (run / "metrics.jsonl").write_text('{"epoch": "one"}\n'), "line 1"),
        (lambda run: (run / "metrics.jsonl").write_text('{"epoch": 1e300, "step": 1}\n'), "epoch"),
        (lambda run: (run / "config.toml").write_text("epochs = ["), "config.toml"),
        (lambda run: (run / "env.json").write_text("[1, 2]"), "env.json"),
        (lambda run: (run / "env.json").write_text('{"time": Infinity}'), "Infinity"),
        (lambda run: (run / "env.json").write_text('{"resumed": 3}'), "resumed"),
        (lambda run: (run / "env.json").write_text("[" * 100_000), "env.json"),
        (lambda run: (run / "config.toml").write_text("x = " + "[" * 100_000), "config.toml"),
    ],
)  # fmt: skip
def test_a_broken_run_costs_its_own_row(runs_dir, damage, named):
    """The table still exits 0; the broken run's row says unreadable and why."""
    damage(runs_dir / "cut")
    result = _runs(runs_dir, "--json")
    assert result.exit_code == 0, result.output
    runs = {r["name"]: r for r in json.loads(result.stdout)}
    assert runs["cut"]["status"] == "unreadable" and named in runs["cut"]["reason"], runs["cut"]
    assert runs["done"]["status"] == "finished" and runs["empty"]["status"] == "failed"
    table = _runs(runs_dir)
    assert table.exit_code == 0 and "unreadable" in table.stdout, table.output
    assert named in table.stderr and "Traceback" not in table.output
    assert _runs(runs_dir / "nothing-here").exit_code == 2


@pytest.mark.parametrize("name", [".lock", "metrics.jsonl", "env.json", "config.toml"])
def test_a_fifo_in_a_run_never_blocks_the_table(runs_dir, name):
    import os

    target = runs_dir / "cut" / name
    target.unlink(missing_ok=True)
    os.mkfifo(target)
    runs = _table(runs_dir)
    assert runs["cut"]["status"] == "unreadable" and "FIFO" in runs["cut"]["reason"]
    assert name in runs["cut"]["reason"] and runs["done"]["status"] == "finished"


def test_env_time_without_offset_and_a_toml_datetime(runs_dir):
    """A naive time in env.json is read as UTC; a TOML date in config.toml is shown as text."""
    env_path = runs_dir / "cut" / "env.json"
    env = json.loads(env_path.read_text())
    env["time"] = env["time"].replace("+00:00", "")  # 2026-01-01T10:00:00, no offset
    env_path.write_text(json.dumps(env))
    with (runs_dir / "cut" / "config.toml").open("a") as f:
        f.write("noted = 1979-05-27T07:32:00Z\nday = 1979-05-27\n")
    runs = {r["name"]: r for r in json.loads(_runs(runs_dir, "--json").stdout)}
    assert runs["cut"]["status"] == "interrupted" and runs["cut"]["wall_s"] >= 0
    result = _runs("diff", runs_dir / "done", runs_dir / "cut", "--json")
    assert result.exit_code == 0, result.output
    changed = {c["key"]: (c["a"], c["b"]) for c in json.loads(result.stdout)["config"]}
    assert changed["noted"] == (None, "1979-05-27T07:32:00+00:00")
    assert changed["day"] == (None, "1979-05-27")
    assert _runs("diff", runs_dir / "done", runs_dir / "cut").exit_code == 0


def test_wall_time_of_a_resumed_run_leaves_out_the_idle_gap(runs_dir):
    """Two sessions a day apart, 10 s and 12 s long: the run's wall time is 22 s."""
    run = runs_dir / "cut"
    env = json.loads((run / "env.json").read_text())
    env["time"] = "2026-03-01T10:00:00+00:00"
    env["resumed"] = [{**env, "time": "2026-03-02T10:00:00+00:00"}]
    env["ended"] = {"status": "finished", "reason": "", "time": "2026-03-02T10:00:12+00:00"}
    (run / "env.json").write_text(json.dumps(env))
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    rows = [
        {**row, "epoch": 1, "partial": False, "time": "2026-03-01T10:00:10+00:00"},
        {**row, "epoch": 2, "partial": False, "time": "2026-03-02T10:00:11+00:00"},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = {r["name"]: r for r in json.loads(_runs(runs_dir, "--json").stdout)}
    assert runs["cut"]["wall_s"] == pytest.approx(22.0)


def test_runs_diff_shows_display_settings_apart(runs_dir):
    config = runs_dir / "cut" / "config.toml"
    config.write_text(re.sub(r"(?m)^progress = .*$", 'progress = "plain"', config.read_text()))
    doc = json.loads(_runs("diff", runs_dir / "done", runs_dir / "cut", "--json").stdout)
    assert "progress" not in {c["key"] for c in doc["config"]}
    assert [d["key"] for d in doc["display"]] == ["progress"]
    table = _runs("diff", runs_dir / "done", runs_dir / "cut")
    assert table.exit_code == 0 and "display" in table.stdout and "progress" in table.stdout


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
