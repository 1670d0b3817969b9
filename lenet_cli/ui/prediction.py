"""`lenet predict --preview` and `--preview-out`: each step of a picture's preparation, drawn
in the terminal and as a PNG (the picture, the paper removed, the ink mask, the 28x28 digit,
the padded 32x32 the network reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenet_cli.ui.console import note
from lenet_cli.ui.data import render_digits

SIDE = 32  # each step drawn in the terminal as a square of this many pixels
DROPPED = (0.95, 0.55, 0.15)  # ink the scanner left out (specks, edges, other marks): orange


def _square(values: Any, thin: bool = False, side: int = SIDE) -> list[list[int]]:
    """[H, W] in [0, 1] fitted into side x side (aspect kept, black around it), as 0-255;
    ``thin``: each pixel the brightest of those it stands for, so one-pixel lines stay."""
    import numpy as np
    from PIL import Image, ImageFilter

    img = Image.fromarray(np.uint8(np.clip(np.asarray(values), 0, 1) * 255 + 0.5))
    if max(img.size) > side:
        scale = side / max(img.size)
        if thin:
            img = img.filter(ImageFilter.MaxFilter(2 * int(0.5 / scale) + 1))
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.BOX)
    canvas = Image.new("L", (side, side), 0)
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return np.asarray(canvas).tolist()


def render_steps(result: dict[str, Any]) -> None:
    """The preparation's steps of one result, side by side, captioned (stdout)."""
    steps = result["steps"]
    render_digits([_square(v, thin=k == "ink mask") for k, v in steps.items()], list(steps))


def render_warnings(results: list[dict[str, Any]]) -> None:
    """Each result's warnings on stderr, one line each, naming the file."""
    for r in results:
        for w in r.get("warnings", []):
            note(f"warning: {r['file']}: {w}")


def steps_png(result: dict[str, Any], path: Path, names: list[str] | None = None) -> Path:
    """One PNG: the steps side by side, titled with the file and the answer."""
    import numpy as np

    from lenet_cli.ui.png import pyplot, save

    plt = pyplot()
    steps = result["steps"]
    fig, axes = plt.subplots(1, len(steps), figsize=(2.3 * len(steps), 2.9))
    for ax, (name, values) in zip(np.atleast_1d(axes), steps.items(), strict=True):
        values = np.asarray(values)
        if name == "ink mask":  # kept ink white, dropped ink orange
            shown = np.zeros(values.shape + (3,), dtype=np.float32)
            shown[values >= 0.99] = 1.0
            shown[(values > 0) & (values < 0.99)] = DROPPED
            ax.imshow(shown, interpolation="nearest")
            name = "ink mask (orange: dropped)"
        else:
            small = max(values.shape) <= 64
            ax.imshow(values, cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest" if small else "antialiased")  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    label = names[result["predicted"]] if names else str(result["predicted"])
    top = result["probabilities"][result["predicted"]]
    title = f"{Path(result['file']).name}: {label} (probability {top:.3f})"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def preview_targets(files: list[str], out: Path) -> list[Path]:
    """Where each file's steps PNG goes: ``out`` itself for one picture (unless ``out`` is a
    folder), else ``out/STEM-steps.png`` (a number added when two files share a stem)."""
    if len(files) == 1 and not out.is_dir():
        return [out]
    taken: dict[str, int] = {}
    targets = []
    for f in files:
        stem = Path(f).stem or "image"
        taken[stem] = taken.get(stem, 0) + 1
        suffix = "" if taken[stem] == 1 else f"-{taken[stem]}"
        targets.append(out / f"{stem}{suffix}-steps.png")
    return targets


def saved_note(paths: list[Path]) -> None:
    note(f"preparation steps drawn in {', '.join(str(p) for p in paths)}")
