"""The tutorial's steps as engines: a random forward pass, and the one-step walk-through.

Plain functions that return JSON-ready dicts; the CLI renders them. Nothing here prints.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from lenet_cli.model import INPUT_SHAPE, build_model


def seeded_model(arch: str, seed: int) -> nn.Module:
    """A fresh network whose initial weights depend only on ``seed``."""
    torch.manual_seed(seed)
    return build_model(arch)


def outputs_to_rows(output: torch.Tensor) -> dict[str, Any]:
    """Scores, softmax probabilities and the predicted class of each row of an [N, 10] output."""
    scores = output.detach().float().cpu()
    probs = torch.softmax(scores, dim=1)
    return {
        "output": scores.tolist(),
        "probabilities": probs.tolist(),
        "predicted": probs.argmax(dim=1).tolist(),
    }


def forward_random(
    model: nn.Module, device: torch.device, batch_size: int = 1, seed: int = 0
) -> tuple[dict[str, Any], str]:
    """Forward torch.randn(N, 1, 32, 32) drawn from ``seed``; returns the result and repr(out).

    The input is drawn on the CPU so that the same seed gives the same input on every device.
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, *INPUT_SHAPE, generator=generator).to(device)
    model = model.to(device)
    out = model(x)  # with autograd on, as in the tutorial, so repr shows grad_fn
    result = {"batch_size": batch_size, "seed": seed, "input_shape": list(x.shape)}
    result.update(outputs_to_rows(out))
    return result, repr(out.cpu())


def _seeded_inputs(
    arch: str, seed: int, loss: str, device: torch.device, target_kind: str
) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The seeded model, input, random gradient and target of the walkthrough, on ``device``.

    The target is MSE's random (or arange) row of 10, or one class for cross-entropy.
    """
    net = seeded_model(arch, seed).to(device)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, *INPUT_SHAPE, generator=gen).to(device)
    random_grad = torch.randn(1, 10, generator=gen).to(device)
    if loss == "mse" and target_kind == "arange":
        target = torch.arange(1, 11, dtype=torch.float32).view(1, -1).to(device)
    elif loss == "mse":
        target = torch.randn(10, generator=gen).view(1, -1).to(device)  # as in the tutorial
    else:
        target = torch.randint(0, 10, (1,), generator=gen).to(device)
    return net, x, random_grad, target


def _update_two_ways(net, x, target, criterion, lr: float, zero_grad: bool) -> dict[str, float]:
    """Steps 7 and 8: the manual rule and torch.optim.SGD from the same weights and gradients.

    Each runs on its own copy of ``net`` with its own zero_grad / forward / loss / backward, as
    the tutorial writes them; returns how far apart they end and the loss after each.
    """
    manual, with_optim = copy.deepcopy(net), copy.deepcopy(net)
    for copied in (manual, with_optim):  # deepcopy leaves .grad behind: carry it over too
        for p, q in zip(copied.parameters(), net.parameters(), strict=True):
            p.grad = None if q.grad is None else q.grad.clone()
    if zero_grad:
        manual.zero_grad(set_to_none=False)
    criterion(manual(x), target).backward()
    for f in manual.parameters():
        f.data.sub_(f.grad.data * lr)  # the tutorial's rule, as written there
    optimizer = torch.optim.SGD(with_optim.parameters(), lr=lr)
    if zero_grad:
        optimizer.zero_grad()
    criterion(with_optim(x), target).backward()
    optimizer.step()
    diffs = [
        (a.detach() - b.detach()).abs().max().item()
        for a, b in zip(manual.parameters(), with_optim.parameters(), strict=True)
    ]
    with torch.no_grad():
        return {
            "manual_vs_sgd_max_abs_diff": max(diffs),
            "loss_after_manual": criterion(manual(x), target).item(),
            "loss_after_sgd": criterion(with_optim(x), target).item(),
        }


def tutorial_step(
    arch: str = "tutorial",
    seed: int = 0,
    lr: float = 0.01,
    loss: str = "mse",
    device: torch.device | None = None,
    target_kind: str = "randn",
    zero_grad: bool = True,
) -> dict[str, Any]:
    """Steps 3-8 of the tutorial on one seeded random input and target, as data.

    ``target_kind`` "arange" uses the tutorial's other target, torch.arange(1, 11) (MSE only).
    ``zero_grad=False`` skips every zero_grad, so gradients pile up: step 6 then starts from
    step 4's gradient, and backpropagating the same loss twice adds its gradient twice.
    """
    device = device or torch.device("cpu")
    net, x, random_grad, target = _seeded_inputs(arch, seed, loss, device, target_kind)
    criterion = nn.MSELoss() if loss == "mse" else nn.CrossEntropyLoss()
    steps: dict[str, Any] = {"arch": arch, "seed": seed, "lr": lr, "loss_name": loss}
    steps.update(target_kind=target_kind, zero_grad=zero_grad, target=target.cpu().tolist())

    def maybe_zero(module: nn.Module) -> None:
        if zero_grad:
            module.zero_grad(set_to_none=False)

    # Step 3: forward.
    out = net(x)
    steps["output"] = out.detach().cpu().tolist()
    # Step 4: zero the gradients, backprop a random gradient.
    # set_to_none=False keeps zero tensors, as torch did when the tutorial was written
    # (today's default sets .grad to None, and the tutorial's "all zeros" line would print None).
    net.zero_grad(set_to_none=False)  # always: the gradients start at zero
    out.backward(random_grad)
    steps["random_backward_conv1_bias_grad"] = net.conv1.bias.grad.cpu().tolist()
    # Step 5: the loss.
    output = net(x)
    loss_value = criterion(output, target)
    steps["output_shape"] = list(output.shape)
    steps["target_shape"] = list(target.shape)
    steps["loss_before"] = loss_value.item()
    # Step 6: backprop the loss; conv1.bias.grad before (zeroed) and after.
    maybe_zero(net)
    steps["conv1_bias_grad_before"] = net.conv1.bias.grad.cpu().tolist()
    loss_value.backward(retain_graph=not zero_grad)
    steps["conv1_bias_grad_after"] = net.conv1.bias.grad.cpu().tolist()
    if not zero_grad:  # the same backward again: its gradient is added a second time
        loss_value.backward()
        steps["conv1_bias_grad_after_second"] = net.conv1.bias.grad.cpu().tolist()

    steps.update(_update_two_ways(net, x, target, criterion, lr, zero_grad))
    if loss == "cross-entropy":
        steps["ln_10"] = math.log(10)
    return steps
