"""Early stopping, the metric a run follows (best.pt, --save-top-k), --restore-best, and why a
run says it stopped."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.runs.checkpoint import load_checkpoint

FAST = ["--data", "random", "--device", "cpu", "--threads", "1", "--batch-size", "256"]


def _train(out: Path, *args: str):
    return CliRunner().invoke(app, ["train", *FAST, "--out", str(out), "--json", *args])


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_early_stop_stops_and_says_why(tmp_path):
    """Nothing beats epoch 1 by more than --min-delta 0.5: epochs 2 and 3 do not improve, so
    --early-stop 2 ends the run after epoch 3 of 10, and the summary says so."""
    result = _train(tmp_path, "--name", "r", "--epochs", "10", "--early-stop", "2",
                    "--min-delta", "0.5")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["stopped"] == "early_stop" and summary["epochs"] == 3
    assert summary["monitor"] == {"metric": "test_acc", "min_delta": 0.5, "patience": 2}
    assert summary["best"]["epoch"] == 1 and summary["best"]["metric"] == "test_acc"
    assert [r["epoch"] for r in _rows(tmp_path / "r")] == [1, 2, 3]
    text = CliRunner().invoke(
        app,
        [
            "train",
            *FAST,
            "--out",
            str(tmp_path),
            "--name",
            "t",
            "--epochs",
            "10",
            "--early-stop",
            "2",
            "--min-delta",
            "0.5",
        ],  # fmt: skip
    )
    assert "stopped early after epoch 3: test_acc did not improve by more than 0.5 for 2 " in (
        text.stdout
    )


def test_a_run_that_trained_every_epoch_ended_by_its_epochs(tmp_path):
    """The epochs limit is checked first: the last two epochs did not improve, but all three
    ran, so it did not stop early and does not say so."""
    result = CliRunner().invoke(
        app,
        [
            "train",
            *FAST,
            "--out",
            str(tmp_path),
            "--name",
            "r",
            "--epochs",
            "3",
            "--early-stop",
            "2",
            "--min-delta",
            "0.5",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    assert "stopped" not in result.stdout
    summary = json.loads(_train(tmp_path, "--name", "j", "--epochs", "3", "--early-stop", "2",
                                "--min-delta", "0.5").stdout)  # fmt: skip
    assert summary["stopped"] == "epochs" and summary["epochs"] == 3


def test_best_pt_and_top_k_follow_the_monitored_metric(tmp_path):
    """--early-stop-metric test_loss: best.pt is the epoch of the lowest test loss (not of the
    highest accuracy, here another epoch), and --save-top-k 2 keeps the two lowest as
    epoch-NNN.pt."""
    result = _train(tmp_path, "--name", "r", "--epochs", "5",
                    "--early-stop-metric", "test_loss", "--save-top-k", "2")  # fmt: skip
    assert result.exit_code == 0, result.output
    run, rows = tmp_path / "r", _rows(tmp_path / "r")
    by_loss = sorted(rows, key=lambda r: (r["test_loss"], r["epoch"]))
    by_acc = max(rows, key=lambda r: (r["test_acc"], -r["epoch"]))
    assert by_loss[0]["epoch"] != by_acc["epoch"]  # the two metrics pick differently here
    assert load_checkpoint(run / "best.pt")["epoch"] == by_loss[0]["epoch"]
    kept = sorted(p.name for p in run.glob("epoch-*.pt"))
    assert kept == sorted(f"epoch-{r['epoch']:03d}.pt" for r in by_loss[:2])
    for name in kept:
        assert load_checkpoint(run / name)["epoch"] == int(name[6:9])
    runs = json.loads(CliRunner().invoke(app, ["runs", str(tmp_path), "--json"]).stdout)
    assert runs[0]["checkpoints"] == sorted(["best.pt", "last.pt", *kept])  # `lenet runs`


def test_top_k_resumes_with_its_list_and_a_smaller_k_prunes(tmp_path):
    assert _train(tmp_path, "--name", "r", "--epochs", "3", "--save-top-k", "3").exit_code == 0
    run = tmp_path / "r"
    assert len(list(run.glob("epoch-*.pt"))) == 3
    resumed = CliRunner().invoke(
        app,
        [
            "train",
            "--resume",
            str(run),
            "--epochs",
            "5",
            "--save-top-k",
            "1",
            "--scheduler",
            "none",
            "--restart-schedule",
            "--json",
        ],  # fmt: skip
    )
    assert resumed.exit_code == 0, resumed.output
    best = load_checkpoint(run / "best.pt")
    assert [p.name for p in run.glob("epoch-*.pt")] == [f"epoch-{best['epoch']:03d}.pt"]
    assert best["state"]["top_k"] == [
        {"epoch": best["epoch"], "step": best["step"], "value": best["state"]["best"]["value"]}
    ]


def test_export_never_replaces_a_top_k_checkpoint(tmp_path):
    assert _train(tmp_path, "--name", "r", "--epochs", "1", "--save-top-k", "1").exit_code == 0
    target = tmp_path / "r" / "epoch-001.pt"
    before = target.read_bytes()
    result = CliRunner().invoke(
        app, ["export", str(tmp_path / "r"), "--format", "pt2", "--out", str(target), "--force"]
    )
    assert result.exit_code == 10 and "epoch-001.pt" in result.output
    assert target.read_bytes() == before


def test_restore_best_ends_with_the_best_epochs_weights(tmp_path):
    """Best at epoch 1 (--min-delta 0.5), three epochs: the final model is epoch 1's, in this
    session and in a resumed one (read back from best.pt)."""
    result = _train(tmp_path, "--name", "r", "--epochs", "3", "--min-delta", "0.5",
                    "--restore-best")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary, rows = json.loads(result.stdout), _rows(tmp_path / "r")
    assert summary["restored_best"] == 1 and summary["stopped"] == "epochs"
    assert summary["final"]["test_loss"] == rows[0]["test_loss"] != rows[-1]["test_loss"]
    resumed = CliRunner().invoke(
        app,
        [
            "train",
            "--resume",
            str(tmp_path / "r"),
            "--epochs",
            "4",
            "--scheduler",
            "none",
            "--restart-schedule",
            "--json",
        ],  # fmt: skip
    )
    again = json.loads(resumed.stdout)
    assert again["restored_best"] == 1 and again["final"]["test_loss"] == rows[0]["test_loss"]
    # last.pt stays the point to resume from: the last epoch's weights
    assert load_checkpoint(tmp_path / "r" / "last.pt")["epoch"] == 4


def test_restore_best_model_is_best_pts(tmp_path):
    """The model the engine ends with holds best.pt's weights."""
    import torch

    from lenet_cli.training.loop import train
    from lenet_cli.training.plan import plan_run

    plan = plan_run(None, {"data": "random", "device": "cpu", "threads": 1, "batch_size": 256,
                           "epochs": 3, "min_delta": 0.5, "restore_best": True,
                           "out": str(tmp_path), "name": "r"})  # fmt: skip
    ended = {}

    def listen(e: dict) -> None:
        if e.get("event") == "restored_best":
            ended.update(e)

    train(plan, device=torch.device("cpu"), threads=1, on_event=listen)
    assert ended["epoch"] == 1
    best = load_checkpoint(tmp_path / "r" / "best.pt")["model"]
    last = load_checkpoint(tmp_path / "r" / "last.pt")["model"]
    assert any(not torch.equal(best[k], last[k]) for k in best)


def test_options_that_cannot_work(tmp_path):
    result = _train(tmp_path, "--name", "r", "--early-stop-metric", "val_loss")
    assert result.exit_code == 2 and "needs a validation split" in result.output
    both = _train(tmp_path, "--name", "r", "--clip-grad-norm", "1", "--clip-grad-value", "1")
    assert both.exit_code == 2 and "choose one" in both.output
    assert not (tmp_path / "r").exists()


def test_resume_keeps_the_metric_and_may_change_the_rest(tmp_path):
    assert _train(tmp_path, "--name", "r", "--epochs", "1", "--val-split", "0.2").exit_code == 0
    run = str(tmp_path / "r")
    changed = CliRunner().invoke(app, ["train", "--resume", run, "--early-stop-metric", "test_acc"])
    assert changed.exit_code == 2 and "val_acc, now test_acc" in changed.output
    same = CliRunner().invoke(app, ["train", "--resume", run, "--early-stop-metric", "val_acc",
                                    "--epochs", "2", "--early-stop", "3", "--min-delta", "0.01",
                                    "--restore-best", "--save-top-k", "1",
                                    "--clip-grad-norm", "1.0", "--scheduler", "none",
                                    "--restart-schedule"])  # fmt: skip
    assert same.exit_code == 0, same.output
    config = (tmp_path / "r" / "config.toml").read_text()
    for line in ("early_stop = 3", "min_delta = 0.01", "restore_best = true", "save_top_k = 1",
                 "clip_grad_norm = 1.0"):  # fmt: skip
        assert line in config
