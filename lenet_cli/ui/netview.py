"""Terminal views of what the network holds: activation maps and filters.

Maps are drawn with half-block characters, two pixel rows per text line. On a colour terminal
each cell is an upper half block coloured with the top pixel over the bottom one (grey levels);
off a terminal (a pipe, NO_COLOR) a pixel is ink when it is above the middle of the layer's
range: ' ', '▀', '▄' or '█'. Every line fits 80 columns.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from lenet_cli.ui.console import out

WIDTH = 80
SPARK = "▁▂▃▄▅▆▇█"


def _level(v: float, lo: float, hi: float) -> float:
    return 0.0 if hi <= lo else min(1.0, max(0.0, (v - lo) / (hi - lo)))


def _map_lines(m: Any, lo: float, hi: float, colour: bool) -> list[Text]:
    """One map [H, W] as text lines, two pixel rows per line (an odd last row alone)."""
    lines = []
    for y in range(0, m.shape[0], 2):
        line = Text()
        for x in range(m.shape[1]):
            a = _level(float(m[y, x]), lo, hi)
            b = _level(float(m[y + 1, x]), lo, hi) if y + 1 < m.shape[0] else 0.0
            if colour:
                ga, gb = round(255 * a), round(255 * b)
                line.append("▀", style=f"rgb({ga},{ga},{ga}) on rgb({gb},{gb},{gb})")
            else:
                line.append(" ▀▄█"[(a > 0.5) + 2 * (b > 0.5)])
        lines.append(line)
    return lines


def draw_maps(maps: Any, title: str) -> None:
    """Maps [N, H, W] side by side, as many per row as fit 80 columns. Each map is scaled to
    its own range (a weak map's shape stays visible); the caption gives its maximum."""
    c = out()
    colour = c.color_system is not None
    width = maps.shape[2]
    per_row = max(1, (WIDTH + 2) // (width + 2))
    lo, hi = float(maps.min()), float(maps.max())
    c.print(f"{title}; values {lo:+.2f} .. {hi:+.2f}", markup=False, highlight=False)
    for start in range(0, maps.shape[0], per_row):
        group = range(start, min(start + per_row, maps.shape[0]))
        drawn = [
            _map_lines(maps[i], float(maps[i].min()), float(maps[i].max()), colour) for i in group
        ]
        for row in zip(*drawn, strict=True):
            line = Text()
            for k, part in enumerate(row):
                line.append("  " if k else "")
                line.append_text(part)
            line.rstrip()
            c.print(line, no_wrap=True, overflow="crop")
        names = [
            (f"#{i} max {float(maps[i].max()):.2f}" if width >= 12 else f"#{i}").ljust(width)
            for i in group
        ]
        c.print("  ".join(names).rstrip(), markup=False, highlight=False)


def sparkline(values: Any, title: str, per_line: int = 60) -> None:
    """A vector as bar characters (lowest to highest value), ``per_line`` values a line."""
    c = out()
    lo, hi = float(values.min()), float(values.max())
    c.print(f"{title}  (▁ {lo:+.2f} .. █ {hi:+.2f})", markup=False, highlight=False)
    chars = [SPARK[round(_level(float(v), lo, hi) * (len(SPARK) - 1))] for v in values]
    for start in range(0, len(chars), per_line):
        label = f"{start:>4} "
        c.print(label + "".join(chars[start : start + per_line]), markup=False, highlight=False)


def render_activations(doc: dict[str, Any], values: dict[str, Any], names: list[str]) -> None:
    """Every stage of one forward pass: maps, the dense layers, scores and probabilities."""
    c = out()
    act = "tanh" if doc["arch"] == "classic" else "ReLU"
    pool = "average pool" if doc["arch"] == "classic" else "max pool"
    label = f", true class {names[doc['label']]}" if doc.get("label") is not None else ""
    c.print(f"{doc['source']}{label}", markup=False, highlight=False)
    draw_maps(values["input"][None], "input as the network sees it (padded, normalised)")
    n1, n2 = values["conv1"].shape[0], values["conv2"].shape[0]
    draw_maps(values["conv1"], f"conv1: {n1} maps after {act}")
    draw_maps(values["pool1"], f"after {pool}: what conv2 reads")
    draw_maps(values["conv2"], f"conv2: {n2} maps after {act}")
    draw_maps(values["pool2"], f"after {pool}: flattened into fc1")
    sparkline(values["fc1"], f"fc1: {values['fc1'].size} outputs after {act}")
    sparkline(values["fc2"], f"fc2: {values['fc2'].size} outputs after {act}")
    c.print("fc3 scores and softmax", markup=False, highlight=False)
    best = int(values["softmax"].argmax())
    for k, (s, p) in enumerate(zip(values["scores"], values["softmax"], strict=True)):
        bar = "█" * round(30 * float(p))
        mark = "  <- prediction" if k == best else ""
        line = f"  {names[k]:>11} {float(s):+8.3f} {float(p):6.3f} {bar}{mark}".rstrip()
        c.print(line, markup=False, highlight=False)
