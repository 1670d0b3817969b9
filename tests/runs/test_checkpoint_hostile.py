"""Checkpoints with a valid checksum but hostile or broken content, and oversized files:
each is refused with one line naming the file and the field (exit 6), never used."""

from __future__ import annotations

import time

import pytest
import torch
from conftest import checkpoint_payload, raw_checkpoint
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.errors import CheckpointError
from lenet_cli.runs.checkpoint import MAX_BYTES, load_checkpoint, load_for_resume


def _resumable() -> dict:
    gen = torch.Generator().manual_seed(0)
    return {
        **checkpoint_payload(),
        "config": {"arch": "tutorial", "data": "random"},
        "optimizer": {"state": {}, "param_groups": [{"params": list(range(10)), "lr": 0.01}]},
        "scheduler": {},
        "state": {"epoch": 1, "step": 10},
        "rng": {"torch": torch.get_rng_state(), "data_generator": gen.get_state()},
    }


def _nan_weights(p):
    p["model"]["conv2.weight"][0, 0, 0, 0] = float("nan")


def _wrong_shape(p):
    p["model"]["fc1.weight"] = torch.zeros(120, 400)


# (change to a good payload, words the one-line error must contain)
HOSTILE = {
    "nan-weights": (_nan_weights, "model.conv2.weight holds NaN or Inf"),
    "std-zero": (lambda p: p.update(std=0.0), "std = 0.0"),
    "std-nan": (lambda p: p.update(std=float("nan")), "std = nan"),
    "mean-string": (lambda p: p.update(mean="0.13"), "mean = '0.13'"),
    "epoch-tensor": (lambda p: p.update(epoch=torch.tensor(3)), "epoch = tensor(3)"),
    "step-negative": (lambda p: p.update(step=-1), "step = -1"),
    "arch-unknown": (lambda p: p.update(arch="resnet"), "arch = 'resnet'"),
    "arch-int": (lambda p: p.update(arch=5), "arch = 5"),
    "model-list": (lambda p: p.update(model=[1, 2]), "model is a list"),
    "model-shape": (_wrong_shape, "model.fc1.weight has shape (120, 400)"),
    "model-int-tensor": (
        lambda p: p["model"].update({"fc3.bias": torch.zeros(10, dtype=torch.int64)}),
        "model.fc3.bias is not a floating-point tensor",
    ),
    "model-extra": (lambda p: p["model"].update(extra=torch.zeros(1)), "unexpected extra"),
    "model-sparse": (
        lambda p: p["model"].update({"fc1.weight": p["model"]["fc1.weight"].to_sparse()}),
        "model.fc1.weight is a torch.sparse_coo tensor",
    ),
    "sparse-extra": (lambda p: p.update(extra=torch.eye(2).to_sparse()), "extra is a torch.sparse"),
    "step-huge": (lambda p: p.update(step=2**80), "step = 1208925819614629174706176"),
    "data-unknown": (lambda p: p.update(data="cifar"), "data = 'cifar'"),
    "config-bad-loss": (lambda p: p.update(config={"loss": 5}), "config: loss"),
    "config-bad-data-dir": (lambda p: p.update(config={"data_dir": 7}), "config: data_dir"),
    "config-not-table": (lambda p: p.update(config=[1]), "config is a list"),
    "config-other-arch": (lambda p: p.update(config={"arch": "lenet5"}), "config.arch"),
    "metrics-inf": (lambda p: p.update(metrics={"loss": float("inf")}), "metrics.loss is inf"),
    "deep-nesting": (
        lambda p: p.update(extra=[[[[[[[[[[[[[[1]]]]]]]]]]]]]]),
        "nested more than 12 levels",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_content_with_valid_checksum_is_refused(tmp_path, case):
    change, words = HOSTILE[case]
    payload = checkpoint_payload()
    change(payload)
    path = tmp_path / f"{case}.pt"
    raw_checkpoint(path, payload)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert words in info.value.message and str(path) in info.value.message


def test_hostile_checkpoint_at_the_cli_is_one_line_exit_6(tmp_path):
    payload = checkpoint_payload()
    payload["std"] = 0.0
    raw_checkpoint(tmp_path / "best.pt", payload)
    result = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(tmp_path), "--device", "cpu", "--json"]
    )
    assert result.exit_code == 6
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "best.pt" in lines[0] and "std = 0.0" in lines[0]


def test_a_huge_file_is_refused_from_its_size_without_being_read(tmp_path):
    path = tmp_path / "huge.pt"
    with open(path, "wb") as f:  # sparse: 10 GB that take no disk space
        f.truncate(10 * 1024**3)
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="more than the .*-byte limit"):
        load_checkpoint(path)
    assert time.perf_counter() - started < 5  # reading 10 GB would take far longer
    assert MAX_BYTES < 10 * 1024**3


RESUME_HOSTILE = {
    "rng-short": (lambda p: p["rng"].update(torch=torch.zeros(7, dtype=torch.uint8)), "rng.torch"),
    "rng-missing": (lambda p: p.update(rng={}), "rng.torch"),
    "state-step-str": (lambda p: p["state"].update(step="10"), "state.step"),
    "optimizer-list": (lambda p: p.update(optimizer=[]), "optimizer is missing or not a table"),
    "optimizer-nan": (
        lambda p: p["optimizer"].update(
            state={0: {"momentum_buffer": torch.full((2,), 1e999)}}, param_groups=[{"params": [0]}]
        ),
        "optimizer.state.0.momentum_buffer holds NaN or Inf",
    ),
    "python-rng-junk": (lambda p: p["rng"].update(python=("x",)), "rng.python"),
    "augment-rng-short": (
        lambda p: p["rng"].update(augment_generator=torch.zeros(7, dtype=torch.uint8)),
        "rng.augment_generator",
    ),
    "config-bad-lr": (lambda p: p["config"].update(lr="fast"), "config: lr"),
    "config-unknown-key": (lambda p: p["config"].update(wat=1), "config: unknown key"),
    "state-loss-sum-str": (lambda p: p["state"].update(loss_sum="x"), "state.loss_sum"),
    "state-seen-negative": (lambda p: p["state"].update(seen=-5), "state.seen"),
    "state-best-list": (lambda p: p["state"].update(best=[1]), "state.best"),
    "optimizer-state-orphan": (
        lambda p: p["optimizer"]["state"].update({17: {}}),  # 10 parameters: 0-9
        "optimizer.state does not match",
    ),
    "optimizer-groups-junk": (
        lambda p: p["optimizer"].update(param_groups=["x"]),
        "optimizer.param_groups",
    ),
    # what torch's fused CPU kernels would trust (a wrong size crashed the process) or the
    # optimizer would choke on (exit 1); found by a red-team pass
    "optimizer-state-wrong-shape": (
        lambda p: p["optimizer"]["state"].update({4: {"exp_avg": torch.zeros(10)}}),
        "optimizer.state[4].exp_avg is torch.float32 [10], not float [120, 576]",
    ),
    "optimizer-state-int": (
        lambda p: p["optimizer"]["state"].update(
            {0: {"momentum_buffer": torch.zeros(6, 1, 3, 3, dtype=torch.int64)}}
        ),
        "optimizer.state[0].momentum_buffer is torch.int64",
    ),
    "optimizer-state-junk": (
        lambda p: p["optimizer"]["state"].update({0: {"exp_avg": "x"}}),
        "optimizer.state[0].exp_avg is a str",
    ),
    "optimizer-state-key-missing": (
        lambda p: p["optimizer"]["state"].update(
            {
                0: {"step": torch.tensor(3.0)},
                1: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(6)},
            }
        ),
        "optimizer.state[1] holds ['exp_avg', 'step'], another parameter's ['step']",
    ),
    "optimizer-two-groups": (
        lambda p: p["optimizer"]["param_groups"].append({"params": []}),
        "not one group over the model's 10 parameters",
    ),
    "optimizer-params-permuted": (
        lambda p: p["optimizer"]["param_groups"][0].update(params=list(range(9, -1, -1))),
        "not one group over the model's 10 parameters",
    ),
    "optimizer-amsgrad-on": (
        lambda p: p["optimizer"]["param_groups"][0].update(amsgrad=True),
        "amsgrad is on",
    ),
    "optimizer-lr-str": (
        lambda p: p["optimizer"]["param_groups"][0].update(lr="0.1"),
        "param_groups[0].lr = '0.1' is not a number",
    ),
    "optimizer-lr-missing": (
        lambda p: p["optimizer"]["param_groups"][0].pop("lr"),
        "param_groups[0] has no lr",
    ),
    "optimizer-betas-three": (
        lambda p: p["optimizer"]["param_groups"][0].update(betas=(0.9, 0.99, 0.5)),
        "betas",
    ),
}


@pytest.mark.parametrize("case", sorted(RESUME_HOSTILE))
def test_hostile_resume_state_is_refused(tmp_path, case):
    change, words = RESUME_HOSTILE[case]
    payload = _resumable()
    load_for_resume_ok = tmp_path / "ok.pt"
    raw_checkpoint(load_for_resume_ok, payload)
    assert load_for_resume(load_for_resume_ok)["step"] == 10  # the unchanged one passes
    change(payload)
    raw_checkpoint(tmp_path / "last.pt", payload)
    with pytest.raises(CheckpointError) as info:
        load_for_resume(tmp_path)
    assert words in info.value.message


def test_a_fifo_or_device_is_not_a_regular_file_and_is_never_read(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.pt")  # opening it for reading would block forever
    for path in (tmp_path / "pipe.pt", "/dev/null"):
        with pytest.raises(CheckpointError, match="is not a regular file"):
            load_checkpoint(path)


def test_plain_weights_are_checked_like_checkpoints(tmp_path):
    """Files `lenet train` did not write (weights.py): NaN weights, a bad std in a
    .safetensors header and a 10 GB file are refused too (exit 6), never evaluated to NaN."""
    from lenet_cli.use.weights import load_model as load_any

    state = checkpoint_payload()["model"]
    state["fc1.bias"][3] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="fc1.bias holds NaN"):
        load_any(tmp_path / "nan.pt", torch.device("cpu"))
    safetensors = pytest.importorskip("safetensors.torch")
    good = checkpoint_payload()["model"]
    for std in ("0", "nan", "-1"):
        path = tmp_path / f"std{std}.safetensors"
        meta = {"format": "lenet-cli-weights", "arch": "tutorial", "mean": "0.1", "std": std}
        safetensors.save_file(good, str(path), metadata=meta)
        with pytest.raises(CheckpointError, match="std"):
            load_any(path, torch.device("cpu"))
    with open(tmp_path / "huge.pt", "wb") as f:
        f.truncate(10 * 1024**3)
    with pytest.raises(CheckpointError, match="more than"):
        load_any(tmp_path / "huge.pt", torch.device("cpu"))


def test_an_older_release_config_still_evaluates(tmp_path):
    """Keys and values that changed since (threads = None, a removed key) do not make a
    checkpoint unusable for evaluate/predict; only resuming, which trains with them, checks all."""
    payload = checkpoint_payload()
    payload["config"] = {"arch": "tutorial", "loss": "cross-entropy", "threads": None, "old": 1}
    raw_checkpoint(tmp_path / "best.pt", payload)
    assert load_checkpoint(tmp_path)["config"]["old"] == 1
