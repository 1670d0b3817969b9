"""Oracles from the tutorial: shapes, counts, and the network's behaviour."""

import pytest
import torch
import torch.nn.functional as F

from lenet_cli.model import Net, build_model, max_pool2, tutorial_forward
from lenet_cli.summary import model_facts

TUTORIAL_SHAPES = [
    [6, 1, 3, 3],
    [6],
    [16, 6, 3, 3],
    [16],
    [120, 576],
    [120],
    [84, 120],
    [84],
    [10, 84],
    [10],
]


def test_tutorial_net_has_the_tutorials_ten_tensors():
    net = build_model("tutorial")
    shapes = [list(p.shape) for p in net.parameters()]
    assert shapes == TUTORIAL_SHAPES
    assert sum(p.numel() for p in net.parameters()) == 81_194


def test_tutorial_net_prints_as_the_tutorial():
    text = str(build_model("tutorial"))
    assert text.startswith("Net(")
    assert "(conv1): Conv2d(1, 6, kernel_size=(3, 3), stride=(1, 1))" in text
    assert "(fc1): Linear(in_features=576, out_features=120, bias=True)" in text


@pytest.mark.parametrize(
    ("arch", "total", "fc1_in"), [("lenet5", 61_706, 400), ("classic", 61_706, 400)]
)
def test_five_by_five_variants(arch, total, fc1_in):
    net = build_model(arch)
    assert sum(p.numel() for p in net.parameters()) == total
    assert net.fc1.in_features == fc1_in


@pytest.mark.parametrize("arch", ["tutorial", "lenet5", "classic"])
@pytest.mark.parametrize("n", [1, 5])
def test_output_shape(arch, n):
    assert build_model(arch)(torch.randn(n, 1, 32, 32)).shape == (n, 10)


def test_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("alexnet")


def test_pool_before_relu_matches_the_tutorials_order_exactly():
    """The speed-up in Net.forward changes no number: outputs and gradients are identical."""
    torch.manual_seed(1)
    net = Net()
    x = torch.randn(8, 1, 32, 32)

    ours = net(x)
    ours.sum().backward()
    ours_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    theirs = tutorial_forward(net, x)
    theirs.sum().backward()
    assert torch.equal(ours, theirs)
    for a, p in zip(ours_grads, net.parameters(), strict=True):
        assert torch.equal(a, p.grad)


def test_shape_trace_shows_the_arithmetic():
    facts = model_facts(build_model("tutorial"), "tutorial")
    sides = [r["shape"][-1] for r in facts["trace"] if len(r["shape"]) == 4]
    assert sides == [32, 30, 15, 13, 6]
    flatten = next(r for r in facts["trace"] if r["layer"] == "flatten")
    assert flatten["op"] == "16*6*6 = 576"
    # conv1: 6 maps of 30x30, 9 MACs each; fc1: 576*120.
    macs = {r["layer"]: r["macs"] for r in facts["trace"]}
    assert macs["conv1"] == 6 * 30 * 30 * 9
    assert macs["fc1"] == 576 * 120
    assert facts["parameter_bytes"] == 81_194 * 4


@pytest.mark.parametrize("shape", [(3, 6, 30, 30), (3, 16, 13, 13), (1, 2, 5, 4)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool2_without_grad_is_max_pool2d_exactly(shape, channels_last):
    x = torch.randn(*shape)
    x[0, 0, :2, :2] = 0.0  # a window of ties
    x[-1, -1, 0, 1] = float("nan")  # NaN wins, as in max_pool2d
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ours = max_pool2(x)
    assert torch.equal(ours.isnan(), F.max_pool2d(x, 2).isnan())
    assert torch.equal(ours.nan_to_num(), F.max_pool2d(x, 2).nan_to_num())


def test_inference_output_equals_training_output_bit_for_bit():
    torch.manual_seed(4)
    net = Net()
    x = torch.randn(64, 1, 32, 32)
    with_grad = net(x)
    with torch.inference_mode():
        without = net(x)
    assert torch.equal(with_grad.detach(), without)
