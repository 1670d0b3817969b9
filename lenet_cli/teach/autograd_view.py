"""The autograd graph of the tutorial's MSE loss, from ``loss.grad_fn`` down to the parameters
(nothing printed).

The forward pass is written out as the tutorial writes ``Net.forward``, one named tensor per
step, so that each node of the graph can say which tensor it made: the tutorial's walk
``loss.grad_fn`` (MSELoss) -> ``.next_functions[0][0]`` (Linear) -> ... ends in AccumulateGrad
nodes, one per parameter.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lenet_cli.teach.walkthrough import tutorial_start


def _forward(net: nn.Module, x: torch.Tensor, arch: str) -> list[tuple[str, torch.Tensor]]:
    """The tutorial's forward pass as (name = expression, tensor) steps."""
    act, act_name = (torch.tanh, "tanh") if arch == "classic" else (F.relu, "relu")
    pool, pool_name = (
        (F.avg_pool2d, "avg_pool2d")
        if arch == "classic"
        else (
            F.max_pool2d,
            "max_pool2d",
        )
    )
    steps: list[tuple[str, torch.Tensor]] = []

    def step(name: str, t: torch.Tensor) -> torch.Tensor:
        steps.append((name, t))
        return t

    h = step("conv1(x)", net.conv1(x))
    h = step(f"{act_name}(conv1(x))", act(h))
    h = step(f"{pool_name}(..., 2)", pool(h, 2))
    h = step("conv2(...)", net.conv2(h))
    h = step(f"{act_name}(conv2(...))", act(h))
    h = step(f"{pool_name}(..., 2)", pool(h, 2))
    h = step("torch.flatten(..., 1)", torch.flatten(h, 1))
    h = step("fc1(...)", net.fc1(h))
    h = step(f"{act_name}(fc1(...))", act(h))
    h = step("fc2(...)", net.fc2(h))
    h = step(f"{act_name}(fc2(...))", act(h))
    step("output = fc3(...)", net.fc3(h))
    return steps


def loss_graph(arch: str = "tutorial", seed: int = 0) -> dict[str, Any]:
    """The graph of ``nn.MSELoss()(net(x), target)`` for the tutorial's net, input and target
    after ``torch.manual_seed(seed)`` (walkthrough.py: the tutorial's order of draws)."""
    net, x = tutorial_start(arch, seed)
    torch.randn(1, 10)  # step 4's random gradient: the tutorial draws it before the target
    target = torch.randn(10).view(1, -1)  # so the loss is the tutorial's, and `lenet step`'s
    steps = _forward(net, x, arch)
    output = steps[-1][1]
    loss = nn.MSELoss()(output, target)
    labels = {id(t.grad_fn): (name, list(t.shape)) for name, t in steps}
    labels[id(loss.grad_fn)] = ("loss = nn.MSELoss()(output, target)", [])
    params = {id(p): (name, list(p.shape)) for name, p in net.named_parameters()}
    with torch.no_grad():
        same = torch.allclose(output, net(x), atol=1e-5)  # the written-out forward is net's
    return {
        "arch": arch,
        "seed": seed,
        "loss": loss.item(),
        "matches_model_forward": bool(same),
        "graph": _node(loss.grad_fn, labels, params),
    }


def _node(fn: Any, labels: dict, params: dict) -> dict[str, Any]:
    """One node and, recursively, what its next_functions lead to."""
    node: dict[str, Any] = {"node": type(fn).__name__}
    if hasattr(fn, "variable"):  # AccumulateGrad: the leaf tensor whose .grad it fills
        name, shape = params.get(id(fn.variable), ("(a leaf tensor)", list(fn.variable.shape)))
        node.update(tensor=name, shape=shape, parameter=True)
        return node
    if id(fn) in labels:
        node["tensor"], node["shape"] = labels[id(fn)]
    node["next"] = [_node(f, labels, params) for f, _ in fn.next_functions if f is not None]
    return node


def chain(graph: dict[str, Any]) -> list[str]:
    """The tutorial's walk: the node names along next_functions[0][0] from the loss down."""
    names, node = [], graph
    while True:
        names.append(node["node"])
        nxt = node.get("next") or []
        if not nxt:
            return names
        node = max(nxt, key=_depth)  # the path towards the input, not a parameter's branch


def _depth(node: dict[str, Any]) -> int:
    return 1 + max((_depth(n) for n in node.get("next") or []), default=0)
