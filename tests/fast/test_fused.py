"""The fused CPU kernel (the whole Net in one C call forward, one backward) against PyTorch's ops,
and as a registered op: export, compile and checkpoints see a plain Net."""

from __future__ import annotations

import copy
import shutil
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import for_thread_counts

from lenet_cli.fast import fused, kernel, speed
from lenet_cli.losses import build_loss
from lenet_cli.model import Net, build_model, tutorial_forward
from lenet_cli.optim import build_optimizer
from lenet_cli.training.step import train_step

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None, reason="needs a C compiler to build the kernel"
)
CPU = torch.device("cpu")


def _fused_net(arch: str = "tutorial", seed: int = 0, channels_last: bool = True):
    """The model as `lenet train` prepares it on the CPU: channels_last, the fused kernel."""
    torch.manual_seed(seed)
    net = speed.prepare_model(build_model(arch), CPU, channels_last=channels_last, fused=True)
    assert isinstance(net, fused.FusedNet)
    return net


def _digits(n: int = 256) -> torch.Tensor:
    from lenet_cli.data.load import load_dataset

    return load_dataset("mnist-sample", "test").images[:n]


def _gradients(net, x, y):
    """(loss, the ten gradients) of cross-entropy on (x, y)."""
    net.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in net.parameters()]


def _check_against_float64(net, x, y, msg="", exact=None):
    """Loss and all ten gradients of the kernel against PyTorch's ops in float64 (``exact``: the
    plain net in float64, when the caller made it already)."""
    loss, grads = _gradients(net, x, y)
    exact = exact or copy.deepcopy(net.plain).double()
    want, want_grads = _gradients(exact, x.double(), y)
    torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=1e-6)
    for (name, p), g, q in zip(net.named_parameters(), grads, want_grads, strict=True):
        scale = q.abs().max().item()
        torch.testing.assert_close(
            g.double(), q, rtol=1e-4, atol=1e-4 * scale, msg=lambda m, n=name: f"{msg}{n}: {m}"
        )
        assert g.stride() == p.stride(), name  # channels_last conv weights keep their layout


def test_kernel_builds_and_uses_torchs_openmp():
    assert kernel.status() is None
    maps = open("/proc/self/maps").read() if sys.platform == "linux" else ""
    gomp = {line.split()[-1] for line in maps.splitlines() if "libgomp" in line}
    assert len(gomp) <= 1, gomp  # one OpenMP runtime: the kernel runs on torch's threads


@pytest.mark.parametrize("arch", ["tutorial", "lenet5"])
@pytest.mark.parametrize("batch", [1, 5, 64])  # 5: a group of four images and one alone
def test_inference_matches_pytorchs_ops(arch, batch):
    net = _fused_net(arch)
    x = speed.prepare_inputs(torch.randn(batch, 1, 32, 32) * 2, True)
    with torch.inference_mode():
        out = net(x)
        want = tutorial_forward(net.plain, x)
    assert out.shape == (batch, 10)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(net(x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["tutorial", "lenet5"])
@pytest.mark.parametrize("batch", [1, 13, 64])  # 13: groups of four and a rest, split unevenly
@pytest.mark.parametrize("channels_last", [True, False])  # False: --no-channels-last's strides
def test_all_ten_gradients_match_float64(arch, batch, channels_last):
    net = _fused_net(arch, seed=4, channels_last=channels_last)
    assert net.conv2.weight.is_contiguous() != channels_last
    x = speed.prepare_inputs(torch.randn(batch, 1, 32, 32) * 2, channels_last)
    _check_against_float64(net, x, torch.randint(0, 10, (batch,)))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["tutorial", "lenet5"])
def test_every_batch_size_from_1_to_70(arch):
    """Every split of a batch into groups of four images and over two threads."""
    net = _fused_net(arch, seed=5)
    exact = copy.deepcopy(net.plain).double()
    torch.manual_seed(6)
    for batch in range(1, 71):
        x = torch.randn(batch, 1, 32, 32) * 2
        y = torch.randint(0, 10, (batch,))
        _check_against_float64(net, x, y, msg=f"batch {batch}: ", exact=exact)


def test_same_values_for_one_to_three_threads_and_nan_where_pytorch_puts_it():
    net = _fused_net(seed=1)
    x = torch.randn(13, 1, 32, 32)
    x[3, 0, 10, 10] = float("nan")
    outs = for_thread_counts(lambda: net(x).detach())
    with torch.inference_mode():
        want = tutorial_forward(net.plain, x)
    assert torch.isnan(want[3]).all() and not torch.isnan(want[torch.arange(13) != 3]).any()
    assert torch.equal(torch.isnan(outs[0]), torch.isnan(want))
    assert all(torch.equal(outs[0].nan_to_num(), o.nan_to_num()) for o in outs[1:])
    x = torch.randn(37, 1, 32, 32)
    y = torch.randint(0, 10, (37,))
    runs = for_thread_counts(lambda: _gradients(net, x, y)[1])
    for grads in runs[1:]:  # the conv sums per thread in double: equal to float rounding
        for g, h in zip(runs[0], grads, strict=True):
            torch.testing.assert_close(g, h, rtol=1e-6, atol=1e-7)


def test_ties_send_the_gradient_to_the_first_maximum_as_max_pool2d():
    """A digit's blank border makes the four values of a window equal; max_pool2d then picks
    the first one, and so must the kernel."""
    net = _fused_net(seed=1)
    x = torch.zeros(4, 1, 32, 32)
    x[:, :, 10:20, 12:22] = torch.randn(4, 1, 10, 10)  # a blob on a constant background
    _check_against_float64(net, x, torch.tensor([1, 2, 3, 4]))


def test_weights_changed_in_place_or_loaded_are_followed():
    net = _fused_net(seed=1)
    x = torch.randn(5, 1, 32, 32)
    with torch.no_grad():
        net.fc2.weight.mul_(-1)  # as an optimizer step does
        net.conv1.bias.add_(0.5)
        torch.testing.assert_close(net(x), tutorial_forward(net.plain, x), rtol=1e-5, atol=1e-5)
        net.load_state_dict(build_model("tutorial").state_dict())
        torch.testing.assert_close(net(x), tutorial_forward(net.plain, x), rtol=1e-5, atol=1e-5)


def test_pytorchs_ops_run_where_the_kernel_does_not_apply():
    net = _fused_net()
    calls = []
    handle = net.plain.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        assert net(torch.randn(0, 1, 32, 32)).shape == (0, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(torch.randn(2, 1, 32, 32)).dtype == torch.bfloat16
    x = torch.randn(2, 1, 32, 32, requires_grad=True)  # the kernel gives no input gradient
    net(x).sum().backward()
    assert x.grad is not None and len(calls) == 3
    handle.remove()
    assert fused.unfit(torch.randn(2, 1, 28, 28), net._params()) is not None
    assert fused.unfit(torch.randn(2, 1, 32, 32).double(), net._params()) is not None
    assert fused.unfit(torch.randn(2, 3, 32, 32), net._params()) is not None
    assert not fused.supports(build_model("classic"))


def test_second_derivatives_are_refused_not_wrong():
    net = _fused_net()
    (g,) = torch.autograd.grad(net(torch.randn(4, 1, 32, 32)).pow(2).sum(), net.fc1.weight,
                               create_graph=True)  # fmt: skip
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


def test_training_with_the_kernel_follows_pytorchs_ops():
    """Ten SGD steps: the same trajectory up to float rounding."""
    torch.manual_seed(3)
    a, b = build_model("tutorial"), build_model("tutorial")
    b.load_state_dict(a.state_dict())
    a = speed.prepare_model(a, CPU, channels_last=True)
    b = speed.prepare_model(b, CPU, channels_last=True, fused=True)
    assert isinstance(b, fused.FusedNet) and not isinstance(a, fused.FusedNet)
    loss = build_loss("cross-entropy")
    opts = [
        build_optimizer("sgd", m.parameters(), lr=0.05, momentum=0.9, weight_decay=0)
        for m in (a, b)
    ]
    x = speed.prepare_inputs(torch.randn(320, 1, 32, 32), True)
    y = torch.randint(0, 10, (320,))
    for i in range(10):
        xs, ys = x[32 * i : 32 * (i + 1)], y[32 * i : 32 * (i + 1)]
        la, _ = train_step(a, opts[0], loss, xs, ys)
        lb, _ = train_step(b, opts[1], loss, xs, ys)
        torch.testing.assert_close(la, lb, rtol=1e-4, atol=1e-5)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_state_dict_is_the_plain_nets_both_ways():
    plain = build_model("tutorial")
    net = _fused_net(seed=7)
    assert list(net.state_dict()) == list(plain.state_dict())
    assert [p for p in net.parameters()] == [p for p in net.plain.parameters()]  # shared
    net.load_state_dict(plain.state_dict())  # a checkpoint of a plain Net loads
    plain.load_state_dict(net.state_dict())  # and the other way round
    for p, q in zip(plain.parameters(), net.parameters(), strict=True):
        assert torch.equal(p, q)
    assert str(net).startswith("FusedNet(")


def test_ops_pass_pytorchs_custom_op_checks():
    """Fake (shape) implementations agree with the kernel; the autograd formula is registered."""
    net = _fused_net()
    x = speed.prepare_inputs(torch.randn(6, 1, 32, 32), True)
    with torch.no_grad():  # the op and the eager path run the same kernel
        assert torch.equal(fused.net_forward(x, *net._params(), False)[0], net(x))
    result = torch.library.opcheck(fused.net_forward, (x, *net._params(), True))
    assert set(result.values()) == {"SUCCESS"}, result
    # keep=False (inference) has no backward by design: its shapes only
    checks = ("test_schema", "test_faketensor")
    result = torch.library.opcheck(fused.net_forward, (x, *net._params(), False), test_utils=checks)
    assert set(result.values()) == {"SUCCESS"}, result


def test_export_of_the_fused_model_gives_the_plain_models_scores():
    """The model as `lenet train` prepares it exports as two registered ops, and the exported
    program's scores on real test digits equal the plain Net's within 1e-5."""
    net = _fused_net(seed=8)
    digits = speed.prepare_inputs(_digits(), True)
    batch = {"x": {0: torch.export.Dim("batch")}}  # any batch size, as evaluate runs it
    program = torch.export.export(net, (digits[:2],), dynamic_shapes=batch)
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert "lenet.net_forward.default" in ops
    with torch.no_grad():
        plain = Net()
        plain.load_state_dict(net.state_dict())
        torch.testing.assert_close(program.module()(digits), plain(digits), rtol=1e-5, atol=1e-5)
        plain_program = torch.export.export(plain, (digits[:2],), dynamic_shapes=batch)
        torch.testing.assert_close(
            program.module()(digits), plain_program.module()(digits), rtol=1e-5, atol=1e-5
        )


def test_compiled_fused_model_trains_as_the_eager_one():
    """torch.compile traces the ops (fake implementations, autograd formula) instead of
    failing on a data pointer; aot_eager keeps the test fast and runs the same graph capture."""
    net = _fused_net(seed=9)
    compiled = torch.compile(copy.deepcopy(net), backend="aot_eager", fullgraph=True)
    x = speed.prepare_inputs(_digits(64), True)
    y = torch.randint(0, 10, (64,))
    loss, grads = _gradients(net, x, y)
    closs, cgrads = _gradients(compiled, x, y)
    torch.testing.assert_close(closs, loss, rtol=1e-6, atol=1e-6)
    for g, h in zip(grads, cgrads, strict=True):
        torch.testing.assert_close(g, h, rtol=1e-6, atol=1e-7)
