"""The tutorial's steps as invariants."""

import math

import pytest
import torch

from lenet_cli.model import build_model
from lenet_cli.teach.walkthrough import forward_random, random_input, tutorial_start, tutorial_step


def test_random_forward_is_deterministic_bit_for_bit():
    results = []
    for _ in range(2):
        net, x = tutorial_start("tutorial", 0, batch_size=3)
        out, text = forward_random(net, x, torch.device("cpu"), seed=0)
        results.append(out)
    assert results[0] == results[1]
    assert results[0]["input_shape"] == [3, 1, 32, 32]
    assert all(abs(sum(row) - 1) < 1e-6 for row in results[0]["probabilities"])
    assert "grad_fn=<AddmmBackward0>" in text


def test_another_seed_gives_another_input():
    torch.manual_seed(0)
    net = build_model()
    a, _ = forward_random(net, random_input(0), torch.device("cpu"), seed=0)
    b, _ = forward_random(net, random_input(1), torch.device("cpu"), seed=1)
    assert a["output"] != b["output"]


@pytest.mark.parametrize("loss", ["mse", "cross-entropy"])
def test_step_invariants(loss):
    s = tutorial_step(seed=0, loss=loss)
    assert s["output_shape"] == [1, 10]
    assert s["conv1_bias_grad_before"] is None  # torch 2.x: zero_grad() sets .grad to None
    after = s["conv1_bias_grad_after"]
    assert len(after) == 6 and any(v != 0 for v in after)
    assert s["manual_vs_sgd_max_abs_diff"] <= 1e-7
    assert s["loss_after_manual"] < s["loss_before"]
    assert s["loss_after_manual"] == pytest.approx(s["loss_after_sgd"], abs=1e-6)


def test_mse_target_has_the_tutorials_shape():
    s = tutorial_step(seed=3, loss="mse")
    assert s["target_shape"] == [1, 10]


def test_cross_entropy_at_init_is_close_to_ln_10():
    """A fresh network is nearly uniform over 10 classes: loss ~ ln 10, averaged over seeds."""
    losses = [tutorial_step(seed=s, loss="cross-entropy")["loss_before"] for s in range(20)]
    assert sum(losses) / len(losses) == pytest.approx(math.log(10), abs=0.15)
