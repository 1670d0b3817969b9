"""What a real `lenet train` prints for a person: the epoch table within 80 columns with a
validation split, its legend, label smoothing said, and bf16-mixed on a CPU said to be slower."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from lenet_cli.cli import app

TABLE_ROW = re.compile(r"^\s*\d+/\d+ ")  # "  1/2  2.3026  10.94% ..."


def _train(tmp_path, *args: str):
    base = ["train", "--data", "random", "--device", "cpu", "--threads", "1", "--progress",
            "plain", "--out", str(tmp_path), "--name", "r"]  # fmt: skip
    return CliRunner().invoke(app, [*base, *args])


def test_epoch_table_of_a_run_with_validation_fits_80_columns(tmp_path):
    result = _train(tmp_path, "--val-split", "0.1", "--epochs", "2", "--batch-size", "256",
                    "--label-smoothing", "0.1")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    rows = [ln for ln in lines if TABLE_ROW.match(ln)]
    assert len(rows) == 2 and all(ln.count("%") == 3 for ln in rows), lines  # train, val, test
    at = lines.index(rows[0])
    for line in lines[at - 3 : at + 2]:  # the header, its smoothing line and the rows
        assert len(line) <= 80, f"{len(line)}: {line!r}"
    assert sum("* = best so far" in ln for ln in lines) == 1
    assert any("label smoothing 0.1" in ln for ln in lines[:at])


def test_bf16_mixed_on_the_cpu_says_it_is_slower(tmp_path):
    result = _train(tmp_path, "--precision", "bf16-mixed", "--epochs", "1", "--max-steps", "2")
    assert result.exit_code == 0, result.output
    assert "several times slower than fp32" in result.stderr
    fp32 = _train(tmp_path / "b", "--epochs", "1", "--max-steps", "2")
    assert fp32.exit_code == 0 and "slower" not in fp32.stderr


def test_training_with_stderr_closed_runs_and_saves(tmp_path):
    """`lenet train ... 2>&-` (a service, cron): progress goes nowhere, the run is saved, exit 0."""
    import shlex
    import subprocess
    import sys

    args = ["train", "--data", "random", "--device", "cpu", "--threads", "1", "--epochs", "1",
            "--batch-size", "256", "--out", str(tmp_path), "--name", "r"]  # fmt: skip
    line = shlex.join([sys.executable, "-m", "lenet_cli", *args])
    done = subprocess.run(
        ["sh", "-c", f"exec {line} 2>&-"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout
    assert f"saved in {tmp_path / 'r'}" in done.stdout and done.stderr == ""
    assert (tmp_path / "r" / "best.pt").is_file() and (tmp_path / "r" / "last.pt").is_file()
