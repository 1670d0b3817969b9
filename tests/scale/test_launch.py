"""`lenet train --nproc N`'s messages: one line per failure, the signal the user sent.

torchrun's own logging, its banner and its tracebacks (ChildFailedError, SignalException) are
not shown; a Ctrl-C at a terminal reaches the whole foreground process group, which the tests
do with os.killpg on a command started in a session of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

TRAIN = ["--data", "random", "--device", "cpu", "--out", "o", "--progress", "plain"]
TORCHRUN_WORDS = ("Traceback", "torch.distributed", "ChildFailedError", "SignalException", "*****")
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "LENET_DIST_TIMEOUT": "30"}


def _lenet(*args: str) -> list[str]:
    return [sys.executable, "-m", "lenet_cli", "train", *args]


def _no_torchrun_output(err: str) -> None:
    for word in TORCHRUN_WORDS:
        assert word not in err, err[-3000:]


def test_missing_data_with_nproc_is_one_line_exit_4(tmp_path):
    cmd = _lenet("--data", "mnist", "--data-dir", str(tmp_path / "nowhere"), "--device", "cpu",
                 "--nproc", "2", "--epochs", "1", "--progress", "plain")  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert done.returncode == 4, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no mnist data found"), done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("attempt", [1, 2])
def test_ctrl_c_at_a_terminal_is_one_line_interrupted_by_sigint(tmp_path, attempt):
    """SIGINT to the command's whole process group, as a terminal sends it: exit 130, one
    error line that names SIGINT (never SIGTERM), last.pt saved."""
    cmd = _lenet(*TRAIN, "--nproc", "2", "--epochs", "30", "--batch-size", "8", "--name", "c")
    log = open(tmp_path / "err.txt", "w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=log, start_new_session=True)  # fmt: skip
    metrics = tmp_path / "o" / "c" / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while not (metrics.exists() and metrics.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: every process of the group
    try:
        code = proc.wait(timeout=120)
    finally:
        log.close()
    err = (tmp_path / "err.txt").read_text()
    assert code == 130, (code, err[-3000:])
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "interrupted by SIGINT" in errors[0], err[-3000:]
    assert "SIGTERM" not in err
    _no_torchrun_output(err)
    assert (tmp_path / "o" / "c" / "last.pt").is_file()
    assert not _alive_under(tmp_path), "a rank outlived the command"


def _alive_under(cwd: Path) -> list[int]:
    """Processes still running whose working directory is ``cwd`` (ranks left behind)."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and Path(os.readlink(d / "cwd")) == cwd:
                found.append(int(d.name))
        except OSError:
            continue
    return found
