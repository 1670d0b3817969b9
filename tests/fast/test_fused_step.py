"""The whole training step as one C call (fused_step.py) against autograd and torch.optim."""

from __future__ import annotations

import copy
import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import for_thread_counts

from lenet_cli.fast import fused, fused_step, speed
from lenet_cli.fast.fused_step import FusedStep, why_not
from lenet_cli.losses import build_loss, one_hot_targets
from lenet_cli.model import build_model
from lenet_cli.optim import adopt_layouts, build_optimizer, build_scheduler
from lenet_cli.training.step import train_step

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None, reason="needs a C compiler to build the kernel"
)
CPU = torch.device("cpu")
OPTIONS = {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3}


def _net(seed: int = 0, arch: str = "tutorial"):
    torch.manual_seed(seed)
    return speed.prepare_model(build_model(arch), CPU, channels_last=True, fused=True)


def _batch(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 32, 32, generator=g)
    return speed.prepare_inputs(x, True), torch.randint(0, 10, (n,), generator=g)


def _step(net, name="sgd", loss="cross-entropy", smoothing=0.0, **options):
    opt = build_optimizer(name, net.parameters(), **{**OPTIONS, **options})
    return FusedStep(net, opt, loss, smoothing), opt


@pytest.mark.parametrize("loss", ["cross-entropy", "mse"])
@pytest.mark.parametrize("n", [1, 17, 64])
def test_loss_hits_and_gradients_match_float64_autograd(loss, n):
    net = _net()
    # lr 0: the weights stay, the gradients are left in .grad as backward() leaves them
    step, _ = _step(net, loss=loss, smoothing=0.1, lr=0.0, momentum=0.0, weight_decay=0.0)
    x, y = _batch(n, seed=n)
    got_loss, got_hits = step(x, y)
    ref = copy.deepcopy(net.plain).double()
    scores = ref(x.double())
    if loss == "cross-entropy":
        want = F.cross_entropy(scores, y, label_smoothing=0.1)
    else:
        want = F.mse_loss(scores, one_hot_targets(y, 0.1).double())
    want.backward()
    assert isinstance(got_loss, float) and isinstance(got_hits, int)
    assert got_loss == pytest.approx(want.item(), rel=1e-5)
    assert got_hits == (scores.argmax(1) == y).sum().item()
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        assert p.grad is not None and p.grad.shape == p.shape
        assert torch.allclose(p.grad.double(), q.grad, rtol=1e-4, atol=1e-6)


CASES = [
    ("sgd", {}),
    ("sgd", {"momentum": 0.0}),
    ("manual-sgd", {}),
    ("adam", {"lr": 1e-3}),
    ("adam", {"lr": 1e-3, "weight_decay": 0.0}),
    ("adamw", {"lr": 1e-3, "weight_decay": 0.05}),
]


def _and_by_torch(net, step, opt, make_opt, batch):
    """One more C step on ``batch``, and the same step by torch.optim (``make_opt(params)``,
    loaded with a copy of the state before it) on a copy of the weights, given the C step's own
    gradients: the copy and its optimizer after it."""
    twin = copy.deepcopy(net.plain)
    twin_opt = make_opt(twin.parameters())
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # its own tensors
    step(*batch)
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        q.grad = p.grad.clone()
    twin_opt.step()
    return twin, twin_opt


@pytest.mark.parametrize(("name", "options"), CASES)
def test_the_update_is_torch_optims_for_the_same_gradients(name, options):
    """Three steps, then one more on a copy by torch.optim with the C step's own gradients:
    the same weights and state, to float rounding."""
    net = _net()
    step, opt = _step(net, name, **options)
    for i in range(3):
        step(*_batch(64, seed=i))

    def make(params):
        return build_optimizer(name, params, **{**OPTIONS, **options})

    twin, twin_opt = _and_by_torch(net, step, opt, make, _batch(64, seed=3))
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-7), name
        for key, value in twin_opt.state[q].items():
            assert torch.allclose(opt.state[p][key], value, rtol=1e-5, atol=1e-9), key
    if name.startswith("adam"):
        assert all(s["step"].item() == 4 for s in opt.state.values())


def test_sgd_options_nesterov_dampening_maximize():
    for options in ({"nesterov": True}, {"dampening": 0.3}, {"maximize": True}):
        net = _net()

        def make(params, options=options):
            return torch.optim.SGD(params, lr=0.05, momentum=0.9, fused=True, **options)

        opt = make(net.parameters())
        step = FusedStep(net, opt, "cross-entropy", 0.0)
        for i in range(2):
            step(*_batch(32, seed=i))
        twin, _ = _and_by_torch(net, step, opt, make, _batch(32, seed=9))
        for p, q in zip(net.parameters(), twin.parameters(), strict=True):
            assert torch.allclose(p, q, rtol=1e-5, atol=1e-7), options


@pytest.mark.parametrize("arch", ["tutorial", "lenet5"])
def test_it_follows_train_steps_trajectory(arch):
    """Ten SGD steps by the C step and by autograd + torch.optim from the same start."""
    a, b = _net(arch=arch), _net(arch=arch)
    step, _ = _step(a)
    opt_b = build_optimizer("sgd", b.parameters(), **OPTIONS)
    loss_fn = build_loss("cross-entropy")
    for i in range(10):
        x, y = _batch(64 if i < 9 else 23, seed=i)  # a smaller last batch reuses the buffers
        la, ha = step(x, y)
        lb, hb = train_step(b, opt_b, loss_fn, x, y)
        assert la == pytest.approx(lb.item(), rel=1e-4)
        assert ha == hb.item()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5)


def test_the_same_weights_at_any_thread_count():
    def run():
        net = _net()
        step, _ = _step(net, "adam", lr=1e-3)
        for i in range(4):
            step(*_batch(50, seed=i))
        return [p.detach().clone() for p in net.parameters()]

    outs = for_thread_counts(run)  # 1, 2 and 3 threads
    for other in outs[1:]:
        assert all(torch.equal(p, q) for p, q in zip(outs[0], other, strict=True))


def test_a_reloaded_optimizer_state_continues_exactly():
    """What --resume does: a new optimizer loads the state dict (new tensors): the step binds to
    them and the weights equal an uninterrupted run's, bit for bit."""
    straight = _net()
    step, _ = _step(straight, "adam", lr=1e-3)
    for i in range(6):
        step(*_batch(64, seed=i))

    first = _net()
    step, opt = _step(first, "adam", lr=1e-3)
    for i in range(3):
        step(*_batch(64, seed=i))
    saved_model = copy.deepcopy(first.plain.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    resumed = _net(seed=5)
    resumed.plain.load_state_dict(saved_model)
    step, opt = _step(resumed, "adam", lr=1e-3)
    opt.load_state_dict(saved_opt)
    for i in range(3, 6):
        step(*_batch(64, seed=i))
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)


def test_other_optimizers_and_hooks_get_torchs_own_step():
    for name, options in (("rmsprop", {"lr": 1e-3}), ("adadelta", {"lr": 1.0})):
        net = _net()
        step, opt = _step(net, name, **options)
        before = [p.detach().clone() for p in net.parameters()]
        step(*_batch(16, seed=0))
        moved = [not torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True)]
        assert opt.state and all(moved)
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, amsgrad=True)
    step = FusedStep(net, opt, "cross-entropy", 0.0)
    for i in range(2):
        step(*_batch(16, seed=i))
    assert all("max_exp_avg_sq" in s for s in opt.state.values())  # torch's amsgrad ran
    calls = []
    step, opt = _step(_net(), "adam", lr=1e-3)
    opt.register_step_post_hook(lambda *args: calls.append(1))
    for i in range(3):
        step(*_batch(16, seed=i))
    assert len(calls) == 3


def test_no_scheduler_warning_when_the_first_step_is_the_c_update():
    net = _net()
    step, opt = _step(net, "sgd", momentum=0.0)  # stateless: C from the first step on
    scheduler = build_scheduler("cosine", opt, total_steps=10, steps_per_epoch=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(3):
            step(*_batch(8, seed=i))
            scheduler.step()
    assert opt.param_groups[0]["lr"] < OPTIONS["lr"]


def test_the_lr_is_read_at_every_step():
    a, b = _net(), _net()
    step_a, opt_a = _step(a, "sgd", momentum=0.0, weight_decay=0.0)
    step_b, opt_b = _step(b, "sgd", momentum=0.0, weight_decay=0.0)
    opt_b.param_groups[0]["lr"] = 0.0
    x, y = _batch(8, seed=0)
    before = [p.detach().clone() for p in b.parameters()]
    step_a(x, y)
    step_b(x, y)
    assert all(torch.equal(p, q) for p, q in zip(b.parameters(), before, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), before, strict=True))


def test_why_not():
    net = _net()
    opt = build_optimizer("adam", net.parameters(), lr=1e-3, momentum=0.0, weight_decay=0.0)
    ok = dict(precision="fp32", scaled=False, compiled=False, data_parallel=False)
    assert why_not(net, opt, "cross-entropy", **ok) is None
    assert why_not(net, opt, "cross-entropy", **{**ok, "precision": "bf16-mixed"})
    assert why_not(net, opt, "cross-entropy", **{**ok, "data_parallel": True})
    assert why_not(net, opt, "cross-entropy", **{**ok, "compiled": True})
    assert why_not(net, opt, "nll", **ok)
    assert why_not(net.plain, opt, "cross-entropy", **ok)  # PyTorch's ops, not the kernels
    other = build_optimizer("adam", _net().parameters(), lr=1e-3, momentum=0.0, weight_decay=0.0)
    assert why_not(net, other, "cross-entropy", **ok)
    classic = speed.prepare_model(build_model("classic"), CPU, channels_last=True, fused=True)
    assert not isinstance(classic, fused.FusedNet)
    assert why_not(classic, opt, "cross-entropy", **ok)


def test_bad_batches_are_refused():
    step, _ = _step(_net())
    x, y = _batch(4, seed=0)
    with pytest.raises(ValueError, match="labels"):
        step(x, y.int())
    with pytest.raises(ValueError, match="cannot train"):
        step(x.double(), y)
    with pytest.raises(RuntimeError, match="label outside"):
        step(x, torch.tensor([0, 1, 2, 10]))
    assert fused_step.LOSSES.keys() == {"cross-entropy", "mse"}


def test_rows_read_in_place_equal_the_gathered_batch():
    """``rows(images, labels, index)`` (what `lenet train` calls) gives what the gathered batch
    gives, bit for bit; a row outside the images is refused by the kernel."""
    a, b = _net(), _net()
    step_a, _ = _step(a, "adam", lr=1e-3)
    step_b, _ = _step(b, "adam", lr=1e-3)
    images, labels = _batch(200, seed=1)
    g = torch.Generator().manual_seed(0)
    for index in (torch.randperm(200, generator=g)[:64], torch.tensor([199, 0, 5])):
        la, ha = step_a.rows(images, labels, index)
        lb, hb = step_b(images.index_select(0, index), labels.index_select(0, index))
        assert la == lb and ha == hb
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    with pytest.raises(RuntimeError, match="sizes"):
        step_a.rows(images, labels, torch.tensor([3, 200]))
    with pytest.raises(ValueError, match="index"):
        step_a.rows(images, labels, torch.tensor([3, 4], dtype=torch.int32))


def test_parameters_given_new_storage_are_followed():
    """``param.data = ...`` (what ``module.to()`` does) moves a parameter: the step writes to
    the new storage, never the old."""
    net = _net()
    step, _ = _step(net, "sgd", momentum=0.0)
    step(*_batch(8, seed=0))
    old = net.fc3.weight.data
    net.fc3.weight.data = old.clone()
    kept = old.clone()
    step(*_batch(8, seed=1))
    assert torch.equal(old, kept)  # the old storage is left alone
    assert not torch.equal(net.fc3.weight.data, kept)  # the new one trained
    assert net.fc3.weight.grad is step.grads[8]


def test_momentum_switched_on_later_binds_its_buffer():
    """SGD whose momentum goes from 0 to 0.9 in the same optimizer (a hand-made change): the C
    update must not go on without the buffer torch then makes."""
    a, b = _net(), _net()
    step_a, opt_a = _step(a, "sgd", momentum=0.0)
    opt_b = build_optimizer("sgd", b.parameters(), **{**OPTIONS, "momentum": 0.0})
    loss_fn = build_loss("cross-entropy")
    for i in range(5):
        if i == 2:
            opt_a.param_groups[0]["momentum"] = opt_b.param_groups[0]["momentum"] = 0.9
        x, y = _batch(32, seed=i)
        step_a(x, y)
        train_step(b, opt_b, loss_fn, x, y)
    assert all("momentum_buffer" in s for s in opt_a.state.values())
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5)


def test_state_in_another_layout_is_adopted_and_the_c_update_binds():
    """What a resume in the other --channels-last (or a file with an expanded tensor) loads:
    optim.adopt_layouts gives each state tensor its parameter's layout, values unchanged."""
    net = _net()
    step, opt = _step(net, "adam", lr=1e-3)
    step(*_batch(8, seed=0))  # torch's first step makes the state
    conv1 = net.conv1.weight
    state = opt.state[conv1]
    values = state["exp_avg"].clone()
    state["exp_avg"] = values.contiguous()  # NCHW, the parameter is channels_last
    state["exp_avg_sq"] = state["exp_avg_sq"][:1].expand_as(conv1)  # stride 0
    assert not step._bind(fused_step.ADAM)  # as loaded: torch's step would have to run
    adopt_layouts(opt)
    assert state["exp_avg"].stride() == conv1.stride() and torch.equal(state["exp_avg"], values)
    assert state["exp_avg_sq"].stride() == conv1.stride()
    step.bound_to = None
    assert step._bind(fused_step.ADAM)


def _clipped_by_torch(net, batch, clip: dict):
    """The gradients of ``batch`` at ``net``'s weights (a C step with lr 0 leaves them in .grad),
    clipped by torch.nn.utils on a copy."""
    step, _ = _step(net, lr=0.0, momentum=0.0, weight_decay=0.0)
    step(*batch)
    twin = copy.deepcopy(net.plain)
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        q.grad = p.grad.clone()
    if "norm" in clip:
        torch.nn.utils.clip_grad_norm_(twin.parameters(), clip["norm"])
    if "value" in clip:
        torch.nn.utils.clip_grad_value_(twin.parameters(), clip["value"])
    return [p.grad.clone() for p in net.parameters()], [q.grad for q in twin.parameters()]


@pytest.mark.parametrize("clip", [{"norm": 0.05}, {"value": 2e-3}, {"norm": 1e6}])
def test_clipping_in_the_c_step_is_torchs_on_the_same_gradients(clip):
    """--clip-grad-norm / --clip-grad-value inside the C call: the gradients it leaves are
    torch.nn.utils.clip_grad_norm_ / clip_grad_value_ of the unclipped ones."""
    batch = _batch(64, seed=3)
    raw, want = _clipped_by_torch(_net(), batch, clip)
    net = _net()
    step, _ = _step(net, lr=0.0, momentum=0.0, weight_decay=0.0)
    step.clip(**clip)
    step(*batch)
    for p, w in zip(net.parameters(), want, strict=True):
        assert torch.allclose(p.grad, w, rtol=1e-5, atol=1e-9)
    changed = any(not torch.equal(r, w) for r, w in zip(raw, want, strict=True))
    assert changed == (clip != {"norm": 1e6})  # a bound above the norm changes nothing


@pytest.mark.parametrize(("name", "options"), [("sgd", {}), ("adamw", {"lr": 1e-3})])
def test_the_c_update_uses_the_clipped_gradients(name, options):
    net = _net()
    step, opt = _step(net, name, **options)
    step.clip(norm=0.05)
    for i in range(3):
        step(*_batch(64, seed=i))

    def make(params):
        return build_optimizer(name, params, **{**OPTIONS, **options})

    twin, _ = _and_by_torch(net, step, opt, make, _batch(64, seed=3))  # given the C's .grad
    assert torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in net.parameters()])) == (
        pytest.approx(0.05, rel=1e-4)
    )
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-7)


def test_clipping_before_torchs_own_step_and_at_any_thread_count():
    """RMSprop's step (torch's, after the C call) is given the clipped gradients; and the
    clipped step is the same at any number of threads."""
    norms = []
    step, opt = _step(_net(), "rmsprop", lr=1e-3)
    step.clip(norm=0.05)

    def seen(optimizer, *_):
        grads = [p.grad.flatten() for p in optimizer.param_groups[0]["params"]]
        norms.append(float(torch.linalg.vector_norm(torch.cat(grads))))

    opt.register_step_pre_hook(seen)
    for i in range(3):
        step(*_batch(32, seed=i))
    assert norms == pytest.approx([0.05] * 3, rel=1e-4)

    def run():
        net = _net()
        s, _ = _step(net, "adam", lr=1e-3)
        s.clip(norm=0.05)
        for i in range(3):
            s(*_batch(50, seed=i))
        return [p.detach().clone() for p in net.parameters()]

    outs = for_thread_counts(run)
    for other in outs[1:]:
        assert all(torch.equal(p, q) for p, q in zip(outs[0], other, strict=True))
