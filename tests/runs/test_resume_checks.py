"""Resuming a run whose last.pt is sealed but its --save-top-k list or --ema state do not fit
the run: refused (exit 6) before anything in the run directory changes."""

from __future__ import annotations

import pytest
import torch
from conftest import raw_checkpoint
from typer.testing import CliRunner

from lenet_cli.cli import app


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    args = "--data random --device cpu --threads 1 --epochs 2 --batch-size 256 --scheduler none"
    result = _run("train", *args.split(), "--save-top-k", "2", "--ema", "0.9", "--out", out)
    assert result.exit_code == 0, result.output
    (run,) = out.iterdir()
    assert sorted(p.name for p in run.glob("epoch-*.pt")) == ["epoch-001.pt", "epoch-002.pt"]
    return run


def _future(p):  # an entry for an epoch the run never reached, ranked first
    p["state"]["top_k"] = [{"epoch": 9, "step": 10**6, "value": 1.0}]


def _twice(p):
    p["state"]["top_k"] = [p["state"]["top_k"][0]] * 2


@pytest.mark.parametrize(
    "tamper, said",
    [
        (_future, "state.top_k[0] names epoch 9"),
        (_twice, "names epoch"),
        (lambda p: p.__setitem__("ema", None), "no 'ema' weights"),
        (lambda p: p.pop("ema_updates"), "no ema_updates"),
        (lambda p: p["config"].__setitem__("ema", None), "config.ema is not set"),
    ],
)
def test_a_resume_state_that_does_not_fit_the_run_is_refused(kept_run, tmp_path, tamper, said):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(kept_run, run)
    payload = torch.load(run / "last.pt", weights_only=True)
    for key in ("format", "version"):
        payload.pop(key)
    tamper(payload)
    raw_checkpoint(run / "last.pt", payload)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = _run("train", "--resume", run, "--epochs", 3)
    assert result.exit_code == 6, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "cannot be resumed" in line and said in line, line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # epoch-NNN.pt kept


def test_the_untouched_run_resumes_and_keeps_its_best_two(kept_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(kept_run, run)
    result = _run("train", "--resume", run, "--epochs", 3)
    assert result.exit_code == 0, result.output
    assert len(list(run.glob("epoch-*.pt"))) == 2


def test_a_folder_where_a_kept_epoch_goes_is_exit_11_naming_it(kept_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(kept_run, run)
    (run / "epoch-003.pt").mkdir()
    result = _run("train", "--resume", run, "--epochs", 3, "--save-top-k", 3)
    assert result.exit_code == 11, result.output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error")]
    assert "epoch-003.pt: Is a directory" in line and "move that folder away" in line, line
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 2  # kept as it was
