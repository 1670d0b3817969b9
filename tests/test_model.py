"""Oracles from the tutorial: shapes, counts, and the network's behaviour."""

import subprocess
import sys

import pytest
import torch

from lenet_cli.model import Net, build_model, tutorial_forward
from lenet_cli.teach.summary import model_facts

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


def test_inference_output_equals_training_output_bit_for_bit():
    torch.manual_seed(4)
    net = Net()
    x = torch.randn(64, 1, 32, 32)
    with_grad = net(x)
    with torch.inference_mode():
        without = net(x)
    assert torch.equal(with_grad.detach(), without)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace")  # deprecated, still what tools use
@pytest.mark.parametrize("arch", ["tutorial", "lenet5", "classic"])
def test_trace_and_export_see_the_plain_network(arch):
    """Net's forward has no branch on grad mode or on a kernel: tracing and export work as is
    and give the module's own outputs."""
    torch.manual_seed(5)
    net = build_model(arch)
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        want = net(x)
        traced = torch.jit.trace(net, x[:2])  # its check_trace reruns and compares
        torch.testing.assert_close(traced(x), want, rtol=1e-5, atol=1e-6)
        program = torch.export.export(net, (torch.randn(2, 1, 32, 32),))
        ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
        assert not any("lenet" in op for op in ops)  # PyTorch's ops only
        torch.testing.assert_close(program.module()(x[:2]), want[:2], rtol=1e-5, atol=1e-6)


def test_the_model_module_does_not_import_the_kernel():
    """model.py is the readable definition: importing it loads neither the C kernel nor its
    wrapper."""
    code = (
        "import sys, lenet_cli.model; "
        "print(sorted(m for m in sys.modules "
        "if m in ('lenet_cli.fast.fused', 'lenet_cli.fast.kernel')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
