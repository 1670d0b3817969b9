"""Start-up: training never imports torch._dynamo without --compile; the first step is timed."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import REPO as ROOT

# Three steps of each torch.optim optimizer lenet offers, under a scheduler, with a step hook and
# a state_dict round trip; prints the weights' sums, whether dynamo was imported, any warnings.
SCRIPT = r"""
import json, sys, warnings
import torch
from lenet_cli.lazy_dynamo import without_dynamo
from lenet_cli.model import build_model
lean = sys.argv[1] == "lean"
out, hooks = {}, []
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    for name, make in {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
        "adam": lambda p: torch.optim.Adam(p, lr=1e-3, fused=True),
        "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3),
        "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3),
        "adadelta": lambda p: torch.optim.Adadelta(p),
    }.items():
        torch.manual_seed(0)
        net = build_model("tutorial")
        opt = without_dynamo(lambda: make(net.parameters())) if lean else make(net.parameters())
        opt.register_step_post_hook(lambda o, a, k: hooks.append(1))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
        for _ in range(3):
            opt.zero_grad()
            net(torch.randn(8, 1, 32, 32)).square().mean().backward()
            opt.step()
            sched.step()
            assert torch.is_grad_enabled()
        opt.load_state_dict(opt.state_dict())
        out[name] = [float(p.detach().double().sum()) for p in net.parameters()]
print(json.dumps({"dynamo": "torch._dynamo" in sys.modules, "sums": out,
                  "hooks": len(hooks), "warnings": [str(w.message) for w in caught]}))
"""


def _run(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_optimizers_run_without_importing_dynamo_and_give_the_same_weights():
    lean, usual = _run("lean"), _run("usual")
    assert lean["dynamo"] is False
    assert usual["dynamo"] is True  # what it saves: torch.optim imports dynamo otherwise
    assert lean["sums"] == usual["sums"]
    assert lean["hooks"] == usual["hooks"] == 15  # torch's step hooks still run
    assert lean["warnings"] == usual["warnings"]  # e.g. no "scheduler stepped before optimizer"


def test_an_optimizer_is_left_alone_once_dynamo_is_imported():
    import torch
    import torch._dynamo  # noqa: F401

    from lenet_cli.lazy_dynamo import without_dynamo

    opt = without_dynamo(lambda: torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1))
    assert "step" not in vars(opt)  # torch's own step


def test_the_summary_says_when_the_first_step_started(tmp_path):
    cmd = [sys.executable, "-m", "lenet_cli", "train", "--data", "random", "--max-steps", "2"]
    cmd += [
        "--epochs",
        "1",
        "--threads",
        "1",
        "--progress",
        "none",
        "--json",
        "--out",
        str(tmp_path),
    ]
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    at = json.loads(done.stdout)["first_step_after_s"]
    assert 0.2 < at < wall  # after the interpreter and torch started, before the process ended
