"""`lenet plot`: training curves in the terminal and as a PNG, from run directories."""

from __future__ import annotations

import json
import shutil

from conftest import check_png, check_terminal_text
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.runs.reader import curves, read_metrics

runner = CliRunner()


def test_plot_terminal_fits_80_columns(sample_run):
    result = runner.invoke(app, ["plot", str(sample_run)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "loss per epoch" in result.stdout and "accuracy per epoch" in result.stdout
    assert "o train" in result.stdout and "x test" in result.stdout
    check_terminal_text(result.stdout)


def test_plot_png_and_json_of_two_runs(sample_run, tmp_path):
    other = tmp_path / "copy"
    shutil.copytree(sample_run, other)
    png = tmp_path / "curves.png"
    result = runner.invoke(app, ["plot", str(sample_run), str(other), "--out", str(png), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [r["name"] for r in doc["runs"]] == ["s", "copy"]
    rows = read_metrics(sample_run)
    assert doc["runs"][0]["test_acc"] == [r["test_acc"] for r in rows]
    assert 0 < doc["runs"][0]["test_acc"][0] <= 1
    check_png(png, min_size=(1000, 300))
    by_checkpoint = runner.invoke(app, ["plot", str(sample_run / "best.pt"), "--json"])
    assert json.loads(by_checkpoint.stdout)["runs"][0]["name"] == "s"
    again = runner.invoke(app, ["plot", str(sample_run), "--out", str(png)])
    assert again.exit_code == 10 and "already exists" in again.stderr


def test_plot_defaults_to_the_newest_run(sample_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(sample_run, tmp_path / "runs" / "only")
    result = runner.invoke(app, ["plot", "--json"])
    assert result.exit_code == 0, result.output
    assert "newest run" in result.stderr and "only" in result.stderr
    assert json.loads(result.stdout)["runs"][0]["name"] == "only"


def test_plot_bad_inputs_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    no_runs = runner.invoke(app, ["plot"])
    assert no_runs.exit_code == 2 and "no run directory" in no_runs.stderr
    (tmp_path / "empty").mkdir()
    no_metrics = runner.invoke(app, ["plot", "empty"])
    assert no_metrics.exit_code == 2 and "no metrics.jsonl" in no_metrics.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.jsonl").write_text('{"epoch": "x"}\n')
    bad = runner.invoke(app, ["plot", "bad"])
    assert bad.exit_code == 2 and "line 1" in bad.stderr
    for r in (no_runs, no_metrics, bad):
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_curves_keep_missing_values_as_none(sample_run):
    (c,) = curves([sample_run])
    assert c["val_loss"] == [None]  # no --val-split in that run
    assert c["epoch"] == [1] and c["partial"] == [True]


def test_cli_import_leaves_matplotlib_unloaded():
    import subprocess
    import sys

    code = "import sys, lenet_cli.cli; print('matplotlib' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_plot_refuses_numbers_out_of_range_naming_the_line(sample_run, tmp_path):
    """Infinity, a 400-digit integer, epoch 1e300 (and the like): exit 2 naming the line."""
    good = (sample_run / "metrics.jsonl").read_text().splitlines()[0]
    bad_lines = [
        good.replace('"test_loss": ', '"test_loss": Infinity, "x": '),
        good.replace('"epoch": 1', '"epoch": ' + "9" * 400),
        good.replace('"epoch": 1', '"epoch": 1e300'),
        good.replace('"epoch": 1', '"epoch": 1.0e300'),
        good.replace('"step": ', '"step": -'),
        good.replace('"lr": ', '"lr": 1e999, "y": '),
        good.replace('"test_acc": ', '"test_acc": NaN, "z": '),
        good.replace('"partial": true', '"partial": "yes"'),
        "[1, 2]",
    ]
    for n, line in enumerate(bad_lines):
        run = tmp_path / f"r{n}"
        run.mkdir()
        (run / "metrics.jsonl").write_text(f"{good}\n{line}\n")
        for args in (["plot", str(run)], ["plot", str(run), "--json"]):
            result = runner.invoke(app, args)
            assert result.exit_code == 2, (line, result.output)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "line 2" in lines[0] and "metrics.jsonl" in lines[0], lines


def test_plot_refuses_a_fifo_named_metrics_without_blocking(tmp_path):
    import os

    run = tmp_path / "r"
    run.mkdir()
    os.mkfifo(run / "metrics.jsonl")
    result = runner.invoke(app, ["plot", str(run)])
    assert result.exit_code == 2 and "FIFO" in result.stderr, result.output
