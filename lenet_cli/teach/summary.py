"""Facts about a network as plain data: its parameter tensors, and the shape trace of one input.

The CLI renders these as tables or JSON; nothing here prints.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lenet_cli.model import INPUT_SHAPE


def parameter_rows(model: nn.Module, with_stats: bool = False) -> list[dict[str, Any]]:
    """One row per parameter tensor, in registration order (the tutorial's order)."""
    rows = []
    for index, (name, p) in enumerate(model.named_parameters()):
        row: dict[str, Any] = {
            "index": index,
            "name": name,
            "shape": list(p.shape),
            "count": p.numel(),
            "trainable": p.requires_grad,
        }
        if with_stats:
            data = p.detach().double()
            row.update(
                mean=data.mean().item(),
                std=data.std().item() if p.numel() > 1 else 0.0,
                min=data.min().item(),
                max=data.max().item(),
            )
        rows.append(row)
    return rows


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    """Multiply-accumulates of one module for the traced input."""
    if isinstance(module, nn.Conv2d):
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return out.numel() * per_output
    if isinstance(module, nn.Linear):
        return out.numel() // out.shape[-1] * module.in_features * module.out_features
    return 0


def shape_trace(model: nn.Module) -> list[dict[str, Any]]:
    """Each layer's output shape for one 1x32x32 input, with the steps between layers.

    The pools and the flatten are functional calls in ``forward``, so they are read off the
    change of shape between one layer's output and the next layer's input.
    """
    calls: list[tuple[str, nn.Module, list[int], torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(
            lambda mod, args, out, name=name: calls.append((name, mod, list(args[0].shape), out))
        )
        for name, m in model.named_modules()
        if not list(m.children())
    ]
    try:
        with torch.no_grad():
            x = torch.zeros(1, *INPUT_SHAPE, device=next(model.parameters()).device)
            model(x)
    finally:
        for h in hooks:
            h.remove()
    rows: list[dict[str, Any]] = [
        {"layer": "input", "op": "", "shape": [1, *INPUT_SHAPE], "macs": 0}
    ]
    for name, module, in_shape, out in calls:
        prev = rows[-1]["shape"]
        if in_shape != prev:
            rows.extend(_between(prev, in_shape))
        rows.append(
            {
                "layer": name,
                "op": _describe(module),
                "shape": list(out.shape),
                "macs": _macs(module, out),
            }
        )
    return rows


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        k = "x".join(map(str, module.kernel_size))
        return f"conv {k}, {module.in_channels} -> {module.out_channels} channels"
    if isinstance(module, nn.Linear):
        return f"linear {module.in_features} -> {module.out_features}"
    return type(module).__name__


def _between(prev: list[int], nxt: list[int]) -> list[dict[str, Any]]:
    """The functional steps (pooling, flatten) that turned shape ``prev`` into ``nxt``."""
    rows = []
    if len(nxt) == 2 and len(prev) == 4:
        c = prev[1]
        side = math.isqrt(nxt[1] // c)
        if side != prev[-1]:
            rows += _between(prev, [prev[0], c, side, side])
        rows.append(
            {
                "layer": "flatten",
                "op": f"{c}*{side}*{side} = {c * side * side}",
                "shape": nxt,
                "macs": 0,
            }
        )
        return rows
    factor = prev[-1] // nxt[-1] if nxt[-1] else 0
    return [
        {
            "layer": "pool",
            "op": f"{factor}x{factor} pool, {prev[-1]} -> {nxt[-1]}",
            "shape": nxt,
            "macs": 0,
        }
    ]


def model_facts(model: nn.Module, arch: str, with_stats: bool = False) -> dict[str, Any]:
    """Everything `lenet inspect-params` shows, as one JSON-ready document."""
    params = parameter_rows(model, with_stats=with_stats)
    trace = shape_trace(model)
    return {
        "arch": arch,
        "module": str(model),
        "parameters": params,
        "tensors": len(params),
        "total": sum(r["count"] for r in params),
        "trainable": sum(r["count"] for r in params if r["trainable"]),
        "parameter_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "trace": trace,
        "macs_per_image": sum(r["macs"] for r in trace),
    }
