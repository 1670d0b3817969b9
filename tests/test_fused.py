"""The fused CPU kernels (LeNet's blocks, and the whole network) stand in for PyTorch's ops."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from lenet_cli import fused, speed
from lenet_cli.losses import build_loss
from lenet_cli.model import build_model, tutorial_forward
from lenet_cli.optim import build_optimizer
from lenet_cli.train import train_step

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None, reason="needs a C compiler to build the kernel"
)


def _reference(x, conv):
    return F.relu(F.max_pool2d(conv(x), 2))


def _pair(k: int, seed: int = 0, channels: tuple[int, int] = (1, 6)):
    """Two convs with the same weights: one for the kernel, one for the reference."""
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(*channels, k)
    other = torch.nn.Conv2d(*channels, k)
    other.load_state_dict(conv.state_dict())
    return conv, other


def _grads(fn, x, conv, g, input_grad: bool = False):
    """(output, input gradient or None, weight gradient, bias gradient) of fn(x, conv)."""
    x = x.detach().clone().requires_grad_(input_grad)
    conv.zero_grad(set_to_none=True)
    out = fn(x, conv)
    out.backward(g)
    return out.detach(), x.grad, conv.weight.grad.clone(), conv.bias.grad.clone()


def _for_thread_counts(fn):
    """fn()'s results with 1, 2 and 3 threads, without autograd."""
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                outs.append(fn())
        return outs
    finally:
        torch.set_num_threads(before)


def test_kernel_builds_and_uses_torchs_openmp():
    assert fused.status() is None
    maps = open("/proc/self/maps").read() if sys.platform == "linux" else ""
    gomp = {line.split()[-1] for line in maps.splitlines() if "libgomp" in line}
    assert len(gomp) <= 1, gomp  # one OpenMP runtime: the kernel runs on torch's threads


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize(
    ("batch", "shape"),
    # 32x32 as LeNet sees it; a wide image (pooled rows longer than one 16-lane vector) and odd
    # sizes (a last conv row and column that the pool drops)
    [(1, (32, 32)), (7, (32, 32)), (64, (32, 32)), (9, (21, 64)), (9, (19, 37))],
)
def test_matches_conv_pool_relu_values_and_gradients(k, batch, shape):
    conv, ref = _pair(k)
    x = speed.prepare_inputs(torch.randn(batch, 1, *shape) * 2, True)
    assert fused.applies(x, conv) == (batch >= fused.MIN_BATCH)  # tiny batches: PyTorch's ops
    g = torch.randn(batch, 6, (shape[0] - k + 1) // 2, (shape[1] - k + 1) // 2)
    out, _, gw, gb = _grads(fused.conv_pool_relu, x, conv, g)
    want, _, want_gw, want_gb = _grads(_reference, x, ref, g)
    assert out.shape == want.shape and out.is_contiguous()  # NCHW, as the second block reads
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    assert (out >= 0).all()
    # Gradients against float64 (oneDNN's float32 sums are off by up to ~2e-3 at batch 64, 5x5)
    _, _, exact_gw, exact_gb = _grads(_reference, x.double(), ref.double(), g.double())
    scale = exact_gw.abs().max().item()
    torch.testing.assert_close(gw.double(), exact_gw, rtol=1e-4, atol=1e-4 * scale)
    torch.testing.assert_close(gb.double(), exact_gb, rtol=1e-4, atol=1e-4 * scale)
    assert (gw.double() - exact_gw).abs().max() <= (want_gw.double() - exact_gw).abs().max() + 1e-6


@pytest.mark.parametrize(
    ("k", "shape"), [(3, (15, 15)), (5, (14, 14)), (3, (16, 16)), (3, (17, 9)), (4, (24, 13))]
)
def test_second_block_matches_values_and_all_gradients(k, shape):
    """The 16-channel second block, input gradient included (block 1's backward needs it)."""
    conv, ref = _pair(k, channels=(6, 16))
    x = torch.relu(torch.randn(24, 6, *shape))  # as block 1 hands it over: NCHW, zeros
    x[:, :, :6] = 0  # a blank band (a digit's empty border): equal conv outputs, so ties
    assert fused.applies2(x, conv)
    g = torch.randn(24, 16, (shape[0] - k + 1) // 2, (shape[1] - k + 1) // 2)
    out, gx, gw, gb = _grads(fused.conv_pool_relu16, x, conv, g, input_grad=True)
    want, want_gx, *_ = _grads(_reference, x, ref, g, input_grad=True)
    assert out.shape == want.shape and out.is_contiguous()  # so flattening it is a view
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    _, exact_gx, exact_gw, exact_gb = _grads(
        _reference, x.double(), ref.double(), g.double(), input_grad=True
    )
    torch.testing.assert_close(gx.double(), exact_gx, rtol=1e-5, atol=1e-5)
    scale = exact_gw.abs().max().item()
    torch.testing.assert_close(gw.double(), exact_gw, rtol=1e-4, atol=1e-4 * scale)
    torch.testing.assert_close(gb.double(), exact_gb, rtol=1e-4, atol=1e-4 * scale)
    assert gx.is_contiguous()  # NCHW, as the first block's backward reads it


def test_second_block_nan_and_threads():
    conv, ref = _pair(3, channels=(6, 16))
    x = torch.randn(9, 6, 15, 15).contiguous(memory_format=torch.channels_last)  # copied to NCHW
    x[2, 3, 4, 5] = float("nan")
    outs = _for_thread_counts(lambda: fused.conv_pool_relu16(x, conv))
    with torch.no_grad():
        want = _reference(x, ref)
    assert torch.equal(torch.isnan(outs[0]), torch.isnan(want)) and torch.isnan(want).any()
    assert all(torch.equal(outs[0].nan_to_num(), o.nan_to_num()) for o in outs[1:])


def test_second_block_applies_to_sixteen_output_channels_only():
    x = torch.randn(8, 6, 15, 15)
    assert fused.applies2(x, torch.nn.Conv2d(6, 16, 3))
    assert not fused.applies2(x, torch.nn.Conv2d(6, 8, 3))
    assert not fused.applies2(torch.randn(8, 17, 15, 15), torch.nn.Conv2d(17, 16, 3))
    assert not fused.applies2(torch.randn(2, 6, 15, 15), torch.nn.Conv2d(6, 16, 3))
    assert fused.applies2(torch.randn(8, 6, 40, 16), torch.nn.Conv2d(6, 16, 3))
    assert not fused.applies2(torch.randn(8, 6, 15, 17), torch.nn.Conv2d(6, 16, 3))  # 17 cols


def test_ties_send_the_gradient_to_the_first_maximum_as_max_pool2d():
    """Constant regions (the padded border of every MNIST digit) make all four values of a
    window equal; max_pool2d then picks the first one, and so must the kernel."""
    conv, ref = _pair(3, seed=1)
    x = torch.zeros(4, 1, 32, 32)
    x[:, :, 10:20, 12:22] = torch.randn(4, 1, 10, 10)  # a blob on a constant background
    g = torch.randn(4, 6, 15, 15)
    out, _, gw, gb = _grads(fused.conv_pool_relu, x, conv, g)
    want, _, want_gw, want_gb = _grads(_reference, x, ref, g)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gw, want_gw, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gb, want_gb, rtol=1e-5, atol=1e-5)


def test_nan_propagates_where_pytorch_puts_it():
    conv, ref = _pair(3)
    x = torch.randn(2, 1, 32, 32)
    x[0, 0, 5, 7] = float("nan")
    with torch.no_grad():
        out = fused.conv_pool_relu(x, conv)
        want = _reference(x, ref)
    assert torch.equal(torch.isnan(out), torch.isnan(want)) and torch.isnan(out).any()
    torch.testing.assert_close(out.nan_to_num(), want.nan_to_num(), rtol=1e-5, atol=1e-5)


def test_same_values_for_any_thread_count():
    conv, _ = _pair(3)
    x = torch.randn(33, 1, 32, 32)
    outs = _for_thread_counts(lambda: fused.conv_pool_relu(x, conv))
    assert all(torch.equal(outs[0], o) for o in outs[1:])


def test_not_used_where_it_does_not_apply():
    conv, _ = _pair(3)
    x = torch.randn(2, 1, 32, 32)
    assert fused.applies(torch.randn(8, 1, 64, 20), conv)
    assert not fused.applies(torch.randn(8, 1, 65, 20), conv)  # larger than its buffers
    assert not fused.applies(torch.randn(8, 1, 20, 65), conv)
    assert not fused.applies(torch.randn(8, 1, 3, 20), conv)  # smaller than a window
    assert not fused.applies(x, conv)  # 2 images: PyTorch's ops are faster
    x = torch.randn(8, 1, 32, 32)
    assert fused.applies(x, conv)
    assert not fused.applies(x.double(), conv)
    assert not fused.applies(x.clone().requires_grad_(), conv)  # it gives no input gradient
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fused.applies(x, conv)
    assert not fused.applies(x, conv.double())


def _fused_net(arch: str, seed: int = 0, channels_last: bool = True):
    torch.manual_seed(seed)
    cpu = torch.device("cpu")
    return speed.prepare_model(build_model(arch), cpu, channels_last=channels_last, fused=True)


@pytest.mark.parametrize("arch", ["tutorial", "lenet5"])
@pytest.mark.parametrize("batch", [1, 5, 64])  # 5: a group of four images and one alone
def test_whole_network_inference_matches_pytorchs_ops(arch, batch):
    net = _fused_net(arch)
    x = speed.prepare_inputs(torch.randn(batch, 1, 32, 32) * 2, True)
    with torch.inference_mode():
        assert fused.plan(x, net) is not None
        out = net(x)
        want = tutorial_forward(net, x)
    assert out.shape == (batch, 10)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        assert fused.plan(x, net) is not None
        torch.testing.assert_close(net(x), want, rtol=1e-5, atol=1e-5)
    assert fused.plan(x, net) is not None  # autograd on: training's path
    assert fused.plan(x.clone().requires_grad_(), net) is None  # it gives no input gradient


@pytest.mark.parametrize("arch", ["tutorial", "lenet5"])
@pytest.mark.parametrize("batch", [1, 13, 64])  # 13: groups of four and a rest, split unevenly
@pytest.mark.parametrize("channels_last", [True, False])  # False: --no-channels-last's strides
def test_whole_network_gradients_match_pytorchs_ops(arch, batch, channels_last):
    net = _fused_net(arch, seed=4, channels_last=channels_last)
    assert net.conv2.weight.is_contiguous() != channels_last
    x = speed.prepare_inputs(torch.randn(batch, 1, 32, 32) * 2, channels_last)
    y = torch.randint(0, 10, (batch,))
    assert fused.plan(x, net) is not None
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    exact = copy.deepcopy(net).double()
    exact.fused = False
    want = F.cross_entropy(tutorial_forward(exact, x.double()), y)
    want.backward()
    torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(net.named_parameters(), exact.parameters(), strict=True):
        scale = q.grad.abs().max().item()
        torch.testing.assert_close(
            p.grad.double(), q.grad, rtol=1e-4, atol=1e-4 * scale, msg=lambda m, n=name: f"{n}: {m}"
        )
        assert p.grad.stride() == p.stride(), name  # the conv weights keep their layout


def test_whole_network_inference_threads_nan_and_changed_weights():
    net = _fused_net("tutorial", seed=1)
    x = torch.randn(13, 1, 32, 32)
    x[3, 0, 10, 10] = float("nan")
    outs = _for_thread_counts(lambda: net(x))
    with torch.inference_mode():
        want = tutorial_forward(net, x)
    assert torch.isnan(want[3]).all() and not torch.isnan(want[torch.arange(13) != 3]).any()
    assert torch.equal(torch.isnan(outs[0]), torch.isnan(want))
    assert all(torch.equal(outs[0].nan_to_num(), o.nan_to_num()) for o in outs[1:])
    # the weights laid out for the kernel follow in-place updates (an optimizer step) and new
    # tensors (load_state_dict into another model's parameters)
    with torch.no_grad():
        net.fc2.weight.mul_(-1)
        net.conv1.bias.add_(0.5)
    with torch.inference_mode():
        torch.testing.assert_close(net(x[:3]), tutorial_forward(net, x[:3]), rtol=1e-5, atol=1e-5)
    net.load_state_dict(_fused_net("tutorial", seed=2).state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(net(x[:3]), tutorial_forward(net, x[:3]), rtol=1e-5, atol=1e-5)


def test_second_derivatives_are_refused_not_wrong():
    """The kernels' backward is not itself differentiable: double backward is an error."""
    net = _fused_net("tutorial")
    (g,) = torch.autograd.grad(net(torch.randn(4, 1, 32, 32)).pow(2).sum(), net.fc1.weight,
                               create_graph=True)  # fmt: skip
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


def test_whole_network_inference_only_for_the_shapes_it_was_built_for():
    net = _fused_net("tutorial")
    with torch.no_grad():
        assert fused.plan(torch.randn(2, 1, 32, 32), net) is not None
        assert fused.plan(torch.randn(2, 1, 28, 28), net) is None  # fc1 would not take it
        assert fused.plan(torch.randn(0, 1, 32, 32), net) is None  # PyTorch's ops handle it
        assert net(torch.randn(0, 1, 32, 32)).shape == (0, 10)
        assert fused.plan(torch.randn(2, 1, 32, 32).double(), net) is None
        assert fused.plan(torch.randn(2, 3, 32, 32), net) is None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert fused.plan(torch.randn(2, 1, 32, 32), net) is None


def test_training_with_the_kernel_follows_pytorchs_ops():
    """Ten SGD steps of the whole network: the same trajectory up to float rounding."""
    torch.manual_seed(3)
    a, b = build_model("tutorial"), build_model("tutorial")
    b.load_state_dict(a.state_dict())
    cpu = torch.device("cpu")
    a = speed.prepare_model(a, cpu, channels_last=True)
    b = speed.prepare_model(b, cpu, channels_last=True, fused=True)
    assert b.fused and not a.fused
    loss = build_loss("cross-entropy")
    opts = [
        build_optimizer("sgd", m.parameters(), lr=0.05, momentum=0.9, weight_decay=0)
        for m in (a, b)
    ]
    x = speed.prepare_inputs(torch.randn(10, 32, 1, 32, 32).flatten(0, 1), True)
    y = torch.randint(0, 10, (320,))
    for i in range(10):
        xs, ys = x[32 * i : 32 * (i + 1)], y[32 * i : 32 * (i + 1)]
        la, _ = train_step(a, opts[0], loss, xs, ys)
        lb, _ = train_step(b, opts[1], loss, xs, ys)
        torch.testing.assert_close(la, lb, rtol=1e-4, atol=1e-5)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
        assert q.grad.stride() == q.stride()  # the kernels' gradients keep channels_last weights


def _lenet(tmp_path, *args, env_extra=None):
    import os

    env = {**os.environ, "LENET_KERNEL_DIR": str(tmp_path / "kernels"), **(env_extra or {})}
    cmd = [sys.executable, "-m", "lenet_cli", "train", "--data", "random", "--epochs", "1"]
    cmd += ["--device", "cpu", "--batch-size", "256", "--out", str(tmp_path / "runs"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_without_a_compiler_the_default_says_so_and_trains(tmp_path):
    done = _lenet(tmp_path, "--name", "a", env_extra={"CC": "/nonexistent/cc"})
    assert done.returncode == 0, done.stderr
    assert "fused CPU kernels not available (no C compiler" in done.stderr
    assert "using PyTorch's ops" in done.stderr


def test_asking_for_the_kernel_without_a_compiler_is_an_error(tmp_path):
    done = _lenet(tmp_path, "--name", "b", "--fused", env_extra={"CC": "/nonexistent/cc"})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--fused" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs" / "b").exists()


def test_the_kernel_is_built_once_into_the_cache(tmp_path):
    first = _lenet(tmp_path, "--name", "c")
    assert first.returncode == 0, first.stderr
    assert "fused kernels" in first.stderr
    built = list((tmp_path / "kernels").glob("conv_pool_relu-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    second = _lenet(tmp_path, "--name", "d")
    assert second.returncode == 0, second.stderr
    assert built[0].stat().st_mtime_ns == stamp
    assert list((tmp_path / "kernels").glob(".build-*")) == []


def test_choice_refuses_what_cannot_run_and_defaults_quietly():
    from lenet_cli.errors import UsageError

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert speed.fused_choice(cpu, None) == (True, None)
    assert speed.fused_choice(cpu, False) == (False, None)
    assert speed.fused_choice(cuda, None) == (False, None)  # a GPU runs PyTorch's kernels
    assert speed.fused_choice(cpu, None, compile=True) == (False, None)
    with pytest.raises(UsageError, match="on cuda"):
        speed.fused_choice(cuda, True)
    with pytest.raises(UsageError, match="--compile"):
        speed.fused_choice(cpu, True, compile=True)
