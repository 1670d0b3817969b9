"""Ctrl-C and SIGTERM during training: a checkpoint is saved, exit 130 / 143, resume works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lenet_cli.checkpoint import load_checkpoint


def _start(out, name: str) -> subprocess.Popen:
    env = {**os.environ, "LENET_OFFLINE": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lenet_cli",
            "train",
            "--data",
            "random",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--epochs",
            "100000",
            "--batch-size",
            "32",
            "--scheduler",
            "none",  # so that the resume below may set --max-steps
            "--progress",
            "plain",
            "--out",
            str(out),
            "--name",
            name,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_exits_with_its_code(tmp_path, sig, code):
    proc = _start(tmp_path, "s")
    try:
        for line in proc.stderr:  # wait until the training loop runs
            if line.startswith("training on"):
                break
        time.sleep(0.5)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    name = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
    assert f"interrupted by {name}" in err and "--resume" in err
    saved = load_checkpoint(tmp_path / "s" / "last.pt")
    assert saved["step"] > 0
    # --resume continues from it (a few more steps)
    target = saved["step"] + 3
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "lenet_cli",
            "train",
            "--resume",
            str(tmp_path / "s"),
            "--max-steps",
            str(target),
            "--progress",
            "none",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == target
