"""The tutorial's steps as engines: a random forward pass, and the one-step walk-through.

Plain functions that return JSON-ready dicts; the CLI renders them. Nothing here prints.

The numbers are the ones the tutorial's own code prints in a fresh Python on the CPU after
``torch.manual_seed(seed)``: everything random is drawn from torch's global generator in the
tutorial's order, ``net = Net()`` (the layers' default init, conv1 first), then
``input = torch.randn(1, 1, 32, 32)``, then ``out.backward(torch.randn(1, 10))``'s gradient,
then ``target = torch.randn(10)``. Tensors are drawn on the CPU and moved to the device, so
every device starts from the same numbers.
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


def tutorial_start(arch: str, seed: int, batch_size: int = 1) -> tuple[nn.Module, torch.Tensor]:
    """``torch.manual_seed(seed); net = Net(); input = torch.randn(N, 1, 32, 32)``: the
    tutorial's network and input, on the CPU."""
    net = seeded_model(arch, seed)
    return net, torch.randn(batch_size, *INPUT_SHAPE)


def random_input(seed: int, batch_size: int = 1) -> torch.Tensor:
    """``torch.manual_seed(seed); torch.randn(N, 1, 32, 32)``: an input for a trained network
    (no fresh network draws its weights first)."""
    torch.manual_seed(seed)
    return torch.randn(batch_size, *INPUT_SHAPE)


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
    model: nn.Module, x: torch.Tensor, device: torch.device, seed: int
) -> tuple[dict[str, Any], str]:
    """``out = net(input)`` for the random input ``x`` (``tutorial_start`` or ``random_input``
    of ``seed``); returns the result and repr(out), as the tutorial's ``print(out)`` shows it."""
    x = x.to(device)
    model = model.to(device)
    out = model(x)  # with autograd on, as in the tutorial, so repr shows grad_fn
    result = {"batch_size": int(x.shape[0]), "seed": seed, "input_shape": list(x.shape)}
    result.update(outputs_to_rows(out))
    return result, repr(out.cpu())


def _seeded_inputs(
    arch: str, seed: int, loss: str, device: torch.device, target_kind: str
) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The seeded model, input, random gradient and target of the walkthrough, on ``device``,
    drawn in the tutorial's order (the module docstring).

    The target is MSE's random (or arange) row of 10, or one class for cross-entropy.
    """
    net, x = tutorial_start(arch, seed)
    random_grad = torch.randn(1, 10)
    if loss == "mse" and target_kind == "arange":
        target = torch.arange(1, 11, dtype=torch.float32).view(1, -1)
    elif loss == "mse":
        target = torch.randn(10).view(1, -1)  # as in the tutorial
    else:
        target = torch.randint(0, 10, (1,))
    return net.to(device), x.to(device), random_grad.to(device), target.to(device)


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
        manual.zero_grad()
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

    # Step 3: forward.
    out = net(x)
    steps["output"] = out.detach().cpu().tolist()
    # Step 4: zero the gradients, backprop a random gradient.
    net.zero_grad()  # always: the gradients start empty
    out.backward(random_grad)
    steps["random_backward_conv1_bias_grad"] = net.conv1.bias.grad.cpu().tolist()
    # Step 5: the loss.
    output = net(x)
    loss_value = criterion(output, target)
    steps["output_shape"] = list(output.shape)
    steps["target_shape"] = list(target.shape)
    steps["loss_before"] = loss_value.item()
    # Step 6: backprop the loss; conv1.bias.grad before and after. torch >= 2.0's zero_grad()
    # sets every .grad to None (set_to_none=True, its default), so "before" prints None where
    # the tutorial's text, written for older torch, shows zeros.
    if zero_grad:
        net.zero_grad()
    grad = net.conv1.bias.grad
    steps["conv1_bias_grad_before"] = None if grad is None else grad.cpu().tolist()
    loss_value.backward(retain_graph=not zero_grad)
    steps["conv1_bias_grad_after"] = net.conv1.bias.grad.cpu().tolist()
    if not zero_grad:  # the same backward again: its gradient is added a second time
        loss_value.backward()
        steps["conv1_bias_grad_after_second"] = net.conv1.bias.grad.cpu().tolist()

    steps.update(_update_two_ways(net, x, target, criterion, lr, zero_grad))
    if loss == "cross-entropy":
        steps["ln_10"] = math.log(10)
    return steps
