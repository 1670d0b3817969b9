"""--augment and --dropout: what each transform does to a batch, and training with them
(the fused step after augmentation, PyTorch's step with dropout, exact resume, resume changes)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.config import TrainConfig
from lenet_cli.model import build_model
from lenet_cli.runs.checkpoint import load_checkpoint
from lenet_cli.training import augment
from lenet_cli.training.augment import Augment, Strengths
from lenet_cli.training.dropout import DropoutNet
from lenet_cli.training.loop import train
from lenet_cli.training.plan import Plan

NONE = Strengths(shift=0, rotate=0, scale=0, shear=0, stroke=0, elastic=0)
BG = -0.4242  # a blank pixel, normalised as MNIST's are


def _digits(n: int = 16) -> torch.Tensor:
    """Normalised 32x32 pictures of a ring and a bar (ink 2.8 on paper BG)."""
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    ring = ((((yy - 15.5) ** 2 + (xx - 15.5) ** 2).sqrt() - 6).abs() < 1.5).float()
    bar = ((xx - 15.5).abs() < 1.5) & ((yy - 15.5).abs() < 9)
    x = torch.stack([ring if i % 2 else bar.float() for i in range(n)]).unsqueeze(1)
    return BG + x * (2.8 - BG)


def _ink(x: torch.Tensor) -> torch.Tensor:
    return (x - BG).sum(dim=(1, 2, 3))


def test_no_strength_changes_nothing_and_paper_stays_paper():
    x = _digits()
    same = Augment(NONE, BG, augment.generator_for(0))(x)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    out = Augment(Strengths(), BG, augment.generator_for(0))(x)
    assert out.shape == x.shape and not torch.allclose(out, x, atol=1e-3)
    assert out.min() >= BG - 1e-5  # no ink below paper: what comes in from outside is paper
    blank = torch.full((4, 1, 32, 32), BG)
    torch.testing.assert_close(Augment(Strengths(), BG, augment.generator_for(0))(blank), blank)


def test_moves_keep_the_ink_and_strokes_change_it():
    """Shift, rotation and shear keep a digit's area (the ink's sum, up to resampling); the
    stroke transform is the 3x3 max (dilation) or min (erosion) of each pixel's neighbourhood."""
    x = _digits()
    moves = Strengths(shift=3, rotate=30, scale=0, shear=15, stroke=0, elastic=0)
    moved = Augment(moves, BG, augment.generator_for(3))(x)
    torch.testing.assert_close(_ink(moved), _ink(x), rtol=0.06, atol=0)
    assert (moved - x).abs().amax(dim=(1, 2, 3)).min() > 1  # every picture moved
    ink = x - BG
    thick = augment._stroke(ink, torch.ones(len(x), 1, 1, 1))
    thin = augment._stroke(ink, -torch.ones(len(x), 1, 1, 1))
    torch.testing.assert_close(thick, F.max_pool2d(ink, 3, stride=1, padding=1))
    torch.testing.assert_close(thin, -F.max_pool2d(-ink, 3, stride=1, padding=1))
    assert (_ink(thick + BG) > 1.3 * _ink(x)).all() and (_ink(thin + BG) < 0.7 * _ink(x)).all()


def test_the_elastic_field_is_simards_smoothed_noise():
    """The field drawn in the blur's 8 leading directions has the spread of Simard et al.'s
    (uniform noise in [-1, 1] per pixel, Gaussian blur of sigma 4 with zero padding), pixel by
    pixel, and as smooth (the spread of neighbours' differences)."""
    torch.manual_seed(0)
    n, size = 4000, 32
    noise = torch.rand(n, 1, size, size) * 2 - 1
    radius = math.ceil(3 * augment.ELASTIC_SIGMA)
    k = torch.exp(-(torch.arange(-radius, radius + 1.0) ** 2) / (2 * augment.ELASTIC_SIGMA**2))
    k = k / k.sum()
    exact = F.conv2d(noise, k.view(1, 1, 1, -1), padding=(0, radius))
    exact = F.conv2d(exact, k.view(1, 1, -1, 1), padding=(radius, 0))[:, 0]
    r = augment.ELASTIC_RANK
    fast = augment.elastic_field(torch.randn(n, r, r), size, size)
    torch.testing.assert_close(fast.std(0), exact.std(0), rtol=0.06, atol=0)
    for d in (1, 4):
        step = fast[:, :, d:] - fast[:, :, :-d], exact[:, :, d:] - exact[:, :, :-d]
        torch.testing.assert_close(step[0].std(0), step[1].std(0), rtol=0.08, atol=0)


def test_the_draws_are_the_generators():
    x = _digits()
    a, b = augment.generator_for(5), augment.generator_for(5)
    first = Augment(Strengths(), BG, a)(x)
    assert torch.equal(first, Augment(Strengths(), BG, b)(x))  # same state, same batch
    assert not torch.equal(first, Augment(Strengths(), BG, a)(x))  # the next draws differ
    assert not torch.equal(a.get_state(), b.get_state())


def test_dropout_net_is_the_net_in_evaluation_and_drops_in_training():
    torch.manual_seed(0)
    net = build_model("lenet5")
    x = torch.randn(8, 1, 32, 32)
    dropped = DropoutNet(net, 0.5)
    assert list(dropped.state_dict()) == ["net." + k for k in net.state_dict()]  # its own
    dropped.eval()
    torch.testing.assert_close(dropped(x), net(x))
    dropped.train()
    torch.manual_seed(1)
    one = dropped(x)
    torch.manual_seed(1)
    assert torch.equal(one, dropped(x))  # masks from torch's generator
    assert not torch.allclose(one, net(x))
    torch.testing.assert_close(DropoutNet(net, 0.0).train()(x), net(x))


FAST = ["--data", "random", "--device", "cpu", "--threads", "1", "--batch-size", "256"]


def _train(tmp_path: Path, *args: str):
    return CliRunner().invoke(app, ["train", *FAST, "--out", str(tmp_path), *args])


def test_augment_keeps_the_fused_step_and_dropout_says_it_does_not(tmp_path):
    from lenet_cli.fast import fused

    kernels = fused.status() is None
    aug = _train(tmp_path, "--epochs", "1", "--name", "a", "--augment", "--progress", "plain")
    drop = _train(
        tmp_path, "--epochs", "1", "--name", "d", "--dropout", "0.3", "--progress", "plain"
    )
    assert aug.exit_code == 0 and drop.exit_code == 0, aug.output + drop.output
    env_a, env_d = (json.loads((tmp_path / n / "env.json").read_text()) for n in ("a", "d"))
    assert "batches augmented" in aug.stderr and "dropout 0.3" in drop.stderr
    assert env_a["fused_step"] == ("update" if kernels else None)
    assert env_a["fused_step_why_not"] is None
    assert env_d["fused_step"] is None  # dropout: PyTorch's step
    if kernels:
        assert env_d["fused_step_why_not"] == "the fused step has no dropout"
        assert "PyTorch's training step: the fused step has no dropout" in drop.stderr
    # what is saved is the tutorial's Net (no dropout inside): evaluate and predict read it
    saved = load_checkpoint(tmp_path / "d" / "last.pt")["model"]
    assert list(saved) == list(build_model("tutorial").state_dict())
    evaluated = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "d"), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    config = (tmp_path / "d" / "config.toml").read_text()
    assert "dropout = 0.3" in config and "augment = false" in config


def test_augment_and_dropout_change_the_training(tmp_path):
    for name, extra in (("p", ()), ("a", ("--augment",)), ("d", ("--dropout", "0.5"))):
        assert _train(tmp_path, "--epochs", "1", "--name", name, *extra).exit_code == 0
    plain, aug, drop = (load_checkpoint(tmp_path / n / "last.pt")["model"] for n in "pad")
    assert not torch.equal(plain["fc1.weight"], aug["fc1.weight"])
    assert not torch.equal(plain["fc1.weight"], drop["fc1.weight"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--dropout", "1"], "--dropout"),
        (["--dropout", "-0.1"], "--dropout"),
        (["--augment-scale", "1"], "--augment-scale"),
        (["--augment-rotate", "nan"], "--augment-rotate"),
        (["--augment-elastic", "1000"], "--augment-elastic"),
    ],
)
def test_bad_strengths_are_usage_errors(tmp_path, args, words):
    result = _train(tmp_path, "--epochs", "1", "--name", "x", *args)
    assert result.exit_code == 2 and words in result.stderr, result.output
    assert not (tmp_path / "x").exists()


def test_a_config_file_with_a_bad_strength_is_exit_7(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("augment = true\naugment_shear = -5\n")
    result = _train(tmp_path, "--config", str(cfg), "--name", "x")
    assert result.exit_code == 7 and "augment_shear" in result.stderr, result.output


def _config(**kw) -> TrainConfig:
    base = dict(data="random", epochs=2, batch_size=100, scheduler="step", step_size=1,
                optimizer="adamw", device="cpu", threads=1, augment=True)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _run(cfg: TrainConfig, run_dir: Path, resume=None) -> dict:
    torch.set_num_threads(1)
    train(Plan(cfg, run_dir, resume), device=torch.device("cpu"), threads=1)
    return load_checkpoint(run_dir / "last.pt")


@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["augment", "augment+dropout"])
def test_resume_with_augment_and_dropout_is_bit_exact(tmp_path, dropout):
    """Stopped after an epoch, and mid-epoch, then resumed: the weights and both generators
    equal an uninterrupted run's (the fused step with --augment, PyTorch's with --dropout)."""
    straight = _run(_config(dropout=dropout), tmp_path / "straight")
    first = _run(_config(dropout=dropout, epochs=1), tmp_path / "two")
    resumed = _run(_config(dropout=dropout), tmp_path / "two", resume=first)
    part = _run(_config(dropout=dropout, max_steps=13), tmp_path / "mid")
    assert part["state"]["batch_in_epoch"] == 2
    finished = _run(_config(dropout=dropout), tmp_path / "mid", resume=part)
    plain = _run(_config(dropout=dropout, augment=False), tmp_path / "plain")
    assert not torch.equal(plain["model"]["fc1.weight"], straight["model"]["fc1.weight"])
    for other in (resumed, finished):
        assert other["step"] == straight["step"] == 22
        for k, v in straight["model"].items():
            assert torch.equal(v, other["model"][k]), k
        for g in ("augment_generator", "data_generator", "torch"):
            assert torch.equal(straight["rng"][g], other["rng"][g]), g


def test_augment_and_dropout_may_change_on_resume(tmp_path):
    args = ("--scheduler", "step")
    assert _train(tmp_path, *args, "--epochs", "1", "--name", "r", "--augment").exit_code == 0
    result = _train(
        tmp_path, *args, "--resume", str(tmp_path / "r"), "--epochs", "2", "--no-augment",
        "--dropout", "0.2", "--progress", "plain",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "dropout 0.2" in result.stderr and "batches augmented" not in result.stderr
    config = (tmp_path / "r" / "config.toml").read_text()
    assert "augment = false" in config and "dropout = 0.2" in config
    assert len((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_augment_and_dropout_on_cuda(tmp_path):
    """The draws come from the CPU generator, so a batch on the GPU is augmented as on the
    CPU (to float rounding); a run with both trains and resumes there."""
    x = _digits()
    cpu = Augment(Strengths(), BG, augment.generator_for(0))(x)
    gpu = Augment(Strengths(), BG, augment.generator_for(0))(x.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)
    args = ["train", "--data", "random", "--device", "cuda", "--batch-size", "256",
            "--scheduler", "step", "--augment", "--dropout", "0.2",
            "--out", str(tmp_path)]  # fmt: skip
    first = CliRunner().invoke(app, [*args, "--name", "g", "--epochs", "1"])
    assert first.exit_code == 0, first.output
    resumed = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "g"), "--epochs", "2"])
    assert resumed.exit_code == 0, resumed.output
