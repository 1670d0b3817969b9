"""Speed paths give the plain path's results: bit-identical where claimed, else within rounding."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from lenet_cli.errors import UsageError
from lenet_cli.fast import speed
from lenet_cli.model import build_model
from lenet_cli.training.step import train_step

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _pair(arch: str = "tutorial", seed: int = 0):
    torch.manual_seed(seed)
    a = build_model(arch)
    b = build_model(arch)
    b.load_state_dict(a.state_dict())
    return a, b


def _train(model, x, y, steps: int = 4, device=None, precision="fp32"):
    device = device or torch.device("cpu")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, foreach=True)
    loss_fn = F.cross_entropy
    scaler = speed.grad_scaler(device, precision)
    losses = []
    for _ in range(steps):
        loss, _ = train_step(model, opt, loss_fn, x, y, precision=precision, scaler=scaler)
        losses.append(loss)
    return torch.stack(losses)


def test_default_threads_count_smt_siblings_once(monkeypatch):
    """Two cores with two hardware threads each, as /proc/cpuinfo lists them: 2 threads."""
    from lenet_cli.fast import cpu

    blocks = tuple(
        {"processor": str(i), "physical id": "0", "core id": str(i // 2), "model name": "X"}
        for i in range(4)
    )
    monkeypatch.setattr(cpu, "_processors", lambda: blocks)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1, 2, 3})
    assert speed.default_threads() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0})  # pinned to one CPU
    assert speed.default_threads() == 1
    monkeypatch.setattr(cpu, "_processors", lambda: ())  # no /proc/cpuinfo: the affinity
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1, 2})
    assert speed.default_threads() == 3 and cpu.name()


@pytest.mark.parametrize("arch", ["tutorial", "lenet5", "classic"])
def test_channels_last_trains_like_nchw(arch):
    """Same losses and weights after a few steps, to float rounding (oneDNN's NHWC kernels)."""
    torch.manual_seed(1)
    x, y = torch.randn(32, 1, 32, 32), torch.randint(0, 10, (32,))
    a, b = _pair(arch)
    la = _train(a, x, y)
    b = speed.prepare_model(b, torch.device("cpu"), channels_last=True)
    lb = _train(b, speed.prepare_inputs(x, True), y)
    torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_channels_last_keeps_parameter_names_and_state_dict():
    a, b = _pair()
    speed.prepare_model(b, torch.device("cpu"), channels_last=True)
    assert list(a.state_dict()) == list(b.state_dict())
    assert b.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)  # converting the layout copies values exactly


def test_channels_last_inference_matches():
    a, b = _pair()
    speed.prepare_model(b, torch.device("cpu"), channels_last=True)
    x = torch.randn(64, 1, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(a(x), b(speed.prepare_inputs(x, True)), rtol=1e-5, atol=1e-5)


def test_prepare_inputs_layouts():
    x = torch.randn(16, 1, 32, 32)
    assert speed.prepare_inputs(x, True).is_contiguous(memory_format=torch.channels_last)
    assert speed.prepare_inputs(x, False) is x
    one = torch.randn(1, 1, 32, 32)
    assert speed.prepare_inputs(one, "auto") is one  # batch 1: NCHW is faster
    assert speed.prepare_inputs(x, "auto").is_contiguous(memory_format=torch.channels_last)
    # batches of a channels_last data set keep the layout: no copy per batch
    cl = speed.prepare_inputs(x, True)
    assert cl.index_select(0, torch.tensor([3, 1])).is_contiguous(memory_format=torch.channels_last)


def test_fp32_step_is_the_plain_step_bit_for_bit():
    """train_step with precision fp32 and a (disabled) scaler is exactly the tutorial's loop."""
    torch.manual_seed(2)
    x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    a, b = _pair()
    opt_a = torch.optim.SGD(a.parameters(), lr=0.05, momentum=0.9, foreach=True)
    plain = []
    for _ in range(4):
        opt_a.zero_grad()
        loss = F.cross_entropy(a(x), y)
        loss.backward()
        opt_a.step()
        plain.append(loss.detach())
    ours = _train(b, x, y, steps=4)
    assert not speed.grad_scaler(torch.device("cpu"), "fp32").is_enabled()
    assert torch.equal(torch.stack(plain), ours)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_bf16_mixed_on_cpu_is_close():
    torch.manual_seed(3)
    x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    a, b = _pair()
    la = _train(a, x, y, steps=2)
    lb = _train(b, x, y, steps=2, precision="bf16-mixed")
    torch.testing.assert_close(la, lb, rtol=0.05, atol=0.05)


def test_fp16_on_cpu_is_refused():
    with pytest.raises(UsageError, match="fp16-mixed needs a GPU"):
        speed.check_precision(torch.device("cpu"), "fp16-mixed")
    with pytest.raises(UsageError, match="unknown precision"):
        speed.check_precision(torch.device("cpu"), "int8")


@pytest.mark.parametrize(("fused", "compile"), [(False, True), (True, False), (True, True)])
def test_prepared_model_has_the_plain_nets_state_dict(fused, compile):
    """Whatever prepare_model wraps or compiles, checkpoints stay plain Net state_dicts."""
    if fused and speed.fused_choice(torch.device("cpu"), None)[0] is False:
        pytest.skip("the fused kernel does not build here")
    a, b = _pair()
    run = speed.prepare_model(b, torch.device("cpu"), channels_last=True, fused=fused,
                              compile=compile)  # fmt: skip
    assert list(run.state_dict()) == list(a.state_dict())
    run.load_state_dict(a.state_dict())
    assert [p.data_ptr() for p in run.parameters()] == [p.data_ptr() for p in b.parameters()]


def test_fused_choice_refuses_what_cannot_run_and_defaults_quietly():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert speed.fused_choice(cpu, False) == (False, None)
    assert speed.fused_choice(cuda, None) == (False, None)  # a GPU runs PyTorch's kernels
    assert speed.fused_choice(cpu, None, compile=True) == (False, None)  # inductor's code
    with pytest.raises(UsageError, match="on cuda"):
        speed.fused_choice(cuda, True)


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16-mixed", "fp16-mixed"])
def test_cuda_training_step_each_precision(precision):
    dev = torch.device("cuda")
    speed.configure_backends(dev)
    torch.manual_seed(4)
    x = torch.randn(64, 1, 32, 32, device=dev)
    y = torch.randint(0, 10, (64,), device=dev)
    a, b = _pair()
    la = _train(a.to(dev), x, y, device=dev)
    b = speed.prepare_model(b, dev, channels_last=True)
    lb = _train(b, speed.prepare_inputs(x, True), y, device=dev, precision=precision)
    assert lb.device.type == "cuda" and torch.isfinite(lb).all()
    tol = 1e-3 if precision == "fp32" else 0.05  # cuDNN algorithms differ; half precision more
    torch.testing.assert_close(la, lb, rtol=tol, atol=tol)


@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu_fp32():
    torch.manual_seed(5)
    x, y = torch.randn(32, 1, 32, 32), torch.randint(0, 10, (32,))
    a, b = _pair()
    la = _train(a, x, y)
    dev = torch.device("cuda")
    speed.configure_backends(dev)  # TF32 stays off: fp32 means fp32
    lb = _train(b.to(dev), x.to(dev), y.to(dev), device=dev)
    torch.testing.assert_close(la, lb.cpu(), rtol=1e-4, atol=1e-4)
