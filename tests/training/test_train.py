"""`lenet train`: run directory, output discipline, exact resume, NaN, refusal to overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.config import TrainConfig
from lenet_cli.runs.checkpoint import load_checkpoint
from lenet_cli.training.loop import train
from lenet_cli.training.plan import Plan

FAST = ["--data", "random", "--device", "cpu", "--threads", "1", "--batch-size", "256"]


def _train(tmp_path: Path, *args: str):
    return CliRunner().invoke(app, ["train", *FAST, "--out", str(tmp_path), *args])


def test_plain_progress_one_line_per_epoch_and_json_summary(tmp_path):
    result = _train(tmp_path, "--epochs", "3", "--name", "r", "--progress", "plain", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["epochs"] == 3 and summary["steps"] == 12
    assert 0.0 <= summary["final"]["test_acc"] <= 1.0 and summary["best"]["selected_on"] == "test"
    assert summary["images_per_s"] > 0 and summary["run_dir"] == str(tmp_path / "r")
    epoch_lines = [
        ln for ln in result.stderr.splitlines() if ln.split()[:1] in (["1/3"], ["2/3"], ["3/3"])
    ]
    assert len(epoch_lines) == 3
    assert "\x1b" not in result.stderr + result.stdout and "\r" not in result.stderr
    run = tmp_path / "r"
    assert {"config.toml", "metrics.jsonl", "metrics.csv", "env.json", "last.pt", "best.pt"} <= {
        p.name for p in run.iterdir()
    }
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(r[k] is not None for r in rows for k in ("train_loss", "test_acc", "lr"))
    assert len((run / "metrics.csv").read_text().splitlines()) == 4
    env = json.loads((run / "env.json").read_text())
    assert env["threads"] == 1 and env["seed"] == 0 and "torch" in env
    from lenet_cli.fast import fused

    assert env["fused_kernels"] is (fused.status() is None)  # the default: when they build
    # fp32, one process: the one-call step, with the update (the default optimizer's)
    assert env["fused_step"] == ("update" if env["fused_kernels"] else None)


def test_the_one_call_step_trains_where_the_kernels_do_and_says_so(tmp_path):
    """The step is one C call with the fused kernels (fp32, one process, any optimizer: RMSprop
    gets C's gradients and torch's update); --no-fused trains with autograd, to nearly the same
    weights (float rounding), from the same data order."""
    from lenet_cli.fast import fused

    if fused.status() is not None:
        pytest.skip(f"the kernels do not build here: {fused.status()}")
    args = ("--epochs", "1", "--max-steps", "5", "--optimizer", "rmsprop", "--lr", "1e-3")
    one = _train(tmp_path, *args, "--name", "one", "--progress", "plain")
    two = _train(tmp_path, *args, "--name", "two", "--no-fused")
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output
    assert "gradients in one C call per step" in one.stderr  # and RMSprop's update by torch
    env = [json.loads((tmp_path / n / "env.json").read_text()) for n in ("one", "two")]
    assert env[0]["fused_step"] == "gradients" and env[1]["fused_step"] is None
    a, b = (load_checkpoint(tmp_path / n / "last.pt")["model"] for n in ("one", "two"))
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-3, atol=1e-4), key


def test_the_classic_net_says_it_runs_pytorchs_ops(tmp_path):
    """--arch classic (5x5 with padding) is not a network the C kernels compute: env.json and
    the start line say so, whether or not the kernels are on."""
    result = _train(tmp_path, "--arch", "classic", "--name", "c", "--progress", "plain")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "c" / "env.json").read_text())["fused_kernels"] is False
    assert "fused kernels" not in result.stderr


def test_saved_config_reproduces_the_run(tmp_path):
    assert _train(tmp_path, "--epochs", "1", "--name", "a", "--lr", "0.01").exit_code == 0
    again = _train(tmp_path, "--config", str(tmp_path / "a" / "config.toml"), "--name", "b")
    assert again.exit_code == 0, again.output
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_run_dir_is_never_overwritten(tmp_path):
    (tmp_path / "x").mkdir()
    result = _train(tmp_path, "--epochs", "1", "--name", "x")
    assert result.exit_code == 10 and "already exists" in result.stderr


def _config(**kw) -> TrainConfig:
    base = dict(
        data="random",
        epochs=2,
        batch_size=100,
        scheduler="step",
        step_size=1,
        optimizer="adamw",
        device="cpu",
        threads=1,
    )
    return TrainConfig(**{**base, **kw})


def _run(cfg: TrainConfig, run_dir: Path, resume=None) -> dict:
    torch.set_num_threads(1)
    train(Plan(cfg, run_dir, resume), device=torch.device("cpu"), threads=1)
    return load_checkpoint(run_dir / "last.pt")


@pytest.mark.slow
def test_resume_is_bit_exact_after_an_epoch_and_mid_epoch(tmp_path):
    straight = _run(_config(), tmp_path / "straight")
    # --epochs 1, then --resume --epochs 2
    first = _run(_config(epochs=1), tmp_path / "two")
    resumed = _run(_config(), tmp_path / "two", resume=first)
    # stopped mid-epoch (step 13 of 22: in epoch 2, batch 2 of 11), then resumed
    part = _run(_config(max_steps=13), tmp_path / "mid")
    assert part["state"]["batch_in_epoch"] == 2
    finished = _run(_config(), tmp_path / "mid", resume=part)
    for other in (resumed, finished):
        assert other["step"] == straight["step"] == 22
        for k, v in straight["model"].items():
            assert torch.equal(v, other["model"][k]), k
        assert torch.equal(straight["rng"]["data_generator"], other["rng"]["data_generator"])
        exp_avg = straight["optimizer"]["state"][0]["exp_avg"]
        assert torch.equal(exp_avg, other["optimizer"]["state"][0]["exp_avg"])


def test_resume_in_the_other_memory_layout_is_exact(tmp_path):
    """The optimizer state keeps its run's layout in the checkpoint; resumed with the other
    --channels-last it is laid out as the parameters again, so the one-call step's C update
    (not torch's, which rounds differently) goes on and the weights equal a straight run's."""
    args = ("--optimizer", "adamw", "--lr", "1e-3", "--scheduler", "none")
    assert _train(tmp_path, *args, "--epochs", "2", "--name", "s").exit_code == 0
    assert _train(tmp_path, *args, "--epochs", "1", "--name", "r").exit_code == 0
    flipped = _train(
        tmp_path, "--resume", str(tmp_path / "r"), "--epochs", "2", "--no-channels-last"
    )
    assert flipped.exit_code == 0, flipped.output
    a, b = (load_checkpoint(tmp_path / n / "last.pt") for n in ("s", "r"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_resume_via_cli_continues_and_appends(tmp_path):
    assert _train(tmp_path, "--epochs", "1", "--name", "r", "--scheduler", "step").exit_code == 0
    result = _train(tmp_path, "--resume", str(tmp_path / "r"), "--epochs", "2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["epochs"] == 2
    assert len((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()) == 2
    changed = _train(tmp_path, "--resume", str(tmp_path / "r"), "--arch", "lenet5")
    assert changed.exit_code == 2 and "arch" in changed.stderr


def test_resume_never_overwrites_later_work_or_foreign_files(tmp_path):
    assert _train(tmp_path, "--epochs", "2", "--name", "r", "--scheduler", "none").exit_code == 0
    run = tmp_path / "r"
    last_before = (run / "last.pt").read_bytes()
    older = _train(tmp_path, "--resume", str(run / "best.pt"), "--epochs", "3")
    assert older.exit_code == 10 and "last.pt" in older.stderr
    assert (run / "last.pt").read_bytes() == last_before  # untouched
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    (elsewhere / "config.toml").write_text("# the user's own file\n")
    (elsewhere / "last.pt").write_bytes(last_before)
    foreign = _train(tmp_path, "--resume", str(elsewhere / "last.pt"), "--epochs", "3")
    assert foreign.exit_code == 10 and "not a run directory" in foreign.stderr
    assert (elsewhere / "config.toml").read_text() == "# the user's own file\n"
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "last.pt").write_bytes(last_before)  # a checkpoint on its own resumes fine
    assert _train(tmp_path, "--resume", str(alone), "--epochs", "3").exit_code == 0


def test_nan_loss_stops_with_exit_9_and_writes_nothing(tmp_path):
    result = _train(
        tmp_path,
        "--epochs",
        "2",
        "--name",
        "n",
        "--optimizer",
        "sgd",
        "--lr",
        "1e12",
        "--loss",
        "mse",
        "--scheduler",
        "none",
    )
    assert result.exit_code == 9, result.output
    assert "non-finite" in result.stderr and "--lr" in result.stderr
    assert not (tmp_path / "n" / "last.pt").exists()
    assert not (tmp_path / "n" / "best.pt").exists()


def test_manual_sgd_matches_torch_sgd():
    from lenet_cli.optim import build_optimizer

    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
    weights = []
    for name in ("manual-sgd", "sgd"):
        torch.manual_seed(1)
        from lenet_cli.model import build_model

        model = build_model("tutorial")
        opt = build_optimizer(name, model.parameters(), lr=0.01, momentum=0.0, weight_decay=0.0)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.mse_loss(
                model(x), torch.nn.functional.one_hot(y, 10).float()
            ).backward()
            opt.step()
        weights.append(model.state_dict())
    for k in weights[0]:
        torch.testing.assert_close(weights[0][k], weights[1][k], rtol=0, atol=1e-7)


def test_initial_cross_entropy_is_about_ln_10(tmp_path):
    result = _train(
        tmp_path,
        "--max-steps",
        "1",
        "--name",
        "l",
        "--json",
        "--lr",
        "1e-9",
        "--optimizer",
        "sgd",
        "--scheduler",
        "none",
    )
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "l" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["partial"] and abs(row["train_loss"] - 2.3026) < 0.1


def test_auto_progress_off_a_terminal_is_plain_lines(tmp_path):
    result = _train(tmp_path, "--epochs", "2", "--name", "auto")
    assert result.exit_code == 0, result.output
    assert (
        len([ln for ln in result.stderr.splitlines() if ln.split()[:1] in (["1/2"], ["2/2"])]) == 2
    )
    assert "\x1b" not in result.stderr and "\r" not in result.stderr
    assert "final test accuracy" in result.stdout and "saved in" in result.stdout


def test_validation_split_picks_best_on_validation(tmp_path):
    result = _train(
        tmp_path,
        "--epochs",
        "4",
        "--val-split",
        "0.25",
        "--early-stop",
        "1",
        "--name",
        "v",
        "--json",
        "--progress",
        "none",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["best"]["selected_on"] == "val"
    assert summary["final"]["val_acc"] is not None
    assert summary["stopped"] in ("epochs", "early_stop")
    if summary["stopped"] == "early_stop":
        assert summary["epochs"] < 4
    assert result.stderr == ""  # --progress none: nothing for people on stderr


def test_out_that_is_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("keep me")
    result = CliRunner().invoke(
        app, ["train", *FAST, "--max-steps", "1", "--out", str(tmp_path / "file")]
    )
    assert result.exit_code == 2, result.output
    assert "cannot create run directory" in result.stderr and "--out" in result.stderr
    assert "internal error" not in result.stderr and result.stdout == ""
    assert (tmp_path / "file").read_text() == "keep me"


def test_fp16_on_the_cpu_is_a_usage_error_before_any_data_or_run_dir(tmp_path):
    result = _train(tmp_path, "--precision", "fp16-mixed", "--name", "fp16")
    assert result.exit_code == 2, result.output
    assert "fp16-mixed" in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "fp16").exists()


def test_finite_weights_with_a_non_finite_test_loss_stop_with_exit_9(tmp_path):
    # lr 1e30: after one step the weights are finite but the test loss is not
    result = _train(
        tmp_path, "--optimizer", "manual-sgd", "--lr", "1e30", "--max-steps", "1", "--name", "x"
    )
    assert result.exit_code == 9, result.output
    assert "test loss became non-finite" in result.stderr
    assert not (tmp_path / "x" / "last.pt").exists() and result.stdout == ""


@pytest.mark.parametrize("fused", ["--fused", "--no-fused"])
def test_a_non_finite_training_loss_stops_with_exit_9(tmp_path, fused):
    """The one-call step's loss (a number) and autograd's (a tensor) are checked alike."""
    from lenet_cli.fast import fused as kernels

    if fused == "--fused" and kernels.status() is not None:
        pytest.skip(f"the kernels do not build here: {kernels.status()}")
    args = ("--optimizer", "sgd", "--lr", "1e9", "--epochs", "1", "--name", "n", fused)
    result = _train(tmp_path, *args)
    assert result.exit_code == 9, result.output
    assert "training loss became non-finite in epoch 1" in result.stderr
    assert not (tmp_path / "n" / "last.pt").exists() and result.stdout == ""


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16-mixed", "fp16-mixed"])
def test_train_resume_and_evaluate_on_cuda(tmp_path, precision):
    args = ["train", "--data", "random", "--device", "cuda", "--batch-size", "256"]
    run = [*args, "--precision", precision, "--out", str(tmp_path), "--name", "g"]
    first = CliRunner().invoke(app, [*run, "--epochs", "1", "--json"])
    assert first.exit_code == 0, first.output
    resumed = CliRunner().invoke(
        app, ["train", "--resume", str(tmp_path / "g"), "--epochs", "2", "--json"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["epochs"] == 2
    payload = load_checkpoint(tmp_path / "g" / "last.pt")
    assert all(t.device.type == "cpu" for t in payload["model"].values())  # loads anywhere
    ev = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(tmp_path / "g"), "--device", "cuda", "--json"]
    )
    assert ev.exit_code == 0, ev.output
    assert 0.0 <= json.loads(ev.stdout)["accuracy"] <= 1.0
