"""`lenet tutorial`: the tutorial's steps 1-9, one after another (pausing on a terminal)."""

from __future__ import annotations

from typing import Annotated

import typer

from lenet_cli import ui
from lenet_cli.cli.app import ArchOpt, JsonOpt, SeedOpt, app, setup_device
from lenet_cli.cli.viz_cmds import ForceOpt, OutOpt, png_target


def _terminal(stream) -> bool:  # noqa: ANN001
    """Whether ``stream`` is an open terminal: cron, nohup and `<&-` leave stdin closed (None)."""
    try:
        return stream is not None and not stream.closed and stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


@app.command("tutorial")
def tutorial_cmd(
    no_pause: Annotated[
        bool,
        typer.Option("--no-pause", help="Print every step at once (always so off a terminal)."),
    ] = False,
    seed: SeedOpt = 0,
    arch: ArchOpt = "tutorial",
    out: OutOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """The tutorial's steps 1-9 with their code and numbers, ending in one epoch of training.

    The numbers are those of the tutorial's own code after torch.manual_seed(SEED)."""
    import sys

    from lenet_cli.teach.tutorial import load_text, tutorial_steps

    target = png_target(out, "activations.png", force)
    setup_device("cpu")  # the tutorial runs on the CPU, with the usual threads
    total = len(load_text(arch, seed))
    pause = not (no_pause or json_out) and _terminal(sys.stdin) and _terminal(sys.stdout)
    digits = [str(k) for k in range(10)]
    done = []
    for step in tutorial_steps(seed, arch):
        values = step["values"]
        digit = None  # step 9's test digit, whose activations are drawn
        if "activations" in values:
            source = f"{values['data']} test image #{values['index']}"
            digit = {"arch": arch, "label": values["label"], "source": source}
        if digit is not None and target is not None:
            ui.activations_png(digit, values["activations"], digits, target)
            ui.note(f"wrote {target}")
        if json_out:
            done.append(step)
            continue
        ui.render_tutorial_step(step, total)
        if digit is not None:
            ui.render_activations(digit, values["activations"], digits)
        if pause and step["number"] < total and input("\n[Enter: next step, q: quit] ") == "q":
            return
    if json_out:
        for step in done:
            acts = step["values"].pop("activations", None)
            if acts is not None:  # the maps are in --out's PNG; the JSON keeps the softmax
                step["values"]["softmax"] = acts["softmax"].tolist()
        ui.print_json({"steps": done, "png": str(target) if target else None})
