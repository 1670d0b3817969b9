"""`lenet autograd`: the loss's graph as an indented walk (stdout) and as a PNG.

The walk from the loss towards the input is the spine, one node a line at the left margin;
each node's other next_functions (parameters, and the transposes of the Linear weights) hang
off it as short branches, so 80 columns hold the whole graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenet_cli.ui import png
from lenet_cli.ui.console import out

COLUMN = 36


def _depth(node: dict[str, Any]) -> int:
    return 1 + max((_depth(n) for n in node.get("next") or []), default=0)


def spine(graph: dict[str, Any]) -> list[tuple[dict[str, Any], list[list[dict[str, Any]]]]]:
    """(node, its side branches as node chains) along the path to the input."""
    rows, node = [], graph
    while node is not None:
        nxt = node.get("next") or []
        main = max(nxt, key=_depth) if nxt else None
        if main is not None and _depth(main) == 1:  # only parameters left: all branches
            main = None
        branches = []
        for other in nxt:
            if other is main:
                continue
            chain, n = [other], other
            while n.get("next"):
                n = n["next"][0]
                chain.append(n)
            branches.append(chain)
        rows.append((node, branches))
        node = main
    return rows


def _label(node: dict[str, Any]) -> str:
    if "tensor" not in node:
        return ""
    return f"{node['tensor']} {node['shape']}"


def render_autograd(doc: dict[str, Any]) -> None:
    c = out()
    lines = [
        "loss.grad_fn and its .next_functions, for the tutorial's MSE loss",
        f"({doc['arch']}, seed {doc['seed']} as in `lenet step`: loss {doc['loss']:.6f});",
        "the input x does not require a gradient, so no node stands for it",
        "",
        "node".ljust(COLUMN) + "the tensor it made or fills (.grad)",
    ]
    for node, branches in spine(doc["graph"]):
        lines.append(node["node"].ljust(COLUMN - 1) + " " + _label(node))
        for k, chain in enumerate(branches):
            joint = "└─ " if k == len(branches) - 1 else "├─ "
            text = "  " + joint + " -> ".join(n["node"] for n in chain)
            lines.append(text.ljust(COLUMN - 1) + " " + _label(chain[-1]))
    for line in lines:
        c.print(line.rstrip(), markup=False, highlight=False, soft_wrap=True)


def autograd_png(doc: dict[str, Any], path: Path) -> Path:
    """The graph top to bottom: the spine in the left column, branches to its right."""
    plt = png.pyplot()
    rows = spine(doc["graph"])
    fig, ax = plt.subplots(figsize=(11, 0.62 * len(rows) + 1.2))
    ax.set_xlim(0, 2.8)
    ax.set_ylim(len(rows) - 0.4, -0.8)
    ax.axis("off")
    box = {"boxstyle": "round,pad=0.3", "linewidth": 1}
    arrow = {"arrowstyle": "->", "color": "0.35", "linewidth": 1}
    for y, (node, branches) in enumerate(rows):
        colour = "#fde3c8" if y == 0 else "#dbe8f6"
        text = f"{node['node']}\n{_label(node)}" if _label(node) else node["node"]
        ax.text(0.6, y, text, ha="center", va="center", fontsize=8, bbox={**box, "fc": colour})
        if y + 1 < len(rows):
            ax.annotate("", xy=(0.6, y + 0.62), xytext=(0.6, y + 0.32), arrowprops=arrow)
        if branches:  # the node's other next_functions, one line each, in one box
            text = "\n".join(
                " -> ".join(n["node"] for n in chain) + f":  {_label(chain[-1])}"
                for chain in branches
            )
            ax.text(
                1.35, y, text, ha="left", va="center", fontsize=7.5, bbox={**box, "fc": "#dff0d8"}
            )
            ax.annotate("", xy=(1.3, y), xytext=(0.9, y), arrowprops=arrow)
    ax.set_title(
        "autograd graph of nn.MSELoss()(net(x), target): loss.grad_fn at the top, "
        "next_functions downwards;\neach green box: the other next_functions of the node "
        "it hangs off; AccumulateGrad fills the parameter's .grad",
        fontsize=10,
    )
    return png.save(fig, path)
