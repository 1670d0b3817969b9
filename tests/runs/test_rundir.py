"""The run directory under faults: resume rules, locking, torn metrics, full disks, signals."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.config import tomllib
from lenet_cli.runs.checkpoint import load_checkpoint

FAST = ["--data", "random", "--device", "cpu", "--threads", "1", "--batch-size", "256"]


def _train(tmp_path: Path, *args: str):
    return CliRunner().invoke(app, ["train", *FAST, "--out", str(tmp_path), *args])


def _resume(run: Path, *args: str):
    return CliRunner().invoke(app, ["train", "--resume", str(run), "--progress", "plain", *args])


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A finished 2-epoch run with the step schedule (4 steps per epoch)."""
    result = _train(tmp_path, "--epochs", "2", "--name", "r", "--scheduler", "step")
    assert result.exit_code == 0, result.output
    return tmp_path / "r"


@pytest.mark.parametrize(
    "args",
    [
        ["--arch", "lenet5"],
        ["--loss", "mse"],
        ["--batch-size", "128"],
        ["--seed", "1"],
        ["--optimizer", "sgd"],
        ["--out", "elsewhere"],
    ],
)
def test_resume_refuses_what_the_state_was_built_on(run_dir, args):
    before = (run_dir / "last.pt").read_bytes()
    result = _resume(run_dir, "--epochs", "3", *args)
    assert result.exit_code == 2, result.output
    assert args[0] in result.stderr and "--resume cannot change" in result.stderr
    assert (run_dir / "last.pt").read_bytes() == before


def test_resume_applies_and_records_a_new_lr(run_dir):
    result = _resume(run_dir, "--epochs", "3", "--lr", "0.01", "--scheduler", "step")
    assert result.exit_code == 0, result.output
    rows = _rows(run_dir)
    # step schedule, --step-size 5: the factor is still 1, so the third epoch ran at 0.01
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[2]["lr"] == pytest.approx(0.01)
    assert tomllib.loads((run_dir / "config.toml").read_text())["lr"] == 0.01
    assert load_checkpoint(run_dir / "last.pt")["config"]["lr"] == 0.01


def test_a_longer_onecycle_needs_restart_schedule(tmp_path):
    assert _train(tmp_path, "--epochs", "1", "--name", "c").exit_code == 0
    run = tmp_path / "c"
    refused = _resume(run, "--epochs", "2")
    assert refused.exit_code == 2 and "--restart-schedule" in refused.stderr
    assert len(_rows(run)) == 1
    restarted = _resume(run, "--epochs", "2", "--restart-schedule")
    assert restarted.exit_code == 0, restarted.output
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    # a new one-cycle over epoch 2's 4 steps: it ends near lr/1e4 again, not at lr/25 (warm-up)
    assert rows[1]["lr"] < 1e-5
    assert (
        "--restart-schedule only applies with --resume"
        in _train(tmp_path, "--restart-schedule", "--name", "x").stderr
    )


def test_torn_line_and_rows_beyond_the_checkpoint_are_dropped(run_dir):
    rows = _rows(run_dir)
    extra = {**rows[-1], "epoch": 3, "step": 12}  # an older version wrote rows before last.pt
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(extra) + "\n" + '{"epoch": 4, "st')  # then a torn line
    result = _resume(run_dir, "--epochs", "3")
    assert result.exit_code == 0, result.output
    assert "dropped 1 unreadable line(s) and 1 row(s) beyond" in result.stderr
    assert [r["epoch"] for r in _rows(run_dir)] == [1, 2, 3]
    csv = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(csv) == 4 and csv[0].startswith("epoch,step")


def test_a_lost_row_comes_back_from_the_checkpoint(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text(lines[0] + "\n")  # crash between last.pt and row 2
    result = _resume(run_dir, "--epochs", "3")
    assert result.exit_code == 0, result.output
    assert "restored the metrics row of epoch 2" in result.stderr
    assert [r["epoch"] for r in _rows(run_dir)] == [1, 2, 3]


def test_a_live_run_is_locked_and_a_dead_owners_lock_is_taken_over(run_dir):
    fcntl = pytest.importorskip("fcntl")
    with (run_dir / ".lock").open("w") as held:
        held.write("pid 4242 on somehost\n")
        held.flush()
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = _resume(run_dir, "--epochs", "3")
        assert result.exit_code == 12, result.output
        assert "in use by pid 4242 on somehost" in result.stderr
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)  # the owner died: its lock went with it
    result = _resume(run_dir, "--epochs", "3")
    assert result.exit_code == 0, result.output
    assert "took over the lock" in result.stderr and "pid 4242" in result.stderr
    assert not (run_dir / ".lock").exists()  # released at the end


def _fail_writes(monkeypatch, name: str, after: int = 0):
    """Make the ``after``+1-th atomic write of ``name`` fail with ENOSPC."""
    import lenet_cli.runs.rundir as rundir

    real, count = rundir.atomic_write, {"n": 0}

    def atomic_write(path):
        if Path(path).name == name:
            count["n"] += 1
            if count["n"] > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path)

    monkeypatch.setattr(rundir, "atomic_write", atomic_write)


def test_no_space_is_exit_11_saying_what_was_kept_and_resume_works(tmp_path, monkeypatch):
    _fail_writes(monkeypatch, "last.pt", after=1)  # epoch 1's last.pt fits, epoch 2's does not
    result = _train(tmp_path, "--epochs", "3", "--name", "f", "--scheduler", "none")
    assert result.exit_code == 11, result.output
    run = tmp_path / "f"
    assert "No space left" in result.stderr and "kept:" in result.stderr
    assert "last.pt (epoch 1, step 4)" in result.stderr and "internal error" not in result.stderr
    assert [r["epoch"] for r in _rows(run)] == [1]  # no orphan row for epoch 2
    assert not [p for p in run.iterdir() if p.name.endswith(".part")]
    monkeypatch.undo()
    assert _resume(run).exit_code == 0
    assert [r["epoch"] for r in _rows(run)] == [1, 2, 3]


def test_no_space_before_the_first_checkpoint_leaves_no_run_dir(tmp_path, monkeypatch):
    _fail_writes(monkeypatch, "config.toml")
    result = _train(tmp_path, "--epochs", "1", "--name", "g")
    assert result.exit_code == 11, result.output
    assert "kept: nothing" in result.stderr
    assert not (tmp_path / "g").exists()
    monkeypatch.undo()
    assert _train(tmp_path, "--epochs", "1", "--name", "g").exit_code == 0


@pytest.mark.slow
def test_a_real_full_disk(tmp_path):
    """A 1.5 MB tmpfs: the first last.pt (1 MB) fits, best.pt does not."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        result = CliRunner().invoke(
            app, ["train", *FAST, "--out", str(disk), "--name", "r", "--epochs", "2"]
        )
        assert result.exit_code == 11, result.output
        assert "No space left" in result.stderr and "kept:" in result.stderr
        assert "internal error" not in result.stderr
        run = disk / "r"
        load_checkpoint(run / "last.pt")  # what it says it kept is whole
        assert not [p for p in run.iterdir() if p.name.endswith(".part")]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_sigterm_while_data_load_leaves_nothing_that_blocks_the_next_run(tmp_path):
    # the data loader receives SIGTERM, as a user's `kill` would while MNIST is decoded
    code = (
        "import os, signal, sys\n"
        "import lenet_cli.training.splits as t\n"
        "def load(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "t.load_dataset = load\n"
        "from lenet_cli.cli import main\n"
        "sys.argv = ['lenet', 'train', *sys.argv[1:]]\n"
        "main()\n"
    )
    args = [*FAST, "--out", str(tmp_path), "--name", "s", "--epochs", "1"]
    killed = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, timeout=120)
    assert killed.returncode == -15, killed.stderr
    assert not (tmp_path / "s").exists()
    assert _train(tmp_path, "--name", "s", "--epochs", "1").exit_code == 0


@pytest.mark.parametrize("name", [".lock", "metrics.jsonl"])
def test_a_fifo_in_the_run_is_refused_on_resume_without_blocking(run_dir, name):
    from conftest import REPO

    (run_dir / name).unlink(missing_ok=True)
    os.mkfifo(run_dir / name)
    before = (run_dir / "last.pt").read_bytes()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "lenet_cli", "train", "--resume", str(run_dir), "--epochs", "3"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert name in line and "regular file" in line, line
    assert (run_dir / "last.pt").read_bytes() == before


def test_a_fifo_named_env_json_is_replaced_on_resume(run_dir):
    (run_dir / "env.json").unlink()
    os.mkfifo(run_dir / "env.json")
    result = _resume(run_dir, "--epochs", "3")
    assert result.exit_code == 0, result.output
    assert "FIFO" in result.stderr and "written anew" in result.stderr
    env = json.loads((run_dir / "env.json").read_text())
    assert env["ended"]["status"] == "finished"
