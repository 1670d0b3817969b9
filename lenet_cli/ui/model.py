"""Rendering of inspect-params, forward and step."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from lenet_cli.ui.console import fmt_int, note, out


def render_model_facts(facts: dict[str, Any]) -> None:
    c = out()
    c.print(escape(facts["module"]))
    c.print()
    has_stats = bool(facts["parameters"]) and "mean" in facts["parameters"][0]
    table = Table(title=f"parameters of '{facts['arch']}'", title_justify="left")
    for col in ("#", "name", "shape", "count", "trainable"):
        table.add_column(col, justify="right" if col in ("#", "count") else "left")
    if has_stats:
        for col in ("mean", "std", "min", "max"):
            table.add_column(col, justify="right")
    for r in facts["parameters"]:
        cells = [
            str(r["index"]),
            r["name"],
            str(r["shape"]),
            fmt_int(r["count"]),
            "yes" if r["trainable"] else "no",
        ]
        if has_stats:
            cells += [f"{r[k]:+.4f}" for k in ("mean", "std", "min", "max")]
        table.add_row(*cells)
    table.add_section()
    table.add_row("", f"total ({facts['tensors']} tensors)", "", fmt_int(facts["total"]), "")
    c.print(table)
    trace = Table(title="one 1x32x32 input, layer by layer", title_justify="left")
    for col in ("layer", "operation", "output shape", "MACs"):
        trace.add_column(col, justify="right" if col == "MACs" else "left")
    for r in facts["trace"]:
        trace.add_row(
            r["layer"], escape(r["op"]), str(r["shape"]), fmt_int(r["macs"]) if r["macs"] else ""
        )
    trace.add_section()
    trace.add_row("total", "", "", fmt_int(facts["macs_per_image"]))
    c.print(trace)
    c.print(
        f"parameter memory: {fmt_int(facts['parameter_bytes'])} bytes "
        f"({facts['total']:,} float32 values)"
    )


def render_forward(result: dict[str, Any], tensor_repr: str, max_rows: int = 16) -> None:
    c = out()
    c.print(escape(tensor_repr))
    table = Table(title="softmax probabilities of classes 0-9", title_justify="left")
    table.add_column("row", justify="right")
    table.add_column("pred", justify="right")
    table.add_column("p(pred)", justify="right")
    table.add_column("    ".join("0123456789"), no_wrap=True)
    rows = list(zip(result["predicted"], result["probabilities"], strict=True))
    for i, (pred, probs) in enumerate(rows[:max_rows]):
        table.add_row(str(i), str(pred), f"{probs[pred]:.3f}", " ".join(f"{p:.2f}" for p in probs))
    c.print(table)
    if len(rows) > max_rows:
        note(f"{len(rows) - max_rows} more rows not shown; --json prints all of them")


def _vec(values: list[float]) -> str:
    return "[" + " ".join(f"{v:+.3f}" for v in values) + "]"


def render_step(s: dict[str, Any]) -> None:
    c = out()
    c.print(f"[bold]3. forward[/] one random 1x1x32x32 input (seed {s['seed']}); output:")
    c.print(f"   {_vec(s['output'][0])}")
    c.print("[bold]4. net.zero_grad(); out.backward(torch.randn(1, 10))[/]; conv1.bias.grad:")
    c.print(f"   {_vec(s['random_backward_conv1_bias_grad'])}")
    target = "torch.randn(10).view(1, -1)" if s["loss_name"] == "mse" else "a random class"
    if s.get("target_kind") == "arange" and s["loss_name"] == "mse":
        target = "torch.arange(1, 11).view(1, -1)"
    c.print(
        f"[bold]5. loss[/] {s['loss_name']}(output, target), shapes {s['output_shape']} and "
        f"{s['target_shape']};"
    )
    c.print(f"   target = {target}; loss:")
    c.print(f"   {s['loss_before']:.6f}")
    if "ln_10" in s:
        c.print(f"   (cross-entropy at initialisation is close to ln 10 = {s['ln_10']:.4f})")
    if s.get("zero_grad", True):
        c.print("[bold]6. backprop[/]: net.zero_grad(); conv1.bias.grad before loss.backward():")
    else:
        c.print("[bold]6. backprop[/] without zero_grad: conv1.bias.grad before, left from step 4:")
    before = s["conv1_bias_grad_before"]
    if before is None:
        c.print("   None")
        c.print("   (since torch 2.0, zero_grad() sets each .grad to None: set_to_none=True is")
        c.print("   its default; the tutorial's text, written for older torch, shows zeros)")
    else:
        c.print(f"   {_vec(before)}")
    c.print("   conv1.bias.grad after loss.backward():")
    c.print(f"   {_vec(s['conv1_bias_grad_after'])}")
    if "conv1_bias_grad_after_second" in s:
        _render_pile_up(s)
    c.print(f"[bold]7. update[/] f.data.sub_(f.grad.data * {s['lr']}) on every parameter; loss:")
    c.print(f"   {s['loss_before']:.6f} -> {s['loss_after_manual']:.6f}")
    c.print(f"[bold]8. torch.optim.SGD(lr={s['lr']})[/] from the same weights; loss:")
    c.print(f"   {s['loss_before']:.6f} -> {s['loss_after_sgd']:.6f}")
    c.print(
        "   largest difference between the manual rule's weights and SGD's: "
        f"{s['manual_vs_sgd_max_abs_diff']:.3g}"
    )


def _render_pile_up(s: dict[str, Any]) -> None:
    """What --no-zero-grad shows: each backward adds the loss's gradient once more."""
    c = out()
    before, first = s["conv1_bias_grad_before"], s["conv1_bias_grad_after"]
    second = s["conv1_bias_grad_after_second"]
    c.print("   after the same loss.backward() a second time:")
    c.print(f"   {_vec(second)}")
    once = [a - b for a, b in zip(first, before, strict=True)]
    twice = [a - b for a, b in zip(second, before, strict=True)]
    c.print("   added by the loss (after - before): once, then twice:")
    c.print(f"   {_vec(once)}")
    c.print(f"   {_vec(twice)}")
    ratios = [t / o for t, o in zip(twice, once, strict=True) if abs(o) > 1e-12]
    if ratios:
        c.print(f"   twice / once = {min(ratios):.4f} .. {max(ratios):.4f}: the gradient doubled,")
        c.print("   which zero_grad() before each backward prevents")
    c.print("   (steps 7 and 8 below update with these piled-up gradients)")
